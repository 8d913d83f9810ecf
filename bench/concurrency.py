"""How many open SSE streams one server process holds: N = 1,000 at once, each a different user.

For each server in turn (started fresh and alone, its replies paced so that each lasts ~12 s),
the bench opens N streams at once from one asyncio process, keeps them all open and reads each
to its end. It measures failures, the server's RSS (baseline after warm-up, peak while the N
are open), its CPU per stream and the time to the first event and to the first text delta
under that burst. See bench/README.md.

The client is raw `asyncio.open_connection` sockets and hand-written HTTP/1.1, not httpx: a
thousand httpx streams in one process would cost more CPU than some of the servers.

    .venv/bin/python -m bench.concurrency [--quick] [--streams N] [--servers floor,chatkit]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, astuple, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from bench import targets
from bench.report import PACKAGES, format_section, save_section
from bench.section import Row, Section
from bench.servers import (
    HOST,
    Server,
    open_files_limit,
    process_memory_kb,
    raise_open_files_limit,
    start_server,
)
from bench.stream_throughput import LOAD_WARNING, make_message
from bench.targets import (
    BEFORE_POSTGRES,
    BEFORE_SQLITE,
    CHATKIT,
    FLOOR,
    LABELS,
    POSTGRES,
    RELAY_POSTGRES,
    RELAY_SQLITE,
    REPO,
    Bench,
)

SERVERS = (FLOOR, CHATKIT, RELAY_SQLITE, RELAY_POSTGRES)
WITH_BEFORE = (FLOOR, CHATKIT, BEFORE_SQLITE, RELAY_SQLITE, BEFORE_POSTGRES, RELAY_POSTGRES)
OPTIONAL = (CHATKIT, *POSTGRES)  # skipped, with the reason recorded, when they cannot start
# chatrelay's events around the echoed words: thread.created, stream options, the user item, the
# assistant item, content part added, the 7-word preamble's deltas, part done, the finished item.
RELAY_EXTRA_EVENTS = 14
SAMPLE_SECONDS = 0.1
STREAM_TIMEOUT_SECONDS = 180.0  # on top of the reply's own length
SPARE_FILES = 200  # descriptors besides the N sockets: logs, the database, imports
Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Params:
    streams: int
    words: int  # the message; the offline model echoes one text delta per word
    delay_s: float  # pacing: OFFLINE_DELAY_SECONDS / FLOOR_DELAY_SECONDS
    warmup: int  # complete streams (each a different user) before the baseline RSS
    settle_s: float  # quiet time before reading the baseline and after the last stream


FULL = Params(streams=1000, words=40, delay_s=0.25, warmup=4, settle_s=2.0)
QUICK = Params(streams=200, words=8, delay_s=0.05, warmup=2, settle_s=0.3)


@dataclass
class Stream:
    """One stream as the client saw it. Times in seconds: start from the phase's start,
    first event and end from the stream's own start."""

    status: int = 0
    events: int = 0
    start_s: float = 0.0
    first_event_s: float | None = None
    first_delta_s: float | None = None  # first text delta: the thread and items come before
    end_s: float | None = None
    error: str | None = None  # why it failed; None when it ended with the expected events
    detail: str = ""  # a failed stream's error body, exception or last event


class Target:
    """One running server and the request every stream sends it (user and token vary)."""

    def __init__(self, bench: Bench, server: Server, body: dict[str, Any]) -> None:
        self.bench = bench
        self.server = server
        self.body = json.dumps(body).encode()
        self.expected_events: int | None = None

    def request(self, user: str) -> bytes:
        head = (
            f"POST /api/{user}/chat HTTP/1.1\r\nHost: {HOST}:{self.server.port}\r\n"
            f"Authorization: Bearer {self.bench.token(user)}\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + self.body


class Load:
    """What all streams of one phase share: the clock, and how many are open right now."""

    def __init__(self, streams: int, pid: int, timeout_s: float) -> None:
        self.streams, self.pid, self.timeout_s = streams, pid, timeout_s
        self.t0 = time.perf_counter()
        self.open = self.max_open = self.first_events = 0
        self.all_first_s: float | None = None
        self.rss_at_all_first_kb: int | None = None

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def opened(self) -> None:
        self.open += 1
        self.max_open = max(self.max_open, self.open)

    def first_event(self) -> None:
        self.first_events += 1
        if self.first_events == self.streams:
            self.all_first_s = self.now()
            self.rss_at_all_first_kb = process_memory_kb(self.pid)[0]


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    parts = (await reader.readline()).split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"no HTTP status line: {b' '.join(parts)[:80]!r}")
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _response_body(
    reader: asyncio.StreamReader, headers: dict[str, str]
) -> AsyncIterator[bytes]:
    """The response body as it arrives: chunked (how uvicorn streams), sized, or to EOF."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readline()).split(b";")[0], 16):  # ValueError at EOF
            yield (await reader.readexactly(size + 2))[:-2]
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
            pass
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


async def _read_events(stream: Stream, chunks: AsyncIterator[bytes], load: Load) -> bytes:
    """Count the `data:` lines (events) of an SSE body; returns the last one."""
    tail = last = b""
    started = stream.start_s + load.t0
    async for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                if stream.first_event_s is None:
                    stream.first_event_s = time.perf_counter() - started
                    load.first_event()
                stream.events += 1
                last = line
                if stream.first_delta_s is None and b"text_delta" in line:
                    stream.first_delta_s = time.perf_counter() - started
                if b'"type":"error"' in line:
                    stream.error = "error event"
    return last


async def open_stream(target: Target, request: bytes, load: Load) -> Stream:
    stream = Stream(start_s=load.now())
    writer: asyncio.StreamWriter | None = None
    last = b""
    try:
        async with asyncio.timeout(load.timeout_s):
            reader, writer = await asyncio.open_connection(HOST, target.server.port)
            writer.write(request)
            stream.status, headers = await _read_head(reader)
            if stream.status != 200:
                body = b"".join([chunk async for chunk in _response_body(reader, headers)])
                stream.error, stream.detail = f"status {stream.status}", body[:300].decode()
                return stream
            load.opened()
            try:
                last = await _read_events(stream, _response_body(reader, headers), load)
            finally:
                load.open -= 1
    except TimeoutError:
        stream.error = "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stream.error, stream.detail = type(exc).__name__, str(exc)[:300]
    finally:
        stream.end_s = load.now() - stream.start_s
        if writer is not None:
            writer.close()
    expected = target.expected_events
    if stream.error is None and expected is not None and stream.events != expected:
        stream.error = f"{stream.events} of {expected} events"
    if stream.error is not None and not stream.detail:
        stream.detail = last[:300].decode(errors="replace")  # the error event, or the last one
    return stream


async def open_streams(
    target: Target, users: Sequence[str], timeout_s: float
) -> tuple[list[Stream], Load]:
    """All at once: each user's stream is opened at the same moment and read to its end."""
    requests = [target.request(user) for user in users]  # tokens minted before the clock starts
    load = Load(len(users), target.server.process.pid, timeout_s)
    streams = await asyncio.gather(*(open_stream(target, request, load) for request in requests))
    return list(streams), load


class Sampler:
    """The server's RSS and CPU every SAMPLE_SECONDS, from a thread: a busy event loop in the
    client must not thin out the samples just when the server is busiest."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.t0 = time.perf_counter()
        self.samples: list[tuple[float, int, float]] = []  # (s since t0, RSS KiB, CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                rss, _ = self.server.memory_kb()
                cpu = self.server.cpu_seconds()
            except OSError:  # the server died: the streams will say so
                return
            self.samples.append((round(time.perf_counter() - self.t0, 3), rss, cpu))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _start(bench: Bench, name: str, params: Params, stack: ExitStack) -> Server:
    """`name` started alone, its replies paced by `params.delay_s`; stopped by `stack`."""
    pacing = {"OFFLINE_DELAY_SECONDS": str(params.delay_s)}
    if name == FLOOR:
        env = {
            **bench.base_env(),
            "FLOOR_EVENTS": str(params.words + RELAY_EXTRA_EVENTS),  # as many as chatrelay's
            "FLOOR_DELAY_SECONDS": str(params.delay_s),
        }
        command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app"]
        server = start_server(FLOOR, command, env=env, cwd=REPO, log_dir=bench.workdir)
    elif name == CHATKIT:
        server = targets.start_chatkit(bench, pacing)
    elif name not in POSTGRES:
        server = targets.start_relay(bench, name, targets.sqlite_url(bench, name), pacing)
    else:  # a fresh database, dropped after the server stops
        url = stack.enter_context(targets.postgres_database())
        server = targets.start_relay(bench, name, url, pacing)
    stack.callback(server.stop)
    return server


def request_body(name: str, message: str) -> dict[str, Any]:
    if name == CHATKIT:  # the ChatKit envelope; the others take chatrelay's JSON API body
        content = [{"type": "input_text", "text": message}]
        user_input = {"content": content, "attachments": [], "inference_options": {}}
        return {"type": "threads.create", "params": {"input": user_input}}
    return {"message": message}


@dataclass
class Warm:
    """A server started and warmed up: ready for the load, its baseline RSS read."""

    target: Target
    first_event_s: list[float | None]
    baseline_kb: int


def prepare(bench: Bench, name: str, params: Params, stack: ExitStack) -> Warm:
    """Start, run a few complete streams (each a new user), let it settle, read its RSS.

    The warm-up streams set the event count every stream of the load must have.
    """
    server = _start(bench, name, params, stack)
    target = Target(bench, server, request_body(name, make_message(params.words)))
    users = [f"warm{i}" for i in range(params.warmup)]
    streams, _ = asyncio.run(open_streams(target, users, STREAM_TIMEOUT_SECONDS))
    counts = {stream.events for stream in streams}
    if len(counts) != 1 or any(stream.error for stream in streams):
        raise RuntimeError(f"{name} warm-up: {streams}\n{server.log_tail()}")
    target.expected_events = counts.pop()
    time.sleep(params.settle_s)
    return Warm(target, [stream.first_event_s for stream in streams], server.memory_kb()[0])


def _preparers(
    bench: Bench, params: Params, stacks: dict[str, ExitStack], pool: ThreadPoolExecutor | None
) -> dict[str, Callable[[], Warm]]:
    """Per server, a call that returns it warm. Without a pool each starts when called, alone
    on the machine. With one (--quick) all start and warm up at once, then wait idle for their
    load: start-up (5-8 s of imports and migrations) would be most of a smoke run."""
    if pool is None:
        return {name: partial(prepare, bench, name, params, s) for name, s in stacks.items()}
    futures = {name: pool.submit(prepare, bench, name, params, s) for name, s in stacks.items()}
    wait(futures.values())  # nothing is measured while another server is still starting
    return {name: future.result for name, future in futures.items()}


def _round(value: object) -> object:
    """0.1 ms is plenty, and 4,000 streams of 17-digit floats would double the JSON."""
    return round(value, 4) if isinstance(value, float) else value


def run_load(warm: Warm, params: Params) -> dict[str, Any]:
    """Open `params.streams` streams at once (each a new user) and read them all to the end."""
    target, server = warm.target, warm.target.server
    assert target.expected_events is not None
    users = [f"u{i:05d}" for i in range(params.streams)]
    timeout = STREAM_TIMEOUT_SECONDS + target.expected_events * params.delay_s
    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    with Sampler(server) as sampler:
        streams, phase = asyncio.run(open_streams(target, users, timeout))
        time.sleep(params.settle_s)  # the server's tail work (commits) counts as its CPU too
    client_cpu = time.process_time() - client_before
    rss_kb, hwm_kb = server.memory_kb()
    return {
        "pid": server.process.pid,
        "open_files_limit": open_files_limit(server.process.pid),
        "expected_events": target.expected_events,
        "warmup_first_event_s": warm.first_event_s,
        "baseline_rss_kb": warm.baseline_kb,
        "rss_at_all_first_event_kb": phase.rss_at_all_first_kb,
        "rss_after_kb": rss_kb,
        "vm_hwm_kb": hwm_kb,  # the peak since start-up, for comparison with the sampled peak
        "server_cpu_s": server.cpu_seconds() - cpu_before,
        "client_cpu_s": client_cpu,
        "max_open": phase.max_open,
        "all_first_event_s": phase.all_first_s,
        "samples": {"columns": ["t_s", "rss_kb", "cpu_s"], "rows": sampler.samples},
        "samples_t0_minus_load_t0_s": sampler.t0 - phase.t0,
        "streams": {
            "columns": [f.name for f in fields(Stream)],
            "rows": [[_round(value) for value in astuple(stream)] for stream in streams],
        },
        "log_tail": server.log_tail(60) if any(s.error for s in streams) else "",
    }


def _percentiles_ms(name: str, seconds: list[float]) -> dict[str, float | None]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive") if seconds[1:] else None
    return {
        f"{name}_p50_ms": cuts[49] * 1e3 if cuts else None,
        f"{name}_p95_ms": cuts[94] * 1e3 if cuts else None,
        f"{name}_max_ms": max(seconds) * 1e3 if cuts else None,
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    columns = raw["streams"]["columns"]
    streams = [Stream(**dict(zip(columns, row, strict=True))) for row in raw["streams"]["rows"]]
    n = len(streams)
    firsts = [s.first_event_s for s in streams if s.first_event_s is not None]
    deltas = [s.first_delta_s for s in streams if s.first_delta_s is not None]
    rss = [row[1] for row in raw["samples"]["rows"]] + [raw["rss_at_all_first_event_kb"] or 0]
    peak_kb = max(rss)
    return {
        "failures": sum(s.error is not None for s in streams),
        "failure_reasons": dict(Counter(s.error for s in streams if s.error is not None)),
        "failure_examples": {s.error: s.detail for s in streams if s.error is not None},
        "max_open": raw["max_open"],
        "baseline_rss_mb": raw["baseline_rss_kb"] / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "rss_at_all_first_event_mb": (raw["rss_at_all_first_event_kb"] or 0) / 1024 or None,
        "rss_per_stream_kb": (peak_kb - raw["baseline_rss_kb"]) / n,
        **_percentiles_ms("first_event", firsts),
        **_percentiles_ms("first_delta", deltas),
        "all_first_event_s": raw["all_first_event_s"],
        "server_cpu_ms_per_stream": raw["server_cpu_s"] / n * 1e3,
        "client_cpu_ms_per_stream": raw["client_cpu_s"] / n * 1e3,
        "stream_s_p50": statistics.median(s.end_s or 0.0 for s in streams),
    }


def _rows(summaries: dict[str, dict[str, Any]], params: Params) -> list[Row]:
    def row(key: str, label: str, fmt: str, better: Better = "lower", note: str = "") -> Row:
        values = {name: s[key] for name, s in summaries.items() if s.get(key) is not None}
        return Row(key, label, better, values, fmt, note)

    rows = [
        row("failures", "failed streams", "{:,.0f}"),
        row("max_open", "streams open at once (max)", "{:,.0f}", better="higher"),
    ]
    memory = (
        ("rss_per_stream_kb", "RSS per open stream (KB)"),
        ("peak_rss_mb", "peak RSS (MB)"),
        ("baseline_rss_mb", "baseline RSS after warm-up (MB)"),
        ("rss_at_all_first_event_mb", "RSS when all had a first event (MB)"),
    )
    rows += [row(key, label, "{:,.1f}") for key, label in memory]
    floor_note = f"the floor sleeps {params.delay_s * 1e3:.0f} ms before its first event"
    note = floor_note if FLOOR in summaries else ""
    for what, label in (("first_event", "first event"), ("first_delta", "first text delta")):
        for stat in ("p50", "p95"):
            rows.append(
                row(f"{what}_{stat}_ms", f"time to {label}, {stat} (ms)", "{:,.0f}", note=note)
            )
    rows.append(row("all_first_event_s", "until all had a first event (s)", "{:,.2f}"))
    rows.append(row("server_cpu_ms_per_stream", "server CPU per stream (ms)", "{:,.2f}"))
    return rows


def measure(
    bench: Bench,
    *,
    quick: bool,
    servers: Sequence[str] = SERVERS,
    streams: int | None = None,
    words: int | None = None,
    delay_s: float | None = None,
) -> Section:
    """Each server in turn, started fresh and alone: N streams at once, held open to the end.

    `streams`, `words` and `delay_s` replace the defaults of FULL (or QUICK) when given.
    """
    params = QUICK if quick else FULL
    params = replace(
        params,
        streams=params.streams if streams is None else streams,
        words=params.words if words is None else words,
        delay_s=params.delay_s if delay_s is None else delay_s,
    )
    soft, hard = raise_open_files_limit()  # the servers started below inherit it
    if soft < params.streams + SPARE_FILES:
        raise RuntimeError(f"RLIMIT_NOFILE {soft} (hard {hard}) < {params.streams} streams")
    raw: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with ExitStack() as run:
        stacks = {name: run.enter_context(ExitStack()) for name in servers}
        pool = run.enter_context(ThreadPoolExecutor(len(servers))) if quick else None
        preparers = _preparers(bench, params, stacks, pool)
        for name in servers:
            print(f"{name}: {params.streams} streams ...", end=" ", flush=True)
            with stacks[name]:  # stops the server before the next one is measured
                try:
                    raw[name] = run_load(preparers[name](), params)
                except Exception as exc:
                    if name not in OPTIONAL:
                        raise
                    skipped[name] = f"{type(exc).__name__}: {exc}"[:2000]
                    print(f"skipped ({skipped[name].splitlines()[0][:120]})")
                    continue
            raw[name]["summary"] = summarise(raw[name])
            print(f"{raw[name]['summary']['failures']} failed")
    summaries = {name: data["summary"] for name, data in raw.items()}
    return Section(
        name="concurrency",
        params={
            **asdict(params),
            "reply_events": {name: data["expected_events"] for name, data in raw.items()},
            "bench_open_files_limit": [soft, hard],
            "sample_seconds": SAMPLE_SECONDS,
        },
        rows=_rows(summaries, params),
        raw={"servers": raw, "skipped": skipped},
    )


def print_report(section: Section) -> None:
    params = section.params
    print(
        f"\nconcurrency: {params['streams']} streams at once per server, each a new user; "
        f"{params['words']}-word messages, replies paced {params['delay_s']} s per event\n"
    )
    print(format_section(section, LABELS, WITH_BEFORE, baseline=FLOOR))
    for name, data in section.raw["servers"].items():
        summary = data["summary"]
        for reason, count in summary["failure_reasons"].items():
            print(f"{name}: {count} x {reason}: {summary['failure_examples'][reason][:300]}")
    for name, reason in section.raw["skipped"].items():
        print(f"skipped {name}: {reason.splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.concurrency", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 streams, short replies")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--streams", type=int, help="streams at once (default 1000)")
    parser.add_argument("--words", type=int, help="words per message: deltas per reply (40)")
    parser.add_argument("--delay", type=float, help="seconds between a reply's events (0.25)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    args = parser.parse_args(argv)
    servers = [name for name in args.servers.split(",") if name]
    if unknown := set(servers) - set(SERVERS):
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    if os.getloadavg()[0] > LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="chatrelay-bench-"))
    try:
        section = measure(
            Bench(workdir),
            quick=args.quick,
            servers=servers,
            streams=args.streams,
            words=args.words,
            delay_s=args.delay,
        )
    finally:
        if args.keep:
            print(f"work dir kept (server logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    packages = (*PACKAGES, "openai-chatkit", "aiosqlite", "asyncpg", "sqlalchemy")
    path = save_section(REPO, section, started, packages, quick=args.quick)
    print_report(section)
    print(f"\nraw results: {path.relative_to(REPO)} ({time.time() - started:.1f}s)")
    failed = any(data["summary"]["failures"] for data in section.raw["servers"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

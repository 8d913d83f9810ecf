"""Streaming throughput of four servers: the sse-starlette floor (A), ChatKitServer (B) and
chatrelay on SQLite and on Postgres (C).

Each runs as a uvicorn process on 127.0.0.1; one run measures them all, interleaved
(A, B, C1, C2, A, B, ...); medians over trials are reported. See bench/README.md.

    .venv/bin/python -m bench.stream_throughput [--quick]

`measure()` takes servers started by the caller. The floor must stream as many events as
chatrelay: start it with `start_floor(bench, floor_events(bench, relay))`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from bench.report import PACKAGES, format_section, save_section, spread
from bench.section import Row, Section
from bench.servers import Server
from bench.targets import (
    BEFORE_POSTGRES,
    BEFORE_SQLITE,
    CHATKIT,
    FLOOR,
    LABELS,
    RELAY_POSTGRES,
    RELAY_SQLITE,
    RELAYS,
    REPO,
    Bench,
    postgres_database,
    sqlite_url,
    start_chatkit,
    start_floor,
    start_relay,
)

USER = "bench"
CHAT_PATH = f"/api/{USER}/chat"
MAX_MESSAGE_CHARS = 10_000  # chatrelay's limit on a message
LOAD_WARNING = 0.5  # 1-minute load average above which other work skews the numbers
SETTLE_SECONDS = 0.05  # let the server finish a request's tail work before reading its CPU
# Interleaving order; a "before" server only runs with `--baseline`.
ORDER = (FLOOR, CHATKIT, BEFORE_SQLITE, RELAY_SQLITE, BEFORE_POSTGRES, RELAY_POSTGRES)


@dataclass(frozen=True)
class Params:
    words: int = 500  # W: the message's words; the offline model echoes one delta per word
    trials: int = 11  # per server
    requests: int = 10  # per trial


FULL, QUICK = Params(), Params(trials=3, requests=2)


class BenchError(RuntimeError):
    """A reply that is not what the bench asked for: the run is invalid, not slow."""


@dataclass
class StreamResult:
    """One request: from sending the POST to the end of the stream."""

    events: int
    bytes: int
    wall_s: float
    first_event_s: float


@dataclass
class Trial:
    server: str
    index: int
    server_cpu_s: float
    client_cpu_s: float
    requests: list[StreamResult]

    def metrics(self) -> dict[str, float]:
        events = sum(r.events for r in self.requests)
        wall = sum(r.wall_s for r in self.requests)
        return {
            "events_per_s": events / wall,
            "wall_s_per_event": wall / events,
            "server_cpu_s_per_event": self.server_cpu_s / events,
            "client_cpu_s_per_event": self.client_cpu_s / events,
            "first_event_s": statistics.median(r.first_event_s for r in self.requests),
        }


def make_message(words: int) -> str:
    """W distinct short words; the offline model echoes each one as its own text delta."""
    return " ".join(f"w{i}" for i in range(words))


def chatkit_input(text: str) -> dict[str, Any]:
    """A ChatKit `UserMessageInput`: the text, no attachments, default inference options."""
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


def request_body(name: str, message: str) -> dict[str, Any]:
    """A new conversation: ChatKit's `threads.create` envelope for ChatKitServer, chatrelay's
    (and the floor's) `{"message": ...}` for the others."""
    if name != CHATKIT:
        return {"message": message}
    return {"type": "threads.create", "params": {"input": chatkit_input(message)}}


class Target:
    """One server under test, with its keep-alive client and the stream it must return."""

    def __init__(self, name: str, server: Server, bench: Bench, message: str) -> None:
        self.name, self.server = name, server
        self.body = request_body(name, message)
        headers = {"Authorization": f"Bearer {bench.token(USER)}", "Accept": "text/event-stream"}
        self.client = httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0)
        self.expected_events = 0
        self.last_type = ""  # of a complete reply's last event

    def sample(self) -> list[dict[str, Any]]:
        """One full request, every event parsed (warm-up and parity checks, never timed);
        it sets the event count and the last event every timed request must match."""
        with self.client.stream("POST", CHAT_PATH, json=self.body) as response:
            if response.status_code != 200:
                raise BenchError(f"{self.name}: HTTP {response.status_code}: {response.read()!r}")
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        events = [json.loads(line.removeprefix("data:")) for line in lines]
        if not events or any(event["type"] == "error" for event in events):
            raise BenchError(f"{self.name} streamed an error or nothing: {events[-1:]}")
        self.expected_events, self.last_type = len(events), events[-1]["type"]
        return events

    def stream(self) -> StreamResult:
        events = 0
        first: float | None = None
        last = ""
        start = time.perf_counter()
        with self.client.stream("POST", CHAT_PATH, json=self.body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    if first is None:
                        first = time.perf_counter() - start
                    events += 1
                    last = line
            wall = time.perf_counter() - start
            size = response.num_bytes_downloaded
        complete = response.status_code == 200 and events == self.expected_events
        last_type = json.loads(last.removeprefix("data:"))["type"] if last else None
        if first is None or not complete or last_type != self.last_type:
            raise BenchError(
                f"{self.name}: HTTP {response.status_code}, {events} events (expected "
                f"{self.expected_events} ending in {self.last_type}), last: {last[:300]}"
            )
        return StreamResult(events, size, wall, first)

    def trial(self, index: int, requests: int) -> Trial:
        time.sleep(SETTLE_SECONDS)
        server_before, client_before = self.server.cpu_seconds(), time.process_time()
        results = [self.stream() for _ in range(requests)]
        time.sleep(SETTLE_SECONDS)
        server_cpu = self.server.cpu_seconds() - server_before
        client_cpu = time.process_time() - client_before  # sleeping costs no CPU
        return Trial(self.name, index, server_cpu, client_cpu, results)


def floor_events(bench: Bench, relay: Server, words: int = FULL.words) -> int:
    """The events of chatrelay's reply to a W-word message: the floor must stream as many."""
    target = Target(RELAY_SQLITE, relay, bench, make_message(words))
    try:
        return len(target.sample())
    finally:
        target.client.close()


def _shape(value: Any) -> Any:
    """The keys (recursively) and value types of a JSON value, for comparing event shapes."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items())}
    return type(value).__name__


def _deltas(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if str(e.get("update", {}).get("type", "")).endswith("text_delta")]


def check_parity(samples: dict[str, list[dict[str, Any]]]) -> None:
    """Every server streams the same reply: as many text deltas as chatrelay; chatrelay on
    either database and the floor as many events; the floor's each shaped like a text delta."""
    relay = next((samples[name] for name in RELAYS if name in samples), None)
    if relay is None:
        return
    deltas = _deltas(relay)
    for name, events in samples.items():
        if name != FLOOR and len(_deltas(events)) != len(deltas):
            raise BenchError(f"{name}: {len(_deltas(events))} text deltas, chatrelay {len(deltas)}")
    for name in (FLOOR, *RELAYS):
        if name in samples and len(samples[name]) != len(relay):
            raise BenchError(
                f"{name}: {len(samples[name])} events per reply, chatrelay {len(relay)}; "
                "start the floor with start_floor(bench, floor_events(bench, relay))"
            )
    floor_shapes = {json.dumps(_shape(e)) for e in samples.get(FLOOR, [])}
    if floor_shapes - {json.dumps(_shape(deltas[0]))}:
        raise BenchError("the floor's events are not shaped like chatrelay's text deltas")


def summarise(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Per server: every metric's median, min and max over trials, and the server CPU per
    event pooled over all of them (one trial's CPU time is only good to one clock tick)."""
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(trial.server for trial in trials):
        mine = [trial for trial in trials if trial.server == name]
        metrics = [trial.metrics() for trial in mine]
        summary[name] = {key: spread(m[key] for m in metrics) for key in metrics[0]}
        events = sum(r.events for trial in mine for r in trial.requests)
        summary[name]["server_cpu_s_per_event_pooled"] = (
            sum(trial.server_cpu_s for trial in mine) / events
        )
        summary[name]["bytes_per_request"] = statistics.median(
            r.bytes for trial in mine for r in trial.requests
        )
    return summary


FIRST_EVENT = "chatrelay and ChatKitServer send thread.created first, once the thread is stored"


US, MS = "{:,.1f}", "{:,.2f}"
# key, label, better, scale to the printed unit, format, note (replacing the per-event one)
METRICS: tuple[tuple[str, str, Literal["lower", "higher"], float, str, str], ...] = (
    ("events_per_s", "events/s (wall)", "higher", 1.0, "{:,.0f}", ""),
    ("server_cpu_s_per_event", "server CPU per event (us)", "lower", 1e6, US, ""),
    ("server_cpu_s_per_event_pooled", "server CPU per event, pooled (us)", "lower", 1e6, US, ""),
    ("wall_s_per_event", "wall time per event (us)", "lower", 1e6, US, ""),
    ("first_event_s", "time to first event (ms)", "lower", 1e3, MS, FIRST_EVENT),
    ("client_cpu_s_per_event", "client CPU per event (us)", "lower", 1e6, US, ""),
)


def _rows(summary: dict[str, dict[str, Any]], events: dict[str, int]) -> list[Row]:
    """One row per metric: each server's median over trials (pooled: the one pooled figure)."""
    per_event = ""
    if len(set(events.values())) > 1:  # say so when the servers' replies differ in events
        counts = ", ".join(f"{name} {count}" for name, count in events.items())
        per_event = f"per event of each server's own reply; events per reply: {counts}"
    rows = []
    for key, label, better, scale, fmt, note in METRICS:
        values = {}
        for name, stats in summary.items():
            value = stats[key]  # the pooled figure is one number, the others a spread
            values[name] = (value if isinstance(value, float) else value["median"]) * scale
        rows.append(Row(key, label, better, values, fmt, note or per_event))
    return rows


class Trialled(Protocol):
    def trial(self, index: int, requests: int) -> Trial: ...


def interleaved_trials(targets: Sequence[Trialled], trials: int, requests: int) -> list[Trial]:
    """`trials` rounds of one trial per target, in order (A, B, ..., A, B, ...): drift of
    the machine spreads evenly over the servers."""
    done: list[Trial] = []
    for index in range(trials):
        for target in targets:
            done.append(target.trial(index, requests))
            print(".", end="", flush=True)
    print()
    return done


def measure(
    bench: Bench, servers: dict[str, Server], *, quick: bool, params: Params | None = None
) -> Section:
    """Every server in `servers` (keyed by bench.targets' names), interleaved trials."""
    params = params or (QUICK if quick else FULL)
    message = make_message(params.words)
    targets = [Target(name, servers[name], bench, message) for name in ORDER if name in servers]
    try:
        check_parity({target.name: target.sample() for target in targets})
        for target in targets:  # one more warm-up request each
            target.stream()
        trials = interleaved_trials(targets, params.trials, params.requests)
    finally:
        for target in targets:
            target.client.close()
    events = {target.name: target.expected_events for target in targets}
    summary = summarise(trials)
    raw = {
        "events_per_request": events,
        "trials": [{**asdict(t), "metrics": t.metrics()} for t in trials],
        "summary": summary,
    }
    section_params = {
        **asdict(params),
        "servers": list(events),
        "interleaving": "trials: " + ", ".join(events) + ", then again",
    }
    return Section("stream_throughput", section_params, _rows(summary, events), raw)


# -- standalone --------------------------------------------------------------------------


def start_servers(
    bench: Bench, stack: ExitStack, words: int
) -> tuple[dict[str, Server], dict[str, str]]:
    """Every server, started in parallel; the floor once chatrelay (SQLite) has answered, as
    its reply sets the floor's event count. ChatKitServer or chatrelay on Postgres (a fresh
    database) that cannot start are skipped, with the reason. The "before" servers start
    only when `bench.before` is set, and must start."""

    def start(starter: Callable[[], Server]) -> Server:
        server = starter()
        stack.callback(server.stop)  # registered as soon as it runs, even if another fails
        return server

    def on_sqlite(name: str) -> Callable[[], Server]:
        return lambda: start_relay(bench, name, sqlite_url(bench, name))

    def on_postgres(name: str) -> Callable[[], Server]:
        def starter() -> Server:
            url = stack.enter_context(postgres_database())  # dropped after the server stops
            return start_relay(bench, name, url)

        return starter

    starters: dict[str, Callable[[], Server]] = {
        RELAY_SQLITE: on_sqlite(RELAY_SQLITE),
        CHATKIT: lambda: start_chatkit(bench),
        RELAY_POSTGRES: on_postgres(RELAY_POSTGRES),
    }
    if bench.before is not None:
        starters |= {BEFORE_SQLITE: on_sqlite(BEFORE_SQLITE)}
        starters |= {BEFORE_POSTGRES: on_postgres(BEFORE_POSTGRES)}
    with ThreadPoolExecutor(len(starters) + 1) as pool:
        futures = {name: pool.submit(start, starter) for name, starter in starters.items()}
        relay = futures[RELAY_SQLITE].result()
        events = floor_events(bench, relay, words)
        futures[FLOOR] = pool.submit(start, lambda: start_floor(bench, events))
    servers: dict[str, Server] = {}
    skipped: dict[str, str] = {}
    for name in ORDER:
        if name not in futures:
            continue
        try:
            servers[name] = futures[name].result()
        except Exception as exc:  # Postgres refused, timed out, denied: "no Postgres here"
            if name in (FLOOR, RELAY_SQLITE, BEFORE_SQLITE):
                raise
            skipped[name] = f"did not start: {type(exc).__name__}: {str(exc)[:2000]}"
    return servers, skipped


def dump_logs_on_error(servers: dict[str, Server]) -> None:
    if sys.exc_info()[0] is not None:
        for server in servers.values():
            print(f"\n--- {server.name} log (tail) ---\n{server.log_tail()}", file=sys.stderr)


def print_report(section: Section, skipped: dict[str, str]) -> None:
    params, raw = section.params, section.raw
    print(
        f"\nstream throughput, W={params['words']} words, {params['trials']} trials x "
        f"{params['requests']} requests per server, interleaved {params['servers']}"
    )
    for name, count in raw["events_per_request"].items():
        size = raw["summary"][name]["bytes_per_request"] / 1024
        print(f"  {LABELS[name]}: {count} events / {size:.0f} KiB per request")
    print("cells: median over trials (ratio to A)\n")
    print(format_section(section, LABELS, ORDER, baseline=FLOOR))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason.splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.stream_throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 trials x 2 requests (a smoke run)")
    parser.add_argument("--trials", type=int, help=f"trials per server (default {FULL.trials})")
    parser.add_argument("--requests", type=int, help=f"requests per trial ({FULL.requests})")
    parser.add_argument("--words", type=int, default=FULL.words, help="words in the message (W)")
    args = parser.parse_args(argv)
    if args.words < 1 or len(make_message(args.words)) > MAX_MESSAGE_CHARS:
        parser.error(f"--words must give a message of 1..{MAX_MESSAGE_CHARS} characters")
    base = QUICK if args.quick else FULL
    params = replace(
        base,
        words=args.words,
        trials=args.trials or base.trials,
        requests=args.requests or base.requests,
    )
    if os.getloadavg()[0] > LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp, ExitStack() as stack:
        bench = Bench(Path(tmp))
        servers, skipped = start_servers(bench, stack, params.words)
        stack.callback(dump_logs_on_error, servers)
        section = measure(bench, servers, quick=args.quick, params=params)
    packages = (*PACKAGES, "openai-chatkit", "aiosqlite", "asyncpg")
    path = save_section(REPO, section, started, packages, quick=args.quick, skipped=skipped)
    print_report(section, skipped)
    print(f"\nraw results: {path.relative_to(REPO)} ({time.time() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Latency and non-streaming throughput of every server in bench.targets.

Time to first token (a new conversation; one with 100+ prior messages; for chatrelay also one
with 400+) and JSON requests/s at concurrency 1 and 16, each server in its own uvicorn process,
requests interleaved across servers (A, B, C, C, A, ...). See bench/README.md.

    .venv/bin/python -m bench.latency [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.report import PACKAGES, format_section, save_section
from bench.section import Row, Section
from bench.servers import Server
from bench.stream_throughput import (
    CHAT_PATH,
    LOAD_WARNING,
    ORDER,
    USER,
    BenchError,
    dump_logs_on_error,
    make_message,
    start_servers,
)
from bench.targets import CHATKIT, FLOOR, LABELS, RELAYS, REPO, Bench

WORDS = 5  # a short message; the offline model answers with a 7-word preamble and its words
MESSAGE = make_message(WORDS)  # "w0 w1 ...": no todo command, so the reply is plain text
HISTORY_TURNS = 50  # seeded before measuring: 100 prior messages
SSE = {"Accept": "text/event-stream"}
JSON = {"Accept": "application/json"}
FRESH, HISTORY, LONG = "fresh", "history", "long_history"


@dataclass(frozen=True)
class Params:
    samples: int  # TTFT samples per server and case
    long_turns: int  # turns seeded on chatrelay's long conversation (0 skips that case)
    json_slices: int  # timed JSON slices per server and concurrency, interleaved
    slice_seconds: float
    warmup: int  # untimed requests (TTFT) or rounds of `concurrency` requests (JSON)
    concurrency: tuple[int, ...] = (1, 16)


FULL = Params(samples=100, long_turns=200, json_slices=5, slice_seconds=1.0, warmup=5)
# A smoke run: the long conversation (200 more turns to seed) only in full runs.
QUICK = Params(samples=10, long_turns=0, json_slices=1, slice_seconds=0.5, warmup=1)


def plain_body(conversation_id: str | None) -> dict[str, Any]:
    """chatrelay's (and the floor's) `{"message", "conversation_id"}` body."""
    if conversation_id is None:
        return {"message": MESSAGE}
    return {"message": MESSAGE, "conversation_id": conversation_id}


def chatkit_body(conversation_id: str | None) -> dict[str, Any]:
    """The ChatKit envelope: `threads.create`, or `threads.add_user_message` on a thread."""
    user_input = {
        "content": [{"type": "input_text", "text": MESSAGE}],
        "attachments": [],
        "inference_options": {},
    }
    if conversation_id is None:
        return {"type": "threads.create", "params": {"input": user_input}}
    params = {"thread_id": conversation_id, "input": user_input}
    return {"type": "threads.add_user_message", "params": params}


def body_for(name: str) -> Callable[[str | None], dict[str, Any]]:
    return chatkit_body if name == CHATKIT else plain_body


@dataclass
class Streamed:
    ttft_s: float  # POST sent -> first text-delta event received
    total_s: float  # POST sent -> end of the stream
    events: int
    thread_id: str | None  # from `thread.created`, when the reply started a conversation


def _is_text_delta(event: dict[str, Any]) -> bool:
    update = event.get("update")
    return isinstance(update, dict) and str(update.get("type", "")).endswith("text_delta")


class Target:
    """One server, with its keep-alive client, streaming one turn at a time."""

    def __init__(self, name: str, server: Server, bench: Bench) -> None:
        self.name = name
        self.body = body_for(name)
        auth = {"Authorization": f"Bearer {bench.token(USER)}"}
        self.client = httpx.Client(base_url=server.base_url, headers=auth, timeout=60.0)

    def stream(self, conversation_id: str | None = None) -> Streamed:
        first: float | None = None
        thread_id: str | None = None
        events = 0
        start = time.perf_counter()
        body = self.body(conversation_id)
        with self.client.stream("POST", CHAT_PATH, json=body, headers=SSE) as response:
            if response.status_code != 200:
                raise BenchError(f"{self.name}: HTTP {response.status_code}: {response.read()!r}")
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.perf_counter()  # before parsing: the client's cost stays out
                events += 1
                data = line[5:].lstrip()
                if data.startswith('{"type":"error"'):
                    raise BenchError(f"{self.name} streamed an error: {data[:300]}")
                if first is None:  # parse only the few events before the first delta
                    event = json.loads(data)
                    if event.get("type") == "thread.created":
                        thread_id = event["thread"]["id"]
                    if _is_text_delta(event):
                        first = now - start
        if first is None:
            raise BenchError(f"{self.name}: no text delta in {events} events")
        return Streamed(first, time.perf_counter() - start, events, thread_id)

    def seed(self, turns: int) -> str:
        """A conversation with `turns` completed turns (2 x `turns` messages), via the API."""
        thread_id = self.stream().thread_id
        if thread_id is None:
            raise BenchError(f"{self.name}: no thread.created in a new conversation's reply")
        for _ in range(turns - 1):
            self.stream(thread_id)
        return thread_id


def distribution(values: list[float]) -> dict[str, float]:
    """p50 and p95 of durations in seconds, in milliseconds (NaN when there are none)."""
    ms = sorted(v * 1e3 for v in values)
    if not ms:
        return {"n": 0, "p50_ms": math.nan, "p95_ms": math.nan}
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": cuts[94]}


def ttft_phase(targets: list[Target], params: Params) -> dict[str, Any]:
    """TTFT samples per case and server, interleaved: every case of every server per round."""
    for target in targets:
        for _ in range(params.warmup):
            target.stream()
    # The floor keeps no history: its "history" request is the fresh one, measured again.
    conversations: dict[str, dict[str, str | None]] = {FRESH: {}, HISTORY: {}, LONG: {}}
    seeded: dict[str, dict[str, int]] = {HISTORY: {}, LONG: {}}
    for target in targets:
        conversations[FRESH][target.name] = None
        turns = 0 if target.name == FLOOR else HISTORY_TURNS
        conversations[HISTORY][target.name] = target.seed(turns) if turns else None
        seeded[HISTORY][target.name] = 2 * turns
        if target.name in RELAYS and params.long_turns:
            conversations[LONG][target.name] = target.seed(params.long_turns)
            seeded[LONG][target.name] = 2 * params.long_turns
    plan = [(case, t) for case in conversations for t in targets if t.name in conversations[case]]
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        case: {name: {"ttft_s": [], "total_s": []} for name in by_name}
        for case, by_name in conversations.items()
    }
    for _ in range(params.samples):
        for case, target in plan:
            result = target.stream(conversations[case][target.name])
            samples[case][target.name]["ttft_s"].append(result.ttft_s)
            samples[case][target.name]["total_s"].append(result.total_s)
    summary = {
        case: {name: distribution(s["ttft_s"]) for name, s in by_name.items()}
        for case, by_name in samples.items()
    }
    # Every measured turn adds two messages to the conversation it was measured on (the
    # floor's "conversation" stays empty).
    grown = 2 * (params.samples - 1)
    span = {
        case: {name: [count, count + grown if count else 0] for name, count in by_name.items()}
        for case, by_name in seeded.items()
    }
    return {"prior_messages_first_last": span, "samples": samples, "summary": summary}


@dataclass
class Slice:
    """One timed stretch of JSON requests to one server at one concurrency."""

    server: str
    concurrency: int
    index: int
    elapsed_s: float
    latencies_s: list[float]  # of the successful requests
    errors: int
    error_samples: list[str]  # the first few
    client_cpu_s: float


async def json_request(client: httpx.AsyncClient, name: str) -> None:
    """One fresh conversation's complete reply. ChatKitServer has no non-streaming turn: its
    whole SSE reply to `threads.create`, read to the end, stands for the response."""
    headers = SSE if name == CHATKIT else JSON
    response = await client.post(CHAT_PATH, json=body_for(name)(None), headers=headers)
    if response.status_code != 200:
        raise BenchError(f"HTTP {response.status_code}: {response.content[:200]!r}")
    if not response.headers.get("content-type", "").startswith(headers["Accept"]):
        raise BenchError(f"answered {response.headers.get('content-type')}")
    if name == CHATKIT and b'"type":"error"' in response.content:
        raise BenchError(f"streamed an error: {response.content[-300:]!r}")


async def timed_slice(
    client: httpx.AsyncClient, name: str, concurrency: int, seconds: float, index: int
) -> Slice:
    """`concurrency` workers, each sending requests back to back until the time is up."""
    latencies: list[float] = []
    errors: list[str] = []  # a refused connection fails fast: keep the count, not every one
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            try:
                await json_request(client, name)
            except (httpx.HTTPError, BenchError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:500])
                continue
            latencies.append(time.perf_counter() - begin)

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start  # to the end of the last request started in time
    cpu = time.process_time() - cpu
    return Slice(name, concurrency, index, elapsed, latencies, len(errors), errors[:5], cpu)


async def json_phase(bench: Bench, servers: dict[str, Server], params: Params) -> list[Slice]:
    """Slices interleaved: for each slice index and concurrency, every server in turn."""
    most = max(params.concurrency)
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    auth = {"Authorization": f"Bearer {bench.token(USER)}"}
    slices: list[Slice] = []
    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for name, server in servers.items():
            client = httpx.AsyncClient(
                base_url=server.base_url, headers=auth, limits=limits, timeout=60.0
            )
            clients[name] = await stack.enter_async_context(client)
            for _ in range(params.warmup):  # opens every connection of the pool
                await asyncio.gather(*(json_request(client, name) for _ in range(most)))
        for index in range(params.json_slices):
            for concurrency in params.concurrency:
                for name, client in clients.items():
                    slices.append(
                        await timed_slice(client, name, concurrency, params.slice_seconds, index)
                    )
    return slices


def summarise_json(slices: list[Slice], params: Params) -> dict[str, dict[str, Any]]:
    """Per concurrency and server: requests/s pooled over slices, latency p50/p95, errors."""
    summary: dict[str, dict[str, Any]] = {}
    for concurrency in params.concurrency:
        by_server: dict[str, Any] = {}
        for name in dict.fromkeys(s.server for s in slices):
            mine = [s for s in slices if s.server == name and s.concurrency == concurrency]
            latencies = [v for s in mine for v in s.latencies_s]
            by_server[name] = {
                "requests_per_s": len(latencies) / sum(s.elapsed_s for s in mine),
                "requests_per_s_per_slice": [len(s.latencies_s) / s.elapsed_s for s in mine],
                "errors": sum(s.errors for s in mine),
                **distribution(latencies),
            }
        summary[str(concurrency)] = by_server
    return summary


def _rows(ttft: dict[str, Any], json_summary: dict[str, Any], params: Params) -> list[Row]:
    ms = "{:,.2f}"
    same = "floor: no history, the fresh request again"
    cases = [(FRESH, "new conversation", ""), (HISTORY, "100+ prior messages", same)]
    if params.long_turns:
        cases.append((LONG, f"{2 * params.long_turns}+ prior messages", "chatrelay only"))
    rows = []
    for case, what, note in cases:
        for stat in ("p50", "p95"):
            values = {name: d[f"{stat}_ms"] for name, d in ttft["summary"][case].items()}
            label = f"TTFT, {what}, {stat} (ms)"
            rows.append(Row(f"ttft_{case}_{stat}", label, "lower", values, ms, note))
    chatkit = "ChatKitServer: a threads.create SSE reply read whole (it has no JSON turn)"
    for concurrency, by_server in json_summary.items():
        values = {name: d["requests_per_s"] for name, d in by_server.items()}
        label = f"JSON requests/s, concurrency {concurrency}"
        rows.append(Row(f"json_rps_c{concurrency}", label, "higher", values, "{:,.0f}", chatkit))
    top = json_summary[str(max(params.concurrency))]
    for stat in ("p50", "p95"):
        values = {name: d[f"{stat}_ms"] for name, d in top.items()}
        label = f"JSON latency at concurrency {max(params.concurrency)}, {stat} (ms)"
        rows.append(Row(f"json_{stat}_c{max(params.concurrency)}", label, "lower", values, ms))
    return rows


def measure(bench: Bench, servers: dict[str, Server], *, quick: bool) -> Section:
    """TTFT (fresh, 100+ and, for chatrelay, 400+ prior messages), then JSON requests/s."""
    params = QUICK if quick else FULL
    servers = {name: servers[name] for name in ORDER if name in servers}
    targets = [Target(name, server, bench) for name, server in servers.items()]
    started = time.perf_counter()
    try:
        ttft = ttft_phase(targets, params)
    finally:
        for target in targets:
            target.client.close()
    ttft_done = time.perf_counter()
    slices = asyncio.run(json_phase(bench, servers, params))
    seconds = {"ttft": ttft_done - started, "json": time.perf_counter() - ttft_done}
    json_summary = summarise_json(slices, params)
    errors: dict[str, dict[str, Any]] = {}
    for piece in (s for s in slices if s.errors):
        entry = errors.setdefault(f"{piece.server} c={piece.concurrency}", {"count": 0})
        entry["count"] += piece.errors
        entry.setdefault("samples", []).extend(piece.error_samples)
    raw = {
        "failed": bool(errors),  # any non-200 (or transport error) invalidates the run
        "errors": errors,
        "phase_seconds": seconds,
        "ttft": ttft,
        "json": {"summary": json_summary, "slices": [asdict(s) for s in slices]},
    }
    section_params = {
        **asdict(params),
        "message": MESSAGE,
        "history_turns": HISTORY_TURNS,
        "servers": list(servers),
        "interleaving": "TTFT: per round every case of every server; JSON: per slice",
    }
    return Section("latency", section_params, _rows(ttft, json_summary, params), raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.latency", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 samples, 0.5 s slices (~20 s)")
    args = parser.parse_args(argv)
    if os.getloadavg()[0] > LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp, ExitStack() as stack:
        bench = Bench(Path(tmp))
        servers, skipped = start_servers(bench, stack, WORDS)
        stack.callback(dump_logs_on_error, servers)
        print(f"servers up after {time.time() - started:.1f}s: {', '.join(servers)}", flush=True)
        section = measure(bench, servers, quick=args.quick)
    packages = (*PACKAGES, "openai-chatkit", "aiosqlite", "asyncpg", "sqlalchemy")
    path = save_section(REPO, section, started, packages, quick=args.quick, skipped=skipped)
    params = section.params
    print(
        f"\nlatency: {params['samples']} TTFT samples per server and case, JSON "
        f"{params['json_slices']} x {params['slice_seconds']} s per server and concurrency; "
        f"interleaved {', '.join(params['servers'])}. Cells: median or p95 (ratio to A)\n"
    )
    print(format_section(section, LABELS, ORDER, baseline=FLOOR))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason.splitlines()[0]}")
    if section.raw["failed"]:
        print(f"FAILED, requests with errors: {json.dumps(section.raw['errors'])[:2000]}")
    print(f"\nraw results: {path.relative_to(REPO)} ({time.time() - started:.1f}s)")
    return 1 if section.raw["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

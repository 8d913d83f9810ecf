"""Tracing's cost: chatrelay's server CPU per turn with OpenTelemetry on vs off, same run.

Two `chatrelay serve` processes on SQLite (bench/targets.py): C with no `OTEL_*` variable
(tracing off, the default) and C+T with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP
receiver this bench runs on 127.0.0.1 (it reads each export and answers 200; its CPU is the
bench's, not the server's), `OTEL_BSP_SCHEDULE_DELAY=200` so spans are exported during the
trials, not after them. Every turn is a JSON request (`Accept: application/json`) in a new
conversation with a todo command, so each traced turn has the most spans a turn has: the
request, the turn, two model calls, a tool call and the commit.

Trials are interleaved (C, C+T, C, ...), each R sequential turns over one keep-alive client;
the metric is the server's CPU (utime + stime from /proc) per turn, pooled over all trials
(the CPU clock counts in 10 ms ticks), and its median per trial. Goal: C+T <= 1.10 x C.

    .venv/bin/python -m bench.tracing            # 11 trials x 20 turns, ~1 min
    .venv/bin/python -m bench.tracing --quick    # 3 trials x 5 turns, a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.report import format_section, save_section
from bench.section import Row, Section
from bench.servers import Server
from bench.targets import LABELS, RELAY_SQLITE, RELAY_TRACED, REPO, Bench, sqlite_url, start_relay

ORDER = (RELAY_SQLITE, RELAY_TRACED)
GOAL = 1.10


@contextmanager
def otlp_sink() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP receiver that accepts every export; yields its URL and the body sizes."""
    received: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _trial(bench: Bench, server: Server, client: httpx.Client, turns: int) -> tuple[float, float]:
    """R turns; the server CPU and the wall time they took, in seconds."""
    headers = {"Authorization": f"Bearer {bench.token('bench')}", "Accept": "application/json"}
    cpu, wall = server.cpu_seconds(), time.perf_counter()
    for index in range(turns):
        answer = client.post(
            f"{server.base_url}/api/bench/chat",
            json={"message": f"add task bench {index}"},
            headers=headers,
        )
        if answer.status_code != 200 or not answer.json().get("tool_calls"):
            raise RuntimeError(f"{server.name}: {answer.status_code} {answer.text[:200]}")
    return server.cpu_seconds() - cpu, time.perf_counter() - wall


def measure(quick: bool) -> Section:
    trials, turns = (3, 5) if quick else (11, 20)
    cpu: dict[str, list[float]] = {name: [] for name in ORDER}
    wall: dict[str, list[float]] = {name: [] for name in ORDER}
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp, ExitStack() as stack:
        bench = Bench(Path(tmp))
        endpoint, exports = stack.enter_context(otlp_sink())
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        servers = {
            RELAY_SQLITE: start_relay(bench, RELAY_SQLITE, sqlite_url(bench, RELAY_SQLITE)),
            RELAY_TRACED: start_relay(bench, RELAY_TRACED, sqlite_url(bench, RELAY_TRACED), traced),
        }
        for server in servers.values():
            stack.callback(server.stop)
        client = stack.enter_context(httpx.Client(timeout=60))
        for name in ORDER:  # warm-up, not measured
            _trial(bench, servers[name], client, 3)
        for _ in range(trials):
            for name in ORDER:
                used, took = _trial(bench, servers[name], client, turns)
                cpu[name].append(used)
                wall[name].append(took)
        time.sleep(0.5)  # the last batch of spans
        if not exports:
            raise RuntimeError("the traced server exported nothing: is tracing on?")
    rows = [
        Row(
            "cpu_per_turn_pooled",
            "server CPU per turn, pooled (ms)",
            "lower",
            {n: 1000 * sum(cpu[n]) / (trials * turns) for n in ORDER},
            "{:,.2f}",
        ),
        Row(
            "cpu_per_turn",
            "server CPU per turn, median of trials (ms)",
            "lower",
            {n: 1000 * statistics.median(cpu[n]) / turns for n in ORDER},
            "{:,.2f}",
        ),
        Row(
            "wall_per_turn",
            "wall time per turn, median of trials (ms)",
            "lower",
            {n: 1000 * statistics.median(wall[n]) / turns for n in ORDER},
            "{:,.2f}",
        ),
    ]
    raw = {"cpu_s": cpu, "wall_s": wall, "exports": len(exports), "export_bytes": sum(exports)}
    return Section("tracing", {"trials": trials, "turns": turns, "quick": quick}, rows, raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tracing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    started = time.time()
    section = measure(args.quick)
    path = save_section(REPO, section, started, ("opentelemetry-sdk", "openai-agents"))
    print(format_section(section, LABELS, ORDER, baseline=RELAY_SQLITE))
    pooled = section.rows[0].values
    ratio = pooled[RELAY_TRACED] / pooled[RELAY_SQLITE]
    verdict = "within" if ratio <= GOAL else "OVER"
    print(f"\ntraced / untraced CPU per turn: {ratio:.3f}x ({verdict} the {GOAL:.2f}x goal)")
    print(f"raw results: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

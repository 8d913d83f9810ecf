"""Streaming throughput of chatrelay (B) against a bare FastAPI + sse-starlette floor (A).

Both run as uvicorn processes on 127.0.0.1, measured in the same run, interleaved
(A, B, A, B, ...); medians over trials are reported. See bench/README.md.

    .venv/bin/python -m bench.stream_throughput [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from bench.report import environment, markdown_table, print_table, summarise, update_readme
from bench.servers import Server, start_server

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
USER = "bench"
MAX_MESSAGE_CHARS = 10_000  # chatrelay's limit on a message
LOAD_WARNING = 0.5  # 1-minute load average above which other work skews the numbers
SETTLE_SECONDS = 0.05  # let the server finish a request's tail work before reading its CPU
# chatrelay settings that must not leak in from the caller's environment.
CHATRELAY_VARS = (
    "DATABASE_URL AUTH_SECRET BETTER_AUTH_SECRET AUTH_ISSUER AUTH_AUDIENCE MODEL OPENAI_API_KEY "
    "OPENAI_BASE_URL OPENAI_API HISTORY_LIMIT CORS_ORIGINS TURN_TIMEOUT_SECONDS SSE_PING_SECONDS "
    "SSE_SEND_TIMEOUT_SECONDS TRACING ENV LOG_LEVEL FLOOR_EVENTS"
).split()


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
        return {
            "events_per_s": events / sum(r.wall_s for r in self.requests),
            "server_cpu_s_per_event": self.server_cpu_s / events,
            "client_cpu_s_per_event": self.client_cpu_s / events,
            "first_event_s": statistics.median(r.first_event_s for r in self.requests),
        }


class Target:
    """One server under test, with its keep-alive client and the stream it must return."""

    def __init__(self, server: Server, token: str, message: str) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.base_url, timeout=60.0)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        self.body = {"message": message}
        self.expected_events = 0

    def sample(self) -> list[dict[str, Any]]:
        """One full request, every event parsed (warm-up and sanity checks, never timed)."""
        with self.client.stream(
            "POST", f"/api/{USER}/chat", json=self.body, headers=self.headers
        ) as response:
            response.raise_for_status()
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        events = [json.loads(line.removeprefix("data:")) for line in lines]
        if any(event["type"] == "error" for event in events):
            raise RuntimeError(f"{self.server.name} streamed an error: {events[-1]}")
        self.expected_events = len(events)
        return events

    def stream(self) -> StreamResult:
        events = 0
        first: float | None = None
        last = ""
        start = time.perf_counter()
        with self.client.stream(
            "POST", f"/api/{USER}/chat", json=self.body, headers=self.headers
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    if first is None:
                        first = time.perf_counter() - start
                    events += 1
                    last = line
            wall = time.perf_counter() - start
            size = response.num_bytes_downloaded
        if first is None or events != self.expected_events or '"type":"error"' in last:
            raise RuntimeError(
                f"{self.server.name}: {events} events (expected {self.expected_events}), "
                f"last: {last[:200]}"
            )
        return StreamResult(events, size, wall, first)

    def trial(self, index: int, requests: int) -> Trial:
        time.sleep(SETTLE_SECONDS)
        server_before, client_before = self.server.cpu_seconds(), time.process_time()
        results = [self.stream() for _ in range(requests)]
        time.sleep(SETTLE_SECONDS)
        server_cpu = self.server.cpu_seconds() - server_before
        client_cpu = time.process_time() - client_before  # sleeping costs no CPU
        return Trial(self.server.name, index, server_cpu, client_cpu, results)


def shape(value: Any) -> Any:
    """The keys (recursively) and value types of a JSON value, for comparing event shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    return type(value).__name__


def check_floor(floor_events: list[dict[str, Any]], relay_events: list[dict[str, Any]]) -> None:
    """The floor streams as many events as chatrelay, each shaped like its text deltas."""
    if len(floor_events) != len(relay_events):
        raise RuntimeError(f"floor: {len(floor_events)} events, chatrelay: {len(relay_events)}")
    deltas = [e for e in relay_events if e.get("update", {}).get("type", "").endswith("text_delta")]
    if not deltas or {json.dumps(shape(e)) for e in floor_events} != {json.dumps(shape(deltas[0]))}:
        raise RuntimeError("the floor's events are not shaped like chatrelay's text deltas")


def make_message(words: int) -> str:
    """W distinct short words; the offline model echoes each one as its own text delta."""
    return " ".join(f"w{i}" for i in range(words))


def dump_logs_on_error(servers: list[Server]) -> None:
    if sys.exc_info()[0] is not None:
        for server in servers:
            print(f"\n--- {server.name} log (tail) ---\n{server.log_tail()}", file=sys.stderr)


def run(words: int, trials: int, requests: int, workdir: Path) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    now = int(time.time())
    token = jwt.encode({"sub": USER, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")
    message = make_message(words)
    base_env = {k: v for k, v in os.environ.items() if k not in CHATRELAY_VARS}
    base_env["AUTH_SECRET"] = secret
    relay_env = {
        **base_env,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'chatrelay.db'}",
        "MODEL": "offline",
        "ENV": "development",
        # The bench is one user sending many turns: measure the hot path, not the limiter.
        "RATE_LIMIT": "1000000/minute",
        "LOG_LEVEL": "WARNING",
    }
    servers: list[Server] = []
    with ExitStack() as stack:
        stack.callback(dump_logs_on_error, servers)
        # chatrelay first: its event count per reply sets the floor's, so both stream as many.
        relay_server = start_server(
            "chatrelay",
            [sys.executable, "-m", "chatrelay.cli", "serve"],
            env=relay_env,
            cwd=workdir,  # no stray .env is read
            log_dir=workdir,
        )
        servers.append(relay_server)
        stack.callback(relay_server.stop)
        relay = Target(relay_server, token, message)
        stack.callback(relay.client.close)
        relay_events = relay.sample()
        floor_server = start_server(
            "floor",
            [sys.executable, "-m", "uvicorn", "bench.floor_app:app"],
            env={**base_env, "FLOOR_EVENTS": str(len(relay_events))},
            cwd=REPO,
            log_dir=workdir,
        )
        servers.append(floor_server)
        stack.callback(floor_server.stop)
        floor = Target(floor_server, token, message)
        stack.callback(floor.client.close)
        check_floor(floor.sample(), relay_events)
        for target in (floor, relay):  # one more warm-up request each
            target.stream()
        results: list[Trial] = []
        for index in range(trials):
            for target in (floor, relay):
                results.append(target.trial(index, requests))
                print(".", end="", flush=True)
        print()
    raw = [{**asdict(t), "metrics": t.metrics()} for t in results]
    return {
        "params": {"words": words, "trials": trials, "requests_per_trial": requests},
        "events_per_request": {"floor": floor.expected_events, "chatrelay": relay.expected_events},
        "trials": raw,
        "summary": summarise(raw),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.stream_throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 trials x 2 requests (a smoke run)")
    parser.add_argument("--trials", type=int, help="trials per server (default 11)")
    parser.add_argument("--requests", type=int, help="requests per trial (default 10)")
    parser.add_argument("--words", type=int, default=500, help="words in the message (W)")
    args = parser.parse_args(argv)
    if args.words < 1 or len(make_message(args.words)) > MAX_MESSAGE_CHARS:
        parser.error(f"--words must give a message of 1..{MAX_MESSAGE_CHARS} characters")
    trials = args.trials or (3 if args.quick else 11)
    requests = args.requests or (2 if args.quick else 10)
    if os.getloadavg()[0] > LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp:
        result = run(args.words, trials, requests, Path(tmp))
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
    document = {
        "benchmark": "stream_throughput",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "environment": environment(REPO),
        **result,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"stream_throughput-{stamp}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print_table(document)
    print(f"\nraw results: {path.relative_to(REPO)} ({document['duration_s']}s)")
    if not args.quick:  # a smoke run is too short to publish
        table = markdown_table(document, str(path.relative_to(REPO)))
        if update_readme(REPO / "README.md", table):
            print("README.md: Performance table updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

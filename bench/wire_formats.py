"""Per-event server CPU of each wire format, on one `chatrelay serve`, in the same run.

    .venv/bin/python -m bench.wire_formats            # 11 trials x 10 requests per format
    .venv/bin/python -m bench.wire_formats --quick    # 3 x 2, a smoke run

The same offline turn (a W-word message, one text delta per word, a new conversation each
request) asked for as ChatKit's events (`POST /chatkit`, `threads.create`) and as the AI SDK's
UI message stream (`POST /ai-sdk/chat`), trials interleaved on the one server, so the two
differ only in the edge: request parsing, the encoder and the framing. The goal: the AI SDK
within 1.1x of ChatKit's server CPU per event (`ratio` in the report and the results JSON).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.report import PACKAGES, format_section, save_section
from bench.section import Section
from bench.stream_throughput import (
    FULL,
    QUICK,
    USER,
    BenchError,
    Params,
    StreamResult,
    Target,
    _rows,
    chatkit_input,
    interleaved_trials,
    make_message,
    summarise,
)
from bench.targets import REPO, Bench, sqlite_url, start_relay

CHATKIT, AI_SDK = "chatkit", "ai-sdk"
LABELS = {CHATKIT: "ChatKit (/chatkit)", AI_SDK: "AI SDK (/ai-sdk/chat)"}
GOAL = 1.1


class FormatTarget(Target):
    """One format on the shared server: a fresh conversation (and request id) per request."""

    def __init__(self, name: str, target: Target) -> None:
        self.__dict__.update(target.__dict__)
        self.name, self.message = name, target.body["message"]

    def request(self) -> tuple[str, dict[str, Any]]:
        if self.name == CHATKIT:
            params = {"input": chatkit_input(self.message)}
            return "/chatkit", {"type": "threads.create", "params": params}
        message = {
            "id": uuid.uuid4().hex,
            "role": "user",
            "parts": [{"type": "text", "text": self.message}],
        }
        return "/ai-sdk/chat", {
            "id": uuid.uuid4().hex,
            "messages": [message],
            "trigger": "submit-message",
        }

    def stream(self) -> StreamResult:
        path, body = self.request()
        events, first, last = 0, None, ""
        start = time.perf_counter()
        with self.client.stream("POST", path, json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    first = time.perf_counter() - start if first is None else first
                    events, last = events + 1, line
            wall = time.perf_counter() - start
            size = response.num_bytes_downloaded
        if response.status_code != 200 or first is None or '"error"' in last:
            raise BenchError(f"{self.name}: HTTP {response.status_code}, last: {last[:300]}")
        if self.expected_events and events != self.expected_events:
            raise BenchError(f"{self.name}: {events} events, expected {self.expected_events}")
        self.expected_events = events
        return StreamResult(events, size, wall, first)


def measure(bench: Bench, server: Any, params: Params) -> Section:
    base = Target(CHATKIT, server, bench, make_message(params.words))
    base.body = {"message": make_message(params.words)}
    targets = [FormatTarget(CHATKIT, base), FormatTarget(AI_SDK, base)]
    for target in targets:  # warm-up, and each format's event count
        target.stream()
    trials = interleaved_trials(targets, params.trials, params.requests)
    base.client.close()
    events = {target.name: target.expected_events for target in targets}
    summary = summarise(trials)
    ratio = (
        summary[AI_SDK]["server_cpu_s_per_event"]["median"]
        / (summary[CHATKIT]["server_cpu_s_per_event"]["median"])
    )
    raw = {"events_per_request": events, "summary": summary, "ratio": ratio, "goal": GOAL}
    return Section(
        "wire_formats", {**vars(params), "servers": list(events)}, _rows(summary, events), raw
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.wire_formats", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 trials x 2 requests")
    args = parser.parse_args(argv)
    params = QUICK if args.quick else FULL
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp, ExitStack() as stack:
        bench = Bench(Path(tmp))
        server = start_relay(bench, "chatrelay-sqlite", sqlite_url(bench, "formats"))
        stack.callback(server.stop)
        section = measure(bench, server, params)
    path = save_section(REPO, section, started, PACKAGES, quick=args.quick, user=USER)
    print(format_section(section, LABELS, [CHATKIT, AI_SDK], baseline=CHATKIT))
    ratio = section.raw["ratio"]
    verdict = "within" if ratio <= GOAL else "OVER"
    print(f"\nAI SDK / ChatKit server CPU per event: {ratio:.3f} ({verdict} the {GOAL}x goal)")
    print(f"raw results: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

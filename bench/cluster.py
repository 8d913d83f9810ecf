"""What `REDIS_URL` costs one instance, and what several instances give: chatrelay on Postgres
with REDIS_URL unset (A) and set (B), in the same run.

    .venv/bin/python -m bench.cluster [--quick]

1. Server CPU per event, interleaved A, B, A, ...: a long reply (500 words, writes coalesced),
   a short one (a 20-word reply: the per-turn fixed cost) and one paced a word every 5 ms
   (one write per token).
2. Redis commands per turn, from a private redis-server's `INFO commandstats` (the
   instances' heartbeats, measured idle, subtracted).
3. Resume latency: a turn running on one instance, resumed from its first event on the same
   instance and on another one, alternately; p50 / p95 until the first resumed event.
4. Two instances behind HAProxy (deploy/haproxy.cfg), N streams at once through it: failures,
   time until every stream had its first event, RSS per open stream on each instance.

Each section's raw data goes to `bench/results/cluster-<date>-<time>.json`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import cluster_probes, stream_throughput
from bench.report import PACKAGES, format_section, save_section
from bench.section import Row, Section
from bench.servers import HOST, Server, free_port
from bench.targets import REPO, Bench, postgres_database, start_relay

LOCAL, SHARED = "local", "shared"
LABELS = {LOCAL: "A: REDIS_URL unset", SHARED: "B: REDIS_URL set"}
ORDER = (LOCAL, SHARED)
PACED_DELAY_SECONDS = 0.005  # > SSE_FLUSH_INTERVAL_SECONDS (2 ms): every word its own write
PREAMBLE_WORDS = 7  # the offline model's words before it echoes the message


@dataclass(frozen=True)
class Shape:
    """One kind of turn: the message's words, and the pacing of the offline model's reply."""

    name: str
    words: int
    paced: bool = False

    @property
    def reply_words(self) -> int:
        return self.words + PREAMBLE_WORDS


@dataclass(frozen=True)
class Params:
    shapes: tuple[Shape, ...] = (
        Shape("long", 500),
        Shape("short", 13),  # a 20-word reply
        Shape("paced", 60, paced=True),
    )
    trials: int = 11
    requests: int = 10
    turns_counted: int = 20  # per shape, for the Redis commands
    resumes: int = 40  # per instance
    streams: int = 500  # per instance, through the balancer
    stream_words: int = 40
    stream_delay_s: float = 0.25


FULL = Params()
QUICK = Params(trials=2, requests=2, turns_counted=3, resumes=4, streams=20, stream_delay_s=0.05)


@dataclass
class Redis:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def private_redis(workdir: Path) -> Iterator[Redis]:
    """A redis-server of the bench's own on a free port, nothing kept on disk: its command
    statistics count this run's commands only."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield Redis(f"redis://{HOST}:{port}/0", process)
    finally:
        process.kill()
        process.wait()


def start_instances(
    bench: Bench, stack: ExitStack, database_url: str, redis_url: str, delay_s: float
) -> dict[str, Server]:
    """A (no Redis) and B plus a second shared instance, B2, on one database; with pacing
    `delay_s` (0: none). B and B2 share Redis under one prefix, as instances do."""
    pacing = {"OFFLINE_DELAY_SECONDS": str(delay_s)} if delay_s else {}
    shared = {**pacing, "REDIS_URL": redis_url, "REDIS_PREFIX": f"bench{int(delay_s * 1e3)}"}
    settings = {LOCAL: pacing, SHARED: shared, SHARED + "2": shared}
    with ThreadPoolExecutor(len(settings)) as pool:  # each takes seconds to import and start
        futures = {
            name: pool.submit(start_relay, bench, f"{name}-{delay_s}", database_url, env)
            for name, env in settings.items()
        }
    servers = {}
    for name, future in futures.items():
        if future.exception() is None:
            servers[name] = future.result()
            stack.callback(servers[name].stop)
    for future in futures.values():
        future.result()  # raises the first failure; `stack` stops the ones that started
    return servers


def interleaved(
    bench: Bench, servers: dict[str, Server], shape: Shape, params: Params
) -> dict[str, Any]:
    """Trials of `params.requests` turns each, A, B, A, B, ...; both must stream as many events."""
    message = stream_throughput.make_message(shape.words)
    targets = [stream_throughput.Target(name, servers[name], bench, message) for name in ORDER]
    try:
        counts = {target.name: len(target.sample()) for target in targets}
        if len(set(counts.values())) != 1:
            raise stream_throughput.BenchError(f"events per reply differ: {counts}")
        for target in targets:
            target.stream()  # one more warm-up each
        trials = stream_throughput.interleaved_trials(targets, params.trials, params.requests)
    finally:
        for target in targets:
            target.client.close()
    return {"events_per_request": counts, "summary": stream_throughput.summarise(trials)}


def _median(value: Any) -> float:
    return float(value if isinstance(value, float) else value["median"])


def cpu_section(bench: Bench, fleets: dict[bool, dict[str, Server]], params: Params) -> Section:
    """Server CPU per event and per turn of A and B, interleaved, for every shape of turn."""
    rows, raw = [], {}
    for shape in params.shapes:
        print(f"cpu, {shape.name} ({shape.reply_words}-word reply) ", end="", flush=True)
        measured = interleaved(bench, fleets[shape.paced], shape, params)
        summary, events = measured["summary"], measured["events_per_request"]
        per_event = {n: summary[n]["server_cpu_s_per_event_pooled"] * 1e6 for n in ORDER}
        title = f"{shape.name} ({shape.reply_words}-word reply)"
        rows += [
            Row(
                f"{shape.name}_cpu_per_event",
                f"{title}: server CPU per event (us)",
                "lower",
                per_event,
            ),
            Row(
                f"{shape.name}_cpu_per_turn",
                f"{title}: server CPU per turn (ms)",
                "lower",
                {n: per_event[n] * events[n] / 1e3 for n in ORDER},
                "{:,.2f}",
            ),
            Row(
                f"{shape.name}_first_event",
                f"{title}: time to first event (ms)",
                "lower",
                {n: _median(summary[n]["first_event_s"]) * 1e3 for n in ORDER},
                "{:,.2f}",
            ),
        ]
        raw[shape.name] = measured
    return Section("cluster_cpu", {"shapes": [asdict(s) for s in params.shapes]}, rows, raw)


def run(params: Params, workdir: Path) -> list[Section]:
    bench = Bench(workdir)
    sections: list[Section] = []
    with ExitStack() as stack:
        redis = stack.enter_context(private_redis(workdir))
        database_url = stack.enter_context(postgres_database())
        fleets = {
            paced: start_instances(
                bench, stack, database_url, redis.url, PACED_DELAY_SECONDS if paced else 0.0
            )
            for paced in (False, True)
        }
        stack.callback(stream_throughput.dump_logs_on_error, fleets[False] | fleets[True])
        sections.append(cpu_section(bench, fleets, params))
        sections.append(cluster_probes.commands_section(bench, fleets, redis.url, params))
        sections.append(cluster_probes.resume_section(bench, fleets[True], params))
    with ExitStack() as stack:
        redis = stack.enter_context(private_redis(workdir))
        database_url = stack.enter_context(postgres_database())
        sections.append(
            cluster_probes.balancer_section(bench, stack, database_url, redis.url, params)
        )
    return sections


def print_section(section: Section) -> None:
    labels = {**LABELS, **section.params.get("labels", {})}
    order = section.params.get("order", ORDER)
    print(f"\n== {section.name}")
    print(format_section(section, labels, order, baseline=order[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, about a minute")
    parser.add_argument("--streams", type=int, help="streams per instance through the balancer")
    args = parser.parse_args(argv)
    params = QUICK if args.quick else FULL
    if args.streams:
        params = replace(params, streams=args.streams)
    if os.getloadavg()[0] > stream_throughput.LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-cluster-") as tmp:
        sections = run(params, Path(tmp))
    packages = (*PACKAGES, "redis", "asyncpg", "sqlalchemy")
    merged = Section(
        "cluster",
        asdict(params),
        [row for section in sections for row in section.rows],
        {section.name: {"params": section.params, "raw": section.raw} for section in sections},
    )
    path = save_section(REPO, merged, started, packages, quick=args.quick)
    for section in sections:
        print_section(section)
    print(f"\nraw results: {path.relative_to(REPO)} ({time.time() - started:.1f}s)")
    return 0


def summary(section: Section) -> dict[str, Any]:
    """The section's rows as {key: {server: value}}, for tests and the README."""
    return {row.key: row.values for row in section.rows}


if __name__ == "__main__":
    raise SystemExit(main())

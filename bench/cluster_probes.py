"""The parts of `bench.cluster` that need more than one instance or Redis itself: commands per
turn, resume latency across instances, and streams through a real balancer."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import httpx
import redis
from tests.balancer import balancer

from bench import concurrency, stream_throughput
from bench.section import Row, Section
from bench.servers import HOST, Server, free_port, raise_open_files_limit
from bench.targets import Bench, start_relay

if TYPE_CHECKING:
    from bench.cluster import Params

SHARED, SHARED2 = "shared", "shared2"
IDLE_SECONDS = 3.0  # one heartbeat (3 s by default) of every instance, with no turn running
SETTLE_SECONDS = 0.05
ADMIN = ("info", "config")  # the bench's own commands


def command_calls(client: redis.Redis) -> Counter[str]:
    """Calls per command since the last reset, the bench's own left out."""
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    calls = Counter(
        {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}
    )
    for name in list(calls):
        if name.split("|")[0] in ADMIN:
            del calls[name]
    return calls


def count_commands(
    client: redis.Redis, run: Any, seconds: float | None = None
) -> tuple[Counter[str], float]:
    """The commands Redis got while `run()` ran (or for `seconds`, idle), and how long it took."""
    client.config_resetstat()
    started = time.perf_counter()
    if seconds is None:
        run()
        time.sleep(SETTLE_SECONDS)  # the turn's tail: the commit, the claim's release
    else:
        time.sleep(seconds)
    return command_calls(client), time.perf_counter() - started


def commands_section(
    bench: Bench, fleets: dict[bool, dict[str, Server]], redis_url: str, params: Params
) -> Section:
    """Redis commands per turn of each shape, the idle instances' own rate taken off."""
    client = redis.Redis.from_url(redis_url)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    try:
        idle, idle_s = count_commands(client, None, IDLE_SECONDS)
        raw["idle"] = {"seconds": idle_s, "calls": dict(idle)}
        for shape in params.shapes:
            message = stream_throughput.make_message(shape.words)
            target = stream_throughput.Target(SHARED, fleets[shape.paced][SHARED], bench, message)
            events = len(target.sample())
            turns = params.turns_counted

            def run(target: stream_throughput.Target = target, turns: int = turns) -> None:
                for _ in range(turns):
                    target.stream()

            calls, seconds = count_commands(client, run)
            per_turn = {
                name: max(0.0, (count - idle[name] * seconds / idle_s) / turns)
                for name, count in calls.items()
            }
            raw[shape.name] = {"turns": turns, "seconds": seconds, "calls": dict(calls)}
            raw[shape.name]["per_turn"] = per_turn
            title = f"{shape.name} ({shape.reply_words}-word reply, {events} events)"
            rows.append(
                Row(
                    f"{shape.name}_redis_commands",
                    f"{title}: Redis commands per turn",
                    "lower",
                    {SHARED: sum(per_turn.values()), "xadd": per_turn.get("xadd", 0.0)},
                )
            )
            target.client.close()
    finally:
        client.close()
    labels = {SHARED: "all commands", "xadd": "of them XADD (write batches)"}
    params_out = {"labels": labels, "order": [SHARED, "xadd"], "idle_seconds": IDLE_SECONDS}
    return Section("cluster_redis_commands", params_out, rows, raw)


def _frame(lines: list[str]) -> tuple[int, dict[str, Any]]:
    event_id = next(int(line[3:]) for line in lines if line.startswith("id:"))
    data = next(line[5:] for line in lines if line.startswith("data:"))
    return event_id, json.loads(data)


def first_frame(stream: Iterator[str]) -> tuple[int, dict[str, Any]]:
    """The first event of an SSE response's lines (its id and data), pings skipped."""
    lines: list[str] = []
    for line in stream:
        if line:
            lines.append(line)
        elif any(item.startswith("data:") for item in lines):
            return _frame(lines)
        else:
            lines = []
    raise stream_throughput.BenchError(f"no event in the stream: {lines}")


def time_resume(server: Server, token: str, conversation: str, after: int) -> float:
    """Seconds from sending a resume after event `after` to its first event."""
    url = f"{server.base_url}/api/{stream_throughput.USER}/conversations/{conversation}/stream"
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(after)}
    started = time.perf_counter()
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        if response.status_code != 200:
            raise stream_throughput.BenchError(f"resume: HTTP {response.status_code}")
        first_frame(response.iter_lines())
        return time.perf_counter() - started


def resume_section(bench: Bench, fleet: dict[str, Server], params: Params) -> Section:
    """A paced turn runs on one instance; it is resumed from its first event there and on
    another instance, in alternating order, while it runs."""
    owner, other = fleet[SHARED], fleet[SHARED2]
    token = bench.token(stream_throughput.USER)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    body = {"message": stream_throughput.make_message(200)}  # ~1 s at 5 ms a word
    samples: dict[str, list[float]] = {"owner": [], "other": []}
    with httpx.Client(base_url=owner.base_url, headers=headers, timeout=60) as client:
        for index in range(params.resumes + 2):  # the first two warm up
            with client.stream("POST", f"/api/{stream_throughput.USER}/chat", json=body) as reply:
                stream = reply.iter_lines()
                event_id, created = first_frame(stream)
                conversation = created["thread"]["id"]
                order = [("owner", owner), ("other", other)][:: 1 if index % 2 else -1]
                timed = {name: time_resume(s, token, conversation, event_id) for name, s in order}
                for _ in stream:  # to the end: the next turn is a new one
                    pass
            if index >= 2:
                for name, seconds in timed.items():
                    samples[name].append(seconds)
    rows = [
        Row(
            f"resume_{label}",
            f"resume from the first event: first resumed event, {label} (ms)",
            "lower",
            {name: _percentile(values, cut) * 1e3 for name, values in samples.items()},
            "{:,.2f}",
        )
        for label, cut in (("p50", 50), ("p95", 95))
    ]
    labels = {"owner": "on the owning instance", "other": "on another instance"}
    raw = {"samples_s": samples}
    return Section("cluster_resume", {"labels": labels, "order": ["owner", "other"]}, rows, raw)


def _percentile(values: list[float], cut: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[cut - 1]


def balancer_section(
    bench: Bench, stack: ExitStack, database_url: str, redis_url: str, params: Params
) -> Section:
    """Two instances behind HAProxy on deploy/haproxy.cfg; 2 x N streams at once through it,
    each a new user: failures, time until all had a first event, RSS per stream per instance."""
    raise_open_files_limit()
    env = {
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": "bench-balancer",
        "OFFLINE_DELAY_SECONDS": str(params.stream_delay_s),
    }
    names = ("app-a", "app-b")
    instances = {name: start_relay(bench, name, database_url, env) for name in names}
    for server in instances.values():
        stack.callback(server.stop)
    backends = {name: f"{HOST}:{server.port}" for name, server in instances.items()}
    listen, stats = f"{HOST}:{free_port()}", f"{HOST}:{free_port()}"
    front = stack.enter_context(balancer(backends, listen, stats, bench.workdir))
    proxy = Server("haproxy", front.process, int(listen.rsplit(":", 1)[1]), front.log)
    body = {"message": stream_throughput.make_message(params.stream_words)}
    target = concurrency.Target(bench, proxy, body)
    load = _balanced_load(target, instances, params)
    served = Counter(server for server, line in front.requests() if "/chat" in line)
    rows = _balancer_rows(load, instances, served, params)
    labels = {**{name: f"instance {name}" for name in names}, "both": "both"}
    section_params = {"labels": labels, "order": [*names, "both"], "streams": 2 * params.streams}
    return Section("cluster_balancer", section_params, rows, {**load, "served": dict(served)})


def _balanced_load(
    target: concurrency.Target, instances: dict[str, Server], params: Params
) -> dict[str, Any]:
    warm, _ = asyncio.run(concurrency.open_streams(target, ["warm0", "warm1"], 120))
    if any(stream.error for stream in warm):
        raise stream_throughput.BenchError(f"warm-up through the balancer: {warm}")
    target.expected_events = warm[0].events
    time.sleep(1.0)  # the warm-up's tail work done before the baseline is read
    baseline = {name: server.memory_kb()[0] for name, server in instances.items()}
    users = [f"u{i:05d}" for i in range(2 * params.streams)]
    timeout = concurrency.STREAM_TIMEOUT_SECONDS + target.expected_events * params.stream_delay_s
    with ExitStack() as samplers:
        sampled = {
            name: samplers.enter_context(concurrency.Sampler(server))
            for name, server in instances.items()
        }
        streams, phase = asyncio.run(concurrency.open_streams(target, users, timeout))
    return {
        "baseline_rss_kb": baseline,
        "peak_rss_kb": {
            name: max([row[1] for row in s.samples] or [baseline[name]])
            for name, s in sampled.items()
        },
        "all_first_event_s": phase.all_first_s,
        "first_event_s": [s.first_event_s for s in streams if s.first_event_s is not None],
        "failures": dict(Counter(s.error for s in streams if s.error is not None)),
        "failure_examples": {s.error: s.detail for s in streams if s.error is not None},
    }


def _balancer_rows(
    load: dict[str, Any], instances: dict[str, Server], served: Counter[str], params: Params
) -> list[Row]:
    per_stream = {
        name: (load["peak_rss_kb"][name] - load["baseline_rss_kb"][name]) / max(1, served[name] - 2)
        for name in instances
    }
    firsts = load["first_event_s"]
    return [
        Row(
            "failures",
            "failed streams",
            "lower",
            {"both": float(sum(load["failures"].values()))},
            "{:,.0f}",
        ),
        Row(
            "streams_served",
            "streams served (incl. 2 warm-up)",
            "higher",
            {name: float(served[name]) for name in instances},
            "{:,.0f}",
        ),
        Row("rss_per_stream_kb", "RSS per open stream (KB)", "lower", per_stream),
        Row(
            "all_first_event_s",
            "until every stream had its first event (s)",
            "lower",
            {"both": load["all_first_event_s"] or float("nan")},
            "{:,.2f}",
        ),
        Row(
            "first_event_p95_ms",
            "first event p95 (ms)",
            "lower",
            {"both": _percentile(firsts, 95) * 1e3 if firsts else float("nan")},
            "{:,.1f}",
        ),
    ]

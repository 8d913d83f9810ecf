"""`make bench` (`python -m bench [--quick]`): every benchmark in one run, one table.

1. Start the floor, ChatKitServer, chatrelay on SQLite and on Postgres (a fresh database).
2. Streaming throughput, interleaved over the four (bench/stream_throughput.py).
3. Time to first token and JSON requests/s on the same servers (bench/latency.py).
4. Stop them; 1,000 concurrent streams, each server alone (bench/concurrency.py).

Writes `bench/results/bench-<date>-<time>.json` (every section's raw data) and, for a full
run, the README's Performance table between its markers. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from bench import concurrency, latency, stream_throughput
from bench.report import environment, format_section, markdown_section, update_readme
from bench.section import Section
from bench.targets import CHATKIT, FLOOR, LABELS, REPO, Bench

ORDER = stream_throughput.ORDER
BASELINES = (FLOOR, CHATKIT)
PACKAGES = (
    *stream_throughput.PACKAGES,
    "openai-chatkit",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
)


def run(quick: bool, streams: int | None) -> tuple[list[Section], dict[str, str]]:
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp:
        bench = Bench(Path(tmp))
        with ExitStack() as stack:
            servers, skipped = stream_throughput.start_servers(
                bench, stack, (stream_throughput.QUICK if quick else stream_throughput.FULL).words
            )
            stack.callback(stream_throughput.dump_logs_on_error, servers)
            print(f"servers: {', '.join(servers)}", flush=True)
            sections.append(stream_throughput.measure(bench, servers, quick=quick))
            sections.append(latency.measure(bench, servers, quick=quick))
        sections.append(concurrency.measure(bench, quick=quick, streams=streams))
    return sections, skipped


def readme_table(document: dict[str, object], sections: list[Section], path: str) -> str:
    env = document["environment"]
    assert isinstance(env, dict)
    lines = [
        f"Run {document['started_at']} on {env['cpus']} CPUs ({env['platform']}, Python "
        f"{env['python']}), git `{env['git']}`, in {document['duration_s']} s. Each cell is "
        "a median; in brackets, the ratio to A and to B measured in the same run. "
        f"Raw: `{path}`.",
    ]
    for section in sections:
        lines += ["", f"**{section.name}**", ""]
        lines.append(markdown_section(section, LABELS, ORDER, baseline=BASELINES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument("--streams", type=int, help="concurrent streams (default 1000; quick 200)")
    args = parser.parse_args(argv)
    if os.getloadavg()[0] > stream_throughput.LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    sections, skipped = run(args.quick, args.streams)
    document = {
        "benchmark": "bench",
        "quick": args.quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "skipped": skipped,
        "environment": environment(REPO, PACKAGES),
        "sections": [
            {"name": s.name, "params": s.params, "rows": [asdict(r) for r in s.rows], "raw": s.raw}
            for s in sections
        ],
    }
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
    path = REPO / "bench" / "results" / f"bench-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    for section in sections:
        print(f"\n== {section.name}")
        print(format_section(section, LABELS, ORDER, baseline=BASELINES))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason.splitlines()[0]}")
    relative = str(path.relative_to(REPO))
    print(f"\nraw results: {relative} ({document['duration_s']} s)")
    if not args.quick:  # a smoke run is too short to publish
        if update_readme(REPO / "README.md", readme_table(document, sections, relative)):
            print("README.md: Performance table updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench` (`python -m bench [--quick]`): every benchmark in one run, one table.

1. Start the floor, ChatKitServer, chatrelay on SQLite and on Postgres (a fresh database).
2. Streaming throughput, interleaved over the four (bench/stream_throughput.py).
3. Time to first token and JSON requests/s on the same servers (bench/latency.py).
4. Stop them; 1,000 concurrent streams, each server alone (bench/concurrency.py).

With `--baseline REF`, chatrelay as of the commit REF runs beside the working tree's, on both
databases, in every section: the table after the run gives after / before per metric and lists
every metric worse by more than 5% (bench/compare.py); the exit status is 1 if there is one.

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

from bench import compare, concurrency, latency, stream_throughput
from bench.report import environment, format_section, markdown_section, update_readme
from bench.section import Section
from bench.targets import CHATKIT, FLOOR, LABELS, REPO, Bench, source_at

ORDER = stream_throughput.ORDER
BASELINES = (FLOOR, CHATKIT)
PACKAGES = (
    *stream_throughput.PACKAGES,
    "openai-chatkit",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
)


def run(
    quick: bool, streams: int | None, baseline: str | None
) -> tuple[list[Section], dict[str, str]]:
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp:
        bench = Bench(Path(tmp))
        if baseline is not None:
            bench.before = source_at(baseline, Path(tmp))
        with ExitStack() as stack:
            servers, skipped = stream_throughput.start_servers(
                bench, stack, (stream_throughput.QUICK if quick else stream_throughput.FULL).words
            )
            stack.callback(stream_throughput.dump_logs_on_error, servers)
            print(f"servers: {', '.join(servers)}", flush=True)
            sections.append(stream_throughput.measure(bench, servers, quick=quick))
            sections.append(latency.measure(bench, servers, quick=quick))
        alone = concurrency.WITH_BEFORE if bench.before else concurrency.SERVERS
        sections.append(concurrency.measure(bench, quick=quick, streams=streams, servers=alone))
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
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run chatrelay as of this git commit, and compare after / before",
    )
    args = parser.parse_args(argv)
    if os.getloadavg()[0] > stream_throughput.LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    try:
        sections, skipped = run(args.quick, args.streams, args.baseline)
    except ValueError as exc:  # a baseline that is not a commit
        parser.error(str(exc))
    document = {
        "benchmark": "bench",
        "quick": args.quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "skipped": skipped,
        "environment": environment(REPO, PACKAGES),
        "baseline": args.baseline,
        "sections": [
            {"name": s.name, "params": s.params, "rows": [asdict(r) for r in s.rows], "raw": s.raw}
            for s in sections
        ],
    }
    comparison = compare.compare(sections) if args.baseline else None
    document["before_after"] = comparison
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
    if comparison is not None:
        print("\n== before / after\n" + compare.format_comparison(comparison, args.baseline))
    print(f"\nraw results: {relative} ({document['duration_s']} s)")
    # A smoke run is too short to publish, and the README's table has no "before" columns.
    if not args.quick and comparison is None:
        if update_readme(REPO / "README.md", readme_table(document, sections, relative)):
            print("README.md: Performance table updated")
    if comparison is not None and any(r["regressed"] for r in comparison):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

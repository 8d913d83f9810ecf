"""Medians, ratios, the printed table and the environment record of a benchmark run."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BASELINE, SUBJECT = "floor", "chatrelay"
PACKAGES = ("fastapi", "starlette", "sse-starlette", "uvicorn", "httpx", "pyjwt", "openai-agents")
# metric key, label, scale to the printed unit, format
ROWS = (
    ("events_per_s", "events/s (wall)", 1.0, "{:,.0f}"),
    ("server_cpu_s_per_event", "server CPU per event (us)", 1e6, "{:,.1f}"),
    ("first_event_s", "time to first event (ms)", 1e3, "{:,.2f}"),
    ("client_cpu_s_per_event", "client CPU per event (us)", 1e6, "{:,.1f}"),
)


def summarise(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per server and metric: median, min and max over trials; then B/A of the medians.

    Also the server CPU per event pooled over all trials (total CPU / total events): one
    trial's CPU time is only good to one clock tick, the pooled figure to one tick in all.
    """
    summary: dict[str, Any] = {}
    for server in (BASELINE, SUBJECT):
        mine = [trial for trial in trials if trial["server"] == server]
        per_metric: dict[str, Any] = {}
        for key, *_ in ROWS:
            values = [trial["metrics"][key] for trial in mine]
            per_metric[key] = {"median": statistics.median(values), "min": min(values)}
            per_metric[key]["max"] = max(values)
        events = sum(r["events"] for trial in mine for r in trial["requests"])
        per_metric["server_cpu_s_per_event_pooled"] = (
            sum(trial["server_cpu_s"] for trial in mine) / events
        )
        summary[server] = per_metric
    ratios = {
        key: summary[SUBJECT][key]["median"] / summary[BASELINE][key]["median"] for key, *_ in ROWS
    }
    pooled = "server_cpu_s_per_event_pooled"
    ratios[pooled] = summary[SUBJECT][pooled] / summary[BASELINE][pooled]
    summary["ratio_b_over_a"] = ratios
    return summary


def _cell(stats: dict[str, float], scale: float, fmt: str) -> str:
    median, low, high = (fmt.format(stats[k] * scale) for k in ("median", "min", "max"))
    return f"{median} [{low}-{high}]"


def print_table(document: dict[str, Any]) -> None:
    params, summary = document["params"], document["summary"]
    counts = document["events_per_request"]
    sizes = {
        server: statistics.median(
            r["bytes"] for t in document["trials"] if t["server"] == server for r in t["requests"]
        )
        for server in (BASELINE, SUBJECT)
    }
    print(
        f"\nstream throughput, W={params['words']} words, {params['trials']} trials x "
        f"{params['requests_per_trial']} requests per server, interleaved A,B,A,B,..."
    )
    print(
        f"per request: A {counts[BASELINE]} events / {sizes[BASELINE] / 1024:.0f} KiB, "
        f"B {counts[SUBJECT]} events / {sizes[SUBJECT] / 1024:.0f} KiB"
    )
    print("cells: median over trials [min-max]\n")
    header = f"{'metric':<28}{'A: floor':>26}{'B: chatrelay':>26}{'B/A':>8}"
    print(header)
    print("-" * len(header))
    for key, label, scale, fmt in ROWS:
        floor = _cell(summary[BASELINE][key], scale, fmt)
        relay = _cell(summary[SUBJECT][key], scale, fmt)
        ratio = summary["ratio_b_over_a"][key]
        print(f"{label:<28}{floor:>26}{relay:>26}{ratio:>8.2f}")
        if key == "server_cpu_s_per_event":
            pooled = "server_cpu_s_per_event_pooled"
            floor, relay = (f"{summary[s][pooled] * scale:,.1f}" for s in (BASELINE, SUBJECT))
            ratio = summary["ratio_b_over_a"][pooled]
            print(f"{'  pooled over all trials':<28}{floor:>26}{relay:>26}{ratio:>8.2f}")


def _git(repo: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip()


def environment(repo: Path, packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "clock_ticks_per_s": os.sysconf("SC_CLK_TCK"),
        "loadavg_1_5_15": os.getloadavg(),  # at the end of the run: was the machine shared?
        "git": _git(repo, "describe", "--always", "--dirty"),
        "packages": versions,
    }


README_START, README_END = (
    "<!-- bench:stream_throughput:start -->",
    "<!-- bench:stream_throughput:end -->",
)


def markdown_table(document: dict[str, Any], results_file: str) -> str:
    """The README's Performance table for a run: written by the bench, never by hand."""
    params, summary, env = document["params"], document["summary"], document["environment"]
    lines = [
        f"Run {document['started_at']} on {env['cpus']} CPUs ({env['platform']}, Python "
        f"{env['python']}), git `{env['git']}`: {params['words']}-word replies, "
        f"{params['trials']} trials x {params['requests_per_trial']} requests per server, "
        f"interleaved; medians over trials. Raw: `{results_file}`.",
        "",
        "| metric | A: bare sse-starlette floor | B: chatrelay (SQLite, offline model) | B/A |",
        "|---|---:|---:|---:|",
    ]
    for key, label, scale, fmt in ROWS:
        floor, relay = (fmt.format(summary[s][key]["median"] * scale) for s in (BASELINE, SUBJECT))
        lines.append(f"| {label} | {floor} | {relay} | {summary['ratio_b_over_a'][key]:.2f} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> bool:
    """Replace the table between the markers; False when the README has no markers."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[: start + len(README_START)] + "\n" + table + "\n" + text[end:])
    return True

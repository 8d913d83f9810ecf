"""Statistics over trials, tables of a `Section`, and the environment record of a run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.section import Row, Section

PACKAGES = ("fastapi", "starlette", "sse-starlette", "uvicorn", "httpx", "pyjwt", "openai-agents")


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, min and max of one metric over trials."""
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1]}


Baselines = str | Sequence[str] | None


def _cells(row: Row, names: Sequence[str], baseline: Baselines) -> list[str]:
    """Each server's value in the row's format, then its ratio to each baseline's value
    (`1.42x A`, the baseline named by its label's first letter when there are several)."""
    bases = [baseline] if isinstance(baseline, str) else list(baseline or [])
    cells = []
    for name in names:
        value = row.values.get(name)
        if value is None:
            cells.append("n/a")
            continue
        ratios = []
        for base in bases:
            reference = row.values.get(base)
            if reference and name != base and name not in bases[: bases.index(base)]:
                tag = "" if len(bases) == 1 else " " + "AB"[bases.index(base)]
                ratios.append(f"{value / reference:.2f}x{tag}")
        cells.append(row.fmt.format(value) + (f" ({', '.join(ratios)})" if ratios else ""))
    return cells


def _present(section: Section, order: Sequence[str]) -> list[str]:
    return [name for name in order if any(name in row.values for row in section.rows)]


def _notes(section: Section) -> list[str]:
    return list(dict.fromkeys(row.note for row in section.rows if row.note))


def _label(row: Row, notes: list[str], star: str = "*") -> str:
    return row.label + (star * (notes.index(row.note) + 1) if row.note else "")


def format_section(
    section: Section, labels: Mapping[str, str], order: Sequence[str], baseline: Baselines = None
) -> str:
    """A plain-text table of the section's rows, one column per server in `order`; the
    ratio to `baseline`'s value after each other value; then the rows' notes."""
    names = _present(section, order)
    notes = _notes(section)
    width = max(len(row.label) for row in section.rows) + len(notes) + 2
    header = f"{'metric':<{width}}" + "".join(f"{labels[n]:>28}" for n in names)
    lines = [header, "-" * len(header)]
    for row in section.rows:
        cells = "".join(f"{cell:>28}" for cell in _cells(row, names, baseline))
        lines.append(f"{_label(row, notes):<{width}}{cells}")
    lines += [f"{'*' * (index + 1)} {note}" for index, note in enumerate(notes)]
    return "\n".join(lines)


def markdown_section(
    section: Section, labels: Mapping[str, str], order: Sequence[str], baseline: Baselines = None
) -> str:
    """The same table in Markdown, for the README: written by the bench, never by hand."""
    names = _present(section, order)
    notes = _notes(section)
    lines = [
        "| metric | " + " | ".join(labels[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    star = "\\*"  # a bare * would start emphasis
    for row in section.rows:
        cells = " | ".join(_cells(row, names, baseline))
        lines.append(f"| {_label(row, notes, star)} | {cells} |")
    lines += [f"\n{star * (index + 1)} {note}" for index, note in enumerate(notes)]
    return "\n".join(lines)


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


def save_section(
    repo: Path, section: Section, started: float, packages: Sequence[str], **extra: Any
) -> Path:
    """`bench/results/<section>-<date>-<time>.json`: when and where it ran, `extra` (such as
    the servers skipped and why), the section's params, rows and raw data."""
    document = {
        "benchmark": section.name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        **extra,
        "environment": environment(repo, packages),
        "params": section.params,
        "rows": [asdict(row) for row in section.rows],
        "raw": section.raw,
    }
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
    path = repo / "bench" / "results" / f"{section.name}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(readme: Path, table: str) -> bool:
    """Replace the table between the markers; False when the README has no markers."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[: start + len(README_START)] + "\n" + table + "\n" + text[end:])
    return True

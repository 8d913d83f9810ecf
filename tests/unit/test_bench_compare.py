"""`make bench --baseline REF`: the before / after verdicts, and the export of REF's source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bench.compare import compare, format_comparison
from bench.section import Row, Section
from bench.targets import (
    BEFORE_POSTGRES,
    BEFORE_SQLITE,
    FLOOR,
    RELAY_POSTGRES,
    RELAY_SQLITE,
    REPO,
    source_at,
)


def section(*rows: Row) -> Section:
    return Section("s", {}, list(rows))


def cpu(before: float, after: float) -> Row:
    return Row("cpu", "CPU (us)", "lower", {FLOOR: 1.0, BEFORE_SQLITE: before, RELAY_SQLITE: after})


def test_a_lower_is_better_metric_regresses_only_past_five_percent() -> None:
    verdicts = [compare([section(cpu(100.0, after))])[0]["regressed"] for after in (105, 106)]
    assert verdicts == [False, True]


def test_a_higher_is_better_metric_regresses_when_it_falls() -> None:
    row = Row("rps", "req/s", "higher", {BEFORE_POSTGRES: 100.0, RELAY_POSTGRES: 90.0})
    (result,) = compare([section(row)])
    assert result["server"] == RELAY_POSTGRES
    assert result["ratio"] == 0.9
    assert result["worse_by"] == pytest.approx(0.1111, abs=1e-4)
    assert result["regressed"]


def test_a_metric_that_improves_is_not_a_regression_and_says_better() -> None:
    rows = compare([section(cpu(100.0, 80.0))])
    assert not rows[0]["regressed"]
    assert "better" in format_comparison(rows, "main").splitlines()[2]


def test_failures_from_none_to_some_are_a_regression_and_none_to_none_is_not() -> None:
    def failures(before: float, after: float) -> Row:
        return Row("f", "failed", "lower", {BEFORE_SQLITE: before, RELAY_SQLITE: after})

    results = compare([section(failures(0, 0), failures(0, 3))])
    assert [r["regressed"] for r in results] == [False, True]
    assert results[1]["ratio"] is None  # infinite, kept JSON-encodable


def test_only_pairs_measured_on_both_sides_are_compared() -> None:
    row = Row("cpu", "CPU", "lower", {BEFORE_SQLITE: 1.0, RELAY_SQLITE: 1.0, RELAY_POSTGRES: 2.0})
    assert [r["server"] for r in compare([section(row)])] == [RELAY_SQLITE]


def test_the_summary_line_names_every_regressed_metric() -> None:
    text = format_comparison(compare([section(cpu(100.0, 120.0))]), "abc123")
    assert "(abc123)" in text.splitlines()[0]
    assert text.splitlines()[-1] == (
        "1 of 1 metrics worse by more than 5%: CPU (us) (chatrelay-sqlite)"
    )


def test_the_baseline_source_is_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    src = source_at("HEAD", tmp_path)
    assert src.parent.name == f"before-{head[:12]}"
    committed = subprocess.run(
        ["git", "show", "HEAD:src/chatrelay/__init__.py"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    assert (src / "chatrelay" / "__init__.py").read_bytes() == committed


def test_a_baseline_that_is_not_a_commit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a commit"):
        source_at("no-such-ref-anywhere", tmp_path)

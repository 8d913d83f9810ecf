"""What one part of the bench hands the entry point: rows for the table, raw data for the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class Row:
    """One metric across servers: the value shown for each (a median, in the label's unit)."""

    key: str
    label: str  # says the unit, e.g. "server CPU per event (us)"
    better: Literal["lower", "higher"]
    values: dict[str, float]  # server name (bench.targets) -> value; a missing server is "n/a"
    fmt: str = "{:,.1f}"
    note: str = ""  # a short footnote when a server's value means something slightly different


@dataclass
class Section:
    name: str
    params: dict[str, Any]
    rows: list[Row]
    raw: dict[str, Any] = field(default_factory=dict)  # every sample, for bench/results/*.json

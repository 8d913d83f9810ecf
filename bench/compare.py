"""Before and after a change, from one run (`make bench BENCH_ARGS="--baseline REF"`).

Every row of every section that has both a "before" server (chatrelay at REF) and the working
tree's server on the same database gets one comparison: after / before, and how much worse
that is in the row's own direction (a higher JSON turns/s is better, a higher CPU is worse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.section import Row, Section
from bench.targets import BEFORE

THRESHOLD = 0.05  # "no metric worse by more than 5%"


@dataclass(frozen=True)
class Change:
    section: str
    metric: str
    server: str  # the working tree's server, e.g. chatrelay-postgres
    before: float
    after: float

    @property
    def ratio(self) -> float:
        """after / before; 1.0 when both are zero (no failures before or after)."""
        if self.before == 0:
            return 1.0 if self.after == 0 else math.inf
        return self.after / self.before

    def worse_by(self, better: str) -> float:
        """How much worse `after` is than `before`, as a fraction (negative: better)."""
        if better == "lower":
            return self.ratio - 1
        if self.after == 0:
            return 0.0 if self.before == 0 else math.inf
        return self.before / self.after - 1


def changes(section: Section) -> list[tuple[Change, Row]]:
    found = []
    for row in section.rows:
        for before, after in BEFORE.items():
            if before in row.values and after in row.values:
                change = Change(
                    section.name, row.label, after, row.values[before], row.values[after]
                )
                found.append((change, row))
    return found


def compare(sections: list[Section], threshold: float = THRESHOLD) -> list[dict[str, Any]]:
    """Every comparison, each marked `regressed` when worse than `threshold`, as the results
    JSON keeps them."""
    rows = []
    for section in sections:
        for change, row in changes(section):
            worse = change.worse_by(row.better)
            rows.append(
                {
                    "section": change.section,
                    "metric": change.metric,
                    "server": change.server,
                    "better": row.better,
                    "before": change.before,
                    "after": change.after,
                    "ratio": None if math.isinf(change.ratio) else round(change.ratio, 4),
                    "worse_by": None if math.isinf(worse) else round(worse, 4),
                    "regressed": round(worse, 9) > threshold,  # 105 / 100 is 5%, not more
                }
            )
    return rows


def format_comparison(rows: list[dict[str, Any]], ref: str, threshold: float = THRESHOLD) -> str:
    width = max([len(r["metric"]) for r in rows] + [6]) + 2
    lines = [
        f"after (working tree) / before ({ref}), each a median of the same run",
        f"{'metric':<{width}}{'server':<22}{'before':>12}{'after':>12}{'ratio':>9}  verdict",
    ]
    for r in rows:
        ratio = "inf" if r["ratio"] is None else f"{r['ratio']:.3f}"
        verdict = "WORSE" if r["regressed"] else ""
        if r["worse_by"] is not None and r["worse_by"] < -threshold:
            verdict = "better"
        lines.append(
            f"{r['metric']:<{width}}{r['server']:<22}{r['before']:>12,.2f}{r['after']:>12,.2f}"
            f"{ratio:>9}  {verdict}"
        )
    regressed = [r for r in rows if r["regressed"]]
    lines.append(
        f"{len(regressed)} of {len(rows)} metrics worse by more than {threshold:.0%}"
        + (
            ": " + "; ".join(f"{r['metric']} ({r['server']})" for r in regressed)
            if regressed
            else ""
        )
    )
    return "\n".join(lines)

"""Keyset pagination: "rows after this one" in a (timestamp, id) order, index-friendly."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement


def keyset_after(
    key: tuple[Any, Any],
    cursor: tuple[Any, Any],
    order: Literal["asc", "desc"],
    *,
    inclusive: bool = False,
) -> ColumnElement[bool]:
    """Rows strictly after (or at, when `inclusive`) `cursor` in `order` of `key` (the
    cursor: values, or the columns of another row in a correlated subquery)."""
    at, ident = key
    when, cursor_id = cursor
    if order == "asc":
        beyond, tie = at > when, (ident >= cursor_id if inclusive else ident > cursor_id)
    else:
        beyond, tie = at < when, (ident <= cursor_id if inclusive else ident < cursor_id)
    return sa.or_(beyond, sa.and_(at == when, tie))

"""What a turn can refuse, in the core's own words: no HTTP status here.

Each edge maps these once (the HTTP server in `chatrelay.server.errors`): not found, a
conflict (busy), rate limited, invalid, and a store that cannot answer right now.
"""

from __future__ import annotations

from typing import Any


class TurnRefused(Exception):
    """Base of every error the core raises for a client to see; `detail` is user-facing."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(TurnRefused):
    """No such conversation (or item) for this user: another user's answers exactly the same."""


class Conflict(TurnRefused):
    """The conversation's state does not allow it now (no turn to stop, say)."""


class Busy(Conflict):
    """Another turn runs in this conversation; try again after `retry_after` seconds."""

    def __init__(self, detail: str = "conversation busy", retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(TurnRefused):
    """The user is over a limit (turns per window, open streams); retry after `retry_after`."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Invalid(TurnRefused):
    """The request cannot be served as it stands (an empty message, a model not allowed)."""


class InvalidFields(Invalid):
    """Invalid, with one entry per offending field (`loc`, `msg`, `type`), as pydantic
    lists them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = errors


class StoreUnavailable(Exception):
    """The store could not answer now (a lost or refused connection, an exhausted pool):
    worth retrying. Anything else a store raises is a fault."""

    def __init__(self, detail: str, *, busy: bool = False) -> None:
        super().__init__(detail)
        self.busy = busy
        """True when every connection was in use (overload), not when the database is gone."""


class LiveEventsUnavailable(StoreUnavailable):
    """What instances share of running turns (another instance's events) cannot be read now;
    the messages themselves are safe in the database. Worth retrying."""


class ShuttingDown(Exception):
    """This instance is shutting down (SIGTERM): it lets its running turns finish but starts
    no new one. Worth retrying at once: another instance will take it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

"""What the finalizer must survive: cancellation while it runs, and a database that fails
for a moment. A turn's pair is written together, once, or not at all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio

from chatrelay.turns.errors import StoreUnavailable
from chatrelay.turns.spec import TurnOutcome, TurnSpec
from chatrelay.turns.store import LeaseTerms, TurnStore

logger = logging.getLogger("chatrelay.turns")

T = TypeVar("T")


async def complete_despite_cancellation(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end even if we are cancelled meanwhile, then re-raise the cancellation.

    `anyio.CancelScope(shield=True)` alone is not enough: it shields from anyio cancel scopes
    (sse-starlette's task group) but not from a plain `Task.cancel()` (shutdown, a second
    timeout), which would abort the commit halfway. So the work runs in its own task that the
    caller only awaits through `asyncio.shield`, waiting again after every cancellation.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


COMMIT_BACKOFF_SECONDS = (0.1, 0.5, 2.0)
"""Waits before the 2nd, 3rd and 4th attempt when the store is unavailable: a lost or refused
connection, or every pooled connection in use for the pool's timeout (each attempt is bounded
by that timeout, so the whole commit is too)."""


async def commit_with_retries(
    store: TurnStore, spec: TurnSpec, outcome: TurnOutcome, lease: LeaseTerms | None
) -> bool:
    """Commit the turn (releasing `lease` in its transaction), retrying an unavailable store
    with backoff; False (and logged with the correlation id) when it could not be committed,
    and then the lease is still held."""
    for attempt, delay in enumerate((0.0, *COMMIT_BACKOFF_SECONDS)):
        await asyncio.sleep(delay)
        try:
            return await store.commit_turn(spec, outcome, lease)
        except StoreUnavailable as error:
            if attempt == len(COMMIT_BACKOFF_SECONDS):
                _log_lost(spec)
                return False
            logger.warning(
                "commit attempt %d of conversation %s failed, retrying: %s (correlation_id=%s)",
                attempt + 1,
                spec.conversation_id,
                error,
                spec.correlation_id,
            )
        except Exception:
            _log_lost(spec)
            return False
    return False


def _log_lost(spec: TurnSpec) -> None:
    logger.exception(
        "could not commit turn of conversation %s (correlation_id=%s)",
        spec.conversation_id,
        spec.correlation_id,
    )

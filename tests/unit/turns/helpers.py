"""Driving the turn core in tests: a service on the fakes, specs, and reading a turn's log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chatrelay.turns import (
    TURN_EVENTS,
    InProcessTurnBuffer,
    SharedClaims,
    Turn,
    TurnConfig,
    TurnEvent,
    TurnOutcome,
    TurnRegistry,
    TurnService,
    TurnSpec,
    UserLimits,
    new_id,
)
from tests.fakes.turns import InMemoryTurnStore, ScriptedModel

T = TypeVar("T")

SETTLE_SECONDS = 5.0
"""A bound on waiting for what an event announces, so a broken turn fails instead of hanging."""


async def bounded(step: Awaitable[T]) -> T:
    """`step`'s result, or `TimeoutError` after `SETTLE_SECONDS`: never a hung test."""
    return await asyncio.wait_for(step, SETTLE_SECONDS)


def build_service(
    model: ScriptedModel,
    store: InMemoryTurnStore,
    *,
    rate_limit: str = "1000/minute",
    keep_finished_seconds: float = 300.0,
    claims: SharedClaims | None = None,
    **config: Any,
) -> TurnService:
    """The service as `chatrelay.runtime` builds it, on the fakes (`config`: `TurnConfig`)."""
    registry = TurnRegistry(keep_finished_seconds=keep_finished_seconds)
    return TurnService(
        store=store,
        model=model,
        registry=registry,
        buffer=InProcessTurnBuffer(registry),
        limits=UserLimits(rate_limit, "async+memory://", max_streams=8),
        config=TurnConfig(**config),
        claims=claims,
    )


ServiceFactory = Callable[..., TurnService]


def message(
    text: str = "hello there",
    *,
    user_id: str = "alice",
    conversation_id: str | None = None,
    request_id: str | None = None,
    **options: Any,
) -> TurnSpec:
    """A user message, as an edge builds it (a new conversation without `conversation_id`)."""
    return TurnSpec.for_message(
        user_id,
        text,
        conversation_id=conversation_id,
        correlation_id=new_id("corr"),
        request_id=request_id,
        **options,
    )


async def settled(turn: Turn) -> TurnOutcome:
    """The turn's outcome, once its finalizer has run."""
    return await asyncio.wait_for(asyncio.shield(turn.outcome), SETTLE_SECONDS)


async def logged(turn: Turn, after: int = -1) -> list[TurnEvent]:
    """The turn's typed events after id `after`, read from its log as a stream reader does,
    until the log closes; the ids must run on without a gap."""
    events: list[TurnEvent] = []
    async with asyncio.timeout(SETTLE_SECONDS):
        async for batch in turn.batches(TURN_EVENTS, after):
            for sequence, event in batch:
                assert sequence == after + 1 + len(events), "an id was skipped or repeated"
                events.append(event)
    return events


def failure_message(text: str, spec: TurnSpec) -> str:
    return f"{text} (correlation id: {spec.correlation_id})"

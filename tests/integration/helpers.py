"""Reading what a turn left in the database, straight from the tables."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI
from sqlmodel import col, select

from chatrelay.runtime import Runtime
from chatrelay.store import Conversation, Message, transaction

SSE = {"Accept": "text/event-stream"}


def context_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def stored_messages(app: FastAPI, conversation_id: str | None = None) -> list[Message]:
    async with transaction(context_of(app).sessions) as db:
        statement = select(Message).order_by(col(Message.created_at))
        if conversation_id is not None:
            statement = statement.where(col(Message.conversation_id) == conversation_id)
        return list((await db.exec(statement)).all())


async def stored_conversations(app: FastAPI) -> list[Conversation]:
    async with transaction(context_of(app).sessions) as db:
        return list((await db.exec(select(Conversation))).all())


async def until(condition: Callable[[], bool], within: float = 10) -> None:
    """Wait for a state no event announces (a request attached, a stream open), read from
    public counters: never a delay guessed long enough; not reached `within` s fails."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await asyncio.sleep(0.001)


def metric(app: FastAPI, name: str, **labels: str) -> float:
    value = context_of(app).metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def wait_for_turns(app: FastAPI) -> None:
    """Let every running turn (and its finalizer) finish; the app still takes new ones (a
    shutdown would drain it)."""
    await asyncio.wait_for(context_of(app).registry.wait(), 10)

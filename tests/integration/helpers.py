"""Reading what a turn left in the database, straight from the tables."""

from __future__ import annotations

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


async def wait_for_turns(app: FastAPI) -> None:
    """Let every running turn (and its finalizer) finish."""
    await context_of(app).registry.shutdown(grace_seconds=10)

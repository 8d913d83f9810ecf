"""SSE write coalescing (`SSE_FLUSH_INTERVAL_SECONDS`) in a real turn: a burst of deltas goes
out in few writes, with exactly the events of an uncoalesced stream. The rules themselves
(what is held back, and when not) are tested on `EventLog` in tests/unit/test_event_log.py."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.types import Message

from tests.conftest import AppFactory, auth
from tests.fakes.asgi import body_text, post_and_hang_up
from tests.sse import parse_sse, validate_chatkit

SSE = {"Accept": "text/event-stream"}
WORDS = " ".join(f"w{i}" for i in range(60))


async def _stream(app: FastAPI, message: str) -> list[Message]:
    """Every ASGI message of one streamed turn (the client stays to the end)."""
    stay = asyncio.Event()  # never set: the client never hangs up
    headers = {**auth(), **SSE}
    return await post_and_hang_up(app, "/api/alice/chat", {"message": message}, headers, stay)


def _writes(messages: list[Message]) -> int:
    return sum(1 for m in messages if m["type"] == "http.response.body" and m.get("body"))


async def test_a_burst_of_deltas_is_written_in_a_few_writes(app_factory: AppFactory) -> None:
    plain = await app_factory(sse_flush_interval_seconds=0)
    coalesced = await app_factory(sse_flush_interval_seconds=0.05)

    one_per_event = await _stream(plain, WORDS)
    batched = await _stream(coalesced, WORDS)

    frames, batched_frames = parse_sse(body_text(one_per_event)), parse_sse(body_text(batched))
    validate_chatkit(batched_frames)
    assert _writes(one_per_event) >= 60  # one per delta at least
    assert _writes(batched) < len(frames) / 4
    # Same events in the same order with the same sequence ids (only the ids of the
    # conversation and its items differ between the two turns).
    assert [f.id for f in batched_frames] == [f.id for f in frames]
    assert [f.data["type"] for f in batched_frames] == [f.data["type"] for f in frames]

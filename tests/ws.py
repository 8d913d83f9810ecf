"""A test client for `/api/{user_id}/ws` on the real `websockets` client: frames sorted by
`ref`, each checked against chatrelay's frame models and its events against ChatKit's."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatrelay.schemas.websocket import SERVER_FRAME
from tests.sse import Frame, validate_chatkit

TIMEOUT = 30.0


def ws_url(http_url: str, user: str) -> str:
    return f"{http_url.replace('http://', 'ws://', 1)}/api/{user}/ws"


class Socket:
    """One connection; `answers(ref)` reads on (keeping other refs' frames for later)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []
        """Every frame, in arrival order (multiplexing tests read the interleaving)."""
        self._pending: dict[str | None, list[dict[str, Any]]] = defaultdict(list)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def next_frame(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), TIMEOUT)
        frame: dict[str, Any] = json.loads(raw)
        SERVER_FRAME.validate_python(frame)  # every frame is one of the four, fields and all
        self.received.append(frame)
        return frame

    async def _next_for(self, ref: str | None) -> dict[str, Any]:
        while not self._pending[ref]:
            frame = await self.next_frame()
            self._pending[frame["ref"]].append(frame)
        return self._pending[ref].pop(0)

    async def answer(self, ref: str | None) -> dict[str, Any]:
        """The one frame answering `ref` (a result or an error)."""
        frame = await self._next_for(ref)
        assert frame["type"] in ("result", "error"), frame
        return frame

    async def stream(self, ref: str | None, *, events: int | None = None) -> list[dict[str, Any]]:
        """The event frames answering `ref` up to its `done` (which is checked, not returned),
        or only the next `events` of them."""
        frames: list[dict[str, Any]] = []
        while events is None or len(frames) < events:
            frame = await self._next_for(ref)
            if frame["type"] == "done":
                assert {frame["conversation_id"]} == {f["conversation_id"] for f in frames}
                break
            assert frame["type"] == "event", frame
            frames.append(frame)
        return frames

    async def request(self, ref: str, frame: dict[str, Any]) -> dict[str, Any]:
        await self.send({**frame, "ref": ref})
        return await self.answer(ref)

    async def closed(self) -> tuple[int, str]:
        """The close code and reason the server closed with (frames before it are dropped)."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), TIMEOUT)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


@asynccontextmanager
async def open_socket(
    http_url: str, user: str, token: str | None = None, **options: Any
) -> AsyncIterator[Socket]:
    """A socket signed in by `Authorization` (with `token`), or not signed in at all."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    async with connect(
        ws_url(http_url, user), additional_headers=headers, open_timeout=TIMEOUT, **options
    ) as connection:
        yield Socket(connection)


def events_of(frames: list[dict[str, Any]]) -> list[Frame]:
    """Event frames as SSE frames (`id` as SSE writes it), each event validated strictly
    against `chatkit.types`."""
    converted = [Frame(str(frame["id"]), frame["event"]) for frame in frames]
    validate_chatkit(converted)
    return converted

"""A WebSocket reader slower than the model: it stops reading for 30 s while 41 streams of a
5000-delta turn (the turn, and 40 resumes of it from the start) are due on its socket.

The server must neither buffer them (RSS bounded: each stream holds one frame, the rest
stays in the turn's log) nor give up on the reader (the keep-alive outlasts the pause,
with its default settings): afterwards every stream arrives whole, in order, and the turn,
which ran on meanwhile, is committed. An unbounded send queue grew this server's RSS by
about 70 MB here; the bounded one by about 3 MB.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.processes import Server, process_env, rss_bytes
from tests.integration.test_websocket import new_user
from tests.sse import Frame, validate_chatkit

pytestmark = pytest.mark.slow  # a real server process, and a 30 s pause

STALL_SECONDS = 30.0
RESUMES = 40
WORDS = " ".join(["w"] * 4999)  # the longest message: one delta per word, ~5000 deltas
MAX_GROWTH_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd: Path = tmp_path_factory.mktemp("ws-slow")
    settings = {"MAX_STREAMS_PER_USER": str(RESUMES + 1), "RATE_LIMIT": "1000/minute"}
    server = Server(process_env(f"sqlite+aiosqlite:///{cwd / 'ws.db'}", **settings), cwd)
    try:
        yield server
    finally:
        server.stop()


def _small_window(url: str) -> socket.socket:
    """A connected TCP socket with a small, fixed receive buffer: without it Linux grows the
    window to megabytes, and the kernel, not the server, would hold what this reader skips."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect((host, int(port)))
    return sock


class _Streams:
    """What arrived per `ref`: the ids, a digest of the events, whether `done` came."""

    def __init__(self) -> None:
        self.ids: dict[str, list[int]] = {}
        self.digests: dict[str, hashlib._Hash] = {}
        self.done: set[str] = set()
        self.conversation_id: str | None = None
        self.checked: list[Frame] = []

    def add(self, frame: dict[str, object]) -> None:
        ref = str(frame["ref"])
        if frame["type"] == "done":
            self.done.add(ref)
            return
        assert frame["type"] == "event", frame
        self.conversation_id = str(frame["conversation_id"])
        self.ids.setdefault(ref, []).append(int(frame["id"]))  # type: ignore[call-overload]
        event = json.dumps(frame["event"], sort_keys=True)
        self.digests.setdefault(ref, hashlib.sha256()).update(event.encode())
        if ref == "turn":
            self.checked.append(Frame(str(frame["id"]), frame["event"]))  # type: ignore[arg-type]


async def _read(connection: ClientConnection, streams: _Streams, until_done: int) -> None:
    while len(streams.done) < until_done:
        streams.add(json.loads(await asyncio.wait_for(connection.recv(), 60)))


async def _turn(server: Server, resumes: int, stall: float) -> tuple[_Streams, int]:
    """One turn and `resumes` resumes of it on one socket, not read for `stall` s; the
    streams, and the server's peak RSS while nothing was read."""
    user, token = new_user()
    async with connect(
        f"ws://{server.url.removeprefix('http://')}/api/{user}/ws",
        sock=_small_window(server.url),
        compression=None,  # the bytes a reader skips are the frames' own
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as connection:
        streams = _Streams()
        await connection.send(json.dumps({"type": "chat", "message": WORDS, "ref": "turn"}))
        streams.add(json.loads(await asyncio.wait_for(connection.recv(), 30)))
        resume = {"type": "resume", "conversation_id": streams.conversation_id}
        for index in range(resumes):
            await connection.send(json.dumps({**resume, "ref": f"resume-{index}"}))
        peak = 0
        stop_at = time.monotonic() + stall
        while time.monotonic() < stop_at:  # reading nothing, only watching the server
            peak = max(peak, rss_bytes(server.process.pid))
            await asyncio.sleep(0.25)
        await _read(connection, streams, until_done=resumes + 1)
        get = {"type": "threads.get_by_id", "params": {"thread_id": streams.conversation_id}}
        await connection.send(json.dumps({**get, "ref": "thread"}))
        thread = json.loads(await asyncio.wait_for(connection.recv(), 30))
    assert thread["ref"] == "thread"
    items = thread["body"]["items"]["data"]
    assert [item["type"] for item in items] == ["user_message", "assistant_message"]
    assert items[1]["content"][0]["text"].endswith(WORDS)  # committed while nobody read
    return streams, peak


async def test_a_reader_that_stops_for_30_s_gets_every_stream_whole(server: Server) -> None:
    await _turn(server, resumes=0, stall=0)  # warm up: the first turn's allocations
    before = rss_bytes(server.process.pid)
    streams, peak = await _turn(server, resumes=RESUMES, stall=STALL_SECONDS)

    assert peak - before < MAX_GROWTH_BYTES, f"RSS grew {(peak - before) / 2**20:.0f} MiB"
    refs = {"turn", *(f"resume-{index}" for index in range(RESUMES))}
    assert streams.done == refs == set(streams.ids)
    validate_chatkit(streams.checked)
    expected = list(range(len(streams.checked)))
    assert len(expected) > 5000
    for ref in refs:
        assert streams.ids[ref] == expected, ref
        assert streams.digests[ref].digest() == streams.digests["turn"].digest(), ref

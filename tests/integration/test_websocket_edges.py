"""`GET /api/{user_id}/ws` at its edges, against a real `chatrelay serve`: every way to fail
signing in and its close code, every bad frame (an error frame, the socket still open),
frames too large, keep-alive pings, and the per-user stream limit shared with SSE."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from chatrelay.config import Settings
from chatrelay.tokens import mint_token
from tests.integration.conftest import WS_SETTINGS
from tests.integration.processes import SECRET, Server, process_env
from tests.integration.test_websocket import LONG, new_user
from tests.ws import Socket, open_socket, ws_url

pytestmark = pytest.mark.slow  # a real server process

AUTH_FRAME_FIRST = 'the first frame must be {"type": "auth", "token": "<JWT>"}'


def _token(user: str, ttl: int = 600) -> str:
    return mint_token(Settings(auth_secret=SECRET, _env_file=None), user, ttl)  # type: ignore[call-arg]


def _sign_in_cases() -> Iterator[Any]:
    no_frame = "no Authorization header, and no auth frame within 1 s"
    bearer = "expected 'Authorization: Bearer <token>'"
    cases: list[tuple[str, dict[str, str], Any, int, str]] = [
        ("nothing", {}, None, 4401, no_frame),
        ("token in the URL", {"query": "token"}, None, 4401, no_frame),
        ("garbage", {"Authorization": "Bearer garbage"}, None, 4401, "invalid token: "),
        ("expired", {"Authorization": "Bearer expired"}, None, 4401, "invalid token: Signature"),
        ("not bearer", {"Authorization": "Basic YWxpY2U6cHc="}, None, 4401, bearer),
        ("empty header", {"Authorization": ""}, None, 4401, "missing bearer token"),
        ("someone else's", {"Authorization": "Bearer other"}, None, 4403, "the token does not"),
        ("chat first", {}, {"type": "chat", "message": "hi"}, 4401, AUTH_FRAME_FIRST),
        ("not JSON first", {}, "hello", 4401, AUTH_FRAME_FIRST),
        ("auth without token", {}, {"type": "auth"}, 4401, AUTH_FRAME_FIRST),
        ("auth, bad token", {}, {"type": "auth", "token": "garbage"}, 4401, "invalid token: "),
        ("auth, someone else's", {}, {"type": "auth", "token": "other"}, 4403, "the token does"),
    ]
    for name, *case in cases:
        yield pytest.param(*case, id=name)


def _real_token(placeholder: str, user: str) -> str:
    return {
        "expired": _token(user, ttl=-60),
        "other": _token("someone-else"),
    }.get(placeholder, placeholder)


@pytest.mark.parametrize(("headers", "first_frame", "code", "reason"), list(_sign_in_cases()))
async def test_every_sign_in_failure_closes_with_its_code_and_reason(
    ws_server: Server, headers: dict[str, str], first_frame: Any, code: int, reason: str
) -> None:
    user, token = new_user()
    url = ws_url(ws_server.url, user)
    if headers.pop("query", None):
        url += f"?token={token}&access_token={token}"  # never read
    if (value := headers.get("Authorization")) is not None:
        scheme, _, placeholder = value.partition(" ")
        headers["Authorization"] = f"{scheme} {_real_token(placeholder, user)}".strip()
    if isinstance(first_frame, dict) and "token" in first_frame:
        first_frame = {**first_frame, "token": _real_token(first_frame["token"], user)}
    async with connect(url, additional_headers=headers) as connection:
        socket = Socket(connection)
        if first_frame is not None:
            await socket.send(first_frame)
        closed_with = await socket.closed()
    assert closed_with[0] == code
    assert closed_with[1].startswith(reason), closed_with[1]


async def test_an_auth_frame_signs_a_browser_in(ws_server: Server) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user) as socket:  # no Authorization header
        signed_in = await socket.request("hello", {"type": "auth", "token": token})
        again = await socket.request("again", {"type": "auth", "token": token})
        listed = await socket.request("list", {"type": "threads.list", "params": {}})
    assert signed_in == {"type": "result", "ref": "hello", "body": {"user_id": user}}
    assert (again["status"], again["detail"]) == (400, "this socket is signed in already")
    assert listed["body"] == {"data": [], "has_more": False}


BAD_FRAMES: list[tuple[str, str | bytes, str | None, int, Any]] = [
    ("not JSON", "{nope", None, 422, "json_invalid"),
    ("not an object", "[1, 2]", None, 400, "a frame must be a JSON object with a `type`"),
    ("no type", '{"ref": "r"}', "r", 400, "unknown frame type None"),
    ("unknown type", '{"type": "nope", "ref": "r"}', "r", 400, "unknown frame type 'nope'"),
    ("binary", b"\x00\x01", None, 400, "frames must be JSON text, not binary"),
    ("ref not a string", '{"type": "chat", "message": "x", "ref": 5}', None, 422, "string_type"),
    ("no message", '{"type": "chat", "ref": "r"}', "r", 422, "missing"),
    ("empty message", '{"type": "chat", "message": " ", "ref": "r"}', "r", 422, "value_error"),
    ("extra field", '{"type": "chat", "message": "x", "mood": 1, "ref": "r"}', "r", 422, "extra"),
    ("lone surrogate", '{"type": "chat", "message": "\\ud800", "ref": "r"}', "r", 422, "unicode"),
    ("resume, no conversation", '{"type": "resume", "ref": "r"}', "r", 422, "missing"),
    ("ChatKit, bad params", '{"type": "threads.get_by_id", "ref": "r"}', "r", 422, "missing"),
    (
        "ChatKit, unsupported",
        '{"type": "input.transcribe", "ref": "r", "params": '
        '{"audio_base64": "", "mime_type": "audio/ogg"}}',
        "r",
        400,
        "input.transcribe is not",
    ),
]


@pytest.mark.parametrize(
    ("raw", "ref", "status", "detail"),
    [pytest.param(*case, id=name) for name, *case in BAD_FRAMES],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_open(
    ws_server: Server, raw: str | bytes, ref: str | None, status: int, detail: Any
) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send(raw) if isinstance(raw, str) else await socket.connection.send(raw)
        error = await socket.answer(ref)
        still_open = await socket.request("list", {"type": "threads.list", "params": {}})
    assert (error["type"], error["status"]) == ("error", status)
    assert error["correlation_id"]
    if status == 422:  # field errors, as HTTP's 422 lists them
        assert any(detail in field["type"] for field in error["detail"]), error["detail"]
    else:
        assert error["detail"].startswith(detail), error["detail"]
    assert still_open["type"] == "result"


async def test_a_frame_over_max_body_bytes_closes_with_1009(ws_server: Server) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token, max_size=None) as socket:
        await socket.send({"type": "chat", "message": "x" * (300 * 1024)})
        code, _reason = await socket.closed()
    assert code == 1009


async def test_pings_are_answered_and_a_silent_peer_is_closed_1011(ws_server: Server) -> None:
    """The client's pings get pongs; the server pings every WS_PING_SECONDS (1 here) and
    closes a peer that answers none within WS_PING_TIMEOUT_SECONDS (2)."""
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        pong = await socket.connection.ping()
        latency = await asyncio.wait_for(pong, 5)
    assert latency >= 0

    opcodes, close_code, elapsed = await _silent_peer(ws_server.url, user, token)
    assert opcodes.count(0x9) == 1  # one ping, never answered
    assert close_code == 1011
    ping, timeout = (
        float(WS_SETTINGS["WS_PING_SECONDS"]),
        float(WS_SETTINGS["WS_PING_TIMEOUT_SECONDS"]),
    )
    assert ping + timeout <= elapsed < ping + timeout + 5


async def _silent_peer(http_url: str, user: str, token: str) -> tuple[list[int], int, float]:
    """A raw TCP client that upgrades, then reads everything and answers nothing (the
    `websockets` client always answers pings): the opcodes it got, the close code, and
    how long after the upgrade the server hung up."""
    host, port = re.match(r"http://([^:]+):(\d+)", http_url).groups()  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/{user}/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    upgraded = time.monotonic()
    opcodes: list[int] = []
    close_code = 0
    try:
        while header := await asyncio.wait_for(reader.read(2), 30):
            length = header[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            payload = await reader.readexactly(length)
            opcodes.append(header[0] & 0x0F)
            if opcodes[-1] == 0x8:
                (close_code,) = struct.unpack("!H", payload[:2])
    finally:
        writer.close()
    return opcodes, close_code, time.monotonic() - upgraded


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One stream per user, and a finished turn's events kept for no time at all."""
    cwd: Path = tmp_path_factory.mktemp("ws-strict")
    settings = {**WS_SETTINGS, "MAX_STREAMS_PER_USER": "1", "RESUME_SECONDS": "0"}
    server = Server(process_env(f"sqlite+aiosqlite:///{cwd / 'ws.db'}", **settings), cwd)
    try:
        yield server
    finally:
        server.stop()


def _open_streams(server: Server) -> float:
    metrics = httpx.get(f"{server.url}/metrics").text
    return float(re.search(r"^chatrelay_active_streams (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]


async def _until_no_streams(server: Server) -> None:
    async with asyncio.timeout(10):
        while _open_streams(server):  # noqa: ASYNC110 - a public counter, read until it is 0
            await asyncio.sleep(0.01)


async def test_a_socket_stream_counts_against_max_streams_per_user(strict_server: Server) -> None:
    user, token = new_user()
    sse = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with open_socket(strict_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "a"})
        await socket.stream("a", events=1)
        refused = await socket.request("b", {"type": "chat", "message": "one more"})
        async with httpx.AsyncClient(base_url=strict_server.url) as http:
            over_sse = await http.post(f"/api/{user}/chat", json={"message": "hi"}, headers=sse)
        conversation_id = (await socket.stream("a"))[-1]["conversation_id"]
        await socket.send({"type": "chat", "message": "now there is room", "ref": "c"})
        after = await socket.stream("c")  # the slot was freed with the stream
        expired = await socket.request(
            "gone", {"type": "resume", "conversation_id": conversation_id}
        )
    assert (refused["status"], refused["detail"], refused["retry_after"]) == (
        429,
        "too many open streams",
        1,
    )
    assert over_sse.status_code == 429
    assert after[-1]["event"]["type"] == "thread.updated"
    assert expired == {"type": "result", "ref": "gone", "body": None}  # HTTP's 204


async def test_a_closed_socket_frees_its_stream_slot(strict_server: Server) -> None:
    user, token = new_user()
    async with open_socket(strict_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "a"})
        await socket.stream("a", events=1)
    await _until_no_streams(strict_server)  # while its turn still runs
    async with open_socket(strict_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": "again", "ref": "b"})
        assert (await socket.stream("b"))[0]["event"]["type"] == "thread.created"

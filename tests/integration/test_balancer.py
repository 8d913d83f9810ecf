"""Through a real balancer: Debian's HAProxy on deploy/haproxy.cfg, the file docker-compose.yml's
`scale` profile mounts, in front of two real instances on one Postgres and one Redis. A stream
cut mid-reply and resumed through HAProxy lands, by round robin, on the other instance, and
its bytes are exactly the rest of the original stream; a WebSocket upgrade passes and both
directions of the tunnel flow."""

from __future__ import annotations

import base64
import hashlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.balancer import Balancer, balancer
from tests.integration.helpers import until
from tests.integration.instances import cluster_env, instances
from tests.integration.processes import cli_token, free_port
from tests.integration.test_instances_resume import (
    MESSAGE,
    frame_data,
    frame_id,
    frames,
    headers,
)

pytestmark = pytest.mark.slow

CUT_AFTER = 12  # frames: thread, items, then some of the 40 words' deltas
END = b"\r\n\r\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # Paced words (40 × 0.05 s): the turn is still running when the client comes back. No
    # pings in so short a stream, so bodies compare byte for byte.
    with cluster_env(tmp_path, OFFLINE_DELAY_SECONDS="0.05", SSE_PING_SECONDS="600") as env:
        yield env


def _local() -> str:
    return f"127.0.0.1:{free_port()}"


async def stream_then_cut(lb: Balancer, token: str) -> bytes:
    """A new turn streamed through the balancer, the connection dropped after CUT_AFTER frames:
    what had arrived, up to the end of the last whole frame."""
    body = b""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST", f"{lb.url}/api/alice/chat", json={"message": MESSAGE}, headers=headers(token)
        ) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            body += chunk
            if body.count(END) >= CUT_AFTER:
                break  # leaving the block closes the connection mid-reply
    return body[: body.rindex(END) + len(END)]


async def get_stream(url: str, token: str, conversation_id: str, after: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(
            f"{url}/api/alice/conversations/{conversation_id}/stream",
            headers=headers(token, after),
        )


async def test_a_stream_cut_and_resumed_through_the_balancer_lands_on_the_other_instance(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        by_name = {"app-a": a, "app-b": b}
        backends = {name: f"127.0.0.1:{server.port}" for name, server in by_name.items()}
        with balancer(backends, _local(), _local(), tmp_path) as lb:
            token = cli_token(env, tmp_path, "alice")
            cut = await stream_then_cut(lb, token)
            first = frames(cut.decode())
            created = frame_data(first[0])
            assert created["type"] == "thread.created"
            assert isinstance(created["thread"], dict)
            conversation_id = str(created["thread"]["id"])
            await until(lambda: len(lb.requests()) == 1)  # HAProxy logs a request as it ends
            ((owner, posted),) = lb.requests()
            assert posted == "POST /api/alice/chat HTTP/1.1"
            other = ({"app-a", "app-b"} - {owner}).pop()

            last = frame_id(first[-1])
            resumed = await get_stream(lb.url, token, conversation_id, last)
            assert resumed.status_code == 200
            await until(lambda: len(lb.requests()) == 2)
            path = f"/api/alice/conversations/{conversation_id}/stream"
            assert lb.requests()[1] == (other, f"GET {path} HTTP/1.1")  # round robin

            # The original stream whole, from the instance that ran the turn (past its end).
            original = await get_stream(by_name[owner].url, token, conversation_id, -1)
        assert original.content.startswith(cut)
        assert len(cut) < len(original.content)  # cut mid-reply: HAProxy buffered nothing
        assert resumed.content == original.content[len(cut) :]
        assert len(frames(resumed.text)) > 10  # most of the reply came from the other instance


_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


class _UpgradingBackend(socketserver.BaseRequestHandler):
    """What a WebSocket route answers, at the level a balancer sees: `/readyz` is 200, an
    Upgrade request gets 101 and then the connection is a tunnel (the server greets, then
    echoes back whatever comes, in capitals)."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        head = b""
        while END not in head:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        lines = head.split(END, 1)[0].decode().split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if lines[0].startswith("GET /readyz "):
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            return
        digest = hashlib.sha1(fields["sec-websocket-key"].encode() + _WEBSOCKET_GUID).digest()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + END + b"hello"
        )
        while data := sock.recv(4096):
            sock.sendall(data.upper())


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        data = sock.recv(4096)
        assert data, f"closed after {got!r}"
        got += data
    return got


def test_a_websocket_upgrade_passes_the_balancer_and_the_tunnel_flows_both_ways(
    tmp_path: Path,
) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _UpgradingBackend) as backend:
        backend.daemon_threads = True
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{backend.server_address[1]}"
        listen = _local()
        host, port = listen.split(":")
        with (
            balancer({"app-a": address, "app-b": address}, listen, _local(), tmp_path),
            socket.create_connection((host, int(port)), timeout=10) as sock,
        ):
            key = base64.b64encode(b"sixteen byte key").decode()
            sock.sendall(
                f"GET /api/alice/ws HTTP/1.1\r\nHost: chatrelay\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            answer = _read_until(sock, b"hello")
            assert answer.startswith(b"HTTP/1.1 101 "), answer
            sock.sendall(b"from the client")
            assert _read_until(sock, b"FROM THE CLIENT").endswith(b"FROM THE CLIENT")
        backend.shutdown()

"""A real `chatrelay serve` verifying with an issuer's key set (AUTH_JWKS_URL), where start-up
matters: the issuer is down when the server starts, so it starts anyway, says 503 (readyz,
HTTP, and 1013 on the WebSocket), and serves normally once the issuer answers; then the
issuer goes down again and the cached keys keep working. And `chatrelay token` says it
cannot mint."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatrelay.config import Settings
from chatrelay.tokens import mint_token
from tests.fakes.jwks import Issuer, better_auth_claims, serving
from tests.integration.processes import CLI, SECRET, Server, process_env
from tests.ws import open_socket

pytestmark = pytest.mark.slow  # a real server process


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        running.add("ed25519")
        yield running


def until_ready(server: Server, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while httpx.get(f"{server.url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.1)  # the server's background retry, in another process


def jwks_env(issuer: Issuer, cwd: Path) -> dict[str, str]:
    return process_env(
        f"sqlite+aiosqlite:///{cwd / 'jwks.db'}",
        AUTH_JWKS_URL=issuer.jwks_url,
        AUTH_ISSUER=issuer.url,
        AUTH_AUDIENCE=issuer.url,
        AUTH_JWKS_TIMEOUT_SECONDS="0.5",
    )


async def ws_closed(url: str, token: str) -> tuple[int, str]:
    async with open_socket(url, "alice", token) as socket:
        return await socket.closed()


async def ws_sign_in(url: str, token: str) -> dict[str, object]:
    async with open_socket(url, "alice") as socket:  # a browser: the token in a frame
        return await socket.request("hi", {"type": "auth", "token": token})


def test_down_at_start_up_then_served_then_cached_while_down(
    issuer: Issuer, tmp_path: Path
) -> None:
    issuer.down = True
    server = Server(jwks_env(issuer, tmp_path), tmp_path, probe="/healthz")
    try:
        token = issuer.keys[0].sign(better_auth_claims(issuer.url, "alice"))
        headers = {"Authorization": f"Bearer {token}"}
        chat = f"{server.url}/api/alice/chat"

        ready = httpx.get(f"{server.url}/readyz")
        waiting = httpx.post(chat, json={"message": "hi"}, headers=headers)
        closed = asyncio.run(ws_closed(server.url, token))
        assert ready.status_code == 503, ready.text
        assert waiting.status_code == 503 and int(waiting.headers["retry-after"]) >= 1
        assert closed[0] == 1013 and "signing keys" in closed[1]
        assert "cannot fetch the signing keys" in server.log.read_text()

        issuer.down = False
        until_ready(server)
        served = httpx.post(chat, json={"message": "hi"}, headers=headers, timeout=30)
        assert served.status_code == 200, served.text
        signed_in = asyncio.run(ws_sign_in(server.url, token))
        assert signed_in == {"type": "result", "ref": "hi", "body": {"user_id": "alice"}}
        hs256 = mint_token(Settings(auth_secret=SECRET, _env_file=None), "alice")  # type: ignore[call-arg]
        assert asyncio.run(ws_closed(server.url, hs256))[0] == 4401

        issuer.down = True  # from now on every fetch fails: the cached keys still verify
        # A token not seen before (EdDSA is deterministic: new claims make a new token).
        fresh = issuer.keys[0].sign({**better_auth_claims(issuer.url, "alice"), "jti": "2"})
        again = httpx.post(
            chat, json={"message": "hi"}, headers={"Authorization": f"Bearer {fresh}"}, timeout=30
        )
        assert again.status_code == 200, again.text
    finally:
        server.stop()


def test_chatrelay_token_says_it_cannot_mint_with_a_key_set(issuer: Issuer, tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "token", "alice"], env=jwks_env(issuer, tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert (
        f"cannot mint a token: this server verifies tokens with {issuer.jwks_url}" in result.stderr
    )

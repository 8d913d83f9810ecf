"""What `/mcp` answers at its HTTP edge, before any tool runs (issue 20, "The first hour").

Regressions: an authenticated `GET /mcp` opened an event stream that never sent a byte;
`initialize` reported an empty `serverInfo.version`; a 401 said a bare `Bearer`, so no MCP
client could discover where tokens come from (RFC 9728 metadata was not served at all).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from fastapi import FastAPI
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    handle_protected_resource_response,
)
from mcp.shared.auth_utils import check_resource_allowed
from starlette.types import Message

from chatrelay import __version__
from tests.conftest import TEST_SECRET, AppFactory, client_for, token_for
from tests.integration.processes import cli_token
from tests.integration.test_mcp_http import LIST_TOOLS, MCP_ACCEPT, mcp_session

METADATA = "/.well-known/oauth-protected-resource"
METADATA_URL = f"http://test{METADATA}/mcp"
ISSUER = "https://auth.example.com"  # no trailing slash: issuers compare as exact strings


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def answer(app: FastAPI, method: str, headers: dict[str, str]) -> Answer:
    """One request, driven through the app's ASGI interface by hand.

    httpx's ASGI transport waits for the whole body, so an event stream that never ends
    would hang the test; here it fails at the first message instead.
    """
    start: dict[str, Any] = {}
    body = bytearray()
    started, finished = asyncio.Event(), asyncio.Event()
    request_sent = False

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            started.set()
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
    }
    task = asyncio.create_task(app(scope, receive, send))
    try:
        async with asyncio.timeout(10):  # a guard, not a synchronisation: both arrive at once
            await started.wait()
            answered = httpx.Headers([(k.decode(), v.decode()) for k, v in start["headers"]])
            assert "text/event-stream" not in answered.get("content-type", ""), (
                f"{method} /mcp opened an event stream ({start['status']})"
            )
            await finished.wait()
            await task
    finally:
        task.cancel()
    return Answer(start["status"], answered, bytes(body))


def signed(claims: dict[str, Any], *, secret: str = TEST_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


# -- 1. a stateless server answers 405 to all but POST ---------------------------------------


@pytest.mark.parametrize(
    ("method", "accept"),
    [
        ("GET", "text/event-stream"),  # the listening stream MCP clients open at connect time
        ("GET", "application/json, text/event-stream"),
        ("DELETE", "application/json"),  # ending a session there is none of
        ("PUT", "application/json"),
    ],
)
async def test_an_authenticated_request_but_post_gets_405_allow_post(
    app_factory: AppFactory, method: str, accept: str
) -> None:
    app = await app_factory()
    headers = {"Authorization": f"Bearer {token_for('alice')}", "Accept": accept}

    refused = await answer(app, method, headers)

    assert refused.status == 405
    assert refused.headers["allow"] == "POST"
    assert refused.headers["content-type"] == "application/json"
    detail = refused.json()["detail"]
    assert isinstance(detail, str) and detail
    if method in ("GET", "DELETE"):
        assert "stateless" in detail
    async with mcp_session(app, "alice") as client:  # POST is untouched
        assert len((await client.list_tools()).tools) == 5


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_without_a_token_any_method_gets_the_401_first(
    app_factory: AppFactory, method: str
) -> None:
    """As the SDK's RequireAuthMiddleware, which wraps its whole transport: no token, no
    word about the endpoint but where to get one."""
    app = await app_factory()

    refused = await answer(app, method, {"Accept": "text/event-stream"})

    assert refused.status == 401
    assert refused.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}"'
    assert refused.json() == {"detail": "missing bearer token"}


# -- 2. initialize names chatrelay's version -------------------------------------------------


async def test_initialize_reports_chatrelay_version(app_factory: AppFactory) -> None:
    app = await app_factory()
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "8"},
        },
    }

    async with client_for(app) as http:
        response = await http.post(
            "/mcp",
            json=initialize,
            headers={**MCP_ACCEPT, "Authorization": f"Bearer {token_for('alice')}"},
        )
    async with mcp_session(app, "alice") as client:
        server_info = client.server_info

    assert response.status_code == 200, response.text
    assert __version__
    assert response.json()["result"]["serverInfo"]["version"] == __version__
    assert server_info is not None and server_info.version == __version__


# -- 3. the 401 challenge and the Protected Resource Metadata --------------------------------


@pytest.mark.parametrize(
    ("authorization", "error_description"),
    [
        (None, None),
        (f"Basic {token_for('alice')}", None),  # another scheme: no credentials for us
        ("Bearer not-a-jwt", "invalid token: Not enough segments"),
        (
            f"Bearer {signed({'sub': 'alice', 'exp': time.time() - 600})}",
            "invalid token: Signature has expired",
        ),
        (
            f"Bearer {signed({'exp': time.time() + 600})}",
            "invalid token: Token is missing the 'sub' claim",  # PyJWT's '"' is not quotable
        ),
    ],
    ids=["missing", "wrong-scheme", "malformed", "expired", "no-subject"],
)
async def test_a_401_points_at_the_metadata_and_says_why_a_token_failed(
    app_factory: AppFactory, authorization: str | None, error_description: str | None
) -> None:
    app = await app_factory()
    headers = {**MCP_ACCEPT, **({"Authorization": authorization} if authorization else {})}

    async with client_for(app) as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=headers)

    assert response.status_code == 401
    expected = f'Bearer resource_metadata="{METADATA_URL}"'
    if error_description is not None:  # RFC 6750 §3: an error code only for a bad token
        expected += f', error="invalid_token", error_description="{error_description}"'
    assert response.headers["www-authenticate"] == expected
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    if error_description is not None:
        assert detail == error_description.replace("'sub'", '"sub"')


@pytest.mark.parametrize("path", [f"{METADATA}/mcp", METADATA])
async def test_the_metadata_is_public_cacheable_and_names_the_configured_issuer(
    app_factory: AppFactory, path: str
) -> None:
    app = await app_factory(auth_issuer=ISSUER)

    async with client_for(app) as http:
        response = await http.get(path)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.json() == {
        "resource": "http://test/mcp",
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "resource_name": "chatrelay",
    }


async def test_without_an_issuer_the_metadata_names_no_authorization_server(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()

    async with client_for(app) as http:
        document = (await http.get(f"{METADATA}/mcp")).json()

    assert "authorization_servers" not in document
    assert document["resource"] == "http://test/mcp"


@pytest.mark.parametrize(
    ("host", "resource"),
    [
        ("chat.example.com:8443", "http://chat.example.com:8443/mcp"),
        ("chat_relay:8000", "http://chat_relay:8000/mcp"),  # a compose service name
        ("[::1]:8000", "http://[::1]:8000/mcp"),
        ('evil"host', "http://test/mcp"),  # no host name: the server's own address instead
    ],
)
async def test_the_resource_is_the_url_the_client_reached(
    app_factory: AppFactory, host: str, resource: str
) -> None:
    app = await app_factory()

    async with client_for(app) as http:
        document = (await http.get(f"{METADATA}/mcp", headers={"Host": host})).json()
        refused = await http.post("/mcp", json=LIST_TOOLS, headers={"Host": host})

    assert document["resource"] == resource
    metadata_url = resource.removesuffix("/mcp") + f"{METADATA}/mcp"
    assert refused.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'


async def test_the_mcp_sdks_client_discovers_the_metadata_from_a_401(
    app_factory: AppFactory,
) -> None:
    """The SDK client's own discovery steps, on the URL it dialled (https, another host)."""
    app = await app_factory(auth_issuer=ISSUER)
    server_url = "https://chat.example.com/mcp"
    transport = httpx2.ASGITransport(app=app)

    async with httpx2.AsyncClient(transport=transport) as http:
        refused = await http.post(server_url, json=LIST_TOOLS, headers=MCP_ACCEPT)
        pointed = extract_resource_metadata_from_www_auth(refused)
        tried = build_protected_resource_metadata_discovery_urls(pointed, server_url)
        found = [await handle_protected_resource_response(await http.get(url)) for url in tried]

    assert refused.status_code == 401
    assert tried == [
        "https://chat.example.com/.well-known/oauth-protected-resource/mcp",  # the header's
        "https://chat.example.com/.well-known/oauth-protected-resource/mcp",  # path-suffixed
        "https://chat.example.com/.well-known/oauth-protected-resource",  # bare
    ]
    for metadata in found:
        assert metadata is not None
        assert check_resource_allowed(server_url, str(metadata.resource))
        assert [str(server) for server in metadata.authorization_servers] == [ISSUER]


# -- behind a proxy: uvicorn's X-Forwarded-Proto, from the addresses it trusts ---------------


@pytest.mark.slow
def test_behind_a_tls_proxy_the_urls_say_https(serve, env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    proxied = {"Host": "chat.example.com", "X-Forwarded-Proto": "https"}
    token = cli_token(env, tmp_path, "alice")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            document = http.get(f"{METADATA}/mcp", headers=proxied).json()
            refused = http.post("/mcp", json=LIST_TOOLS, headers={**MCP_ACCEPT, **proxied})
            listening = http.get(
                "/mcp", headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
            )
    finally:
        server.stop()

    assert document["resource"] == "https://chat.example.com/mcp"
    assert refused.headers["www-authenticate"] == (
        'Bearer resource_metadata="https://chat.example.com/.well-known/oauth-protected-resource/mcp"'
    )
    assert (listening.status_code, listening.headers["allow"]) == (405, "POST")

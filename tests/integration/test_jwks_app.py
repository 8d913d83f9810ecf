"""Tokens from an issuer's key set through the real app (ASGI, lifespan running): every HTTP
entry point (chat, `/chatkit`, cancel, resume, history, `/mcp`) accepts them and refuses
the rest with 401; never-fetched keys answer 503 + `Retry-After` until the set arrives.
The WebSocket's sign-in is proven against a real `chatrelay serve` (test_jwks_process.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from chatrelay.tokens import KeySetVerifier
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.jwks import (
    Issuer,
    SigningKey,
    better_auth_claims,
    hs256_signed_with,
    serving,
)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        running.add("ed25519")
        yield running


async def jwks_app(app_factory: AppFactory, issuer: Issuer, **overrides: Any) -> FastAPI:
    """The app verifying with `issuer`'s keys, as Better Auth's recipe sets it up; the
    test's AUTH_SECRET stays set, and is not used."""
    settings = {
        "auth_jwks_url": issuer.jwks_url,
        "auth_issuer": issuer.url,
        "auth_audience": issuer.url,
        **overrides,
    }
    return await app_factory(**settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def requests_of_every_entry_point(
    http: httpx.AsyncClient, headers: dict[str, str], conversation: str = "thr_none"
) -> dict[str, httpx.Response]:
    return {
        "chat": await http.post("/api/alice/chat", json={"message": "hi"}, headers=headers),
        "chatkit": await http.post(
            "/chatkit", json={"type": "threads.list", "params": {}}, headers=headers
        ),
        "cancel": await http.post(
            f"/api/alice/conversations/{conversation}/cancel", headers=headers
        ),
        "resume": await http.get(
            f"/api/alice/conversations/{conversation}/stream", headers=headers
        ),
        "history": await http.get("/api/alice/conversations", headers=headers),
        "mcp": await http.post("/mcp", json=INITIALIZE, headers={**MCP_ACCEPT, **headers}),
    }


def assert_refused(response: httpx.Response, why: str = "") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and why in detail


async def test_every_entry_point_takes_the_issuers_token_and_refuses_an_hs256_one(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    app = await jwks_app(app_factory, issuer)
    token = issuer.keys[0].sign(better_auth_claims(issuer.url, "alice"))
    async with client_for(app) as http:
        turn = await http.post("/api/alice/chat", json={"message": "hi"}, headers=bearer(token))
        assert turn.status_code == 200, turn.text
        conversation = turn.json()["conversation_id"]
        accepted = await requests_of_every_entry_point(http, bearer(token), conversation)
        # The test's own AUTH_SECRET token (HS256): not accepted anywhere with a key set.
        refused = await requests_of_every_entry_point(http, auth("alice"), conversation)
    assert {name: r.status_code for name, r in accepted.items()} == {
        "chat": 200,
        "chatkit": 200,
        "cancel": 409,  # the turn is over: nothing to stop
        "resume": 200,  # the last turn's events, still kept
        "history": 200,
        "mcp": 200,
    }
    for response in refused.values():
        assert_refused(response, "alg 'HS256' is not allowed")


def bad_tokens(issuer: Issuer) -> dict[str, str]:
    ed = issuer.keys[0]
    p256 = issuer.add("p256")
    pem = ed.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = better_auth_claims(issuer.url)
    return {
        "alg none": jwt.encode(good, None, algorithm="none", headers={"kid": ed.kid}),
        "HS256, public key as secret": hs256_signed_with(pem, ed.kid),
        "wrong iss": ed.sign({**good, "iss": "https://evil.example"}),
        "wrong aud": ed.sign({**good, "aud": "https://other.example"}),
        "expired": ed.sign({**good, "exp": int(good["iat"]) - 10}),
        "nbf ahead": ed.sign({**good, "nbf": int(good["iat"]) + 600}),
        "oversized": ed.sign({**good, "padding": "x" * 9000}),
        "alg not allowed": p256.sign(good),  # AUTH_ALGORITHMS=EdDSA below
        "unknown kid": SigningKey("ed25519").sign(good),
        "not a JWT": "not.a.jwt",
    }


async def test_tokens_that_must_not_verify_are_401_everywhere_never_5xx(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    tokens = bad_tokens(issuer)
    app = await jwks_app(app_factory, issuer, auth_algorithms=["EdDSA"])
    async with client_for(app) as http:
        for name, token in tokens.items():
            for entry, response in (
                await requests_of_every_entry_point(http, bearer(token))
            ).items():
                assert response.status_code == 401, (name, entry, response.text)
                assert_refused(response)
    # One fetch at start-up; the unknown kid came within the refetch interval: none more.
    assert issuer.jwks_requests() == 1


async def test_forged_kids_do_not_hammer_the_issuer(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    app = await jwks_app(app_factory, issuer)
    forged = [SigningKey("ed25519").sign(better_auth_claims(issuer.url)) for _ in range(3)]
    async with client_for(app) as http:
        answers = await asyncio.gather(
            *(
                http.post("/api/alice/chat", json={"message": "hi"}, headers=bearer(token))
                for token in forged * 10
            )
        )
    for response in answers:
        assert_refused(response, "no signing key with kid")
    assert issuer.jwks_requests() == 1


async def test_a_rotated_key_is_fetched_on_its_first_token(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    app = await jwks_app(app_factory, issuer, auth_jwks_min_refresh_seconds=0)
    old = issuer.keys[0]
    new = issuer.add("rsa")
    issuer.keys.remove(old)
    async with client_for(app) as http:
        rotated = await http.get(
            "/api/alice/conversations", headers=bearer(new.sign(better_auth_claims(issuer.url)))
        )
        retired = await http.get(
            "/api/alice/conversations", headers=bearer(old.sign(better_auth_claims(issuer.url)))
        )
    assert rotated.status_code == 200, rotated.text
    assert_refused(retired, "no signing key with kid")


async def test_keys_never_fetched_answer_503_with_retry_after_until_they_are(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    issuer.down = True
    app = await jwks_app(app_factory, issuer)
    token = issuer.keys[0].sign(better_auth_claims(issuer.url, "alice"))
    async with client_for(app) as http:
        ready = await http.get("/readyz")
        waiting = await requests_of_every_entry_point(http, bearer(token))
        issuer.down = False
        verifier = app.state.runtime.verifier
        assert isinstance(verifier, KeySetVerifier)
        await asyncio.wait_for(verifier.keys.wait_ready(), 10)  # the background retry
        ready_after = await http.get("/readyz")
        served = await requests_of_every_entry_point(http, bearer(token))
    assert ready.status_code == 503 and ready.json()["detail"] == "signing keys not fetched yet"
    for name, response in waiting.items():
        assert response.status_code == 503, (name, response.text)
        assert int(response.headers["retry-after"]) >= 1
        assert "signing keys" in response.json()["detail"]
        assert response.json()["correlation_id"]
    assert ready_after.status_code == 200
    assert served["chat"].status_code == 200 and served["mcp"].status_code == 200


async def test_cached_keys_keep_serving_while_the_issuer_is_down(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    app = await jwks_app(app_factory, issuer)
    verifier = app.state.runtime.verifier
    assert isinstance(verifier, KeySetVerifier)
    issuer.down = True
    assert await verifier.keys.refresh() is False
    token = issuer.keys[0].sign(better_auth_claims(issuer.url, "alice"))
    async with client_for(app) as http:
        response = await http.post("/api/alice/chat", json={"message": "hi"}, headers=bearer(token))
        ready = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert ready.status_code == 200


async def test_the_issuer_is_discovered_without_a_jwks_url(
    app_factory: AppFactory, issuer: Issuer
) -> None:
    """AUTH_ISSUER alone (no AUTH_SECRET, no AUTH_JWKS_URL): OIDC discovery."""
    app = await app_factory(auth_secret=None, auth_issuer=issuer.url, auth_audience=issuer.url)
    token = issuer.keys[0].sign(better_auth_claims(issuer.url, "alice"))
    async with client_for(app) as http:
        response = await http.get("/api/alice/conversations", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert issuer.requests[:2] == ["/.well-known/openid-configuration", "/api/auth/jwks"]

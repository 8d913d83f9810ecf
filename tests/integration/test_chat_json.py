"""The JSON answer, and every way a request can be refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from chatrelay.store.tables import as_utc
from tests.conftest import TEST_SECRET, auth, token_for
from tests.integration.helpers import stored_conversations, stored_messages


async def test_json_reply_has_the_documented_shape(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.post(
        "/api/alice/chat",
        json={"message": "hi there", "request_id": "r-1", "metadata": {"page": "home"}},
        headers={**auth(), "Accept": "application/json"},
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "conversation_id",
        "message_id",
        "role",
        "message",
        "response",
        "created_at",
        "tool_calls",
        "usage",
        "request_id",
        "metadata",
    }
    assert body["role"] == "assistant"
    assert body["message"] == body["response"]
    assert body["message"].endswith("You said: hi there")
    assert body["tool_calls"] == []
    assert body["request_id"] == "r-1"
    assert body["metadata"] == {"page": "home"}
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 9, "total_tokens": 11}
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert body["conversation_id"].startswith("thr_")
    assert body["message_id"].startswith("msg_")

    stored = await stored_messages(app, body["conversation_id"])
    assert [m.role for m in stored] == ["user", "assistant"]
    (conversation,) = await stored_conversations(app)
    assert as_utc(conversation.updated_at) == as_utc(stored[1].created_at)
    assert stored[1].id == body["message_id"]
    assert stored[0].request_id == "r-1"
    assert stored[1].usage == body["usage"]


@pytest.mark.parametrize("accept", [None, "*/*", "application/*", "application/json;q=0.9"])
async def test_json_is_the_default_answer(client: httpx.AsyncClient, accept: str | None) -> None:
    headers = auth() if accept is None else {**auth(), "Accept": accept}
    response = await client.post("/api/alice/chat", json={"message": "x"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


async def test_only_unsupported_media_types_get_406(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/alice/chat", json={"message": "x"}, headers={**auth(), "Accept": "text/html"}
    )
    assert response.status_code == 406
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   \n\t"}, "message"),
        ({"message": "x" * 10_001}, "message"),
        ({}, "message"),
        ({"message": "x", "surprise": 1}, "surprise"),
        ({"message": "x", "metadata": "not an object"}, "metadata"),
        ({"message": 5}, "message"),
        ({"message": "nul \u0000 inside"}, "message"),  # Postgres text cannot store it
    ],
)
async def test_bad_bodies_get_422_with_field_details(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/alice/chat", json=body, headers=auth())
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(field in error["loc"] for error in detail)
    assert await stored_conversations(app) == []


async def test_a_message_of_exactly_10000_chars_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/alice/chat", json={"message": "y" * 10_000}, headers=auth())
    assert response.status_code == 200


def _token(claims: dict[str, object], secret: str = TEST_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _in(seconds: int) -> int:
    return int((datetime.now(UTC) + timedelta(seconds=seconds)).timestamp())


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer not-a-jwt",
        "Bearer " + _token({"sub": "alice", "exp": _in(-10)}),
        "Bearer " + _token({"sub": "alice", "exp": _in(60)}, secret="wrong-secret" * 6),
        "Bearer " + _token({"sub": "alice"}),
        "Bearer " + _token({"exp": _in(60)}),
        "Bearer " + _token({"sub": "alice", "exp": _in(60)}, alg="HS512"),
        "Bearer " + jwt.encode({"sub": "alice", "exp": _in(60)}, None, algorithm="none"),
    ],
    ids=[
        "missing",
        "empty",
        "no-token",
        "basic",
        "garbage",
        "expired",
        "wrong-secret",
        "no-exp",
        "no-sub",
        "hs512",
        "alg-none",
    ],
)
async def test_bad_tokens_get_401_with_www_authenticate(
    client: httpx.AsyncClient, app: FastAPI, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/api/alice/chat", json={"message": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)
    assert await stored_conversations(app) == []


async def test_issuer_and_audience_are_checked_when_configured(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = await app_factory(auth_issuer="https://auth.example", auth_audience="chatrelay")
    good = token_for("alice", auth_issuer="https://auth.example", auth_audience="chatrelay")
    wrong_aud = token_for("alice", auth_issuer="https://auth.example", auth_audience="other")
    no_iss = token_for("alice", auth_audience="chatrelay")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        statuses = [
            (
                await client.post(
                    "/api/alice/chat",
                    json={"message": "x"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).status_code
            for token in (good, wrong_aud, no_iss)
        ]
    assert statuses == [200, 401, 401]


async def test_another_users_path_gets_403(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.post("/api/bob/chat", json={"message": "x"}, headers=auth("alice"))
    assert response.status_code == 403
    assert await stored_conversations(app) == []


async def test_missing_and_foreign_conversations_look_the_same(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bobs = await client.post("/api/bob/chat", json={"message": "mine"}, headers=auth("bob"))
    bobs_id = bobs.json()["conversation_id"]

    foreign = await client.post(
        "/api/alice/chat",
        json={"message": "let me in", "conversation_id": bobs_id},
        headers=auth("alice"),
    )
    missing = await client.post(
        "/api/alice/chat",
        json={"message": "let me in", "conversation_id": "thr_does_not_exist"},
        headers=auth("alice"),
    )

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "conversation not found"}
    assert len(await stored_messages(app, bobs_id)) == 2


async def test_request_id_header_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    generated = await client.get("/healthz")
    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32

"""The JSON endpoints' bodies (issue 20): a body not sent as `Content-Type: application/json`
is a 415 that says so (it was a 422 `model_attributes_type` on chat and the history PATCH, and
`/chatkit` took anything), and a body that is not UTF-8 JSON gets one answer everywhere,
FastAPI's 422 `json_invalid` (it was a 400 "There was an error parsing the body" on the chat
URL and a 422 of another shape on `/chatkit`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import auth

CHAT = "/api/alice/chat"
RENAME = "/api/alice/conversations/thr_missing"
ENDPOINTS = {
    "chat": ("POST", CHAT, b'{"message": "Hello there"}'),
    "chatkit": ("POST", "/chatkit", b'{"type": "threads.list", "params": {}}'),
    "rename": ("PATCH", RENAME, b'{"title": "t"}'),
}


async def _send(
    client: httpx.AsyncClient, endpoint: str, content_type: str | None, body: bytes | None = None
) -> httpx.Response:
    method, url, valid = ENDPOINTS[endpoint]
    headers = auth() if content_type is None else {**auth(), "Content-Type": content_type}
    return await client.request(
        method, url, content=valid if body is None else body, headers=headers
    )


async def _conversations(client: httpx.AsyncClient) -> list[Any]:
    listed = await client.get("/api/alice/conversations", headers=auth())
    assert listed.status_code == 200
    return list(listed.json()["data"])


NOT_JSON = [
    None,
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
]


@pytest.mark.parametrize("endpoint", ["chat", "rename"])
@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_a_body_not_declared_json_is_415_naming_the_content_type(
    client: httpx.AsyncClient, endpoint: str, content_type: str | None
) -> None:
    response = await _send(client, endpoint, content_type)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "Content-Type: application/json" in detail
    assert (content_type or "no Content-Type") in detail
    assert await _conversations(client) == []  # no turn ran


@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_chatkit_reads_json_whatever_its_declared_type(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    """The widget's request headers are not ours to choose: /chatkit never answers 415."""
    response = await _send(client, "chatkit", content_type)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_in_any_json_media_type_is_answered(
    client: httpx.AsyncClient, endpoint: str, content_type: str
) -> None:
    response = await _send(client, endpoint, content_type)
    assert response.status_code == (404 if endpoint == "rename" else 200), response.text


def _json_invalid(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["msg"] == "JSON decode error"
    assert error["loc"][0] == "body"
    return dict(error)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_body_that_is_not_utf8_is_the_422_of_any_json_that_does_not_parse(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    latin1 = _json_invalid(await _send(client, endpoint, "application/json", b'{"a": "caf\xe9"}'))
    assert latin1["loc"] == ["body", 10]  # where the bad byte is
    assert "not UTF-8" in latin1["ctx"]["error"]
    utf16 = '{"message": "hi"}'.encode("utf-16")
    assert (
        "not UTF-8"
        in _json_invalid(await _send(client, endpoint, "application/json", utf16))["ctx"]["error"]
    )
    syntax = _json_invalid(await _send(client, endpoint, "application/json", b"{nope"))
    assert syntax["loc"] == ["body", 1]
    assert await _conversations(client) == []


@pytest.mark.parametrize("endpoint", ["chat", "chatkit"])
async def test_a_utf8_bom_is_tolerated_as_before(client: httpx.AsyncClient, endpoint: str) -> None:
    body = b"\xef\xbb\xbf" + ENDPOINTS[endpoint][2]
    assert (await _send(client, endpoint, "application/json", body)).status_code == 200


@pytest.mark.parametrize("endpoint", ["chat", "chatkit"])
async def test_an_empty_body_is_missing_on_both_urls(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    response = await _send(client, endpoint, "application/json", b"")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]


async def test_a_post_without_a_body_is_not_asked_for_a_content_type(
    client: httpx.AsyncClient,
) -> None:
    cancel = await client.post("/api/alice/conversations/thr_missing/cancel", headers=auth())
    assert cancel.status_code == 404  # the conversation, not the media type


async def test_the_openapi_schema_lists_415_where_a_json_body_is_read(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    with_body = [
        paths["/api/{user_id}/chat"]["post"],
        paths["/api/{user_id}/conversations/{conversation_id}"]["patch"],
    ]
    assert all("415" in operation["responses"] for operation in with_body)
    without = [
        paths["/chatkit"]["post"],
        paths["/api/{user_id}/conversations/{conversation_id}"]["delete"],
        paths["/api/{user_id}/conversations"]["get"],
        paths["/api/{user_id}/conversations/{conversation_id}/cancel"]["post"],
    ]
    assert not any("415" in operation["responses"] for operation in without)

"""The JSON endpoints' bodies (chat, `/chatkit`, the history PATCH): UTF-8 JSON, declared so.

Before (issue 20): FastAPI reads a body as JSON only when its `Content-Type` says so, and any
other (a form, as `curl -d` sends, or none at all) reached the model as a string, a 422
`model_attributes_type` that never mentions Content-Type, while `/chatkit` parsed whatever it
got. A body that is not UTF-8 was a 400 "There was an error parsing the body" on the chat URL
(FastAPI maps only `json.JSONDecodeError` to its 422) and a 422 on `/chatkit`.

Now every POST, PUT and PATCH of a `JsonBodyRoute` checks, before FastAPI reads the body:
a `Content-Type` other than `application/json` (or `application/*+json`, as FastAPI allows)
is a 415 naming `Content-Type: application/json`; a body that is not UTF-8 JSON is FastAPI's
own 422 `json_invalid` (`loc: ["body", <position>]`), the answer any other JSON that does not
parse gets, on every endpoint. RFC 8259 section 8.1: JSON exchanged between systems is
UTF-8, so a UTF-16 or Latin-1 body is one that does not parse (a UTF-8 BOM is tolerated, as
`json.loads` did).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from chatrelay.schemas.errors import ErrorBody
from chatrelay.server.errors import UnsupportedMediaType

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UNSUPPORTED_MEDIA_TYPE: dict[str, Any] = {
    "model": ErrorBody,
    "description": "The body is not sent as `Content-Type: application/json`",
}


def is_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, any parameters (FastAPI's own rule)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def loads_utf8(body: bytes) -> Any:
    """`json.loads`, for UTF-8 only: `json.loads(bytes)` also guesses UTF-16 and UTF-32.

    A body that is not UTF-8 raises `json.JSONDecodeError` at the first bad byte, so it is
    answered exactly as any other JSON that does not parse.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        valid = body[: exc.start].decode("utf-8-sig")
        raise json.JSONDecodeError(
            f"the body is not UTF-8 ({exc.reason}); JSON is sent as UTF-8",
            valid + "\ufffd",
            len(valid),
        ) from None
    return json.loads(text)


class JsonRequest(Request):
    """A request whose `json()` is `loads_utf8`, parsed once (FastAPI reuses it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_utf8(await self.body())
        return self._json


def _unsupported(content_type: str | None) -> UnsupportedMediaType:
    sent = f"Content-Type: {content_type[:100]}" if content_type else "no Content-Type"
    return UnsupportedMediaType(
        f"the body must be JSON, sent with Content-Type: application/json (this request has {sent})"
    )


async def check_json_body(request: JsonRequest, *, content_type_required: bool = True) -> None:
    """415 or 422 `json_invalid` (see the module docstring); an empty body is left to the
    route, which says the body is missing."""
    content_type = request.headers.get("content-type")
    if content_type_required and not is_json(content_type):
        raise _unsupported(content_type)
    if not await request.body():
        return
    try:
        await request.json()
    except json.JSONDecodeError as exc:  # in FastAPI's own shape for it
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from None


class JsonBodyRoute(APIRoute):
    """A route whose POST, PUT or PATCH takes a JSON body: `route_class` of its router.

    The FastAPI docs' "Custom Request and APIRoute class" pattern: the handler gets a
    `JsonRequest`, checked by `check_json_body` first; 415 joins the documented responses.
    """

    content_type_required = True

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if self.content_type_required and BODY_METHODS & set(kwargs.get("methods") or ()):
            kwargs["responses"] = {415: UNSUPPORTED_MEDIA_TYPE, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def json_body_handler(request: Request) -> Response:
            checked = JsonRequest(request.scope, request.receive)
            if checked.method in BODY_METHODS:
                await check_json_body(checked, content_type_required=self.content_type_required)
            return await handler(checked)

        return json_body_handler


class AnyContentTypeJsonRoute(JsonBodyRoute):
    """The same, whatever the `Content-Type`: for `/chatkit`, whose client is the ChatKit
    widget, a bundle whose request headers are not ours to choose (chatkit-python's own
    server reads the body whatever it is declared as), so it must never get a 415."""

    content_type_required = False

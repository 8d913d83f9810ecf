"""`POST /chatkit`: ChatKit's request protocol (`chatrelay.chatkit`), over HTTP.

Also answered on the chat endpoint (a body with `type`). Streaming requests answer ChatKit
events over SSE; the others JSON. The user comes from the token alone.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import HTTPConnection

from chatrelay.chatkit import StreamAnswer, parse_envelope
from chatrelay.logs import current_request_id
from chatrelay.runtime import Runtime
from chatrelay.server.auth import verify_token
from chatrelay.server.deps import AuthorizationHeader, Context
from chatrelay.server.json_body import AnyContentTypeJsonRoute
from chatrelay.server.sse import stream_response
from chatrelay.server.streams import Stream, live
from chatrelay.turns import InvalidFields

router = APIRouter(tags=["chatkit"], route_class=AnyContentTypeJsonRoute)  # 422 for the body


def http_base_url(connection: HTTPConnection) -> str:
    """Where this request came in, as an `http(s)` URL (links handed out point there)."""
    url = connection.base_url
    scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
    return str(url.replace(scheme=scheme))


async def chatkit_answer(
    runtime: Runtime, user_id: str, body: object, base_url: str
) -> Stream | str:
    """The answer to one ChatKit envelope (already decoded from JSON), whatever the
    transport: the events of a streaming request, else the JSON text of the answer.
    `base_url`: where the request came in (attachment links point there)."""
    request = parse_envelope(body)
    result = await runtime.chatkit.handle(user_id, request, current_request_id(), base_url)
    if isinstance(result, StreamAnswer):
        return live(result.turn, result.slot)
    return result.body


async def answer(runtime: Runtime, user_id: str, body: object, base_url: str) -> Response:
    """The answer to one ChatKit envelope, over HTTP: SSE or JSON."""
    answered = await chatkit_answer(runtime, user_id, body, base_url)
    if isinstance(answered, Stream):
        return stream_response(answered, runtime.settings)
    return Response(answered, media_type="application/json")


@router.post(
    "/chatkit",
    summary="ChatKit's protocol endpoint: point a ChatKit widget's `api.url` here",
    responses={
        200: {"description": "JSON, or `text/event-stream` for streaming request types"},
        400: {"description": "An unsupported request type or input"},
        422: {"description": "A body that is not UTF-8 JSON, or invalid `params`"},
        401: {"description": "Missing or invalid bearer token"},
        404: {"description": "No such thread, item or cursor for this user"},
    },
)
async def chatkit_endpoint(
    request: Request, context: Context, authorization: AuthorizationHeader = None
) -> Response:
    if not await request.body():
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise InvalidFields([missing])  # as FastAPI says it on the chat URL
    user_id = await verify_token(context.verifier, authorization)
    body = await request.json()  # parsed by JsonBodyRoute
    return await answer(context, user_id, body, http_base_url(request))

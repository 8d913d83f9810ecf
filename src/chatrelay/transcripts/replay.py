"""A stand-in server that answers recorded requests with their recorded responses.

No model, no database: point a ChatKit widget (or any SSE client) at it to see a tricky
stream again and again. Each request is matched on method and path (the query string is
ignored); several transcripts for the same request are served in turn, round-robin, so a
conversation recorded turn by turn replays turn by turn.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator, Sequence

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chatrelay.transcripts.format import Transcript

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _stream(transcript: Transcript, speed: float) -> AsyncIterator[bytes]:
    """The recorded blocks, byte for byte, each at its recorded offset divided by `speed`.

    The blocks are already framed: sse-starlette would re-frame them, so they go out as a
    plain streaming body.
    """
    started = anyio.current_time()
    for event in transcript.events:
        if speed > 0:
            delay = started + event.offset_ms / 1000 / speed - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
        yield event.text().encode()
    if transcript.tail:
        yield transcript.tail.encode()


def _key(method: str, path: str) -> tuple[str, str]:
    return method.upper(), path.split("?", 1)[0]


def replay_app(
    transcripts: Sequence[Transcript], *, speed: float = 1.0, default_path: str = "/chatkit"
) -> Starlette:
    """An ASGI app answering each recorded request; a transcript without a request (an
    imported raw stream) answers `POST default_path`. Any origin may call it (CORS)."""
    if speed < 0:
        raise ValueError("speed must be >= 0 (0 = instant)")
    queues: dict[tuple[str, str], deque[Transcript]] = defaultdict(deque)
    for transcript in transcripts:
        request = transcript.request
        key = _key(request.method, request.path) if request else ("POST", default_path)
        queues[key].append(transcript)

    async def answer(request: Request) -> Response:
        queue = queues.get(_key(request.method, request.url.path))
        if not queue:
            recorded = sorted(f"{method} {path}" for method, path in queues)
            return JSONResponse(
                {
                    "detail": f"nothing recorded for {request.method} {request.url.path}",
                    "recorded": recorded,
                },
                status_code=404,
            )
        transcript = queue[0]
        queue.rotate(-1)
        response = transcript.response
        if not response.is_stream:
            return Response(response.body or "", response.status, response.headers)
        return StreamingResponse(_stream(transcript, speed), response.status, response.headers)

    return Starlette(
        routes=[Route("/{path:path}", answer, methods=METHODS)],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["*"],
            )
        ],
    )


def routes_of(transcripts: Sequence[Transcript], default_path: str = "/chatkit") -> list[str]:
    """`METHOD /path` for each transcript, as `replay_app` serves them."""
    return [
        " ".join(_key(t.request.method, t.request.path)) if t.request else f"POST {default_path}"
        for t in transcripts
    ]

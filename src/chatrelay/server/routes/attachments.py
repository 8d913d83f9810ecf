"""The attachment links' routes: an upload link takes the bytes once (`PUT` with the raw
body, or `POST` with multipart form data, field `file`, as chatkit-js sends it), a preview
link serves an uploaded image. Neither takes a bearer token: the signed link is the
permission (`chatrelay.attachments.links`), so the token never has to be in a URL.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from chatrelay.attachments import ROUTE_PREFIX, TooLarge
from chatrelay.server.deps import Context
from chatrelay.server.routes.chatkit import http_base_url
from chatrelay.turns import Invalid

router = APIRouter(tags=["chatkit"])

FORM_OVERHEAD_BYTES = 64 * 1024
"""What a multipart body may add to the file it carries (boundaries, part headers)."""
_CHUNK_BYTES = 256 * 1024

AttachmentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Expires = Annotated[int, Query(description="When the link expires (Unix seconds)")]
Signature = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[0-9a-f]+$")]
_LINK_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "A forged or expired link, or an upload link used already"},
    404: {"description": "No such attachment (deleted, or never uploaded)"},
}


def _limited(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising `TooLarge` once the body passes `max_bytes`."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise TooLarge(f"the file is larger than {max_bytes - FORM_OVERHEAD_BYTES} bytes")
        return message

    return counted


async def _form_file(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The `file` field of a multipart body, in chunks (Starlette spools it to disk past
    1 MB; the body is cut off past the limit)."""
    limited = Request(request.scope, _limited(request.receive, max_bytes + FORM_OVERHEAD_BYTES))
    async with limited.form(max_files=1, max_fields=16) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise Invalid("a multipart upload carries the file in a field named `file`")
        while chunk := await file.read(_CHUNK_BYTES):
            yield chunk


def _declared_size(request: Request) -> int | None:
    length = request.headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None


_UPLOAD_RESPONSES: dict[int | str, dict[str, str]] = {
    200: {"description": "The uploaded attachment, as ChatKit shows it"},
    **_LINK_ERRORS,
    413: {"description": "Larger than ATTACHMENT_MAX_BYTES"},
    415: {"description": "The bytes are not of the declared type"},
}


@router.post(
    ROUTE_PREFIX + "/{attachment_id}",
    operation_id="upload_attachment_form",
    summary="An attachment's upload link (from `attachments.create`): its bytes, once, as "
    "multipart form data (field `file`)",
    responses=_UPLOAD_RESPONSES,
)
@router.put(
    ROUTE_PREFIX + "/{attachment_id}",
    operation_id="upload_attachment",
    summary="An attachment's upload link (from `attachments.create`): its raw bytes, once",
    responses=_UPLOAD_RESPONSES,
)
async def upload(
    request: Request,
    context: Context,
    attachment_id: AttachmentId,
    expires: Expires,
    signature: Signature,
) -> Response:
    limit = context.attachments.limits.max_bytes
    content_type = request.headers.get("content-type", "")
    declared = _declared_size(request)
    if request.method == "POST" and content_type.startswith("multipart/form-data"):
        if declared is not None and declared > limit + FORM_OVERHEAD_BYTES:
            raise TooLarge(f"the file is larger than {limit} bytes")
        body, declared = _form_file(request, limit), None
    else:
        body = request.stream()
    row = await context.attachments.upload(attachment_id, expires, signature, body, declared)
    answer = context.chatkit.uploaded(row, http_base_url(request))
    return Response(answer, media_type="application/json")


@router.get(
    ROUTE_PREFIX + "/{attachment_id}/preview",
    summary="An image attachment's preview link (in `preview_url`)",
    response_class=StreamingResponse,
    responses={200: {"description": "The image"}, **_LINK_ERRORS},
)
async def preview(
    context: Context, attachment_id: AttachmentId, expires: Expires, signature: Signature
) -> StreamingResponse:
    found = await context.attachments.preview(attachment_id, expires, signature)
    headers = {
        "Content-Length": str(found.size),
        # Cached no longer than the link lives, and never by a shared cache.
        "Cache-Control": f"private, max-age={max(0, math.floor(found.expires - time.time()))}",
        # The type was checked against the bytes; nothing in them may run as a page.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "cross-origin",  # a widget on another origin shows it
    }
    return StreamingResponse(found.chunks, media_type=found.mime_type, headers=headers)

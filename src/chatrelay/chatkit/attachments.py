"""Attachments in ChatKit's words: the service's rows as `FileAttachment`/`ImageAttachment`,
and as the user message stores them (so reload shows them on the message).

A stored image keeps the preview link it was sent with, for the live stream's item; every
reload hands out a fresh one (preview links expire).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from chatkit.types import (
    Attachment,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
)
from pydantic import AnyUrl, TypeAdapter

from chatrelay.attachments import AttachmentService
from chatrelay.store import Attachment as AttachmentRow
from chatrelay.turns import AttachmentRef

_ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
UPLOAD_METHOD: Literal["POST", "PUT"] = "POST"
"""chatkit-js sends the file as multipart form data (field `file`); a raw PUT works too."""

Preview = Callable[[str], str]
"""An image attachment's id → a fresh signed preview link."""


def as_chatkit(
    row: AttachmentRow, service: AttachmentService, base_url: str, *, upload: bool
) -> Attachment:
    """An attachment as ChatKit shows it: a new one (`upload`) with its one-time upload
    link; an image with a fresh preview link."""
    descriptor = (
        AttachmentUploadDescriptor(
            url=AnyUrl(service.link(base_url, "upload", row.id)), method=UPLOAD_METHOD
        )
        if upload
        else None
    )
    if row.kind == "image":
        return ImageAttachment(
            id=row.id,
            name=row.name,
            mime_type=row.mime_type,
            upload_descriptor=descriptor,
            preview_url=AnyUrl(service.link(base_url, "preview", row.id)),
        )
    return FileAttachment(
        id=row.id, name=row.name, mime_type=row.mime_type, upload_descriptor=descriptor
    )


def stored_attachments(
    rows: Sequence[AttachmentRow], service: AttachmentService, base_url: str
) -> list[dict[str, Any]]:
    """The message's attachments as its parts keep them."""
    stored = []
    for row in rows:
        entry: dict[str, Any] = {
            "type": row.kind,
            "id": row.id,
            "name": row.name,
            "mime_type": row.mime_type,
        }
        if row.kind == "image":
            entry["preview_url"] = service.link(base_url, "preview", row.id)
        stored.append(entry)
    return stored


def attachment_ids(parts: dict[str, Any] | None) -> list[str]:
    return [str(entry["id"]) for entry in (parts or {}).get("attachments") or []]


def refs_of(parts: dict[str, Any]) -> tuple[AttachmentRef, ...]:
    return tuple(
        AttachmentRef(
            id=entry["id"], name=entry["name"], mime_type=entry["mime_type"], kind=entry["type"]
        )
        for entry in parts.get("attachments") or []
    )


def attachments_of(
    parts: dict[str, Any], thread_id: str, preview: Preview | None
) -> list[Attachment]:
    """A stored message's attachments, each with a fresh preview link when `preview` is given."""
    found = []
    for entry in parts.get("attachments") or []:
        entry = {**entry, "thread_id": thread_id}
        if preview is not None and entry.get("type") == "image":
            entry["preview_url"] = preview(entry["id"])
        found.append(_ATTACHMENT.validate_python(entry))
    return found

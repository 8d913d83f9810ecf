"""A user message's attachments as model input: Responses content parts, which the Agents SDK
turns into their Chat Completions equivalents (`image_url`, `file`) for that API.

Each attachment comes after a text part naming it (`Attached image: cat.png`), so the model
can tell the user's files apart by name, and the offline model can acknowledge them. Images
are `input_image`, PDFs `input_file` (both as data URLs: the provider cannot reach this
server's links); text files are text, which every model and API reads.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chatrelay.turns import AttachmentRef

logger = logging.getLogger("chatrelay.agents")

ReadAttachment = Callable[[AttachmentRef], Awaitable[bytes]]
"""An attachment's bytes (from the attachment store)."""

LABEL = re.compile(r"^Attached (image|file): (.+)$")


def label(attachment: AttachmentRef) -> str:
    kind = "image" if attachment.kind == "image" else "file"
    return f"Attached {kind}: {attachment.name}"


def _data_url(mime_type: str, data: bytes) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def content_part(attachment: AttachmentRef, data: bytes) -> dict[str, Any]:
    if attachment.kind == "image":
        return {
            "type": "input_image",
            "image_url": _data_url(attachment.mime_type, data),
            "detail": "auto",
        }
    if attachment.mime_type == "application/pdf":
        return {
            "type": "input_file",
            "file_data": _data_url(attachment.mime_type, data),
            "filename": attachment.name,
        }
    # Checked to be UTF-8 on upload.
    return {"type": "input_text", "text": data.decode("utf-8", errors="replace")}


async def user_content(
    text: str, attachments: Sequence[AttachmentRef], read: ReadAttachment | None
) -> str | list[dict[str, Any]]:
    """The user item's content: the text alone, or the text and each attachment after its
    label. One deleted since it was sent is left out (the reply is still worth having)."""
    if not attachments or read is None:
        return text
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text}] if text else []
    for attachment in attachments:
        try:
            data = await read(attachment)
        except FileNotFoundError:
            logger.warning(
                "attachment %s is gone; the model gets the message without it", attachment.id
            )
            continue
        parts.append({"type": "input_text", "text": label(attachment)})
        parts.append(content_part(attachment, data))
    return parts

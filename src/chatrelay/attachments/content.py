"""What an upload's bytes are, checked as they stream by: the declared type must be on the
allow-list and the bytes must be of it, whatever the client says.

Binary types are recognised by their magic numbers (puremagic, from the first bytes); a
text type must be UTF-8 throughout, without NUL. So a script declared `image/png` is
refused, and so is an executable declared `text/plain`.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Collection

import puremagic

from chatrelay.attachments.errors import TooLarge, UnsupportedType

HEAD_BYTES = 4096
"""How much is read before any byte is stored: enough for every magic number we accept."""
TEXT_TYPES = frozenset({"application/json"})


def is_text(mime_type: str) -> bool:
    return mime_type.startswith("text/") or mime_type in TEXT_TYPES


def normalised(mime_type: str) -> str:
    """`Image/PNG; charset=x` → `image/png`."""
    return mime_type.split(";", 1)[0].strip().lower()


def check_declared(mime_type: str, allowed: Collection[str]) -> str:
    """The declared type, normalised, if the allow-list has it; else `UnsupportedType`."""
    declared = normalised(mime_type)
    if declared not in allowed:
        raise UnsupportedType(f"attachments of type {declared or '(none)'!r} are not accepted")
    return declared


def sniffed_types(head: bytes) -> set[str]:
    """The MIME types puremagic recognises in a file's first bytes (none: an empty set)."""
    if not head:
        return set()
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return set()
    return {match.mime_type for match in matches if match.mime_type}


def _check_head(mime_type: str, head: bytes) -> None:
    if is_text(mime_type):
        return  # checked as UTF-8, chunk by chunk
    if mime_type not in sniffed_types(head):
        raise UnsupportedType(f"the file's content is not {mime_type}")


async def checked(
    body: AsyncIterator[bytes], mime_type: str, max_bytes: int
) -> AsyncIterator[bytes]:
    """`body` as it arrives, once its first bytes are known to be of `mime_type`: raises
    `UnsupportedType` when they are not, and `TooLarge` as soon as it passes `max_bytes`."""
    size = 0
    head = bytearray()
    text = codecs.getincrementaldecoder("utf-8")() if is_text(mime_type) else None
    checked_head = False
    async for chunk in body:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"the file is larger than {max_bytes} bytes")
        if text is not None:
            _check_text(text, chunk)
        if checked_head:
            yield chunk
            continue
        head += chunk
        if len(head) >= HEAD_BYTES:
            _check_head(mime_type, bytes(head))
            checked_head = True
            yield bytes(head)
    if text is not None:
        _check_text(text, b"", final=True)
    if not checked_head:
        _check_head(mime_type, bytes(head))
        if head:
            yield bytes(head)


def _check_text(decoder: codecs.IncrementalDecoder, chunk: bytes, final: bool = False) -> None:
    try:
        decoded = decoder.decode(chunk, final)
    except UnicodeDecodeError:
        raise UnsupportedType("the file's content is not UTF-8 text") from None
    if "\x00" in decoded:
        raise UnsupportedType("the file's content is not text (it holds NUL bytes)")

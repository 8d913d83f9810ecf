"""An upload's bytes are checked against the declared type as they stream by."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatrelay.attachments import TooLarge, UnsupportedType
from chatrelay.attachments.content import HEAD_BYTES, check_declared, checked
from chatrelay.config import DEFAULT_ATTACHMENT_TYPES
from tests.fakes.files import ELF, GIF, JPEG, PDF, PNG, SCRIPT, WEBP

ALLOWED = frozenset(DEFAULT_ATTACHMENT_TYPES)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def stored(data: bytes, mime_type: str, *, chunk: int = 7, limit: int = 10_000) -> bytes:
    return b"".join([part async for part in checked(_chunks(data, chunk), mime_type, limit)])


@pytest.mark.parametrize(
    ("data", "mime_type"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        ("naïve café\n".encode(), "text/plain"),
        (b'{"a": 1}', "application/json"),
        (SCRIPT, "text/plain"),  # a script is text: the model reads it as such
    ],
)
async def test_bytes_of_the_declared_type_pass_unchanged(data: bytes, mime_type: str) -> None:
    assert await stored(data, mime_type) == data


async def test_a_long_file_passes_whole_whatever_its_chunks() -> None:
    data = PNG + bytes(range(256)) * 100  # well past the head that is sniffed
    assert len(data) > HEAD_BYTES
    for size in (1, 100, HEAD_BYTES, len(data)):
        assert await stored(data, "image/png", chunk=size, limit=len(data)) == data


@pytest.mark.parametrize(
    ("data", "mime_type", "detail"),
    [
        (SCRIPT, "image/png", "the file's content is not image/png"),
        (PDF, "image/png", "the file's content is not image/png"),
        (PNG, "image/jpeg", "the file's content is not image/jpeg"),
        (b"", "image/png", "the file's content is not image/png"),
        (PNG, "text/plain", "the file's content is not UTF-8 text"),
        (ELF, "text/plain", "the file's content is not text (it holds NUL bytes)"),
        ("é".encode()[:1], "text/plain", "the file's content is not UTF-8 text"),  # cut short
    ],
)
async def test_bytes_of_another_type_are_refused(data: bytes, mime_type: str, detail: str) -> None:
    with pytest.raises(UnsupportedType) as refused:
        await stored(data, mime_type)
    assert refused.value.detail == detail


async def test_nothing_is_passed_on_before_the_head_is_checked() -> None:
    passed: list[bytes] = []
    with pytest.raises(UnsupportedType):
        async for part in checked(_chunks(SCRIPT * 200, 10), "image/png", 100_000):
            passed.append(part)
    assert passed == []


async def test_a_file_past_the_limit_stops_as_it_passes_it() -> None:
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            read.append(b"x" * 10)
            yield b"x" * 10

    with pytest.raises(TooLarge) as refused:
        async for _ in checked(body(), "text/plain", 55):
            pass
    assert refused.value.detail == "the file is larger than 55 bytes"
    assert len(read) == 6  # the chunk that crossed the limit, no further


def test_declared_types_are_normalised_and_checked_against_the_allow_list() -> None:
    assert check_declared("Image/PNG; charset=binary", ALLOWED) == "image/png"
    for refused in ("application/x-sh", "image/svg+xml", "", "text/html"):
        with pytest.raises(UnsupportedType):
            check_declared(refused, ALLOWED)

"""Attachment bytes in an object store, through obstore: a local directory by default, any
S3-compatible store (`s3://bucket/prefix`) so that several instances share the files.

obstore (the Rust `object_store` crate, as used by Arrow and Polars): async without a thread
pool, streaming multipart uploads from an async iterator, one API over local files, S3, GCS
and Azure, typed (`py.typed`); s3fs/aioboto3 bring aiobotocore and its pinned botocore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import obstore
from obstore.store import LocalStore, ObjectStore, S3Store

from chatrelay.config import Settings

_CHUNK_BYTES = 256 * 1024


def open_object_store(settings: Settings) -> ObjectStore:
    """The configured store; a local directory is created if missing."""
    where = settings.attachment_store
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        endpoint = settings.attachment_s3_endpoint
        return S3Store(
            bucket,
            prefix=prefix or None,
            region=settings.attachment_s3_region,
            endpoint=endpoint,
            client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
        )
    directory = Path(where.removeprefix("file://")).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return LocalStore(directory)


def key_of(attachment_id: str) -> str:
    return f"attachments/{attachment_id}"


class ObjectFiles:
    """The few operations attachments need, on one store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def put(self, attachment_id: str, chunks: AsyncIterator[bytes]) -> None:
        """Stream `chunks` in; whatever the iterator raises aborts the upload with it."""
        await obstore.put_async(self._store, key_of(attachment_id), chunks)

    async def read(self, attachment_id: str) -> bytes:
        result = await obstore.get_async(self._store, key_of(attachment_id))
        return (await result.bytes_async()).to_bytes()

    async def stream(self, attachment_id: str) -> AsyncIterator[bytes]:
        """The bytes as they come: the object is opened now (`FileNotFoundError` if gone),
        read as the iterator is."""
        result = await obstore.get_async(self._store, key_of(attachment_id))

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=_CHUNK_BYTES):
                yield bytes(chunk)

        return chunks()

    async def delete(self, attachment_id: str) -> None:
        """Gone afterwards, whether it was there or not (a local store says when it was not)."""
        try:
            await obstore.delete_async(self._store, key_of(attachment_id))
        except FileNotFoundError:
            pass

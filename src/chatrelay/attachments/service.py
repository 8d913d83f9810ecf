"""Attachments, two-phase as ChatKit's widget uploads them: `create` records the file's name,
size and type and hands out a signed upload link; the bytes come to that link once, are
checked and streamed to the object store; a message then carries the attachment's id.

Every call that names an attachment for a user looks it up by user and id: another user's
attachment answers exactly like one that does not exist (`NotFound`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.attachments.content import check_declared, checked
from chatrelay.attachments.errors import LinkRefused, TooLarge
from chatrelay.attachments.links import LinkSigner, Purpose, link_url, signing_key
from chatrelay.attachments.objects import ObjectFiles, open_object_store
from chatrelay.config import Settings
from chatrelay.store import Attachment, transaction
from chatrelay.store.repositories import AttachmentRepository, UploadClaims
from chatrelay.turns import AttachmentRef, Conflict, Invalid, NotFound, new_id, utcnow

logger = logging.getLogger("chatrelay.attachments")

MAX_NAME_CHARS = 255
MAX_PER_MESSAGE = 10
SWEEP_BATCH = 100


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int
    mime_types: frozenset[str]
    orphan_hours: float
    upload_seconds: float
    preview_seconds: float


@dataclass(frozen=True)
class Preview:
    """An image's bytes, as the preview route serves them."""

    mime_type: str
    size: int
    chunks: AsyncIterator[bytes]
    expires: int


def ref_of(row: Attachment) -> AttachmentRef:
    return AttachmentRef(id=row.id, name=row.name, mime_type=row.mime_type, kind=row.kind)


class AttachmentService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        files: ObjectFiles,
        signer: LinkSigner,
        limits: AttachmentLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._signer = signer
        self.limits = limits
        self.clock = clock
        """Unix seconds now (links are signed and checked against it); tests move it."""

    async def create(self, user_id: str, name: str, size: int, mime_type: str) -> Attachment:
        """A new attachment, waiting for its bytes: `TooLarge` over the size limit,
        `UnsupportedType` off the allow-list, `Invalid` for a bad name or size."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_CHARS or "\x00" in name:
            raise Invalid(f"an attachment's name must be 1 to {MAX_NAME_CHARS} characters")
        if size < 0:
            raise Invalid("an attachment's size cannot be negative")
        self._check_size(size)
        declared = check_declared(mime_type, self.limits.mime_types)
        row = Attachment(
            id=new_id("atc"),
            user_id=user_id,
            name=name,
            mime_type=declared,
            kind="image" if declared.startswith("image/") else "file",
            declared_size=size,
        )
        async with transaction(self._sessions) as db:
            return await AttachmentRepository(db, user_id).add(row)

    def link(self, base_url: str, purpose: Purpose, attachment_id: str) -> str:
        seconds = self.limits.upload_seconds if purpose == "upload" else self.limits.preview_seconds
        query = self._signer.query(purpose, attachment_id, self.clock(), seconds)
        return link_url(base_url, purpose, attachment_id, query)

    async def delete(self, user_id: str, attachment_id: str) -> None:
        """The row and the bytes; `NotFound` unless it is the user's. Bytes first: if the
        store fails, the row is still there to delete again."""
        async with transaction(self._sessions) as db:
            if await AttachmentRepository(db, user_id).get(attachment_id) is None:
                raise NotFound("attachment not found")
        await self._files.delete(attachment_id)
        async with transaction(self._sessions) as db:
            await AttachmentRepository(db, user_id).delete(attachment_id)

    async def for_message(self, user_id: str, attachment_ids: Sequence[str]) -> list[Attachment]:
        """The attachments a new message carries, in its order: each the user's (else
        `NotFound`), uploaded and not sent with another message (else `Conflict`)."""
        ids = list(dict.fromkeys(attachment_ids))
        if len(ids) > MAX_PER_MESSAGE:
            raise Invalid(f"a message carries at most {MAX_PER_MESSAGE} attachments")
        if not ids:
            return []
        async with transaction(self._sessions) as db:
            found = await AttachmentRepository(db, user_id).get_many(ids)
        rows = []
        for attachment_id in ids:
            row = found.get(attachment_id)
            if row is None:
                raise NotFound(f"attachment {attachment_id} not found")
            if row.state != "ready":
                raise Conflict(f"attachment {attachment_id} has not been uploaded")
            if row.message_id is not None:
                raise Conflict(f"attachment {attachment_id} was sent with another message")
            rows.append(row)
        return rows

    async def refs(self, user_id: str, attachment_ids: Sequence[str]) -> tuple[AttachmentRef, ...]:
        """What is left of a stored message's attachments (a retry sends them again)."""
        if not attachment_ids:
            return ()
        async with transaction(self._sessions) as db:
            found = await AttachmentRepository(db, user_id).get_many(attachment_ids)
        return tuple(ref_of(found[i]) for i in attachment_ids if i in found)

    async def read(self, attachment: AttachmentRef) -> bytes:
        """The bytes, for the model (the turn's spec checked that they are the user's)."""
        return await self._files.read(attachment.id)

    async def upload(
        self,
        attachment_id: str,
        expires: int,
        signature: str,
        body: AsyncIterator[bytes],
        declared_size: int | None = None,
    ) -> Attachment:
        """Store the bytes sent to an upload link. The link works once: its use is claimed
        in the database before a byte is stored, and a failed upload (too large, not of its
        type, a lost connection) deletes the attachment; the widget creates another."""
        self._signer.verify("upload", attachment_id, expires, signature, self.clock())
        if declared_size is not None:
            self._check_size(declared_size)
        async with transaction(self._sessions) as db:
            claims = UploadClaims(db)
            if await claims.get(attachment_id) is None:
                raise NotFound("attachment not found")
            row = await claims.claim(attachment_id)
            if row is None:
                raise LinkRefused("this upload link was used already")
        size, mime_type = 0, row.mime_type

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in checked(body, mime_type, self.limits.max_bytes):
                size += len(chunk)
                yield chunk

        try:
            await self._files.put(attachment_id, counted())
        except BaseException:
            await asyncio.shield(self._forget(attachment_id))
            raise
        async with transaction(self._sessions) as db:
            await UploadClaims(db).stored(attachment_id, size)
            stored = await UploadClaims(db).get(attachment_id)
        assert stored is not None
        return stored

    async def preview(self, attachment_id: str, expires: int, signature: str) -> Preview:
        """An uploaded image's bytes, for a valid preview link."""
        self._signer.verify("preview", attachment_id, expires, signature, self.clock())
        async with transaction(self._sessions) as db:
            row = await UploadClaims(db).get(attachment_id)
        if row is None or row.kind != "image" or row.state != "ready" or row.size is None:
            raise NotFound("attachment not found")
        try:
            chunks = await self._files.stream(attachment_id)
        except FileNotFoundError:
            raise NotFound("attachment not found") from None
        return Preview(row.mime_type, row.size, chunks, expires)

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete the attachments no message carries that are older than
        `ATTACHMENT_ORPHAN_HOURS` (bytes, then rows); how many went."""
        cutoff = (now or utcnow()) - timedelta(hours=self.limits.orphan_hours)
        swept = 0
        while True:
            async with transaction(self._sessions) as db:
                orphans = await UploadClaims(db).orphans(cutoff, SWEEP_BATCH)
            for orphan in orphans:
                await self._forget(orphan.id)
            swept += len(orphans)
            if len(orphans) < SWEEP_BATCH:
                return swept

    async def run_sweeper(self, interval_seconds: float) -> None:
        """Sweep every `interval_seconds`, until cancelled; a failed sweep (the database or
        the object store away) is logged and tried again next time."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                swept = await self.sweep()
            except Exception as exc:
                logger.warning("sweeping orphaned attachments failed, retrying later: %s", exc)
            else:
                if swept:
                    logger.info("swept %s orphaned attachments", swept)

    async def _forget(self, attachment_id: str) -> None:
        await self._files.delete(attachment_id)
        async with transaction(self._sessions) as db:
            await UploadClaims(db).drop(attachment_id)

    def _check_size(self, size: int) -> None:
        if size > self.limits.max_bytes:
            raise TooLarge(f"the file is larger than {self.limits.max_bytes} bytes")


def attachment_service(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AttachmentService:
    """The service on the configured object store, its links signed with a key derived
    from `AUTH_SECRET` (so every instance verifies every other's links)."""
    limits = AttachmentLimits(
        max_bytes=settings.attachment_max_bytes,
        mime_types=frozenset(t.lower() for t in settings.attachment_mime_types),
        orphan_hours=settings.attachment_orphan_hours,
        upload_seconds=settings.attachment_upload_seconds,
        preview_seconds=settings.attachment_preview_seconds,
    )
    files = ObjectFiles(open_object_store(settings))
    return AttachmentService(sessions, files, LinkSigner(signing_key(settings.jwt_secret)), limits)

"""A small in-memory `chatkit.store.Store`: a real, working store for chatkit-python's own
`ChatKitServer` in tests (threads, items, and attachments' metadata).

Threads belong to the user of the request context, as in a real store: another user's thread
is missing (`NotFoundError`). Every load returns a copy and every save stores one, so callers
that mutate what they loaded (as `ChatKitServer` does) change nothing until they save, as with
a database. Pages are ordered by `created_at`, ties broken by insertion order; a cursor is the
id of the last row of the previous page, and an unknown cursor is `NotFoundError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RequestContext:
    """Who is asking: every store call is scoped to this user."""

    user_id: str


@dataclass
class _Row(Generic[M]):
    value: M
    seq: int


@dataclass
class _ThreadRecord:
    owner: str
    thread: _Row[ThreadMetadata]
    items: dict[str, _Row[ThreadItem]] = field(default_factory=dict)


def _copy(model: M) -> M:
    return model.model_copy(deep=True)


def paginate(
    rows: Sequence[_Row[M]], *, limit: int, order: str, after: str | None, id_of: Callable[[M], str]
) -> Page[M]:
    """One page of `rows` after the cursor row `after`, in `order` ("asc" or "desc")."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    direction: Literal["asc", "desc"] = "desc" if order == "desc" else "asc"

    def key(row: _Row[M]) -> tuple[float, int]:
        # `timestamp()` orders naive (local) and aware datetimes alike; ChatKit mixes them.
        return (row.value.created_at.timestamp(), row.seq)  # type: ignore[attr-defined]

    ordered = sorted(rows, key=key, reverse=direction == "desc")
    start = 0
    if after is not None:
        ids = [id_of(row.value) for row in ordered]
        if after not in ids:
            raise NotFoundError(f"cursor {after} not found")
        start = ids.index(after) + 1
    data = [_copy(row.value) for row in ordered[start : start + limit]]
    has_more = start + limit < len(ordered)
    return Page(data=data, has_more=has_more, after=id_of(data[-1]) if has_more else None)


class InMemoryStore(Store[RequestContext]):
    """Threads and their items in dictionaries. No I/O, so nothing ever blocks the loop."""

    def __init__(self) -> None:
        self._threads: dict[str, _ThreadRecord] = {}
        self._seq = itertools.count()
        self._attachments: dict[str, tuple[str, Attachment]] = {}
        """Attachment id → (owner, attachment)."""

    def _record(self, thread_id: str, context: RequestContext) -> _ThreadRecord:
        record = self._threads.get(thread_id)
        if record is None or record.owner != context.user_id:
            raise NotFoundError(f"thread {thread_id} not found")
        return record

    # -- threads -------------------------------------------------------------------------

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        return _copy(self._record(thread_id, context).thread.value)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        # Only the metadata: a `Thread` (which has `items`) is stored without them.
        metadata = ThreadMetadata.model_validate(thread.model_dump(exclude={"items"}))
        record = self._threads.get(thread.id)
        if record is None:
            row = _Row(metadata, next(self._seq))
            self._threads[thread.id] = _ThreadRecord(owner=context.user_id, thread=row)
            return
        if record.owner != context.user_id:
            raise NotFoundError(f"thread {thread.id} not found")
        record.thread.value = metadata

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        rows = [r.thread for r in self._threads.values() if r.owner == context.user_id]
        return paginate(rows, limit=limit, order=order, after=after, id_of=lambda t: t.id)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        # Like SQL's DELETE ... WHERE id AND user_id: a missing or foreign thread is left alone.
        record = self._threads.get(thread_id)
        if record is not None and record.owner == context.user_id:
            del self._threads[thread_id]

    # -- items ---------------------------------------------------------------------------

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: RequestContext,
    ) -> Page[ThreadItem]:
        rows = list(self._record(thread_id, context).items.values())
        return paginate(rows, limit=limit, order=order, after=after, id_of=lambda i: i.id)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: RequestContext
    ) -> None:
        # ChatKit may add an item it loaded before (a workflow left open is re-added at the end
        # of the next run): an upsert, keeping the item's place.
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        items = self._record(thread_id, context).items
        if item.id in items:
            items[item.id].value = _copy(item)
        else:
            items[item.id] = _Row(_copy(item), next(self._seq))

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        row = self._record(thread_id, context).items.get(item_id)
        if row is None:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        return _copy(row.value)

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: RequestContext
    ) -> None:
        self._record(thread_id, context).items.pop(item_id, None)

    # -- attachments: the user's own, as threads ------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        self._attachments[attachment.id] = (context.user_id, attachment.model_copy(deep=True))

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        owner, attachment = self._attachments.get(attachment_id, (None, None))
        if attachment is None or owner != context.user_id:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return attachment.model_copy(deep=True)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        await self.load_attachment(attachment_id, context)
        del self._attachments[attachment_id]

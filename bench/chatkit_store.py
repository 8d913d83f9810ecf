"""A `chatkit.store.Store` on SQLite, the store a `ChatKitServer` user would ship.

The schema is chatkit-python's own SQLite store (`tests/helpers/mock_store.py`): tables of
`threads`, `items` and `attachments`, each row the model as JSON with its id, owner and
creation time beside it, every query scoped to the request context's user. What it does
differently, so the bench does not charge ChatKitServer for a naive store:

- async: aiosqlite runs SQLite in a thread of its own (the mock calls `sqlite3` in the event
  loop); one connection for the app's life, in WAL mode, as chatrelay's SQLite is;
- each statement is its own transaction (autocommit), so a write is one trip to that thread;
- `created_at` is a UNIX timestamp: ChatKit stamps items with naive `datetime.now()`, and
  ISO strings of naive and aware times would not sort together;
- items are indexed by `(thread_id, created_at)` and pages ordered by `(created_at, rowid)`,
  so items created in the same microsecond keep the order they were added in;
- saving a thread or an item is an upsert (ChatKit re-adds items it loaded before);
- an item's key is (thread, id): ChatKit's default ids have only 32 random bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from tests.fakes.chatkit_store import RequestContext

ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_by_user ON threads (user_id, created_at);
CREATE TABLE IF NOT EXISTS items (
    id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (thread_id, id)
);
CREATE INDEX IF NOT EXISTS items_by_thread ON items (thread_id, created_at);
CREATE TABLE IF NOT EXISTS attachments (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def _direction(order: str) -> str:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return order.upper()


def _thread_json(thread: ThreadMetadata) -> str:
    # ChatKit may hand over a `Thread` (metadata + a page of items): store the metadata only.
    return thread.model_dump_json(exclude={"items"})


class SQLiteStore(Store[RequestContext]):
    """Threads, items and attachments as JSON rows in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        # isolation_level=None: autocommit, so a write needs no separate COMMIT round trip.
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute_fetchall("PRAGMA journal_mode=WAL")
        await db.executescript(SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """One statement, its rows fetched in the same trip to aiosqlite's thread."""
        if self._db is None:
            raise RuntimeError("the store is not open")
        return list(await self._db.execute_fetchall(sql, params))

    async def _page(
        self,
        table: str,
        scope: str,
        params: Sequence[Any],
        *,
        after: str | None,
        limit: int,
        order: str,
    ) -> tuple[list[str], bool, str | None]:
        """One page of `table`'s rows matching `scope`: their JSON, has_more and the cursor."""
        direction = _direction(order)
        where, args = scope, list(params)
        if after is not None:
            cursor = await self._run(
                f"SELECT created_at, rowid FROM {table} WHERE id = ? AND {scope}", [after, *params]
            )
            if not cursor:
                raise NotFoundError(f"cursor {after} not found")
            where += f" AND (created_at, rowid) {'>' if direction == 'ASC' else '<'} (?, ?)"
            args += cursor[0]
        rows = await self._run(
            f"SELECT id, data FROM {table} WHERE {where} "
            f"ORDER BY created_at {direction}, rowid {direction} LIMIT ?",
            [*args, limit + 1],
        )
        has_more = len(rows) > limit
        rows = rows[:limit]
        return [data for _, data in rows], has_more, rows[-1][0] if has_more else None

    # -- threads -------------------------------------------------------------------------

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        rows = await self._run(
            "SELECT data FROM threads WHERE id = ? AND user_id = ?", [thread_id, context.user_id]
        )
        if not rows:
            raise NotFoundError(f"thread {thread_id} not found")
        return ThreadMetadata.model_validate_json(rows[0][0])

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        await self._run(
            "INSERT INTO threads (id, user_id, created_at, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data "
            "WHERE threads.user_id = excluded.user_id",
            [thread.id, context.user_id, thread.created_at.timestamp(), _thread_json(thread)],
        )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        data, has_more, cursor = await self._page(
            "threads", "user_id = ?", [context.user_id], after=after, limit=limit, order=order
        )
        threads = [ThreadMetadata.model_validate_json(row) for row in data]
        return Page(data=threads, has_more=has_more, after=cursor)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        for table, column in (("items", "thread_id"), ("threads", "id")):
            await self._run(
                f"DELETE FROM {table} WHERE {column} = ? AND user_id = ?",
                [thread_id, context.user_id],
            )

    # -- items ---------------------------------------------------------------------------

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: RequestContext,
    ) -> Page[ThreadItem]:
        data, has_more, cursor = await self._page(
            "items",
            "thread_id = ? AND user_id = ?",
            [thread_id, context.user_id],
            after=after,
            limit=limit,
            order=order,
        )
        items = [ITEM.validate_json(row) for row in data]
        return Page(data=items, has_more=has_more, after=cursor)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: RequestContext
    ) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        await self._run(
            "INSERT INTO items (id, thread_id, user_id, created_at, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (thread_id, id) DO UPDATE SET data = excluded.data "
            "WHERE items.user_id = excluded.user_id",
            [
                item.id,
                thread_id,
                context.user_id,
                item.created_at.timestamp(),
                ITEM.dump_json(item).decode(),
            ],
        )

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        rows = await self._run(
            "SELECT data FROM items WHERE id = ? AND thread_id = ? AND user_id = ?",
            [item_id, thread_id, context.user_id],
        )
        if not rows:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        return ITEM.validate_json(rows[0][0])

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: RequestContext
    ) -> None:
        await self._run(
            "DELETE FROM items WHERE id = ? AND thread_id = ? AND user_id = ?",
            [item_id, thread_id, context.user_id],
        )

    # -- attachments ---------------------------------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        await self._run(
            "INSERT INTO attachments (id, user_id, data) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data "
            "WHERE attachments.user_id = excluded.user_id",
            [attachment.id, context.user_id, ATTACHMENT.dump_json(attachment).decode()],
        )

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        rows = await self._run(
            "SELECT data FROM attachments WHERE id = ? AND user_id = ?",
            [attachment_id, context.user_id],
        )
        if not rows:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return ATTACHMENT.validate_json(rows[0][0])

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        await self._run(
            "DELETE FROM attachments WHERE id = ? AND user_id = ?",
            [attachment_id, context.user_id],
        )

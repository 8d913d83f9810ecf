"""SQLModel tables. These never leave the store: routes answer with `chatrelay.schemas` models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


# Timestamps are stored timezone-aware on Postgres; SQLite drops the zone, so readers
# re-attach UTC (see `as_utc`).
_TIMESTAMP = sa.DateTime(timezone=True)


class Conversation(SQLModel, table=True):
    """One chat thread, owned by one user."""

    __tablename__ = "conversations"
    __table_args__ = (sa.Index("ix_conversations_user_created", "user_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    title: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column("metadata", sa.JSON, nullable=False)
    )


class Message(SQLModel, table=True):
    """One user or assistant message. A turn's two messages are always written together."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        sa.Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        sa.Index(
            "ux_messages_conversation_request",
            "conversation_id",
            "request_id",
            unique=True,
            sqlite_where=sa.text("role = 'user' AND request_id IS NOT NULL"),
            postgresql_where=sa.text("role = 'user' AND request_id IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=64)
    conversation_id: str = Field(
        sa_column=sa.Column(
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    role: str = Field(max_length=16)
    content: str = Field(sa_type=sa.Text)
    status: str = Field(default="completed", max_length=16)
    """`completed`, or `incomplete` when the model failed after partial output."""
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    usage: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    request_id: str | None = Field(default=None, max_length=255)
    meta: dict[str, Any] | None = Field(default=None, sa_column=sa.Column("metadata", sa.JSON))
    parts: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    """A user message's ChatKit input (content parts, quoted text, inference options)."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)


def as_utc(value: datetime) -> datetime:
    """Give a timestamp read back from SQLite (which stores no zone) its UTC zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Task(SQLModel, table=True):
    """One item of a user's todo list. Tools name it by `number`; `id` never leaves the store."""

    __tablename__ = "tasks"
    # Also the index of "this user's tasks, in order".
    __table_args__ = (sa.Index("ux_tasks_user_number", "user_id", "number", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=255)
    number: int
    """The task's number in its user's list: 1, 2, ... in creation order, never reused."""
    title: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    completed: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)


class TaskCounter(SQLModel, table=True):
    """The last task number a user was given: one row per user, bumped by every new task."""

    __tablename__ = "task_counters"

    user_id: str = Field(primary_key=True, max_length=255)
    last_number: int


class Feedback(SQLModel, table=True):
    """The user's thumbs up or down on an item (the latest one counts)."""

    __tablename__ = "feedback"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('positive', 'negative')", name="ck_feedback_kind"),
    )

    conversation_id: str = Field(
        sa_column=sa.Column(
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    item_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)


class TurnLease(SQLModel, table=True):
    """The one running turn of a conversation, across processes; it expires if its holder dies."""

    __tablename__ = "turn_leases"

    conversation_id: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=_TIMESTAMP)


class Attachment(SQLModel, table=True):
    """A file a user uploaded (the bytes live in the object store), and the message that
    carried it once one did. Owned by one user: every lookup is by user and id."""

    __tablename__ = "attachments"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('image', 'file')", name="ck_attachments_kind"),
        sa.CheckConstraint(
            "state IN ('pending', 'uploading', 'ready')", name="ck_attachments_state"
        ),
        sa.Index("ix_attachments_user_created", "user_id", "created_at"),
        # The orphan sweep: never sent, oldest first.
        sa.Index("ix_attachments_unsent_created", "message_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=255)
    name: str = Field(max_length=255)
    mime_type: str = Field(max_length=127)
    kind: str = Field(max_length=8)
    """`image` (a preview is served) or `file`."""
    declared_size: int = Field(sa_type=sa.BigInteger)
    size: int | None = Field(default=None, sa_type=sa.BigInteger)
    """The size of the bytes stored, once uploaded."""
    state: str = Field(default="pending", max_length=16)
    """`pending` until its upload link is used (once: then `uploading`), `ready` once stored."""
    message_id: str | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.String(64), sa.ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
        ),
    )
    """The user message that carried it. Unset (never sent, or its thread deleted): an
    orphan, deleted once older than `ATTACHMENT_ORPHAN_HOURS`."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=_TIMESTAMP)
    uploaded_at: datetime | None = Field(default=None, sa_type=_TIMESTAMP)


# The tables themselves, for Core statements on the hot path (no ORM objects).
conversations_table: sa.Table = SQLModel.metadata.tables["conversations"]
messages_table: sa.Table = SQLModel.metadata.tables["messages"]

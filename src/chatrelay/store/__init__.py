"""Persistence: SQLModel tables, engine/transactions, repositories and migrations."""

from chatrelay.store.db import create_engine, ping, sessionmaker, transaction
from chatrelay.store.migrate import (
    MIGRATION_LOCK_KEY,
    Revisions,
    SchemaStatus,
    head_revision,
    upgrade,
)
from chatrelay.store.tables import Attachment, Conversation, Message, Task

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Attachment",
    "Conversation",
    "Message",
    "Revisions",
    "SchemaStatus",
    "Task",
    "create_engine",
    "head_revision",
    "ping",
    "sessionmaker",
    "transaction",
    "upgrade",
]

"""Persistence: SQLModel tables, engine/transactions, repositories and migrations."""

from chatrelay.store.db import create_engine, ping, sessionmaker, transaction
from chatrelay.store.migrate import upgrade
from chatrelay.store.tables import Conversation, Message, Task

__all__ = [
    "Conversation",
    "Message",
    "Task",
    "create_engine",
    "ping",
    "sessionmaker",
    "transaction",
    "upgrade",
]

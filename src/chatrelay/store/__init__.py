"""Persistence: SQLModel tables, engine/transactions, repositories and migrations."""

from chatrelay.store.db import create_engine, ping, sessionmaker, transaction
from chatrelay.store.migrate import upgrade
from chatrelay.store.tables import Conversation, Message

__all__ = [
    "Conversation",
    "Message",
    "create_engine",
    "ping",
    "sessionmaker",
    "transaction",
    "upgrade",
]

"""Error bodies: every 4xx/5xx answers `{"detail": ...}`; 5xx add a correlation id."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """A client error."""

    detail: Any


class ServerErrorBody(BaseModel):
    """A server fault; quote `correlation_id` when reporting it (it is in the logs too)."""

    detail: str
    correlation_id: str

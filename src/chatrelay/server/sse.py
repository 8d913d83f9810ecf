"""The one place that knows the wire format of a ChatKit event (compare chatkit's `_serialize`)."""

from __future__ import annotations

from pydantic import BaseModel


def encode_event(event: BaseModel) -> str:
    """JSON for an SSE `data:` field: aliases, no nulls, as chatkit-python writes it."""
    return event.model_dump_json(by_alias=True, exclude_none=True)

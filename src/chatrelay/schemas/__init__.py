"""Wire models. Tables live in `chatrelay.store`; these are what clients send and receive."""

from chatrelay.schemas.chat import ChatRequest, ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.schemas.errors import ErrorBody, ServerErrorBody

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ErrorBody",
    "ServerErrorBody",
    "TokenUsage",
    "ToolCallRecord",
]

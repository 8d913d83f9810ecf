"""The Vercel AI SDK at the edge: its UI message stream (`AI_SDK`, a wire format of the turn
log, read by `DefaultChatTransport` / `readUIMessageStream`), its chat request as a turn spec
and stored messages as its `UIMessage`s. No library: the protocol is JSON over SSE, and the
`ai` package's own schema checks it in the Node tests (tests/node/ai-sdk)."""

from chatrelay.aisdk.encoder import AI_SDK, DONE, STREAM_HEADERS, AiSdkEncoder, stored_reply_parts
from chatrelay.aisdk.messages import ui_message, ui_messages
from chatrelay.aisdk.requests import ChatRequest, new_text, request_id, turn_spec

__all__ = [
    "AI_SDK",
    "DONE",
    "STREAM_HEADERS",
    "AiSdkEncoder",
    "ChatRequest",
    "new_text",
    "request_id",
    "stored_reply_parts",
    "turn_spec",
    "ui_message",
    "ui_messages",
]

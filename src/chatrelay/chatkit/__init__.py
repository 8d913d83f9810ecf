"""ChatKit at the edge: the only package that imports `chatkit` (openai-chatkit).

Turn events become ChatKit `ThreadStreamEvent`s (`CHATKIT`, a wire format of the turn log),
stored messages become thread items, and ChatKit's request protocol becomes turn specs and
answers (`ChatKitProtocol`). Imported as `chatrelay.chatkit`, absolute imports only, so it
never shadows the library.
"""

from chatrelay.chatkit.encoder import CHATKIT, ChatKitEncoder, encode_event, stored_reply_events
from chatrelay.chatkit.events import THREAD_STREAM_EVENT
from chatrelay.chatkit.protocol import ChatKitProtocol, JsonAnswer, StreamAnswer
from chatrelay.chatkit.requests import KNOWN_TYPES as REQUEST_TYPES
from chatrelay.chatkit.requests import parse_envelope

__all__ = [
    "CHATKIT",
    "REQUEST_TYPES",
    "THREAD_STREAM_EVENT",
    "ChatKitEncoder",
    "ChatKitProtocol",
    "JsonAnswer",
    "StreamAnswer",
    "encode_event",
    "parse_envelope",
    "stored_reply_events",
]

"""The turn core: a turn's spec, its typed events, its run and finalizer, and the service
every edge starts turns through. It imports no web framework, no ChatKit and no model SDK
(import-linter checks it): edges encode its events, adapters run its model.
"""

from chatrelay.turns.buffer import InProcessTurnBuffer, TurnBuffer
from chatrelay.turns.claims import (
    Attached,
    Elsewhere,
    ExactlyOnce,
    SharedClaims,
    Started,
    Stored,
)
from chatrelay.turns.errors import (
    Busy,
    Conflict,
    Invalid,
    InvalidFields,
    LiveEventsUnavailable,
    NotFound,
    RateLimited,
    ShuttingDown,
    StoreUnavailable,
    TurnRefused,
)
from chatrelay.turns.events import (
    AssistantFinished,
    AssistantStarted,
    ModelEvent,
    TextDelta,
    TitleSet,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnStarted,
    UserMessageAccepted,
)
from chatrelay.turns.limits import StreamSlot, UserLimits
from chatrelay.turns.log import TURN_EVENTS, Batch, Encoder, WireFormat
from chatrelay.turns.metrics import Metrics
from chatrelay.turns.model import ModelRequest, ModelUnavailable, TurnModel
from chatrelay.turns.registry import TurnRegistry
from chatrelay.turns.service import TurnConfig, TurnService
from chatrelay.turns.spec import (
    AttachmentRef,
    Failure,
    History,
    TurnOutcome,
    TurnSpec,
    Usage,
    new_id,
    title_for,
    utcnow,
)
from chatrelay.turns.store import RequestKey, StoredMessage, StoredReply, TurnStore
from chatrelay.turns.tracing import (
    NO_TRACE,
    NO_TRACER,
    Messages,
    ModelCall,
    ModelCalls,
    TurnTrace,
    TurnTracer,
)
from chatrelay.turns.turn import Turn

__all__ = [
    "NO_TRACE",
    "NO_TRACER",
    "Messages",
    "ModelCall",
    "ModelCalls",
    "TurnTrace",
    "TurnTracer",
    "TURN_EVENTS",
    "AssistantFinished",
    "AssistantStarted",
    "Attached",
    "AttachmentRef",
    "Batch",
    "Busy",
    "Conflict",
    "Elsewhere",
    "Encoder",
    "ExactlyOnce",
    "Failure",
    "History",
    "InProcessTurnBuffer",
    "Invalid",
    "InvalidFields",
    "LiveEventsUnavailable",
    "Metrics",
    "ModelEvent",
    "ModelRequest",
    "ModelUnavailable",
    "NotFound",
    "RateLimited",
    "RequestKey",
    "ShuttingDown",
    "SharedClaims",
    "Started",
    "Stored",
    "StoreUnavailable",
    "StoredMessage",
    "StoredReply",
    "StreamSlot",
    "TextDelta",
    "TitleSet",
    "ToolCallArguments",
    "ToolCallFinished",
    "ToolCallStarted",
    "Turn",
    "TurnBuffer",
    "TurnConfig",
    "TurnEnded",
    "TurnEvent",
    "TurnFailed",
    "TurnModel",
    "TurnOutcome",
    "TurnRefused",
    "TurnRegistry",
    "TurnService",
    "TurnSpec",
    "TurnStarted",
    "TurnStore",
    "Usage",
    "UserLimits",
    "UserMessageAccepted",
    "WireFormat",
    "new_id",
    "title_for",
    "utcnow",
]

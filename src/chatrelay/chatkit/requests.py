"""ChatKit requests in: a decoded envelope to a typed request, a user message to a turn spec.

Everything a client can get wrong is a domain error here (`Invalid`: 400, `InvalidFields`:
422 with the offending fields), raised before anything starts.
"""

from __future__ import annotations

from typing import Any, get_args

from chatkit.types import ChatKitReq, InferenceOptions, UserMessageInput
from pydantic import TypeAdapter, ValidationError

from chatrelay.schemas.chat import MAX_MESSAGE_CHARS
from chatrelay.schemas.text import lone_surrogate_error
from chatrelay.turns import Invalid, InvalidFields

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
KNOWN_TYPES = frozenset(
    model.model_fields["type"].default for model in get_args(get_args(ChatKitReq)[0])
)


def parse_envelope(body: Any) -> ChatKitReq:
    """The typed request: `Invalid` naming an unknown type, `InvalidFields` for bad params
    (a lone UTF-16 surrogate, which no store can hold, included)."""
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise Invalid(f"unsupported ChatKit request type {kind!r}")
    if (error := lone_surrogate_error(body, ("body",))) is not None:
        raise InvalidFields([error])
    try:
        return CHATKIT_REQUEST.validate_python(body)
    except ValidationError as exc:
        raise InvalidFields([dict(error) for error in exc.errors(include_url=False)]) from exc


def input_text(user_input: UserMessageInput) -> str:
    """What the model reads: the text and tags as typed, after the quoted text if any."""
    text = "".join(part.text for part in user_input.content).strip()
    if user_input.quoted_text:
        text = f"(Quoting: {user_input.quoted_text.strip()})\n\n{text}"
    return text


def input_parts(
    user_input: UserMessageInput, attachments: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The input as stored, so the user item is rebuilt exactly on reload."""
    parts: dict[str, Any] = {
        "content": [part.model_dump(mode="json") for part in user_input.content],
        "quoted_text": user_input.quoted_text,
        "inference_options": user_input.inference_options.model_dump(
            mode="json", exclude_none=True
        ),
    }
    if attachments:
        parts["attachments"] = attachments
    return parts


def checked_text(user_input: UserMessageInput) -> str:
    """The text the model reads; it may be empty only when the message carries attachments."""
    text = input_text(user_input)
    if not text and not user_input.attachments:
        raise Invalid("the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise Invalid(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
    if "\x00" in text:
        raise Invalid("the message contains NUL characters")
    return text


def turn_options(options: InferenceOptions, default_model: str) -> dict[str, Any]:
    """The widget's model pick (None: the server's own) and tool choice, as spec fields."""
    model = options.model if options.model and options.model != default_model else None
    tool_choice = options.tool_choice.id if options.tool_choice is not None else None
    return {"model": model, "tool_choice": tool_choice}


def stored_options(parts: dict[str, Any] | None) -> InferenceOptions:
    """The inference options a stored user message was sent with (a retry reuses them)."""
    return InferenceOptions.model_validate((parts or {}).get("inference_options") or {})

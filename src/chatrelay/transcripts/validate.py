"""Every event of a transcript must be a ChatKit `ThreadStreamEvent`."""

from __future__ import annotations

from pydantic import ValidationError

from chatrelay.chatkit import THREAD_STREAM_EVENT
from chatrelay.transcripts.format import Transcript


def problems(transcript: Transcript) -> list[str]:
    """What is wrong with the stream, one line each; empty when every event is valid."""
    if not transcript.response.is_stream:
        return [f"not an event stream (status {transcript.response.status})"]
    events = transcript.data_events()
    if not events:
        return ["the stream has no events"]
    found: list[str] = []
    for index, event in enumerate(events):
        assert event.data is not None
        try:
            THREAD_STREAM_EVENT.validate_json(event.data, strict=True)
        except ValidationError as exc:
            errors = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)[:3]
            )
            found.append(f"event #{index} (id {event.id}): {errors}")
    return found

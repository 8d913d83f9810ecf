"""Golden transcripts: record an exchange from the app and compare it, normalised (ids,
timestamps, timing), with `tests/transcripts/<name>.json`.

    transcript = await record_exchange(client, "POST", "/api/alice/chat", body={...})
    assert_golden(transcript, "plain_turn")

`CHATRELAY_UPDATE_TRANSCRIPTS=1 pytest ...` (re)writes the golden files instead; review the
git diff before committing them. A missing golden file fails the test rather than being
created silently, so CI never passes on a file nobody looked at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatrelay.transcripts import RecordedRequest, Transcript, diff, load, problems, record, save
from tests.conftest import auth

GOLDEN_DIR = Path(__file__).parent / "transcripts"
UPDATE_ENV = "CHATRELAY_UPDATE_TRANSCRIPTS"


async def record_exchange(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    user: str = "alice",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Transcript:
    """Send one request as `user` (a real token) and record the exchange."""
    request = RecordedRequest(
        method=method,
        path=path,
        headers={
            "accept": "text/event-stream",
            **({"content-type": "application/json"} if body is not None else {}),
            **(headers or {}),
        },
        body=body,
    )
    return await record(client, request, authorization=auth(user)["Authorization"], user=user)


def without_timing(transcript: Transcript) -> Transcript:
    """The transcript with every time offset set to 0 (the only thing a replay changes)."""
    events = [event.model_copy(update={"offset_ms": 0}) for event in transcript.events]
    return transcript.model_copy(update={"events": events})


def assert_golden(transcript: Transcript, name: str) -> None:
    """The exchange is valid ChatKit and matches its golden file after normalisation."""
    assert problems(transcript) == [], f"{name}: events do not validate"
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get(UPDATE_ENV):
        GOLDEN_DIR.mkdir(exist_ok=True)
        save(transcript, path)
        return
    if not path.exists():
        pytest.fail(f"no golden transcript {path}: run the test with {UPDATE_ENV}=1 to record it")
    found = diff(load(path), transcript, expected_name=str(path), actual_name="this run")
    assert not found, f"the stream differs from {path.name} ({UPDATE_ENV}=1 rewrites it):\n{found}"

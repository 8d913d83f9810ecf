"""Resuming a stream: the events after Last-Event-ID, then the live rest."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, context_of, until
from tests.sse import Frame, parse_sse, validate_chatkit


def _resume_url(conversation_id: str, user: str = "alice") -> str:
    return f"/api/{user}/conversations/{conversation_id}/stream"


async def _record(client: httpx.AsyncClient) -> tuple[str, list[Frame]]:
    response = await client.post(
        "/api/alice/chat", json={"message": "remember every event"}, headers={**auth(), **SSE}
    )
    frames = parse_sse(response.text)
    return frames[0].data["thread"]["id"], frames


async def test_every_last_event_id_gives_the_exact_suffix(client: httpx.AsyncClient) -> None:
    conversation_id, recorded = await _record(client)
    for last in range(-1, len(recorded)):
        headers = {**auth(), "Last-Event-ID": str(last)} if last >= 0 else auth()
        response = await client.get(_resume_url(conversation_id), headers=headers)
        assert response.status_code == 200
        resumed = parse_sse(response.text)
        validate_chatkit(resumed)
        assert resumed == recorded[last + 1 :], f"after {last}"


async def test_the_id_may_come_as_a_query_parameter(client: httpx.AsyncClient) -> None:
    conversation_id, recorded = await _record(client)
    response = await client.get(
        _resume_url(conversation_id), params={"last_event_id": "5"}, headers=auth()
    )
    assert parse_sse(response.text) == recorded[6:]


async def test_resume_a_running_turn_then_follow_it_live(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=3, gate=gate)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        original = asyncio.create_task(
            client.post("/api/alice/chat", json={"message": "live one"}, headers={**auth(), **SSE})
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        (running,) = context_of(app).registry.running_turns()
        conversation_id = running.spec.conversation_id
        resumed = asyncio.create_task(
            client.get(_resume_url(conversation_id), headers={**auth(), "Last-Event-ID": "1"})
        )
        await until(lambda: context_of(app).limits.open_streams() == 2)  # the resume is live
        gate.set()
        recorded = parse_sse((await original).text)
        tail = parse_sse((await resumed).text)

    assert tail == recorded[2:]
    assert tail[-1].type == "thread.updated"


async def test_nothing_to_resume_is_204_and_strangers_get_404(app_factory: AppFactory) -> None:
    app = await app_factory(resume_seconds=0)
    async with client_for(app) as client:
        conversation_id, _ = await _record(client)
        expired = await client.get(_resume_url(conversation_id), headers=auth())
        stranger = await client.get(_resume_url(conversation_id, "bob"), headers=auth("bob"))
        missing = await client.get(_resume_url("thr_nope", "bob"), headers=auth("bob"))
        bad_id = await client.get(
            _resume_url(conversation_id), headers={**auth(), "Last-Event-ID": "soon"}
        )
    assert expired.status_code == 204
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json() == missing.json()
    assert bad_id.status_code == 400

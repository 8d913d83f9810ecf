"""Two instances: a request id repeated on B while its turn runs on A attaches to that turn
(its stream from the first event, or its JSON reply), for a new conversation's first turn as
for a later one; the model runs once and one pair is stored. A repeat whose first instance was
killed mid-turn runs the turn again on B, once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.instances import cluster_env, instances
from tests.integration.processes import Server, cli_token
from tests.integration.test_instances_resume import MESSAGE, frame_data, frames

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # 40 words at 0.05 s: the turn is still running while the repeat arrives.
    with cluster_env(tmp_path, OFFLINE_DELAY_SECONDS="0.05") as env:
        yield env


def auth(token: str, *, stream: bool = False) -> dict[str, str]:
    accept = "text/event-stream" if stream else "application/json"
    return {"Authorization": f"Bearer {token}", "Accept": accept}


async def stream_until_first_event(
    server: Server, token: str, body: dict[str, Any]
) -> tuple[asyncio.Task[str], str]:
    """Stream a chat turn from `server`; once its first event is in, the task reading the rest
    and the body so far."""
    first = asyncio.get_running_loop().create_future()

    async def read() -> str:
        text = ""
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream(
                "POST", f"{server.url}/api/alice/chat", json=body, headers=auth(token, stream=True)
            ) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for chunk in response.aiter_text():
                text += chunk
                if "\r\n\r\n" in text and not first.done():
                    first.set_result(text)
        return text

    task = asyncio.create_task(read())
    return task, await asyncio.wait_for(first, 30)


async def post(server: Server, token: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{server.url}/api/alice/chat", json=body, headers=auth(token))


async def turns_run(*servers: Server) -> int:
    """How many turns the instances ran, by their `/metrics`."""
    total = 0.0
    async with httpx.AsyncClient() as client:
        for server in servers:
            text = (await client.get(f"{server.url}/metrics")).text
            total += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("chatrelay_turns_total{")
            )
    return int(total)


async def stored(server: Server, token: str, conversation_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        url = f"{server.url}/api/alice/conversations/{conversation_id}/messages"
        response = await client.get(url, headers=auth(token))
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def thread_id(body: str) -> str:
    created = frame_data(frames(body)[0])
    assert created["type"] == "thread.created"
    thread = created["thread"]
    assert isinstance(thread, dict)
    return str(thread["id"])


async def test_a_repeat_on_b_follows_the_turn_running_on_a(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        body = {"message": MESSAGE, "request_id": "req-new"}
        running, so_far = await stream_until_first_event(a, token, body)
        conversation_id = thread_id(so_far)

        # The client sent it again, through the balancer to B: once as JSON, once streamed.
        as_json, (as_stream, _) = await asyncio.gather(
            post(b, token, body), stream_until_first_event(b, token, body)
        )
        original = await running

        assert as_json.status_code == 200, as_json.text
        reply = as_json.json()
        assert reply["conversation_id"] == conversation_id  # A's, not one B made up
        assert reply["message"].endswith(MESSAGE)  # the whole reply, not a part
        assert frames(await as_stream) == frames(original)  # A's stream, from its first event
        messages = await stored(b, token, conversation_id)
        assert [(m["role"], m["id"]) for m in messages] == [
            ("user", messages[0]["id"]),
            ("assistant", reply["message_id"]),
        ]
        assert await turns_run(a, b) == 1  # the model ran once

        later = await post(b, token, body)  # and after the commit: the stored reply
        assert later.json()["message_id"] == reply["message_id"]
        assert await turns_run(a, b) == 1

        # A later turn of the conversation, repeated on B while it runs on A.
        body = {"message": MESSAGE, "conversation_id": conversation_id, "request_id": "req-2"}
        running, _ = await stream_until_first_event(a, token, body)
        repeat = await post(b, token, body)
        await running
        assert repeat.status_code == 200, repeat.text
        messages = await stored(b, token, conversation_id)
        assert len(messages) == 4  # the first pair, then this turn's once
        assert messages[3]["id"] == repeat.json()["message_id"]
        assert await turns_run(a, b) == 2


async def test_a_repeat_of_a_killed_instances_turn_runs_once_on_b(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        body = {"message": MESSAGE, "request_id": "req-killed"}
        running, so_far = await stream_until_first_event(a, token, body)
        a.process.send_signal(signal.SIGKILL)
        with pytest.raises(httpx.TransportError):
            await running

        # Until A's heartbeat expires B follows A's turn (and gets its error); then B runs it.
        async with asyncio.timeout(30):
            while (repeat := await post(b, token, body)).status_code != 200:
                assert repeat.status_code == 503, repeat.text
                assert repeat.headers["retry-after"]

        reply = repeat.json()
        assert reply["conversation_id"] != thread_id(so_far)  # A's never committed
        messages = await stored(b, token, reply["conversation_id"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        again = await post(b, token, body)
        assert again.json()["message_id"] == reply["message_id"]  # stored: not run a third time
        assert await turns_run(b) == 1

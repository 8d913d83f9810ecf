"""Disconnects at random points, keep-alive pings on quiet streams, and hostile tokens."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.conftest import TEST_SECRET, AppFactory, auth, client_for
from tests.fakes.asgi import body_text, post_and_hang_up
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, stored_messages, wait_for_turns
from tests.sse import parse_sse, validate_chatkit


async def test_fifty_disconnects_at_random_points_lose_and_duplicate_nothing(
    app_factory: AppFactory,
) -> None:
    app = await app_factory(
        offline_delay_seconds=0.001, rate_limit="1000/minute", max_streams_per_user=100
    )
    rng = random.Random(20261127)

    def hang_up_after(delay: float) -> asyncio.Event:
        event = asyncio.Event()
        asyncio.get_running_loop().call_later(delay, event.set)
        return event

    messages = [" ".join(f"w{i}-{n}" for n in range(rng.randint(1, 40))) for i in range(50)]
    sent = await asyncio.gather(
        *(
            post_and_hang_up(
                app,
                "/api/alice/chat",
                {"message": text},
                {**auth(), **SSE},
                hang_up_after(rng.uniform(0, 0.05)),
            )
            for text in messages
        )
    )
    await wait_for_turns(app)

    for messages_sent in sent:
        validate_chatkit(parse_sse(body_text(messages_sent)))
    stored = await stored_messages(app)
    users = [m for m in stored if m.role == "user"]
    replies = [m for m in stored if m.role == "assistant"]
    assert sorted(m.content for m in users) == sorted(messages)  # each once, none lost
    assert len(replies) == 50 and all(m.status == "completed" for m in replies)
    by_conversation = {m.conversation_id for m in stored}
    assert len(by_conversation) == 50


async def test_a_quiet_stream_gets_keep_alive_pings(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=1, gate=gate)
    app = await app_factory(SingleModelProvider(model), sse_ping_seconds=0.05)
    async with client_for(app) as client:
        request = asyncio.create_task(
            client.post("/api/alice/chat", json={"message": "slow tool"}, headers={**auth(), **SSE})
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        await asyncio.sleep(0.3)  # a long tool call: nothing to send
        gate.set()
        response = await request
    assert response.text.count(": ping") >= 3
    validate_chatkit(parse_sse(response.text))  # pings are comments, not events


def _token(claims: dict[str, object]) -> str:
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "token",
    [
        _token(
            {
                "sub": "alice",
                "exp": datetime.now(UTC) + timedelta(hours=1),
                "nbf": datetime.now(UTC) + timedelta(hours=1),
            }
        ),
        "x" * 100_000,
        _token(
            {"sub": "alice", "exp": datetime.now(UTC) + timedelta(hours=1), "pad": "p" * 100_000}
        ),
        _token({"sub": 12345, "exp": datetime.now(UTC) + timedelta(hours=1)}),
        _token({"sub": "", "exp": datetime.now(UTC) + timedelta(hours=1)}),
    ],
    ids=["future-nbf", "100kb-garbage", "100kb-signed", "numeric-sub", "empty-sub"],
)
async def test_hostile_tokens_get_401(app_factory: AppFactory, token: str) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat", json={"message": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"

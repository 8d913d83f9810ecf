"""Request limits: body size (413), turns per user per window (429), open streams (429)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, context_of, stored_messages, until


async def test_a_body_over_the_limit_is_413(app_factory: AppFactory) -> None:
    app = await app_factory(max_body_bytes=2048)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"message": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    async with client_for(app) as client:
        declared = await client.post(
            "/api/alice/chat", json={"message": "x" * 5000}, headers=auth()
        )
        streamed = await client.post("/api/alice/chat", content=chunked(), headers=auth())
        fine = await client.post("/api/alice/chat", json={"message": "x" * 1000}, headers=auth())

    assert declared.status_code == streamed.status_code == 413
    assert declared.json() == {"detail": "request body larger than 2048 bytes"}
    assert fine.status_code == 200
    assert len(await stored_messages(app)) == 2


async def test_turns_over_the_rate_limit_get_429(app_factory: AppFactory) -> None:
    app = await app_factory(rate_limit="2/minute")
    async with client_for(app) as client:
        statuses = [
            (await client.post("/api/alice/chat", json={"message": "m"}, headers=auth()))
            for _ in range(3)
        ]
        bob = await client.post("/api/bob/chat", json={"message": "m"}, headers=auth("bob"))
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json() == {"detail": "rate limit exceeded"}
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 60
    assert bob.status_code == 200  # per user


async def test_the_rate_limit_is_shared_through_redis(app_factory: AppFactory) -> None:
    """Two processes (apps) counting in one Redis: the limit holds across them."""
    user = f"u{uuid.uuid4().hex[:10]}"
    options = {"rate_limit": "2/minute", "rate_limit_storage": "async+redis://127.0.0.1:6379"}
    first, second = await app_factory(**options), await app_factory(**options)
    async with client_for(first) as one, client_for(second) as two:
        statuses = [
            (
                await client.post(f"/api/{user}/chat", json={"message": "m"}, headers=auth(user))
            ).status_code
            for client in (one, two, one)
        ]
    assert statuses == [200, 200, 429]


async def test_too_many_open_streams_get_429(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=1, gate=gate)
    app = await app_factory(SingleModelProvider(model), max_streams_per_user=1)
    async with client_for(app) as client:
        open_stream = asyncio.create_task(
            client.post("/api/alice/chat", json={"message": "a"}, headers={**auth(), **SSE})
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        second = await client.post(
            "/api/alice/chat", json={"message": "b"}, headers={**auth(), **SSE}
        )
        bobs_stream = asyncio.create_task(  # open while alice's is: per-user slots
            client.post("/api/bob/chat", json={"message": "b"}, headers={**auth("bob"), **SSE})
        )
        await until(lambda: context_of(app).limits.open_streams("bob") == 1)
        gate.set()
        bobs = await bobs_stream
        assert (await open_stream).status_code == 200
        again = await client.post(
            "/api/alice/chat", json={"message": "c"}, headers={**auth(), **SSE}
        )

    assert second.status_code == 429
    assert second.json() == {"detail": "too many open streams"}
    assert len([m for m in await stored_messages(app) if m.content == "b"]) == 1  # bob's only
    assert bobs.status_code == 200
    assert again.status_code == 200

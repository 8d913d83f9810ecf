"""One running turn per conversation, enforced by a lease row in the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chatrelay.store import transaction
from chatrelay.store.repositories import LeaseRepository
from chatrelay.store.tables import TurnLease, utcnow
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import context_of, stored_messages


async def test_a_second_turn_while_one_runs_is_409_busy(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=10_000)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        model.gate, model.reached, model._after = gate, asyncio.Event(), 1
        running = asyncio.create_task(
            client.post(
                "/api/alice/chat",
                json={"message": "two", "conversation_id": conversation_id},
                headers=auth(),
            )
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        busy = await client.post(
            "/api/alice/chat",
            json={"message": "three", "conversation_id": conversation_id},
            headers=auth(),
        )
        gate.set()
        assert (await running).status_code == 200
        after = await client.post(
            "/api/alice/chat",
            json={"message": "four", "conversation_id": conversation_id},
            headers=auth(),
        )

    assert busy.status_code == 409
    assert busy.json() == {"detail": "conversation busy"}
    assert int(busy.headers["retry-after"]) >= 1
    assert after.status_code == 200
    contents = [m.content for m in await stored_messages(app, conversation_id) if m.role == "user"]
    assert contents == ["one", "two", "four"]


async def test_ten_concurrent_turns_on_one_conversation_run_one_at_a_time(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "start"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/alice/chat",
                    json={"message": f"m{i}", "conversation_id": conversation_id},
                    headers=auth(),
                )
                for i in range(10)
            )
        )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409} and 200 in statuses
    stored = await stored_messages(app, conversation_id)
    # Every accepted turn wrote exactly one pair; every refused one wrote nothing.
    assert len(stored) == 2 + 2 * statuses.count(200)
    assert [m.role for m in stored] == ["user", "assistant"] * (len(stored) // 2)


async def test_a_crashed_holders_lease_expires(app_factory: AppFactory) -> None:
    app = await app_factory()
    sessions = context_of(app).sessions
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        async with transaction(sessions) as db:  # another process holds it, still alive
            leases = LeaseRepository(db)
            assert await leases.acquire(conversation_id, "other", timedelta(60), owner="alice")
        held = await client.post(
            "/api/alice/chat",
            json={"message": "two", "conversation_id": conversation_id},
            headers=auth(),
        )
        async with transaction(sessions) as db:  # ...then it dies: no renewal, expired
            lease = await db.get(TurnLease, conversation_id)
            assert lease is not None
            lease.expires_at = utcnow() - timedelta(seconds=1)
            db.add(lease)
        taken_over = await client.post(
            "/api/alice/chat",
            json={"message": "three", "conversation_id": conversation_id},
            headers=auth(),
        )

    assert held.status_code == 409
    assert taken_over.status_code == 200
    async with transaction(sessions) as db:
        assert await db.get(TurnLease, conversation_id) is None  # released by the finalizer


async def test_someone_elses_busy_conversation_is_404_not_409(app_factory: AppFactory) -> None:
    """The lease is taken by one statement that also checks the owner: a busy conversation
    of another user must still look missing, and its lease must stay with its holder."""
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=10_000)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        first = await client.post("/api/bob/chat", json={"message": "one"}, headers=auth("bob"))
        conversation_id = first.json()["conversation_id"]
        model.gate, model.reached, model._after = gate, asyncio.Event(), 1
        bobs_turn = asyncio.create_task(
            client.post(
                "/api/bob/chat",
                json={"message": "two", "conversation_id": conversation_id},
                headers=auth("bob"),
            )
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        async with transaction(context_of(app).sessions) as db:
            held = await db.get(TurnLease, conversation_id)
            holder = held.holder if held is not None else None
        intruder = await client.post(
            "/api/alice/chat",
            json={"message": "mine now", "conversation_id": conversation_id},
            headers=auth("alice"),
        )
        async with transaction(context_of(app).sessions) as db:
            still = await db.get(TurnLease, conversation_id)
        gate.set()
        assert (await bobs_turn).status_code == 200

    assert intruder.status_code == 404
    assert intruder.json() == {"detail": "conversation not found"}
    assert holder is not None and still is not None and still.holder == holder
    assert len(await stored_messages(app, conversation_id)) == 4

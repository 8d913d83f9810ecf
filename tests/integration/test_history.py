"""The history API: JSON clients list, reload, rename and delete their conversations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from chatrelay.store import transaction
from chatrelay.store.tables import TurnLease
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import context_of, stored_messages


async def _turn(
    client: httpx.AsyncClient, message: str, conversation_id: str | None = None, user: str = "alice"
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = await client.post(f"/api/{user}/chat", json=body, headers=auth(user))
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


async def test_conversations_are_listed_newest_first_in_pages(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        ids = [(await _turn(client, f"chat {n}"))["conversation_id"] for n in range(5)]
        await _turn(client, "not alice's", user="bob")
        first = await client.get("/api/alice/conversations?limit=2", headers=auth())
        second = await client.get(
            f"/api/alice/conversations?limit=2&after={first.json()['after']}", headers=auth()
        )
        last = await client.get(
            f"/api/alice/conversations?limit=2&after={second.json()['after']}", headers=auth()
        )

    pages = [first.json(), second.json(), last.json()]
    listed = [row["id"] for page in pages for row in page["data"]]
    assert listed == ids[::-1]
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert pages[2]["after"] is None
    row = pages[0]["data"][0]
    assert set(row) == {"id", "title", "created_at", "updated_at"}
    assert row["title"] == "chat 4"


async def test_messages_page_in_both_directions(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        conversation_id = (await _turn(client, "one"))["conversation_id"]
        for text in ("two", "three"):
            await _turn(client, text, conversation_id)
        url = f"/api/alice/conversations/{conversation_id}/messages"
        everything = (await client.get(url, headers=auth())).json()
        ids = [m["id"] for m in everything["data"]]
        forward = (await client.get(f"{url}?limit=4", headers=auth())).json()
        rest = (await client.get(f"{url}?after={forward['last_id']}", headers=auth())).json()
        latest = (await client.get(f"{url}?order=desc&limit=2", headers=auth())).json()
        older = (
            await client.get(f"{url}?limit=2&before={ids[4]}", headers=auth())
        ).json()  # the two just before the last turn, oldest first

    assert [m["role"] for m in everything["data"]] == ["user", "assistant"] * 3
    assert [m["content"] for m in everything["data"][::2]] == ["one", "two", "three"]
    assert everything["has_more"] is False
    assert [m["id"] for m in forward["data"]] == ids[:4] and forward["has_more"] is True
    assert [m["id"] for m in rest["data"]] == ids[4:] and rest["has_more"] is False
    assert [m["id"] for m in latest["data"]] == [ids[5], ids[4]] and latest["has_more"] is True
    assert [m["id"] for m in older["data"]] == ids[2:4] and older["has_more"] is True


async def test_a_message_carries_status_tool_calls_and_usage(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        reply = await _turn(client, "add a task to buy milk")
        url = f"/api/alice/conversations/{reply['conversation_id']}/messages"
        user_message, assistant = (await client.get(url, headers=auth())).json()["data"]

    assert user_message["role"] == "user" and user_message["usage"] is None
    assert user_message["tool_calls"] == []
    assert assistant["id"] == reply["message_id"]
    assert assistant["content"] == reply["message"]
    assert assistant["status"] == "completed"
    assert assistant["tool_calls"] == reply["tool_calls"]
    assert assistant["tool_calls"][0]["tool_name"] == "add_task"
    assert assistant["usage"] == reply["usage"]
    assert assistant["created_at"].endswith("Z") or "+00:00" in assistant["created_at"]


async def test_another_users_conversation_is_404_like_an_unknown_one(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        conversation_id = (await _turn(client, "mine"))["conversation_id"]
        answers = {}
        for name, cid in (("bob's view", conversation_id), ("unknown", "thr_nope")):
            base = f"/api/bob/conversations/{cid}"
            answers[name] = [
                (await client.get(f"{base}/messages", headers=auth("bob"))).status_code,
                (await client.patch(base, json={"title": "x"}, headers=auth("bob"))).status_code,
                (await client.delete(base, headers=auth("bob"))).status_code,
            ]
        as_alice = await client.get("/api/bob/conversations", headers=auth("alice"))
        bob_list = await client.get("/api/bob/conversations", headers=auth("bob"))
        bad_cursor = await client.get(
            f"/api/bob/conversations?after={conversation_id}", headers=auth("bob")
        )

    assert answers["bob's view"] == answers["unknown"] == [404, 404, 404]
    assert as_alice.status_code == 403
    assert bob_list.json() == {"data": [], "has_more": False, "after": None}
    assert bad_cursor.status_code == 400 and "after" in bad_cursor.json()["detail"]
    assert len(await stored_messages(app, conversation_id)) == 2  # nothing was deleted


async def test_bad_cursors_and_limits_are_4xx_with_a_detail(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        conversation_id = (await _turn(client, "hi"))["conversation_id"]
        url = f"/api/alice/conversations/{conversation_id}/messages"
        both = await client.get(f"{url}?after=msg_a&before=msg_b", headers=auth())
        unknown = await client.get(f"{url}?after=msg_nope", headers=auth())
        too_many = await client.get(f"{url}?limit=1000", headers=auth())
        bad_order = await client.get(f"{url}?order=sideways", headers=auth())

    assert both.status_code == 400 and "not both" in both.json()["detail"]
    assert unknown.status_code == 400 and "msg_nope" in unknown.json()["detail"]
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"][-1] == "limit"
    assert bad_order.status_code == 422


async def test_rename_sets_and_clears_the_title(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        conversation_id = (await _turn(client, "hi"))["conversation_id"]
        url = f"/api/alice/conversations/{conversation_id}"
        renamed = await client.patch(url, json={"title": "  Groceries "}, headers=auth())
        listed = await client.get("/api/alice/conversations", headers=auth())
        cleared = await client.patch(url, json={"title": None}, headers=auth())
        too_long = await client.patch(url, json={"title": "x" * 201}, headers=auth())
        unknown_field = await client.patch(url, json={"name": "x"}, headers=auth())

    assert renamed.status_code == 200 and renamed.json()["title"] == "Groceries"
    assert listed.json()["data"][0]["title"] == "Groceries"
    assert cleared.json()["title"] is None
    assert too_long.status_code == 422 and unknown_field.status_code == 422


async def test_delete_removes_the_conversation_its_messages_and_its_lease(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        conversation_id = (await _turn(client, "hi"))["conversation_id"]
        await _turn(client, "again", conversation_id)
        async with transaction(context_of(app).sessions) as db:  # a lease left by a dead holder
            expired = datetime(2000, 1, 1, tzinfo=UTC)
            db.add(TurnLease(conversation_id=conversation_id, holder="gone", expires_at=expired))
        deleted = await client.delete(f"/api/alice/conversations/{conversation_id}", headers=auth())
        again = await client.delete(f"/api/alice/conversations/{conversation_id}", headers=auth())
        listed = await client.get("/api/alice/conversations", headers=auth())
        async with transaction(context_of(app).sessions) as db:
            leases = (await db.exec(sa.text("SELECT count(*) FROM turn_leases"))).scalar()

    assert deleted.status_code == 204 and deleted.content == b""
    assert again.status_code == 404
    assert listed.json()["data"] == []
    assert await stored_messages(app, conversation_id) == []
    assert leases == 0


async def test_delete_is_refused_while_a_turn_runs(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=1, gate=gate)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        gate.set()  # the first turn runs through
        conversation_id = (await _turn(client, "hi"))["conversation_id"]
        gate.clear()
        model.reached.clear()
        url = f"/api/alice/conversations/{conversation_id}"
        running = asyncio.create_task(_turn(client, "wait", conversation_id))
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        refused = await client.delete(url, headers=auth())
        gate.set()
        await running
        deleted = await client.delete(url, headers=auth())

    assert refused.status_code == 409 and "running" in refused.json()["detail"]
    assert deleted.status_code == 204


async def test_the_history_api_is_documented_with_examples(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/api/{user_id}/conversations"]) == {"get"}
    assert {"patch", "delete"} <= set(paths["/api/{user_id}/conversations/{conversation_id}"])
    assert "get" in paths["/api/{user_id}/conversations/{conversation_id}/messages"]
    schemas = spec["components"]["schemas"]
    for name in ("ConversationOut", "MessageOut", "ConversationPatch"):
        assert schemas[name].get("examples"), name

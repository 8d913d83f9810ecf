"""The chat turn over `GET /api/{user_id}/ws`, against a real `chatrelay serve` on SQLite and
on Postgres, with the real `websockets` client: the same events as the SSE stream, several
turns on one socket, resume, cancel, exactly-once ids, and a socket that goes away."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chatrelay.config import Settings
from chatrelay.tokens import mint_token
from tests.golden import Normaliser
from tests.integration.processes import SECRET, Server
from tests.sse import Frame, done_item, kinds, parse_sse, turn_kinds, validate_chatkit
from tests.ws import Socket, events_of, open_socket

pytestmark = pytest.mark.slow  # a real server process

LONG = " ".join(f"word{i}" for i in range(60))  # ~70 deltas, 10 ms apart


def new_user() -> tuple[str, str]:
    """A user of this test alone (the server is shared by the module), with a token."""
    user = f"u{uuid.uuid4().hex[:10]}"
    return user, mint_token(Settings(auth_secret=SECRET, _env_file=None), user)  # type: ignore[call-arg]


def sse_turn(server: Server, user: str, token: str, body: dict[str, Any]) -> list[Frame]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    response = httpx.post(f"{server.url}/api/{user}/chat", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    return frames


def normalised(frames: list[Frame]) -> list[Any]:
    return Normaliser()([[frame.id, frame.data] for frame in frames])


async def thread_items(socket: Socket, conversation_id: str) -> list[dict[str, Any]]:
    answer = await socket.request(
        "get", {"type": "threads.get_by_id", "params": {"thread_id": conversation_id}}
    )
    assert answer["type"] == "result", answer
    items: list[dict[str, Any]] = answer["body"]["items"]["data"]
    return items


@pytest.mark.parametrize("message", ["Hello there", "show my tasks"], ids=["plain", "tool"])
async def test_a_turn_streams_the_events_of_its_sse_stream(ws_server: Server, message: str) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": message, "ref": "turn-1"})
        frames = await socket.stream("turn-1")
    over_ws = events_of(frames)
    over_sse = sse_turn(ws_server, *new_user(), {"message": message})

    assert normalised(over_ws) == normalised(over_sse)
    assert [frame["id"] for frame in frames] == list(range(len(frames)))  # the SSE ids
    assert {frame["conversation_id"] for frame in frames} == {over_ws[0].data["thread"]["id"]}
    if message == "show my tasks":  # the tool call is shown before the reply's text
        assert kinds(over_ws)[2:4] == ["progress_update", "thread.item.added"]
        assert over_ws[3].data["item"]["type"] == "workflow"


async def test_two_turns_run_at_once_on_one_socket(ws_server: Server) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "a"})
        await socket.send({"type": "chat", "message": LONG, "ref": "b"})
        a = await socket.stream("a")
        b = await socket.stream("b")
        refs = [frame["ref"] for frame in socket.received]
    assert refs.index("b") < len(refs) - 1 - refs[::-1].index("a")  # b began before a ended
    for frames in (a, b):
        events = events_of(frames)
        assert kinds(events) == turn_kinds(len(events) - 7)
        assert [frame["id"] for frame in frames] == list(range(len(frames)))
    assert a[0]["conversation_id"] != b[0]["conversation_id"]


async def test_one_turn_per_conversation_and_a_stranger_sees_nothing(ws_server: Server) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": "first", "ref": "first"})
        conversation_id = (await socket.stream("first"))[0]["conversation_id"]
        follow_up = {"type": "chat", "message": LONG, "conversation_id": conversation_id}
        await socket.send({**follow_up, "ref": "running"})
        await socket.stream("running", events=1)  # running now
        busy = await socket.request("busy", follow_up)
        rest = await socket.stream("running")
    assert (busy["type"], busy["status"], busy["retry_after"]) == ("error", 409, 1)
    assert busy["detail"] == "conversation busy"
    assert busy["correlation_id"]
    assert kinds(events_of(rest))[-1] == "thread.item.done"

    stranger, strangers_token = new_user()
    async with open_socket(ws_server.url, stranger, strangers_token) as socket:
        theirs = await socket.request("x", {**follow_up, "message": "mine now?"})
        missing = await socket.request("y", {**follow_up, "conversation_id": "thr_missing"})
    assert theirs["status"] == missing["status"] == 404
    assert theirs["detail"] == missing["detail"]


async def test_resume_frames_give_the_events_after_an_id_then_the_live_rest(
    ws_server: Server,
) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "turn"})
        head = await socket.stream("turn", events=5)
        conversation_id = head[0]["conversation_id"]
        async with open_socket(ws_server.url, user, token) as other:
            await other.send(
                {"type": "resume", "conversation_id": conversation_id, "last_event_id": 2}
            )
            resumed = await other.stream(None)  # no ref: answers carry `"ref": null`
            again = {"type": "resume", "conversation_id": conversation_id, "ref": "all"}
            await other.send({**again, "last_event_id": "-1"})  # as a header would carry it
            everything = await other.stream("all")
            bad_id = await other.request("bad", {**again, "last_event_id": "soon"})
            stranger = await other.request("404", {**again, "conversation_id": "thr_nope"})
        original = head + await socket.stream("turn")
    assert [f["event"] for f in resumed] == [f["event"] for f in original[3:]]
    assert [f["id"] for f in resumed] == list(range(3, len(original)))
    assert everything == [{**frame, "ref": "all"} for frame in original]
    assert (bad_id["status"], stranger["status"]) == (400, 404)


async def test_a_cancel_frame_stops_the_turn_and_keeps_the_partial_reply(
    ws_server: Server,
) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "turn"})
        head = await socket.stream("turn", events=6)
        conversation_id = head[0]["conversation_id"]
        stop = {"type": "cancel", "conversation_id": conversation_id}
        stopped = await socket.request("stop", stop)
        tail = await socket.stream("turn")
        nothing_running = await socket.request("again", stop)
        stranger = await socket.request("404", {**stop, "conversation_id": "thr_nope"})
        items = await thread_items(socket, conversation_id)
    body = stopped["body"]
    assert (body["conversation_id"], body["status"]) == (conversation_id, "cancelled")
    reply = [item for item in items if item["type"] == "assistant_message"]
    assert [item["id"] for item in reply] == [body["message_id"]]
    partial = reply[0]["content"][0]["text"]
    assert partial and len(partial) < len(LONG)
    assert done_item(events_of(head + tail)) == reply[0]  # the stream ends with what was kept
    assert (nothing_running["status"], stranger["status"]) == (409, 404)


async def test_a_request_id_is_served_once(ws_server: Server) -> None:
    user, token = new_user()
    body = {"type": "chat", "message": LONG, "request_id": "req-1"}
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({**body, "ref": "first"})
        head = await socket.stream("first", events=3)
        await socket.send({**body, "ref": "attached"})  # while it runs: the same turn
        first = head + await socket.stream("first")
        attached = await socket.stream("attached")
        await socket.send({**body, "ref": "stored"})  # once committed: its stored reply
        stored = events_of(await socket.stream("stored"))
        conversation_id = first[0]["conversation_id"]
        items = await thread_items(socket, conversation_id)
    assert [f["event"] for f in attached] == [f["event"] for f in first]  # from the start
    assert [item["type"] for item in items] == ["user_message", "assistant_message"]
    assert [event.data["item"] for event in stored] == items  # no second model run


async def test_a_closed_socket_is_not_a_stop(ws_server: Server) -> None:
    user, token = new_user()
    async with open_socket(ws_server.url, user, token) as socket:
        await socket.send({"type": "chat", "message": LONG, "ref": "turn"})
        head = await socket.stream("turn", events=5)
    # Gone mid-turn. The turn runs on: its events follow from the log, and it is committed.
    conversation_id = head[-1]["conversation_id"]
    async with open_socket(ws_server.url, user, token) as socket:
        resume = {"type": "resume", "conversation_id": conversation_id, "last_event_id": 4}
        await socket.send({**resume, "ref": "rest"})
        rest = events_of(await socket.stream("rest"))
        items = await thread_items(socket, conversation_id)
    assert kinds(rest)[-2:] == ["thread.item.done", "thread.updated"]
    assert [item["type"] for item in items] == ["user_message", "assistant_message"]
    assert items[1]["content"][0]["text"].endswith(LONG)
    assert rest[-2].data["item"]["id"] == items[1]["id"]

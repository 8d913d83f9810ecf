"""A rolling deploy: two instances on one Postgres and one Redis, and SIGTERM to A while
streams and JSON turns are in flight on it (issue 14).

Each stream read from A either completes there, or ends cleanly there and resumes exactly on
B: what A sent plus B's resume after A's last id is, frame for frame, the whole stream as B
replays it. Turns that fit in the grace complete; the rest end with their final events (the
partial reply, `incomplete`, then an `error`); a reader on A of a turn running on B is closed
cleanly and picks up on B. Every turn is stored exactly once, and A is gone within the
grace + 2 s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from chatrelay.agents.offline import REPLY_PREFIX
from tests.integration.instances import cluster_env, instances
from tests.integration.processes import Server, cli_token
from tests.integration.test_instances_resume import frame_data, frame_id, frames, headers

pytestmark = pytest.mark.slow

GRACE = 3.0
DELAY = 0.05
SHORT = 20  # words: ~1.4 s with the reply's prefix, inside the grace
LONG = 150  # ~8 s: past it
EXIT_ALLOWANCE = 2.0


def words(count: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(count))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    paced = {"OFFLINE_DELAY_SECONDS": str(DELAY), "SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    with cluster_env(tmp_path, **paced) as env:
        yield env


@dataclass
class Reader:
    """One SSE response read to its end in a task; `body` grows as it comes in."""

    request: httpx.Request
    message: str = ""
    """What the user said (a chat turn's reader)."""
    body: str = ""
    status: int = 0
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, client: httpx.AsyncClient) -> Reader:
        self.task = asyncio.create_task(self._read(client))
        return self

    async def _read(self, client: httpx.AsyncClient) -> None:
        response = await client.send(self.request, stream=True)
        self.status = response.status_code
        try:
            async for text in response.aiter_text():
                self.body += text
                self.changed.set()
        finally:
            await response.aclose()
            self.changed.set()

    async def until(self, deltas: int) -> None:
        """Until `deltas` text deltas have come in (the turn runs and streams)."""
        async with asyncio.timeout(30):
            while self.body.count("text_delta") < deltas:
                self.changed.clear()
                await self.changed.wait()

    async def frames(self) -> list[str]:
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)  # a cut (not a clean end) raises here
        assert self.status == 200
        return frames(self.body)

    def conversation_id(self) -> str:
        created = frame_data(frames(self.body)[0])
        assert created["type"] == "thread.created"
        thread = created["thread"]
        assert isinstance(thread, dict)
        return str(thread["id"])


def chat_stream(client: httpx.AsyncClient, server: Server, token: str, message: str) -> Reader:
    request = client.build_request(
        "POST", f"{server.url}/api/alice/chat", json={"message": message}, headers=headers(token)
    )
    return Reader(request, message).start(client)


def follow(
    client: httpx.AsyncClient, server: Server, token: str, conversation_id: str, after: int
) -> Reader:
    url = f"{server.url}/api/alice/conversations/{conversation_id}/stream"
    return Reader(client.build_request("GET", url, headers=headers(token, after))).start(client)


def reply_text(stream: list[str]) -> str:
    deltas = [frame_data(frame) for frame in stream]
    return "".join(
        str(update["delta"])
        for data in deltas
        if isinstance(update := data.get("update"), dict)
        and update["type"] == "assistant_message.content_part.text_delta"
    )


async def leases(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM turn_leases"))
    finally:
        await conn.close()


async def stored(database_url: str, conversation_id: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT role, status, content FROM messages WHERE conversation_id = $1 "
            "ORDER BY created_at",
            conversation_id,
        )
    finally:
        await conn.close()
    return [(row["role"], row["status"], row["content"]) for row in rows]


async def test_sigterm_drains_a_with_nothing_lost_or_duplicated_and_b_resumes_exactly(
    env: dict[str, str], tmp_path: Path
) -> None:
    database = env["DATABASE_URL"]
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=60) as client:
            # Two conversations for the JSON turns: an existing one's turn holds a lease,
            # so Postgres tells when they run.
            json_conversations = [
                (
                    await client.post(
                        f"{b.url}/api/alice/chat", json={"message": "hi"}, headers=auth
                    )
                ).json()["conversation_id"]
                for _ in range(2)
            ]
            on_b = chat_stream(client, b, token, words(2 * LONG, "b"))  # outlasts A
            await on_b.until(1)
            follower = follow(client, a, token, on_b.conversation_id(), -1)  # A reads B's turn
            longs = [chat_stream(client, a, token, words(LONG, f"l{n}_")) for n in range(2)]

            async def json_turn(text: str, conversation_id: str) -> httpx.Response:
                body = {"message": text, "conversation_id": conversation_id}
                return await client.post(f"{a.url}/api/alice/chat", json=body, headers=auth)

            json_long = asyncio.create_task(json_turn(words(LONG, "jl"), json_conversations[0]))
            for reader in (follower, *longs):
                await reader.until(3)
            shorts = [chat_stream(client, a, token, words(SHORT, f"s{n}_")) for n in range(2)]
            json_short = asyncio.create_task(json_turn(words(SHORT, "js"), json_conversations[1]))
            for reader in shorts:
                await reader.until(3)
            async with asyncio.timeout(30):
                # Both JSON turns run on A once they hold their leases: nothing announces it.
                while await leases(database) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            whole_short = SHORT + len(REPLY_PREFIX.split())  # deltas: one a word
            assert all(r.body.count("text_delta") < whole_short for r in shorts), "too late"

            a.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            ready = await client.get(f"{a.url}/readyz")
            while ready.status_code != 503 and time.monotonic() - signalled < 1:
                ready = await client.get(f"{a.url}/readyz")
            assert ready.status_code == 503  # the balancer stops routing to A at once
            assert (await client.get(f"{b.url}/readyz")).status_code == 200
            exited = await asyncio.to_thread(a.process.wait, 30)
            exit_seconds = time.monotonic() - signalled
            assert exited in (0, -signal.SIGTERM), a.log.read_text()
            assert exit_seconds < GRACE + EXIT_ALLOWANCE, f"{exit_seconds:.2f} s"

            await check_streams(client, b, token, shorts, longs, follower, on_b)
            await check_json(await json_short, await json_long)
        await check_stored(database, shorts, longs, on_b, json_conversations)


async def resumed_on(
    client: httpx.AsyncClient, server: Server, token: str, conversation_id: str, after: int
) -> list[str]:
    return await follow(client, server, token, conversation_id, after).frames()


async def check_streams(
    client: httpx.AsyncClient,
    b: Server,
    token: str,
    shorts: list[Reader],
    longs: list[Reader],
    follower: Reader,
    on_b: Reader,
) -> None:
    """A's part plus B's resume after A's last id is exactly the whole stream, as B has it."""
    for reader in (*shorts, *longs, follower):
        seen = await reader.frames()
        conversation_id = reader.conversation_id()
        whole = await resumed_on(client, b, token, conversation_id, -1)
        rest = await resumed_on(client, b, token, conversation_id, frame_id(seen[-1]))
        assert seen + rest == whole
        middle = frame_id(whole[len(whole) // 2])
        assert await resumed_on(client, b, token, conversation_id, middle) == [
            f for f in whole if frame_id(f) > middle
        ]
        last = frame_data(whole[-1])
        if reader in shorts:  # completed on A, all of it
            assert rest == [] and last["type"] == "thread.updated"  # the new title, last
            assert reply_text(seen).split() == [*REPLY_PREFIX.split(), *reader.message.split()]
        elif reader in longs:  # past the grace: the final events, on A itself
            assert rest == [] and last["type"] == "error"
            assert "shutting down" in str(last["message"])
            done = [frame_data(f) for f in seen if '"type":"thread.item.done"' in f]
            assert done[-1]["item"]["type"] == "assistant_message"  # type: ignore[index]
        else:  # a reader of B's turn: closed cleanly by A, picked up on B
            assert rest and "error" not in {frame_data(f)["type"] for f in seen}
            assert whole == await on_b.frames()  # the very stream B's own reader got


async def check_json(short: httpx.Response, long: httpx.Response) -> None:
    assert short.status_code == 200, short.text
    assert short.json()["message"].split() == [*REPLY_PREFIX.split(), *words(SHORT, "js").split()]
    assert long.status_code == 503, long.text
    assert long.headers["content-type"] == "application/json"
    assert long.headers["Retry-After"] == "1"
    assert long.json() == {
        "detail": "the server is shutting down, please retry",
        "correlation_id": long.headers["X-Request-ID"],
    }


async def check_stored(
    database: str,
    shorts: list[Reader],
    longs: list[Reader],
    on_b: Reader,
    json_conversations: list[str],
) -> None:
    """Each turn once: its user message and its reply, as the stream showed it."""
    for reader, status in [
        *((r, "completed") for r in shorts),
        *((r, "incomplete") for r in longs),
        (on_b, "completed"),
    ]:
        rows = await stored(database, reader.conversation_id())
        text = reply_text(frames(reader.body))
        assert [(role, s) for role, s, _ in rows] == [("user", "completed"), ("assistant", status)]
        assert rows[1][2] == text
    json_long, json_short = [await stored(database, c) for c in json_conversations]
    assert [(role, s) for role, s, _ in json_long][2:] == [
        ("user", "completed"),
        ("assistant", "incomplete"),
    ]
    assert len(json_long) == 4 and len(json_short) == 4
    assert json_short[3][1] == "completed"

"""SSE transcripts end to end: golden streams, record -> replay -> record, check, the CLI,
and TRANSCRIPT_DIR. Nothing here may ever write a bearer token to a file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from chatrelay.cli import main
from chatrelay.server import create_app
from chatrelay.transcripts import (
    REDACTED,
    RecordedRequest,
    Transcript,
    chat_request,
    check,
    dump,
    load,
    problems,
    record,
    replay_app,
    save,
)
from tests.conftest import TEST_SECRET, AppFactory, Database, auth, client_for, make_settings
from tests.fakes.models import FaultyModel, SingleModelProvider, connection_error
from tests.integration.processes import CLI, free_port
from tests.transcripts import assert_golden, record_exchange, without_timing

CHAT = "/api/alice/chat"


# Golden transcripts (tests/transcripts/*.json), on both database backends.


async def test_golden_plain_turn(app_factory: AppFactory) -> None:
    async with client_for(await app_factory()) as client:
        transcript = await record_exchange(client, "POST", CHAT, body={"message": "Hello there"})
    assert_golden(transcript, "plain_turn")


async def test_golden_tool_turn(app_factory: AppFactory) -> None:
    async with client_for(await app_factory()) as client:
        body = {"message": "add task buy milk"}
        transcript = await record_exchange(client, "POST", CHAT, body=body)
    assert_golden(transcript, "tool_turn")


async def test_golden_model_error(app_factory: AppFactory) -> None:
    model = FaultyModel(after_deltas=2, error=connection_error())
    async with client_for(await app_factory(SingleModelProvider(model))) as client:
        body = {"message": "this one breaks"}
        transcript = await record_exchange(client, "POST", CHAT, body=body)
    assert_golden(transcript, "model_error")


async def test_golden_cancelled_turn(app_factory: AppFactory) -> None:
    model = FaultyModel(after_deltas=3)
    async with client_for(await app_factory(SingleModelProvider(model))) as client:
        setup = await client.post(CHAT, json={"message": "setup"}, headers=auth())
        conversation_id = setup.json()["conversation_id"]
        model.reached, model.gate = asyncio.Event(), asyncio.Event()  # the gate never opens
        body = {"message": "a long answer please", "conversation_id": conversation_id}
        recording = asyncio.create_task(record_exchange(client, "POST", CHAT, body=body))
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        cancel = f"/api/alice/conversations/{conversation_id}/cancel"
        assert (await client.post(cancel, headers=auth())).status_code == 200
        transcript = await recording
    assert_golden(transcript, "cancelled_turn")


async def test_golden_resumed_turn(app_factory: AppFactory) -> None:
    async with client_for(await app_factory()) as client:
        first = await record_exchange(client, "POST", CHAT, body={"message": "remember this"})
        thread = json.loads(first.data_events()[0].data or "{}")["thread"]["id"]
        stream = f"/api/alice/conversations/{thread}/stream"
        transcript = await record_exchange(client, "GET", stream, headers={"last-event-id": "4"})
    assert_golden(transcript, "resumed_turn")


# Round trips, check, secrets. SQLite only: nothing here depends on the backend.

sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@sqlite_only
async def test_record_validate_replay_record_gives_the_same_transcript(
    app_factory: AppFactory,
) -> None:
    async with client_for(await app_factory()) as client:
        original = await record_exchange(client, "POST", CHAT, body={"message": "add task tea"})
    assert problems(original) == []
    assert original.request is not None

    replay = replay_app([original], speed=0)
    async with client_for(replay) as client:
        again = await record(
            client, original.request, authorization=auth()["Authorization"], user="alice"
        )
        raw = await client.post(CHAT, json={"message": "anything"})

    assert without_timing(again) == without_timing(original)
    assert raw.content == original.to_sse_bytes()  # the replayed bytes are the recorded ones
    assert Transcript.from_sse_bytes(raw.content).to_sse_bytes() == raw.content


async def test_replay_keeps_the_timing_scaled_by_speed_and_serves_turns_in_order() -> None:
    request = RecordedRequest(method="GET", path="/s")
    first = Transcript.from_sse_bytes(b"data: a\n\ndata: b\n\n", request=request)
    first.events[1].offset_ms = 400
    second = Transcript.from_sse_bytes(b"data: c\n\n", request=request)
    for speed, at_least, at_most in ((4.0, 0.09, 0.4), (0.0, 0.0, 0.05)):
        async with client_for(replay_app([first, second], speed=speed)) as client:
            started = time.monotonic()
            one = await client.get("/s?ignored=1")
            elapsed = time.monotonic() - started
            two, three = await client.get("/s"), await client.get("/s")
            missing = await client.post("/s")
        assert at_least <= elapsed <= at_most, (speed, elapsed)
        assert [one.content, two.content, three.content] == [
            first.to_sse_bytes(),
            second.to_sse_bytes(),
            first.to_sse_bytes(),
        ]
        assert missing.status_code == 404 and missing.json()["recorded"] == ["GET /s"]


@sqlite_only
async def test_check_passes_on_an_unchanged_server_and_diffs_a_changed_event(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    token = auth()["Authorization"]
    async with client_for(app) as client:
        recorded = await record_exchange(client, "POST", CHAT, body={"message": "Hello there"})
        unchanged = await check(client, recorded, authorization=token, name="hello.json")

        tampered = recorded.model_copy(deep=True)
        delta = next(e for e in tampered.data_events() if '"delta":"chatrelay' in (e.data or ""))
        delta.data = (delta.data or "").replace('"delta":"chatrelay', '"delta":"chatrolay')
        changed = await check(client, tampered, authorization=token, name="hello.json")

    assert unchanged.same, unchanged.diff
    assert not changed.same
    assert changed.diff.splitlines()[:3] == [
        "--- recorded: hello.json",
        "+++ now",
        "@@ -97,7 +97,7 @@ event 6",
    ]
    assert '-    "delta": "chatrolay\'s "' in changed.diff
    assert '+    "delta": "chatrelay\'s "' in changed.diff

    # What --update would write keeps the recorded ids: only the changed event differs.
    def thread(t: Transcript) -> str:
        return str(json.loads(t.data_events()[0].data or "{}")["thread"]["id"])

    assert thread(changed.actual) == thread(recorded)


@sqlite_only
async def test_a_second_turn_is_checked_in_the_thread_the_check_created(
    app_factory: AppFactory,
) -> None:
    token = auth()["Authorization"]
    async with client_for(await app_factory()) as client:
        first = await record_exchange(client, "POST", CHAT, body={"message": "one"})
        thread = json.loads(first.data_events()[0].data or "{}")["thread"]["id"]
        body = {"message": "two", "conversation_id": thread}
        second = await record_exchange(client, "POST", CHAT, body=body)
    async with client_for(await app_factory()) as fresh:  # a new database: no such thread
        ids: dict[str, str] = {}
        results = [
            await check(fresh, t, authorization=token, name=n, ids=ids)
            for t, n in ((first, "one"), (second, "two"))
        ]
    assert [r.diff for r in results] == ["", ""]


@sqlite_only
async def test_transcript_dir_records_every_stream_without_the_token(
    app_factory: AppFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "recorded"
    app = await app_factory(transcript_dir=directory)
    headers = {**auth(), "Accept": "text/event-stream", "Cookie": "session=s3cret"}
    async with client_for(app) as client:
        streamed = await client.post(CHAT, json={"message": "Hello there"}, headers=headers)
        await client.post(CHAT, json={"message": "as JSON"}, headers=auth())  # not a stream

    files = sorted(directory.glob("*.json"))
    assert len(files) == 1
    text = files[0].read_text()
    assert auth()["Authorization"].split()[1] not in text and "s3cret" not in text
    assert "Bearer" not in text
    transcript = load(files[0])
    assert transcript.request is not None
    assert transcript.request.headers["authorization"] == REDACTED
    assert transcript.request.headers["cookie"] == REDACTED
    assert transcript.request.body == {"message": "Hello there"}
    assert transcript.user == "alice"
    assert transcript.to_sse_bytes() == streamed.content  # exactly what the client received
    assert problems(transcript) == []


# The CLI, against real sockets.


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """chatrelay on a real port, in a thread of this process (quicker than a subprocess)."""
    database = Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", None)
    port = free_port()
    config = uvicorn.Config(create_app(make_settings(database)), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    return tmp_path


def test_cli_record_validate_check_update(
    live_server: str, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = cli_env / "one.json", cli_env / "two.json"
    base = ["transcript", "record", "--url", live_server, "--user", "alice"]
    assert main([*base, "--message", "Hello there", "-o", str(one)]) == 0
    envelope = cli_env / "create.json"
    message = {
        "content": [{"type": "input_text", "text": "Hi from ChatKit"}],
        "attachments": [],
        "inference_options": {},
    }
    envelope.write_text(json.dumps({"type": "threads.create", "params": {"input": message}}))
    assert main([*base, "--envelope", str(envelope), "-o", str(two)]) == 0
    assert TEST_SECRET not in one.read_text() + two.read_text()
    assert main(["transcript", "validate", str(one), str(two)]) == 0

    check = ["transcript", "check", str(one), str(two), "--url", live_server]
    assert main(check) == 0
    capsys.readouterr()
    tampered = load(one)  # a deliberately changed event: the first text delta
    event = next(e for e in tampered.events if '"delta":"This "' in (e.data or ""))
    event.data, event.raw = (str(x).replace("This", "That") for x in (event.data, event.raw))
    save(tampered, one)
    assert main(check) == 1
    output = capsys.readouterr().out
    assert '-    "delta": "That "' in output and '+    "delta": "This "' in output
    assert "differs" in output  # the summary table
    assert main([*check, "--update"]) == 0
    assert main(check) == 0


def test_cli_validate_reports_an_invalid_event(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_env / "bad.sse"
    path.write_bytes(b'id: 0\ndata: {"type":"thread.item.done"}\n\n')
    assert main(["transcript", "validate", str(path)]) == 1
    assert "event #0 (id 0): thread.item.done.item: Field required" in capsys.readouterr().out


def test_cli_replay_serves_a_recording_to_any_sse_client(live_server: str, cli_env: Path) -> None:
    recorded, again = cli_env / "turn.json", cli_env / "again.json"
    base = ["transcript", "record", "--user", "alice", "--message", "Hello there"]
    assert main([*base, "--url", live_server, "-o", str(recorded)]) == 0
    port = free_port()
    replay = subprocess.Popen(
        [CLI, "transcript", "replay", str(recorded), "--port", str(port), "--speed", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and replay.poll() is None, "replay died"
                time.sleep(0.1)
        assert main([*base, "--url", url, "-o", str(again)]) == 0
    finally:
        replay.terminate()
        replay.wait(timeout=10)
    assert without_timing(load(again)) == without_timing(load(recorded))


def test_a_transcript_file_round_trips(tmp_path: Path) -> None:
    transcript = Transcript.from_sse_bytes(b"id: 1\r\ndata: {}\r\n\r\n: ping\r\n\r\n")
    transcript.request = chat_request("alice", "hi")
    save(transcript, tmp_path / "t.json")
    assert load(tmp_path / "t.json") == transcript
    assert dump(load(tmp_path / "t.json")) == (tmp_path / "t.json").read_text()

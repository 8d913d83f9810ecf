"""Issue 20, "the first hour": a `chatrelay` command checks its inputs before anything with a
side effect, and says what is wrong in one line (`chatrelay: error: ...`, exit 2), never a
traceback. `transcript record -o turns/01.json` used to run the turn (adding a task on the
server) and then crash on the missing folder; now the folder is made first, and an output it
cannot write, a missing input, a bad URL or a missing secret are refused before any request.

Each command runs as a real process, against a fake server that only counts what reaches it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chatrelay.transcripts import RecordedResponse, Transcript, chat_request, save
from tests.integration.processes import CLI, Server, free_port

pytestmark = pytest.mark.slow


class _Counting(BaseHTTPRequestHandler):
    """Any request at all is one too many here: count it, answer 500."""

    seen: list[str]

    def _any(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Counting,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refusal, after checking it is nothing more."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chatrelay: error: "), lines[0]
    return lines[0].removeprefix("chatrelay: error: ")


def _a_recording(path: Path) -> Path:
    transcript = Transcript(
        user="alice",
        request=chat_request("alice", "hi"),
        response=RecordedResponse(status=200, headers={"content-type": "text/event-stream"}),
    )
    save(transcript, path)
    return path


# Each case: the arguments (given the fake server's URL and the folder the command runs in),
# and a piece of the one line that must say what is wrong.
Case = Callable[[str, Path], list[str]]
RECORD = ["transcript", "record", "--user", "alice"]

CASES: dict[str, tuple[Case, str]] = {
    "output under a file, not a folder": (
        lambda url, d: [*RECORD, "--url", url, "--message", "hi", "-o", f"{d}/file/x/01.json"],
        "cannot create the folder",
    ),
    "output is a directory": (
        lambda url, d: [*RECORD, "--url", url, "--message", "hi", "-o", str(d)],
        "is a directory",
    ),
    "output cannot be written": (
        lambda url, d: [*RECORD, "--url", url, "--message", "hi", "-o", "/proc/version"],
        "/proc/version: cannot write to it",
    ),
    "envelope missing": (
        lambda url, d: [*RECORD, "--url", url, "--envelope", "nope.json", "-o", "out.json"],
        "--envelope nope.json: cannot read it: No such file or directory",
    ),
    "envelope not JSON": (
        lambda url, d: [*RECORD, "--url", url, "--envelope", "file", "-o", "out.json"],
        "--envelope file is not JSON",
    ),
    "envelope not a ChatKit request": (
        lambda url, d: [*RECORD, "--url", url, "--envelope", "list.json", "-o", "out.json"],
        "is not a ChatKit request",
    ),
    "url without a scheme": (
        lambda url, d: (
            [*RECORD, "--url", url.removeprefix("http://"), "--message", "hi"] + ["-o", "out.json"]
        ),
        "is not an http(s) URL",
    ),
    "url of another scheme": (
        lambda url, d: (
            [*RECORD, "--url", url.replace("http", "ftp"), "--message", "hi"] + ["-o", "out.json"]
        ),
        "is not an http(s) URL",
    ),
    "empty user": (
        lambda url, d: (
            ["transcript", "record", "--user", "", "--url", url, "--message", "hi"]
            + ["-o", "out.json"]
        ),
        "--user '': a user id is not empty",
    ),
    "no output named (usage)": (
        lambda url, d: [*RECORD, "--url", url, "--message", "hi"],
        "the following arguments are required: -o/--output "
        "(`chatrelay transcript record --help` shows the usage)",
    ),
    "check: transcript missing": (
        lambda url, d: ["transcript", "check", "recorded.json", "nope.json", "--url", url],
        "nope.json: cannot load it: No such file or directory",
    ),
    "check: not a transcript": (
        lambda url, d: ["transcript", "check", "recorded.json", "list.json", "--url", url],
        "list.json: cannot load it: not a transcript",
    ),
    "check: a raw stream": (
        lambda url, d: ["transcript", "check", "raw.sse", "--url", url],
        "raw.sse is a raw stream",
    ),
    "check: bad url": (
        lambda url, d: ["transcript", "check", "recorded.json", "--url", "127.0.0.1"],
        "is not an http(s) URL",
    ),
    "replay: transcript missing": (
        lambda url, d: ["transcript", "replay", "recorded.json", "nope.json"],
        "nope.json: cannot load it",
    ),
    "replay: negative speed": (
        lambda url, d: ["transcript", "replay", "recorded.json", "--speed", "-1"],
        "--speed -1: 0 (instant) or more",
    ),
    "validate: transcript missing": (
        lambda url, d: ["transcript", "validate", "nope.sse"],
        "nope.sse: cannot read it: No such file or directory",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_bad_input_is_one_line_and_nothing_reaches_the_server(
    case: tuple[Case, str],
    counting_server: tuple[str, list[str]],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    url, seen = counting_server
    (tmp_path / "file").write_text("not a folder, not JSON")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "raw.sse").write_bytes(b"id: 0\ndata: {}\n\n")
    _a_recording(tmp_path / "recorded.json")
    before = sorted(tmp_path.rglob("*"))
    arguments, expected = case
    line = _refusal(_run(tmp_path, env, *arguments(url, tmp_path)))
    assert expected in line
    assert seen == []
    assert sorted(tmp_path.rglob("*")) == before  # no transcript, not even an empty one


def test_no_secret_is_refused_before_any_request(
    counting_server: tuple[str, list[str]], env: dict[str, str], tmp_path: Path
) -> None:
    url, seen = counting_server
    bare = {name: value for name, value in env.items() if name != "AUTH_SECRET"}
    _a_recording(tmp_path / "recorded.json")
    record = [*RECORD, "--url", url, "--message", "hi", "-o", "turns/01.json"]
    assert _refusal(_run(tmp_path, bare, *record)).startswith("AUTH_SECRET is not set")
    check = ["transcript", "check", "recorded.json", "--url", url]
    assert _refusal(_run(tmp_path, bare, *check)).startswith("AUTH_SECRET is not set")
    assert seen == []
    assert not (tmp_path / "turns").exists()


def test_a_server_that_is_not_there_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = _refusal(_run(tmp_path, env, *RECORD, "--url", url, "--message", "hi", "-o", "a.json"))
    assert line.startswith(f"cannot reach {url}: ")
    assert not (tmp_path / "a.json").exists()


def test_record_makes_the_folders_of_its_output(
    serve: Callable[[], Server], env: dict[str, str], tmp_path: Path
) -> None:
    """The regression itself: `-o turns/01.json` in a folder that does not exist."""
    server = serve()
    work = tmp_path / "work"
    work.mkdir()
    record = [*RECORD, "--url", server.url, "--message", "hello", "-o", "turns/a/01.json"]
    result = _run(work, env, *record)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    recorded = json.loads((work / "turns" / "a" / "01.json").read_text())
    assert recorded["response"]["status"] == 200
    checked = _run(work, env, "transcript", "check", "turns/a/01.json", "--url", server.url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "turns/a/01.json: same"


def test_serve_on_a_busy_port_is_one_line_before_it_touches_the_database(
    env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refusal(_run(tmp_path, env, "serve", "--port", str(port)))
    assert line == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another server running there?)"
    )
    assert not (tmp_path / "e2e.db").exists()  # not migrated: nothing was started


def test_migrate_makes_the_folder_of_a_sqlite_database(env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "data" / "deeper" / "chatrelay.db"
    result = _run(tmp_path, {**env, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}, "migrate")
    assert result.returncode == 0, result.stderr
    assert database.is_file()


def test_a_sqlite_folder_that_cannot_be_made_is_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    url = f"sqlite+aiosqlite:///{tmp_path / 'file' / 'chatrelay.db'}"
    line = _refusal(_run(tmp_path, {**env, "DATABASE_URL": url}, "migrate"))
    assert line.startswith(f"DATABASE_URL: cannot create the folder {tmp_path / 'file'}")

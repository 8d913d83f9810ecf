"""The README's transcript worked example, run as written (issue 20: it named a `chatrelay`
that is not on the PATH, recorded into a folder that did not exist, and its `check` always
differed, since it re-sent `add task buy milk` to the server that already held the task).

The block is read from README.md; only the server's address and the replay port change, and
`.venv/bin/chatrelay` is this environment's entry point. Everything before step 4 runs as one
`bash -e` script, so each command must succeed; step 4 (replay, until Ctrl-C) runs apart and
is asked for the recorded ChatKit stream.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chatrelay.transcripts import Transcript, envelope_request, load, record
from tests.container import ROOT
from tests.integration.processes import CLI, Server, free_port
from tests.transcripts import without_timing

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
MAKE_RUN_URL = "http://127.0.0.1:8000"
REPLAY = "# 4. replay"


def worked_example() -> str:
    text = README.read_text()
    start = text.index("A worked example.")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "the worked example has a ```sh block"
    return block.group(1)


def _as_here(script: str, url: str, replay_port: int) -> str:
    assert MAKE_RUN_URL in script and "--port 8001" in script and "/chatrelay" in script
    return (
        script.replace(".venv/bin/chatrelay", CLI)
        .replace(MAKE_RUN_URL, url)
        .replace("--port 8001", f"--port {replay_port}")
    )


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            assert process.poll() is None, "replay exited"
            assert time.monotonic() < deadline, "replay did not start"
            time.sleep(0.1)


def test_the_worked_example_runs_as_written_and_checks_clean(
    serve: Callable[[], Server], env: dict[str, str], tmp_path: Path
) -> None:
    server = serve()
    work = tmp_path / "checkout"  # where the reader is: no turns/ folder yet
    work.mkdir()
    replay_port = free_port()
    script = _as_here(worked_example(), server.url, replay_port)
    before, _, replay = script.partition(REPLAY)
    assert replay, "step 4 is the replay"

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", before],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "differs" not in result.stdout
    for name in ("01-list-tasks.json", "02-chatkit.json"):
        assert re.search(rf"turns/{name}\s*│\s*same", result.stdout), result.stdout
    assert {path.name for path in (work / "turns").iterdir()} == {
        "01-list-tasks.json",
        "02-chatkit.json",
        "03-curl.sse",
    }

    _rest_of_its_comment, *lines = replay.splitlines()
    command = " ".join(line for line in lines if not line.lstrip().startswith("#"))
    replaying = subprocess.Popen(
        ["bash", "-c", f"exec {command.replace(chr(92), ' ')}"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{replay_port}"
        _wait_for(url, replaying)
        recorded = load(work / "turns" / "02-chatkit.json")
        assert recorded.request is not None
        request = envelope_request(recorded.request.body)

        async def again() -> Transcript:
            async with httpx.AsyncClient(base_url=url) as client:
                return await record(client, request)

        replayed = asyncio.run(again())
    finally:
        os.killpg(replaying.pid, signal.SIGTERM)  # the session this test started
        replaying.wait(timeout=10)
    assert without_timing(replayed).events == without_timing(recorded).events

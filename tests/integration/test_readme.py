"""README.md runs as written (issue 20: its commands named a `chatrelay` that is not on the PATH,
recorded into a folder that did not exist, and checked a stream that always differed, and
nothing noticed).

Every shell block is run, in order, in a fresh scratch checkout (the Makefile and this venv,
no `.env`, no database) with a newcomer's environment (none of chatrelay's settings): the
README's own `make run` block starts the server, on SQLite and the offline model, as a reader
starts it, and the blocks after it talk to it. How each block is marked and rewritten (ports)
is in `tests/readme.py`. `curl` fails on an HTTP error status (`--fail-with-body`): an example
answered with a 401 or a 404 has drifted as much as one that does not run.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests import readme
from tests.container import ROOT
from tests.integration.processes import free_port, newcomer_env, scratch_checkout

pytestmark = pytest.mark.slow

BLOCK_SECONDS = 60
BASH = ["bash", "--noprofile", "--norc", "-euo", "pipefail"]
# The reader's shell, made strict about HTTP: curl exits 22 on a 4xx/5xx, showing the body.
PRELUDE = 'curl() { command curl --fail-with-body "$@"; }\n'


class Ports(dict[int, int]):
    """The README's example ports, each given a free port of the test's the first time."""

    def __missing__(self, port: int) -> int:
        self[port] = free_port()
        return self[port]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group a block's shell leads (make and its server, say)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _described(block: readme.Block, script: str, what: str) -> str:
    return f"README.md:{block.line}: {what}\n--- the block, as run ---\n{script}"


class Shell:
    """One bash the blocks are typed into, in order, so a variable set by one block is there in
    the next. Each block's output goes to files of its own; after it, bash writes the block's
    line to a pipe, so a block that fails is seen at once as the pipe closing (`-e`: bash
    exits), never as a wait running out."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        read, self._write = os.pipe()
        self._done: IO[bytes] = os.fdopen(read, "rb", buffering=0)
        self._log = logs / "shell.log"
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                BASH,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(self._write,),
                start_new_session=True,
            )
        os.close(self._write)  # bash holds the only write end now
        self._send(PRELUDE)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def run(self, block: readme.Block, script: str) -> str:
        """Run one block; its stdout, or the test fails with everything it printed."""
        out, err = self.logs / f"{block.line}.out", self.logs / f"{block.line}.err"
        # stdin is not the script's (a command reading it would eat the next blocks).
        self._send(
            f"{{\n{script.rstrip()}\n}} </dev/null >{out} 2>{err} {self._write}>&-\n"
            f"echo {block.line} >&{self._write}\n"
        )
        ready, _, _ = select.select([self._done], [], [], BLOCK_SECONDS)
        done = os.read(self._done.fileno(), 64) if ready else b""
        printed = out.read_text() if out.exists() else ""
        errors = err.read_text() if err.exists() else ""
        if done.strip() != str(block.line).encode():
            what = f"did not finish within {BLOCK_SECONDS} s" if not ready else "failed"
            if not ready:
                _stop(self.process)
            status = self.process.wait(timeout=30)
            pytest.fail(
                _described(block, script, f"{what} (exit status {status})")
                + f"\n--- stdout ---\n{printed}\n--- stderr ---\n{errors}"
                + f"\n--- shell ---\n{self._log.read_text()}"
            )
        assert "Traceback" not in errors, _described(block, script, errors)
        return printed

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        _stop(self.process)  # and anything a block left running in its group
        self._done.close()


class Background:
    """A block that serves until Ctrl-C, in a shell of its own, as in another terminal."""

    def __init__(
        self, block: readme.Block, script: str, cwd: Path, env: dict[str, str], logs: Path
    ) -> None:
        self.block, self.script = block, script
        self.log = logs / f"{block.line}.background"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*BASH, "-c", script],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_ready(self, url: str) -> None:
        """Until `GET url` answers anything below 500 (a server still starting answers 503)."""
        deadline = time.monotonic() + BLOCK_SECONDS
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                what = "exited" if self.process.poll() is not None else "is not ready"
                pytest.fail(
                    _described(self.block, self.script, f"{what}: {url}")
                    + f"\n--- output ---\n{self.log.read_text()}"
                )
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)


@pytest.fixture
def backgrounds() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for background in started:
        _stop(background.process)


def test_every_shell_block_of_the_readme_runs_as_written(
    tmp_path: Path, backgrounds: list[Background]
) -> None:
    blocks = readme.read(ROOT / "README.md")
    checkout = scratch_checkout(tmp_path / "checkout")
    logs = tmp_path / "logs"
    logs.mkdir()
    env, ports = newcomer_env(), Ports()
    shell = Shell(checkout, env, logs)
    try:
        for block in blocks:
            script = readme.as_here(block.commands(), ports.__getitem__)
            if block.kind == "background":
                backgrounds.append(Background(block, script, checkout, env, logs))
                backgrounds[-1].wait_until_ready(readme.as_here(block.note, ports.__getitem__))
            elif block.kind in ("run", "output"):
                printed = shell.run(block, script)
                if block.kind == "output":
                    expected = readme.as_here(block.expected(), ports.__getitem__)
                    assert readme.comparable(printed) == readme.comparable(expected), _described(
                        block, script, "printed something else"
                    )
    finally:
        shell.close()
    # The server was the README's own `make run`, on its default database in the checkout.
    assert any("make -o .venv/.installed run" in b.script for b in backgrounds)
    assert (checkout / "chatrelay.db").exists()

"""`make run PORT=... HOST=...` serves there, and the commands it prints call that server.

Regression (issue 20): `make run` always served on 127.0.0.1:8000, with no way to change it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.container import ROOT
from tests.integration import processes
from tests.integration.processes import free_port, scratch_checkout

MAKE = shutil.which("make")


def _make(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """`make -n`: what `make run` would execute, executing nothing."""
    assert MAKE, "make is needed (`make run` is the README's first command)"
    result = subprocess.run(
        [MAKE, "-n", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_run_defaults_to_the_loopback_port_8000() -> None:
    assert ".venv/bin/chatrelay serve --host 127.0.0.1 --port 8000" in _make("run")


def test_make_run_ignores_host_and_port_in_the_environment() -> None:
    """zsh sets HOST to the machine's name, and hosting platforms set PORT: only the command
    line chooses where `make run` serves."""
    env = {**os.environ, "HOST": "some-laptop.local", "PORT": "1234"}
    assert "--host 127.0.0.1 --port 8000" in _make("run", env=env)


def test_make_run_on_a_wildcard_address_prints_a_url_to_connect_to() -> None:
    plan = _make("run", "HOST=0.0.0.0", "PORT=9000")
    assert ".venv/bin/chatrelay serve --host 0.0.0.0 --port 9000" in plan
    assert set(re.findall(r"http://[\w.:]+", plan)) == {"http://127.0.0.1:9000"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return scratch_checkout(tmp_path)


@pytest.fixture
def newcomer_env() -> dict[str, str]:
    """No secret of ours: the server and `chatrelay token` share the .env make run writes."""
    return processes.newcomer_env()


@pytest.fixture
def make_run(
    checkout: Path, newcomer_env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    port = free_port()
    log = checkout / "make-run.log"
    assert MAKE
    with log.open("wb") as out:
        # -o: the venv counts as installed (no pip run); its own session, to stop make and
        # the server it started together.
        process = subprocess.Popen(
            [MAKE, "-o", ".venv/.installed", "run", f"PORT={port}", "HOST=127.0.0.1"],
            cwd=checkout,
            env=newcomer_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.slow
def test_make_run_serves_on_port_and_host_and_its_hint_works(
    make_run: tuple[subprocess.Popen[bytes], Path, int],
    checkout: Path,
    newcomer_env: dict[str, str],
) -> None:
    process, log, port = make_run
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)

    printed = log.read_text()
    assert f"chatrelay on http://127.0.0.1:{port} " in printed
    # The commands it prints for "another shell", run as printed (from the same directory).
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("In another shell:"))
    end = next(i for i, line in enumerate(lines) if "(drop the Accept header" in line)
    hint = "\n".join(line.removeprefix("  ") for line in lines[start + 1 : end])
    assert f"http://127.0.0.1:{port}/api/alice/chat" in hint
    result = subprocess.run(
        ["bash", "-euc", hint],
        cwd=checkout,
        env=newcomer_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"type":"thread.created"' in result.stdout

    # The browser hint: the chat page is there, and its dev sign-in is on (make run's .env).
    assert f"open http://127.0.0.1:{port}/ " in printed
    assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
    minted = httpx.post(f"http://127.0.0.1:{port}/auth/dev-token", json={"user_id": "alice"})
    assert minted.status_code == 200, minted.text

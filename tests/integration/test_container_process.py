"""The image's command line, run as the container runs it: in a fresh PID namespace
(`unshare --pid --fork`), where its first process is PID 1, and stopped as `docker stop` stops
it, with SIGTERM to that PID 1. No Docker engine needed.

Regression (issue 20): `sh -c "chatrelay migrate && chatrelay serve ..."` left `sh` as PID 1;
the kernel never applies SIGTERM's default action to an init process, so the server never
heard it, SHUTDOWN_GRACE_SECONDS never applied and compose's SIGKILL lost running turns."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatrelay.cli import max_shutdown_seconds
from chatrelay.config import Settings
from tests.container import command_line, environment, interpolate, service
from tests.integration.processes import SECRET, cli_token, free_port

pytestmark = pytest.mark.slow

GRACE = 1.0
ALLOWANCE = 3.0
"""Beyond the grace: the stopped turn's commit, the lifespan's close and the interpreter's exit."""
LONG_MESSAGE = " ".join(f"word{i}" for i in range(200))  # 10 s at 0.05 s a word: > the grace


def _unshare() -> list[str]:
    """A new PID namespace needs CAP_SYS_ADMIN; unprivileged, a user namespace grants it."""
    assert shutil.which("unshare"), "util-linux's unshare is needed to run the container's PID 1"
    privileged = [] if os.geteuid() == 0 else ["--map-root-user"]
    # --kill-child: if the test dies, the namespace (the server) dies with it.
    return ["unshare", *privileged, "--pid", "--fork", "--kill-child"]


def _local_command(port: int) -> list[str]:
    """The container's command line with this machine's address instead of 0.0.0.0:8000."""
    argv = command_line()
    local = [
        part.replace("--host 0.0.0.0", "--host 127.0.0.1").replace("--port 8000", f"--port {port}")
        for part in argv
    ]
    assert local != argv, f"the command line no longer sets --host/--port: {argv}"
    return local


def _container_env(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The app service's environment (ENV=production included), with SQLite in tmp_path and
    this venv's `chatrelay` first on PATH, where the image's `pip install` puts it."""
    shell = {"AUTH_SECRET": SECRET, "POSTGRES_PASSWORD": "unused"}
    container = {
        name: interpolate(value, shell) for name, value in environment(service("app")).items()
    }
    return {
        **env,
        **container,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        "SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "OFFLINE_DELAY_SECONDS": "0.05",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


class Container:
    """The command line under `unshare`; `init` is the namespace's PID 1 (the unshare's child)."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "container.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*_unshare(), *_local_command(self.port)],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy()
        (self.init,) = _children(self.process.pid)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"never healthy:\n{self.log.read_text()}")

    def status(self, field: str) -> list[str]:
        for line in Path(f"/proc/{self.init}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return value.split()
        raise KeyError(field)

    def cmdline(self) -> list[str]:
        return Path(f"/proc/{self.init}/cmdline").read_text().rstrip("\0").split("\0")


@pytest.fixture
def container(tmp_path: Path, env: dict[str, str]) -> Iterator[Container]:
    started = Container(tmp_path, _container_env(tmp_path, env))
    yield started
    if started.process.poll() is None:
        started.process.kill()  # --kill-child takes the namespace down with it
        started.process.wait()


def _messages(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT role, status FROM messages ORDER BY created_at").fetchall()


def _sigterm_and_time(container: Container) -> tuple[int, float]:
    """`docker stop`: SIGTERM to the container's PID 1; the exit code and how long it took."""
    started = time.monotonic()
    os.kill(container.init, signal.SIGTERM)
    try:
        code = container.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"PID 1 ignored SIGTERM for 30 s:\n{container.log.read_text()}")
    return code, time.monotonic() - started


def test_the_server_is_pid_1_and_sigterm_stops_it_within_the_grace(
    container: Container, env: dict[str, str], tmp_path: Path
) -> None:
    # PID 1 in its namespace (NSpid: outer pid, then 1) is the server itself, not a shell.
    assert container.status("NSpid")[-1] == "1"
    argv = container.cmdline()  # [python, .../chatrelay, serve, ...]: a console script
    assert "serve" in argv and "chatrelay" in {Path(part).name for part in argv[:2]}, argv

    token = cli_token(env, tmp_path, "alice")
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    deltas = 0
    code, elapsed = -1, 0.0
    with httpx.stream(
        "POST",
        f"{container.url}/api/alice/chat",
        json={"message": LONG_MESSAGE},
        headers=headers,
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            deltas += "text_delta" in line
            if deltas == 3:
                break
        code, elapsed = _sigterm_and_time(container)

    assert code == 0, container.log.read_text()  # PID 1 exits cleanly (no re-raised signal)
    assert elapsed < GRACE + ALLOWANCE, f"{elapsed:.1f}s: the grace was not honoured"
    log = container.log.read_text()
    assert "Application shutdown complete" in log
    # The turn outlived the grace: it was stopped and its partial reply saved, not lost.
    assert _messages(tmp_path / "e2e.db") == [("user", "completed"), ("assistant", "incomplete")]


def test_a_json_turn_holds_shutdown_no_longer_than_compose_waits(
    container: Container, env: dict[str, str], tmp_path: Path
) -> None:
    """A JSON reply in flight keeps its connection open: the slowest SIGTERM there is, and
    `max_shutdown_seconds` (what compose's stop_grace_period must cover) bounds it."""
    headers = {"Authorization": f"Bearer {cli_token(env, tmp_path, 'alice')}"}
    chat = f"{container.url}/api/alice/chat"
    first = httpx.post(chat, json={"message": "hi"}, headers=headers, timeout=30)
    body = {"message": LONG_MESSAGE, "conversation_id": first.json()["conversation_id"]}
    thread = threading.Thread(
        target=lambda: httpx.post(chat, json=body, headers=headers, timeout=60), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not _leases(tmp_path / "e2e.db"):  # the turn holds its conversation: it runs
        assert time.monotonic() < deadline, "the turn never started"
        time.sleep(0.05)

    code, elapsed = _sigterm_and_time(container)

    assert code == 0, container.log.read_text()
    bound = max_shutdown_seconds(Settings(_env_file=None, shutdown_grace_seconds=GRACE))
    assert elapsed < bound + ALLOWANCE, f"{elapsed:.1f}s > {bound}s (+{ALLOWANCE}s)"
    assert _messages(tmp_path / "e2e.db")[-1] == ("assistant", "incomplete")
    thread.join(timeout=10)


def _leases(database: Path) -> int:
    with sqlite3.connect(database) as db:
        (count,) = db.execute("SELECT count(*) FROM turn_leases").fetchone()
        return int(count)

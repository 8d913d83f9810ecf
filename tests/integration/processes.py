"""Running `chatrelay` as a real process, for the tests where a real socket and signals matter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from chatrelay.config import ENV_FILE_VARIABLE, Settings
from tests.conftest import _run_apart
from tests.container import ROOT

CLI = str(Path(sys.executable).with_name("chatrelay"))
VENV = Path(sys.executable).parent.parent
SECRET = "e2e-secret-" + "z" * 40


def _setting_names() -> set[str]:
    names = {ENV_FILE_VARIABLE}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.update(getattr(alias, "choices", None) or [name.upper()])
    return names


def newcomer_env() -> dict[str, str]:
    """The environment of someone who just cloned the repository: none of chatrelay's settings
    (so its embedded defaults: SQLite in the current directory, the offline model, no secret
    but the `.env` that `make run` writes) and not inside another `make`."""
    drop = _setting_names() | {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in drop}
    return {**env, "OPENAI_AGENTS_DISABLE_TRACING": "1"}


def scratch_checkout(path: Path) -> Path:
    """A directory that looks like a fresh checkout to the Makefile: its Makefile and this
    venv (installed: run make with `-o .venv/.installed`), no .env yet, no database."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "Makefile").symlink_to(ROOT / "Makefile")
    (path / ".venv").symlink_to(VENV)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`chatrelay serve`, once `probe` answers 200 (`/healthz`: started, ready or not)."""

    def __init__(self, env: dict[str, str], cwd: Path, probe: str = "/readyz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        with self.log.open("wb") as log:  # a file, not a pipe: a full pipe would block the server
            self.process = subprocess.Popen(
                [CLI, "serve", "--port", str(self.port)],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                if httpx.get(f"{self.url}{probe}").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("chatrelay serve did not become ready")

    def stop(self) -> None:
        """SIGTERM, as an orchestrator sends it; the lifespan must shut down cleanly."""
        self.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down, so -SIGTERM is a clean exit.
        assert self.process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in self.log.read_text()


def cli_token(env: dict[str, str], cwd: Path, user: str) -> str:
    result = subprocess.run(
        [CLI, "token", user, "--ttl", "600"], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def process_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `chatrelay serve` for tests: our secret, no network, no .env."""
    unset = ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if k.upper() not in unset}
    return {
        **env,
        "AUTH_SECRET": SECRET,
        "DATABASE_URL": database_url,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        ENV_FILE_VARIABLE: os.devnull,  # not the checkout's .env
        **settings,
    }


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty Postgres database for a server process (its URL), dropped afterwards.

    A database, not a schema: a process cannot be handed a search_path (`create_engine`'s
    `schema` is a seam of the in-process tests). Skips when Postgres is unreachable, fails
    under `CI=true`, as `tests/conftest.py` does.
    """
    admin = make_url(admin_url).set(drivername="postgresql")
    name = f"ws_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    try:
        _run_apart(lambda: run(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Postgres is required under CI=true and is unreachable: {exc}")
        pytest.skip(f"Postgres unreachable: {exc}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _run_apart(lambda: run(f'DROP DATABASE "{name}" WITH (FORCE)'))


def rss_bytes(pid: int) -> int:
    """A process's resident set size, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")

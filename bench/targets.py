"""The servers every benchmark compares, started the same way by each of them.

- floor: `bench/floor_app.py`, FastAPI + sse-starlette + the JWT check, pre-serialised events;
- chatkit: `bench/chatkit_app.py`, chatkit-python's `ChatKitServer` on its own SQLite store;
- chatrelay-sqlite / chatrelay-postgres: `chatrelay serve` with the offline model.

Each is a uvicorn process on 127.0.0.1 with a fresh database in the run's work directory (or a
fresh Postgres database, dropped at the end). Nothing is read from the caller's environment
that would change what is measured.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from bench.servers import Server, start_server

REPO = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# chatrelay settings that must not leak in from the caller's environment.
CHATRELAY_VARS = (
    "DATABASE_URL AUTH_SECRET BETTER_AUTH_SECRET AUTH_ISSUER AUTH_AUDIENCE MODEL OPENAI_API_KEY "
    "OPENAI_BASE_URL OPENAI_API HISTORY_LIMIT CORS_ORIGINS TURN_TIMEOUT_SECONDS SSE_PING_SECONDS "
    "SSE_SEND_TIMEOUT_SECONDS SSE_FLUSH_INTERVAL_SECONDS RESUME_SECONDS TRACING ENV LOG_LEVEL "
    "LOG_FORMAT FLOOR_EVENTS RATE_LIMIT RATE_LIMIT_STORAGE MAX_STREAMS_PER_USER "
    "OFFLINE_DELAY_SECONDS TRANSCRIPT_DIR MODEL_ALLOWLIST REDIS_URL REDIS_PREFIX "
    "INSTANCE_HEARTBEAT_SECONDS INSTANCE_ID SHUTDOWN_GRACE_SECONDS "
    "AUTH_JWKS_URL AUTH_ALGORITHMS "
    "AUTH_USER_CLAIM AUTH_LEEWAY_SECONDS AUTH_JWKS_TIMEOUT_SECONDS AUTH_JWKS_MIN_REFRESH_SECONDS "
    "AUTH_JWKS_CACHE_SECONDS DEV_LOGIN"
).split()
FLOOR, CHATKIT, RELAY_SQLITE, RELAY_POSTGRES = (
    "floor",
    "chatkit",
    "chatrelay-sqlite",
    "chatrelay-postgres",
)
# chatrelay on SQLite, OpenTelemetry on, exporting to a receiver in the bench (bench/tracing.py).
RELAY_TRACED = "chatrelay-traced"
# chatrelay as of `--baseline REF`, beside the working tree's: the "before" of a change.
BEFORE_SQLITE, BEFORE_POSTGRES = "before-sqlite", "before-postgres"
LABELS = {
    FLOOR: "A: sse-starlette floor",
    CHATKIT: "B: ChatKitServer (SQLite)",
    BEFORE_SQLITE: "C0: before (SQLite)",
    RELAY_SQLITE: "C: chatrelay (SQLite)",
    BEFORE_POSTGRES: "C0: before (Postgres)",
    RELAY_POSTGRES: "C: chatrelay (Postgres)",
    RELAY_TRACED: "C+T: chatrelay traced",
}
# Each "before" server and the server of the working tree it is compared with.
BEFORE = {BEFORE_SQLITE: RELAY_SQLITE, BEFORE_POSTGRES: RELAY_POSTGRES}
RELAYS = (RELAY_SQLITE, RELAY_POSTGRES, *BEFORE)
POSTGRES = (RELAY_POSTGRES, BEFORE_POSTGRES)


@dataclass
class Bench:
    """What every server of one run shares: a secret, a work directory, a clean environment."""

    workdir: Path
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    before: Path | None = None  # the `src` folder of `--baseline REF`, when there is one

    def token(self, user: str, ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {"sub": user, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in CHATRELAY_VARS and not k.startswith("OTEL_")  # tracing only if asked
        }
        env["AUTH_SECRET"] = self.secret
        env["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
        env["CHATRELAY_ENV_FILE"] = os.devnull  # no .env, not even the checkout's
        return env


def relay_env(bench: Bench, database_url: str, overrides: Mapping[str, str]) -> dict[str, str]:
    return {
        **bench.base_env(),
        "DATABASE_URL": database_url,
        "MODEL": "offline",
        "ENV": "development",
        # A bench is few users sending many turns: measure the hot path, not the limiter.
        "RATE_LIMIT": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def start_relay(
    bench: Bench, name: str, database_url: str, overrides: Mapping[str, str] | None = None
) -> Server:
    """`chatrelay serve` on `database_url` (migrated first when it is not SQLite); a "before"
    server runs the baseline's source instead of the working tree's, on the same packages."""
    env = relay_env(bench, database_url, overrides or {})
    if name in BEFORE:
        if bench.before is None:
            raise ValueError(f"{name} needs a baseline: Bench(before=...)")
        env["PYTHONPATH"] = str(bench.before)  # ahead of the editable install's path
    if not database_url.startswith("sqlite"):
        subprocess.run(
            [sys.executable, "-m", "chatrelay.cli", "migrate"],
            env=env,
            cwd=bench.workdir,
            check=True,
            capture_output=True,
        )
    return start_server(
        name,
        [sys.executable, "-m", "chatrelay.cli", "serve"],
        env=env,
        cwd=bench.workdir,
        log_dir=bench.workdir,
    )


def sqlite_url(bench: Bench, name: str) -> str:
    return f"sqlite+aiosqlite:///{bench.workdir / (name + '.db')}"


def start_floor(bench: Bench, events: int) -> Server:
    """The floor, streaming `events` pre-built text-delta events per reply."""
    return start_server(
        FLOOR,
        [sys.executable, "-m", "uvicorn", "bench.floor_app:app"],
        env={**bench.base_env(), "FLOOR_EVENTS": str(events)},
        cwd=REPO,
        log_dir=bench.workdir,
    )


def start_chatkit(bench: Bench, overrides: Mapping[str, str] | None = None) -> Server:
    """chatkit-python's `ChatKitServer` with its own SQLite store and the offline model."""
    env = {
        **bench.base_env(),
        "CHATKIT_BENCH_DB": str(bench.workdir / "chatkit.db"),
        **(overrides or {}),
    }
    return start_server(
        CHATKIT,
        [sys.executable, "-m", "uvicorn", "bench.chatkit_app:app"],
        env=env,
        cwd=REPO,
        log_dir=bench.workdir,
    )


def source_at(ref: str, workdir: Path) -> Path:
    """chatrelay's `src` folder as of the git commit `ref`, exported into `workdir`.

    `git archive`, not a worktree: nothing to clean up in the repository if the run dies.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        raise ValueError(f"--baseline {ref}: not a commit of {REPO}")
    target = workdir / f"before-{commit.stdout.strip()[:12]}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit.stdout.strip(), "src"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


@contextmanager
def postgres_database(admin_url: str = DEFAULT_POSTGRES_URL) -> Iterator[str]:
    """A fresh, empty database on the Postgres of `admin_url`; dropped at the end.

    Yields its SQLAlchemy URL. Raises OSError-like errors when Postgres is unreachable.
    """
    import asyncpg

    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"chatrelay_bench_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(plain, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

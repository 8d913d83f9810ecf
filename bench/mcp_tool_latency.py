"""Latency of one todo tool call: the repository work alone (a) against the same call through
in-process MCP (b), as the agent makes it, and streamable HTTP MCP (c), as an external client does.

Everything runs in this process against the real app (lifespan running, no sockets), in the same
run, interleaved per call (a, b, c, a, b, c, ...), for a user with 20 tasks, on a temporary
SQLite file and, if reachable, a fresh Postgres schema (dropped at the end). Medians and p95 over
all calls are reported. See bench/README.md.

    .venv/bin/python -m bench.mcp_tool_latency [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.report import environment
from chatrelay.agents.inprocess_mcp import USER_META_KEY
from chatrelay.config import Settings
from chatrelay.runtime import Runtime
from chatrelay.server import create_app
from chatrelay.server.mcp_http import MCP_PATH
from chatrelay.store import create_engine, transaction, upgrade
from chatrelay.store.repositories import TaskRepository
from chatrelay.tokens import mint_token
from chatrelay.tools.todo import TaskList, TaskOut

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
USER = "bench"
TASKS = 20  # the user's tasks while every call is made
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_CONNECT_TIMEOUT_S = 5.0
LOAD_WARNING = 0.5  # 1-minute load average above which other work skews the numbers
BOOTSTRAP_RESAMPLES = 2000
BASE_URL = "http://chatrelay"  # never resolved: httpx2.ASGITransport calls the app directly

PATHS = ("direct", "inprocess", "http")
LABELS = {"direct": "(a) direct", "inprocess": "(b) in-process MCP", "http": "(c) HTTP MCP"}
TOOLS = ("list_tasks", "add_task")
LIST_ARGS: dict[str, Any] = {"status": "all"}
ADD_ARGS: dict[str, Any] = {"title": "Call the plumber", "description": "About the kitchen sink"}
PACKAGES = (
    "mcp",
    "httpx2",
    "openai-agents",
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "sqlmodel",
    "aiosqlite",
    "asyncpg",
    "pyjwt",
)

Sessions = async_sessionmaker[AsyncSession]
Call = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    schema: str | None
    version: str


class Unreachable(Exception):
    """The Postgres server could not be reached: that backend is skipped."""


# --- (a) direct: the body of each tool, with no MCP around it --------------------------------


async def direct_list_tasks(sessions: Sessions) -> TaskList:
    async with transaction(sessions) as db:
        tasks = await TaskRepository(db, USER).by_status(LIST_ARGS["status"])
        return TaskList(
            status=LIST_ARGS["status"], count=len(tasks), tasks=[TaskOut.of(t) for t in tasks]
        )


async def direct_add_task(sessions: Sessions) -> TaskOut:
    async with transaction(sessions) as db:
        task = await TaskRepository(db, USER).add(
            ADD_ARGS["title"].strip(), ADD_ARGS["description"]
        )
        return TaskOut.of(task)


# --- checks, outside the timed region ---------------------------------------------------------


def _structured(result: Any) -> dict[str, Any]:
    if isinstance(result, TaskList | TaskOut):
        return result.model_dump(mode="json")
    if not isinstance(result, CallToolResult):
        raise RuntimeError(f"unexpected result {result!r}")
    if result.is_error or not isinstance(result.structured_content, dict):
        raise RuntimeError(f"tool call failed: {result.content!r}")
    return result.structured_content


def listed_ids(result: Any) -> list[int]:
    return [task["id"] for task in _structured(result)["tasks"]]


def added_id(result: Any) -> int:
    task = _structured(result)
    if task["title"] != ADD_ARGS["title"] or task["completed"]:
        raise RuntimeError(f"add_task returned {task!r}")
    return int(task["id"])


async def seed(sessions: Sessions) -> list[int]:
    """TASKS tasks for USER: every other one with a description, every third one completed."""
    async with transaction(sessions) as db:
        repository = TaskRepository(db, USER)
        ids = []
        for i in range(TASKS):
            task = await repository.add(f"Task {i}", f"Details of task {i}" if i % 2 else None)
            if i % 3 == 0:
                await repository.update(task, completed=True)
            assert task.id is not None
            ids.append(task.id)
    return ids


async def remove(sessions: Sessions, task_id: int) -> None:
    """Delete a task add_task made (untimed), so the user is back at TASKS tasks."""
    async with transaction(sessions) as db:
        repository = TaskRepository(db, USER)
        task = await repository.get(task_id)
        if task is None:  # e.g. created for another user: the call did not act for USER
            raise RuntimeError(f"task {task_id} is not one of {USER}'s tasks")
        await repository.delete(task)


# --- the app, the clients and the measurement ------------------------------------------------


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan in a task of its own, as a server does (see tests/conftest.py)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    ready = asyncio.create_task(started.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # start-up failed: raise its error
    try:
        yield app
    finally:
        stop.set()
        await task


async def check_mcp_route(http: httpx2.AsyncClient) -> None:
    """POST /mcp without a token must get `AuthenticatedMCP`'s 401, before any MCP code runs.

    Fails fast with the answer if /mcp is not routed to it (before 656bc41, a plain-function
    `Route` endpoint made POST /mcp answer 405).
    """
    request = http.build_request("POST", MCP_PATH, json={})
    del request.headers["Authorization"]
    probe = await http.send(request)
    if probe.status_code != 401:
        raise RuntimeError(f"POST {MCP_PATH} without a token: {probe.status_code} {probe.text}")


def make_settings(backend: Backend, secret: str) -> Settings:
    """Everything that matters is explicit: nothing leaks in from the environment or a .env."""
    return Settings(  # type: ignore[call-arg]
        env="test",
        database_url=backend.url,
        auth_secret=secret,
        auth_issuer=None,
        auth_audience=None,
        model="offline",
        openai_api_key=None,
        openai_base_url=None,
        cors_origins=[],
        tracing=False,
        _env_file=None,
    )


async def measure(backend: Backend, rounds: int, warmup: int) -> dict[str, Any]:
    settings = make_settings(backend, secrets.token_urlsafe(48))
    app = create_app(settings, database_schema=backend.schema)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running(app))
        context: Runtime = app.state.runtime
        sessions = context.sessions  # the app's own engine and pool: all paths share them
        # The very instance the agent holds, connected once by the lifespan.
        in_process = context.model.tools
        assert in_process is not None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=app),
                base_url=BASE_URL,
                headers={"Authorization": f"Bearer {mint_token(settings, USER)}"},
                timeout=30.0,
            )
        )
        await check_mcp_route(http)
        client = await stack.enter_async_context(
            Client(streamable_http_client(f"{BASE_URL}{MCP_PATH}", http_client=http))
        )
        meta = {USER_META_KEY: USER}
        calls: dict[str, dict[str, Call]] = {
            "direct": {
                "list_tasks": lambda: direct_list_tasks(sessions),
                "add_task": lambda: direct_add_task(sessions),
            },
            "inprocess": {
                "list_tasks": lambda: in_process.call_tool("list_tasks", LIST_ARGS, meta=meta),
                "add_task": lambda: in_process.call_tool("add_task", ADD_ARGS, meta=meta),
            },
            "http": {
                "list_tasks": lambda: client.call_tool("list_tasks", LIST_ARGS),
                "add_task": lambda: client.call_tool("add_task", ADD_ARGS),
            },
        }
        seeded = await seed(sessions)
        samples: dict[str, dict[str, list[float]]] = {t: {p: [] for p in PATHS} for t in TOOLS}
        for index in range(warmup + rounds):
            for path in PATHS:
                for tool in TOOLS:
                    start = time.perf_counter()
                    result = await calls[path][tool]()
                    elapsed = time.perf_counter() - start
                    if tool == "list_tasks":
                        if listed_ids(result) != seeded:
                            raise RuntimeError(f"{path} listed {listed_ids(result)}")
                    else:
                        await remove(sessions, added_id(result))
                    if index >= warmup:
                        samples[tool][path].append(elapsed)
            if index % max(1, (warmup + rounds) // 40) == 0:
                print(".", end="", flush=True)
        print()
        protocol = {
            "inprocess": _protocol_version(getattr(in_process, "_client", None)),
            "http": _protocol_version(client),
        }
    return {
        "database": {"url": backend.url, "schema": backend.schema, "version": backend.version},
        "mcp_protocol_version": protocol,
        "samples_s": samples,
        "summary": summarise(samples),
    }


def _protocol_version(client: Client | None) -> str | None:
    try:
        return str(client.protocol_version) if client is not None else None
    except Exception:  # noqa: BLE001 - a record for the JSON, never a reason to fail
        return None


# --- statistics -------------------------------------------------------------------------------


def distribution(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p05": quantiles[4],
        "p95": quantiles[94],
        "min": ordered[0],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def added_over(
    floor: list[float], path: list[float], rng: random.Random
) -> dict[str, float | list[float]]:
    """What `path` adds over the floor. Samples at the same index come from the same round."""
    a, b = distribution(floor), distribution(path)
    n = len(floor)
    diffs = []
    for _ in range(BOOTSTRAP_RESAMPLES):  # resample whole rounds, so pairs stay together
        picks = rng.choices(range(n), k=n)
        diffs.append(
            statistics.median(path[i] for i in picks) - statistics.median(floor[i] for i in picks)
        )
    ci = statistics.quantiles(diffs, n=40, method="inclusive")  # 2.5th and 97.5th percentiles
    return {
        "median_added_s": b["median"] - a["median"],
        "median_added_ci95_s": [ci[0], ci[-1]],
        "median_ratio": b["median"] / a["median"],
        "p95_added_s": b["p95"] - a["p95"],
        "p95_ratio": b["p95"] / a["p95"],
        "paired_median_added_s": statistics.median(y - x for x, y in zip(floor, path, strict=True)),
    }


def summarise(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    rng = random.Random(0)  # the bootstrap is reproducible for the same samples
    summary: dict[str, Any] = {}
    for tool in TOOLS:
        summary[tool] = {path: distribution(samples[tool][path]) for path in PATHS}
        summary[tool]["added_over_direct"] = {
            path: added_over(samples[tool]["direct"], samples[tool][path], rng)
            for path in PATHS[1:]
        }
    return summary


# --- backends ---------------------------------------------------------------------------------


async def create_schema(url: str) -> tuple[str, str, AsyncEngine]:
    """A fresh schema; its name, the server's version and the admin engine that drops it."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_S})
    try:
        async with admin.begin() as conn:
            version = str(await conn.scalar(sa.text("SHOW server_version")))
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        await admin.dispose()
        raise Unreachable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    return schema, version, admin


async def drop_schema(admin: AsyncEngine, schema: str) -> None:
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def run(
    rounds: int, warmup: int, postgres_url: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="chatrelay-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'chatrelay.db'}"
        print(f"sqlite: {rounds} rounds after {warmup} warm-up rounds ", end="", flush=True)
        results["sqlite"] = await measure(
            Backend("sqlite", url, None, sqlite3.sqlite_version), rounds, warmup
        )
    if postgres_url is None:
        skipped["postgres"] = "--no-postgres"
        return results, skipped
    try:
        schema, version, admin = await create_schema(postgres_url)
    except Unreachable as exc:
        print(f"postgres: unreachable, skipped ({exc})")
        skipped["postgres"] = str(exc)
        return results, skipped
    try:
        engine = create_engine(postgres_url, schema=schema)
        try:
            await upgrade(engine)  # the app migrates only SQLite in its lifespan
        finally:
            await engine.dispose()
        print(f"postgres: {rounds} rounds after {warmup} warm-up rounds ", end="", flush=True)
        results["postgres"] = await measure(
            Backend("postgres", postgres_url, schema, version), rounds, warmup
        )
    finally:
        await drop_schema(admin, schema)
    return results, skipped


# --- report -----------------------------------------------------------------------------------


def print_table(document: dict[str, Any]) -> None:
    params = document["params"]
    print(
        f"\nMCP tool latency: {params['calls']} calls per tool and path (after "
        f"{params['warmup']} warm-up), interleaved a,b,c,a,b,c,...; user with {TASKS} tasks"
    )
    print("added = path - (a), ratio = path / (a); [95% bootstrap CI of the added median]")
    header = (
        f"{'tool':<12}{'path':<20}{'median ms':>10}{'p95 ms':>9}"
        f"{'added median ms':>27}{'ratio':>7}{'added p95':>11}{'ratio':>7}"
    )
    for name, result in document["backends"].items():
        database = result["database"]
        protocol = result["mcp_protocol_version"]
        print(
            f"\n{name} {database['version']}; MCP protocol: in-process {protocol['inprocess']}, "
            f"HTTP {protocol['http']}"
        )
        print(header)
        print("-" * len(header))
        for tool in TOOLS:
            summary = result["summary"][tool]
            for path in PATHS:
                stats = summary[path]
                row = f"{tool if path == 'direct' else '':<12}{LABELS[path]:<20}"
                row += f"{stats['median'] * 1e3:>10.3f}{stats['p95'] * 1e3:>9.3f}"
                if path != "direct":
                    added = summary["added_over_direct"][path]
                    low, high = (x * 1e3 for x in added["median_added_ci95_s"])
                    cell = f"{added['median_added_s'] * 1e3:+.3f} [{low:.3f}-{high:.3f}]"
                    row += f"{cell:>27}{added['median_ratio']:>7.2f}"
                    row += f"{added['p95_added_s'] * 1e3:>+11.3f}{added['p95_ratio']:>7.2f}"
                print(row)
    for name, reason in document["skipped"].items():
        print(f"\n{name}: skipped ({reason})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.mcp_tool_latency", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 calls per path (a smoke run)")
    parser.add_argument("--calls", type=int, help="measured calls per tool and path (default 300)")
    parser.add_argument("--warmup", type=int, help="unmeasured rounds first (default 30)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATRELAY_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="Postgres to measure in a fresh schema, if reachable (default: %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    calls = args.calls or (50 if args.quick else 300)
    warmup = args.warmup if args.warmup is not None else (5 if args.quick else 30)
    if calls < 2 or warmup < 0:
        parser.error("--calls must be at least 2 and --warmup not negative")
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # no agent runs here; nothing phones home
    # Configure logging before the app exists: MCPServer() calls logging.basicConfig(INFO) when
    # nobody has, and then httpx2 would log every request of (c) to stderr inside the timing.
    # `chatrelay serve` configures logging first too; nothing per call logs at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.getloadavg()[0] > LOAD_WARNING:
        print(f"warning: load average {os.getloadavg()[0]:.2f}; results will be noisy", flush=True)
    started = time.time()
    postgres_url = None if args.no_postgres else args.postgres_url
    backends, skipped = asyncio.run(run(calls, warmup, postgres_url))
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
    document = {
        "benchmark": "mcp_tool_latency",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "environment": environment(REPO, PACKAGES),
        "params": {
            "calls": calls,
            "warmup": warmup,
            "tasks": TASKS,
            "user": USER,
            "list_tasks_args": LIST_ARGS,
            "add_task_args": ADD_ARGS,
            "order": "per round: for path in (direct, inprocess, http): list_tasks, add_task",
        },
        "backends": backends,
        "skipped": skipped,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"mcp_tool_latency-{stamp}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print_table(document)
    print(f"\nraw results: {path.relative_to(REPO)} ({document['duration_s']}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

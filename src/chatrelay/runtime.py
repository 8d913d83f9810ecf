"""Everything a running chatrelay needs, built without any web framework: the database, the
model adapter with its tools, the turn service and what it depends on.

The HTTP server enters `open_runtime()` in its lifespan; a CLI command, a worker or another
transport can do the same. Nothing here is created at import.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.agents import AgentsTurnModel
from chatrelay.agents import ModelProvider as ModelProvider  # re-exported for the edges
from chatrelay.agents.assistant import open_turn_model
from chatrelay.attachments import AttachmentService, attachment_service
from chatrelay.chatkit import ChatKitProtocol
from chatrelay.cluster.setup import Cluster, open_cluster
from chatrelay.config import Settings
from chatrelay.store import (
    Revisions,
    SchemaStatus,
    create_engine,
    head_revision,
    sessionmaker,
    upgrade,
)
from chatrelay.telemetry import Telemetry
from chatrelay.tokens import TokenVerifier, open_verifier
from chatrelay.tools.todo import acting_as, build_todo_server
from chatrelay.turns import (
    NO_TRACER,
    InProcessTurnBuffer,
    Metrics,
    TurnConfig,
    TurnRegistry,
    TurnService,
    UserLimits,
)
from chatrelay.turns.sql_store import SqlTurnStore

logger = logging.getLogger("chatrelay")

_RETRY_FIRST_SECONDS = 1.0
_RETRY_MAX_SECONDS = 10.0
STREAMS_WRITTEN_SECONDS = 0.5
"""Once the turns have ended, how long their streams get to write their final events."""


class Drain:
    """A graceful stop (SIGTERM), whatever server runs the app, in the order that loses
    nothing: admit no new turn (`/readyz` says 503 from now on), let running turns finish
    within `SHUTDOWN_GRACE_SECONDS`, stop the rest (`Failure.SHUTDOWN`: partial reply saved,
    final events published), let their streams write those, and only then let the server
    close its connections.

    The server must not begin its own shutdown before: sse-starlette ends every open stream
    as soon as uvicorn's `should_exit` is set, mid-reply and without final events, and
    uvicorn would wait for connections (its `timeout_graceful_shutdown`) before the turns
    got any grace at all (`chatrelay.cli` hands it the signal).
    """

    def __init__(self, registry: TurnRegistry, limits: UserLimits, grace_seconds: float) -> None:
        self._registry = registry
        self._limits = limits
        self._grace = grace_seconds
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self._registry.draining

    def begin(self, then: Callable[[], None] | None = None) -> None:
        """Start draining (once; later calls do nothing); `then` runs when it is over."""
        if self._task is None:
            self._task = asyncio.create_task(self._drain(then), name="drain")

    def hurry(self) -> None:
        """Cut the rest of the grace short (a second signal): stop the running turns now."""
        self._hurry.set()

    async def finish(self) -> None:
        """The drain's end, beginning it if nothing has (the runtime's exit)."""
        self.begin()
        assert self._task is not None
        await self._task

    async def _drain(self, then: Callable[[], None] | None) -> None:
        try:
            await self._registry.shutdown(self._grace, self._hurry)
            await self._streams_written()
        finally:
            if then is not None:
                then()

    async def _streams_written(self) -> None:
        """Until every stream has ended, for a moment at most: a stream of this instance's
        turns ends once it has written the final events; one following another instance's
        turn never ends by itself (the server closes it, its reader resumes elsewhere)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAMS_WRITTEN_SECONDS
        # Nothing announces a stream's end but its slot: polled, and only while stopping.
        while self._limits.open_streams() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    turns: TurnService
    registry: TurnRegistry
    limits: UserLimits
    metrics: Metrics
    model: AgentsTurnModel
    schema: SchemaStatus
    """Whether the database schema is at this chatrelay's head (`/readyz` asks it)."""
    todo: MCPServer
    """The todo MCP server (the agent reaches it in-process; `/mcp` serves it over HTTP)."""
    chatkit: ChatKitProtocol
    attachments: AttachmentService
    drain: Drain
    """The graceful stop: the server begins it on SIGTERM, the runtime's exit ends it."""
    verifier: TokenVerifier
    """Every entry point's token check: `AUTH_SECRET`, or the issuer's key set."""
    cluster: Cluster | None = None
    """What several instances share through Redis (None without `REDIS_URL`)."""


def sweep_interval(settings: Settings) -> float:
    """How often orphaned attachments are looked for: a tenth of their age limit, at most
    hourly, so one lives at most about 10 % past `ATTACHMENT_ORPHAN_HOURS`."""
    return min(settings.attachment_orphan_hours * 360.0, 3600.0)


def turn_config(settings: Settings) -> TurnConfig:
    return TurnConfig(
        timeout_seconds=settings.turn_timeout_seconds,
        lease_seconds=settings.turn_lease_seconds,
        history_limit=settings.history_limit,
        flush_interval=settings.sse_flush_interval_seconds,
        default_model=settings.model,
        model_allowlist=tuple(settings.model_allowlist),
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    provider: ModelProvider | None = None,
    database_schema: str | None = None,
    telemetry: Telemetry | None = None,
) -> AsyncIterator[Runtime]:
    """Build the runtime; on exit, running turns get `SHUTDOWN_GRACE_SECONDS` to finish (then
    they are stopped and saved) before the tools and the database close (see `Drain`).

    The database schema comes first after the token verifier: brought to head (or, with
    `MIGRATE_ON_START=false`, checked to be there) before anything can run a turn; see
    `_schema_at_start`. `provider` and `database_schema` are seams for tests. With
    `telemetry`, every turn is traced."""
    async with AsyncExitStack() as stack:
        # First: a key set's first fetch (AUTH_JWKS_TIMEOUT_SECONDS at most) holds up nothing.
        verifier = await stack.enter_async_context(open_verifier(settings))
        engine, schema = await _open_database(settings, stack, database_schema)
        sessions = sessionmaker(engine)
        todo = build_todo_server(sessions)
        attachments = _attachments(settings, sessions, stack)
        turn_model = open_turn_model(settings, todo, acting_as, provider, attachments.read)
        model = await stack.enter_async_context(turn_model)
        limits = _user_limits(settings)
        stack.push_async_callback(limits.close)
        registry = TurnRegistry(keep_finished_seconds=settings.resume_seconds)
        metrics = Metrics(open_streams=limits.open_streams)
        limits.on_storage_error = metrics.shared_state_errors.labels("rate_limit").inc
        cluster: Cluster | None = None
        if settings.redis_url:
            cluster = await stack.enter_async_context(
                open_cluster(settings, registry, limits, metrics, settings.redis_url)
            )
        drain = Drain(registry, limits, settings.shutdown_grace_seconds)
        # Last, so it runs first: turns finish while their tools and event mirrors still work.
        stack.push_async_callback(drain.finish)
        turns = _turn_service(
            settings, sessions, model, registry, limits, metrics, cluster, telemetry
        )
        yield Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            turns=turns,
            registry=registry,
            limits=limits,
            metrics=metrics,
            model=model,
            schema=schema,
            todo=todo,
            chatkit=ChatKitProtocol(turns, sessions, settings, attachments),
            attachments=attachments,
            drain=drain,
            verifier=verifier,
            cluster=cluster,
        )


def _turn_service(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    model: AgentsTurnModel,
    registry: TurnRegistry,
    limits: UserLimits,
    metrics: Metrics,
    cluster: Cluster | None,
    telemetry: Telemetry | None,
) -> TurnService:
    """The turn core on this runtime's store, with the cluster's seams when there is one."""
    return TurnService(
        store=SqlTurnStore(sessions),
        model=model,
        registry=registry,
        buffer=cluster.buffer if cluster else InProcessTurnBuffer(registry),
        limits=limits,
        config=turn_config(settings),
        metrics=metrics,
        remote=cluster.remote if cluster else None,
        claims=cluster.claims if cluster else None,
        tracer=telemetry.turns if telemetry is not None else NO_TRACER,
    )


def _attachments(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], stack: AsyncExitStack
) -> AttachmentService:
    """The attachment service, and its sweeper of orphans until the runtime's exit."""
    attachments = attachment_service(settings, sessions)
    sweeper = asyncio.create_task(
        attachments.run_sweeper(sweep_interval(settings)), name="attachment-sweeper"
    )
    stack.push_async_callback(_cancel, sweeper)
    return attachments


def _user_limits(settings: Settings) -> UserLimits:
    """With `REDIS_URL` (and no other `RATE_LIMIT_STORAGE`), turns are counted in that Redis,
    under the deployment's prefix, so the limit is per user across every instance."""
    storage = settings.rate_limit_storage
    if settings.redis_url is None or storage != "async+memory://":
        return UserLimits(settings.rate_limit, storage, settings.max_streams_per_user)
    options = {
        "implementation": "redispy",
        "key_prefix": f"{settings.redis_prefix}:limits",
        "wrap_exceptions": True,
    }
    return UserLimits(
        settings.rate_limit,
        "async+" + settings.redis_url,
        settings.max_streams_per_user,
        storage_options=options,
        fail_open=True,
    )


async def _open_database(
    settings: Settings, stack: AsyncExitStack, database_schema: str | None
) -> tuple[AsyncEngine, SchemaStatus]:
    """The engine (`stack` disposes of it), once the schema is at head or checked."""
    engine = create_engine(
        settings.database_url,
        schema=database_schema,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    stack.push_async_callback(engine.dispose)
    schema = SchemaStatus(engine, await asyncio.to_thread(head_revision))
    if await _schema_at_start(settings, engine, schema):
        migrating = asyncio.create_task(_migrate_once_reachable(engine))
        stack.push_async_callback(_cancel, migrating)
    return engine, schema


class SchemaBehind(RuntimeError):
    """The database answers, its schema is not at head, and `MIGRATE_ON_START=false`."""

    def __init__(self, found: Revisions) -> None:
        at = found.current or "no revision (a new database)"
        super().__init__(
            f"the database schema is at {at}, this chatrelay needs {found.head} and "
            "MIGRATE_ON_START=false: run `chatrelay migrate` first"
        )
        self.revisions = found


async def check_schema(settings: Settings) -> None:
    """Raise `SchemaBehind` if the database answers with a schema behind head; an unreachable
    database is no error here (see `_schema_at_start`). What `chatrelay serve` checks before
    it starts the server, with `MIGRATE_ON_START=false`."""
    engine = create_engine(settings.database_url)
    try:
        status = SchemaStatus(engine, await asyncio.to_thread(head_revision))
        try:
            found = await status.behind()
        except Exception:  # unreachable: the server starts and its lifespan says so
            return
        if found is not None:
            raise SchemaBehind(found)
    finally:
        await engine.dispose()


async def _schema_at_start(settings: Settings, engine: AsyncEngine, status: SchemaStatus) -> bool:
    """Migrate the database to head or, with `MIGRATE_ON_START=false`, raise `SchemaBehind`
    unless it is there. Returns whether a migration is still owed.

    Before this, only SQLite was migrated on start and a Postgres database, new or older,
    answered every turn with 503 ("the reply could not be saved") after the model had run.

    A database that does not answer yet is no reason to stay down (an orchestrator may start
    both at once): the server starts, `/readyz` says 503 while the database is unreachable or
    its schema behind, and, when migrating, `_migrate_once_reachable` keeps trying. A database
    that answers but fails to migrate stops the start-up with the error.
    """
    try:
        found = await status.behind()
    except Exception as exc:  # any driver error means unreachable, as for /readyz
        then = "migrated" if settings.migrate_on_start else "checked by /readyz"
        logger.warning(
            "the database does not answer at start-up (%s); it is %s once it does", exc, then
        )
        return settings.migrate_on_start
    if found is None:
        return False  # at head, as on most starts: no migration scripts run, no lock taken
    if not settings.migrate_on_start:
        raise SchemaBehind(found)
    await upgrade(engine)
    return False


async def _migrate_once_reachable(engine: AsyncEngine) -> None:
    """Retry `upgrade()`, backing off, until the database (unreachable at start) is at head."""
    delay = _RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(delay)
        try:
            await upgrade(engine)
        except Exception as exc:
            delay = min(2 * delay, _RETRY_MAX_SECONDS)
            logger.warning("migrating the database failed, retrying in %.0f s: %s", delay, exc)
        else:
            logger.info("the database is migrated to head")
            return


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task

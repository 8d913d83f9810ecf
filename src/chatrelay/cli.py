"""`chatrelay serve | token | migrate | transcript`.

Every command reads the environment and one env file (`--env-file`, `$CHATRELAY_ENV_FILE`,
`./.env`, or the source checkout's `.env`: `chatrelay.config.find_env_file`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from chatrelay.config import (
    ENV_FILE_VARIABLE,
    CommandError,
    Settings,
    find_env_file,
    load_settings,
    mint_refusal,
)
from chatrelay.logs import configure_logging
from chatrelay.transcripts.arguments import free_to_listen, one_line, port, reason
from chatrelay.transcripts.commands import add_transcript_commands

logger = logging.getLogger("chatrelay")


SHUTDOWN_ALLOWANCE_SECONDS = 2.0
"""What a SIGTERM takes beyond the grace: the final events written, connections closed."""


def max_shutdown_seconds(settings: Settings) -> float:
    """SIGTERM to exit, at worst: running turns get `SHUTDOWN_GRACE_SECONDS` to finish, then
    are stopped and saved, their streams end with their final events and their JSON waiters
    get a 503 (`chatrelay.server.serving`). A container's stop timeout (docker-compose.yml's
    `stop_grace_period`) must cover it, or SIGKILL loses the turns still running."""
    return settings.shutdown_grace_seconds + SHUTDOWN_ALLOWANCE_SECONDS


def sqlite_folder(settings: Settings) -> None:
    """Make the folder of a SQLite database file: SQLite creates the file, never its folder,
    and `serve` would retry "unable to open database file" for ever."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return  # the engine says what is wrong with it
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):  # a URI filename (`?uri=true`): SQLite's to resolve
        return
    folder = Path(database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"DATABASE_URL: cannot create the folder {folder} of the SQLite database: {reason(exc)}"
        ) from None


def websocket_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket protocol, as the settings ask: keep-alive pings, and frames over
    `MAX_BODY_BYTES` (a chat frame is a chat body) closed with 1009 before they are buffered."""
    return {
        "ws": "websockets-sansio",  # flow control: a send waits while the peer reads nothing
        "ws_max_size": settings.max_body_bytes,
        "ws_ping_interval": settings.ws_ping_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
    }


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    free_to_listen(args.host, args.port)
    sqlite_folder(settings)
    configure_logging(settings.log_level, settings.log_format)
    if not settings.migrate_on_start:
        from chatrelay.runtime import SchemaBehind, check_schema

        # Here, not only in the lifespan: uvicorn reports a failed lifespan with a traceback.
        try:
            asyncio.run(check_schema(settings))
        except SchemaBehind as exc:
            raise CommandError(f"serve: {exc}") from None
    logger.info("configuration: the environment and %s", args.env_file or "no env file")
    if args.reload:
        # The reloader imports the app in a child process: it builds its own Settings, from
        # the same env file.
        os.environ[ENV_FILE_VARIABLE] = str(args.env_file or os.devnull)
        uvicorn.run(
            "chatrelay.server.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            reload=True,
            **websocket_options(settings),
        )
        return 0
    from chatrelay.server import create_app
    from chatrelay.server.serving import serve

    return serve(
        create_app(settings), host=args.host, port=args.port, **websocket_options(settings)
    )


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from chatrelay.tokens import mint_token

    refused = mint_refusal(settings, args.env_file)
    if refused is not None:
        raise CommandError(refused)
    print(mint_token(settings, args.user, args.ttl))
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from chatrelay.store import create_engine, upgrade

    sqlite_folder(settings)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error (its subcommands'
    parsers are of this class too: argparse makes them with the parent's class)."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (`{self.prog} --help` shows the usage)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chatrelay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--env-file",
        metavar="FILE",
        help=f"read settings from FILE (default: ${ENV_FILE_VARIABLE}, ./.env, the checkout's "
        ".env); the environment wins over it",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server", parents=[common])
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port, default=8000)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.set_defaults(handler=_serve)
    token = commands.add_parser("token", help="mint a development JWT for USER", parents=[common])
    token.add_argument("user")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(handler=_token)
    migrate = commands.add_parser(
        "migrate", help="bring the database schema to the latest version", parents=[common]
    )
    migrate.set_defaults(handler=_migrate)
    add_transcript_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A refusal (`CommandError`: bad arguments, configuration or inputs) is
    one line on stderr, `chatrelay: error: ...`, and exit status 2, never a traceback."""
    try:
        args = _parser().parse_args(argv)
        args.env_file = find_env_file(args.env_file)  # from here on: the file read, or None
        settings = load_settings(args.env_file)
        return int(args.handler(args, settings))
    except CommandError as exc:
        print(f"chatrelay: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

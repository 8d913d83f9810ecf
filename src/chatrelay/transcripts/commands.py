"""`chatrelay transcript record | replay | check | validate`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from chatrelay.config import CommandError, Settings, mint_refusal
from chatrelay.transcripts.arguments import (
    base_url,
    envelope,
    existing_files,
    free_to_listen,
    output_file,
    port,
    reason,
    speed,
    transcripts,
    unreachable,
    user_name,
    writable,
)
from chatrelay.transcripts.check import CheckResult, check
from chatrelay.transcripts.format import Transcript, load, save
from chatrelay.transcripts.record import chat_request, envelope_request, record
from chatrelay.transcripts.replay import replay_app, routes_of
from chatrelay.transcripts.validate import problems

_TIMEOUT = httpx.Timeout(30.0, read=None)  # a turn may stream for minutes


@dataclass
class _Row:
    file: Path
    status: str
    detail: str = ""


def _consoles() -> tuple[Console, Console]:
    return Console(highlight=False), Console(stderr=True, highlight=False)


@contextmanager
def _progress(files: Sequence[Path], what: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when there are many files; yields the `advance` callback."""
    if len(files) < 2:
        yield lambda: None
        return
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(what, total=len(files))
        yield lambda: progress.advance(task)


def _summary(console: Console, rows: list[_Row], title: str) -> None:
    if len(rows) < 2:
        return
    table = Table(title=title)
    table.add_column("file")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    colours = {"ok": "green", "same": "green", "updated": "yellow"}
    for row in rows:
        table.add_row(str(row.file), Text(row.status, colours.get(row.status, "red")), row.detail)
    console.print(table)


def _print_diff(console: Console, text: str) -> None:
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in text.split("\n"):
        console.print(Text(line, styles.get(line[:1], "")), soft_wrap=True)


def _authorization(settings: Settings, user: str, env_file: Path | None) -> str:
    """The bearer token a command sends for `user`, minted with the server's secret."""
    from chatrelay.tokens import mint_token

    refused = mint_refusal(settings, env_file)
    if refused is not None:
        raise CommandError(refused)
    return f"Bearer {mint_token(settings, user)}"


def _record(args: argparse.Namespace, settings: Settings) -> int:
    out, _err = _consoles()
    url, user = base_url(args.url), user_name(args.user)
    authorization = _authorization(settings, user, args.env_file)
    if args.envelope is not None:
        request = envelope_request(envelope(args.envelope))
    else:
        request = chat_request(user, args.message)

    async def run() -> Transcript:
        async with httpx.AsyncClient(base_url=url, timeout=_TIMEOUT) as client:
            return await record(client, request, authorization=authorization, user=user)

    with output_file(Path(args.output)) as output:
        try:
            transcript = asyncio.run(run())
        except httpx.HTTPError as exc:
            raise unreachable(url, exc) from None
        try:
            save(transcript, output)
        except OSError as exc:
            raise CommandError(f"-o {output}: cannot write it: {reason(exc)}") from None
    status = transcript.response.status
    out.print(f"{output}: status {status}, {len(transcript.data_events())} events")
    return 0 if status < 400 else 1


def _replay(args: argparse.Namespace, _settings: Settings) -> int:
    import uvicorn

    out, _err = _consoles()
    loaded = transcripts(args.files)
    app = replay_app(loaded, speed=args.speed, default_path=args.path)
    free_to_listen(args.host, args.port)
    out.print(f"replaying on http://{args.host}:{args.port} (speed {args.speed}):")
    for path, route in zip(args.files, routes_of(loaded, args.path), strict=True):
        out.print(f"  {route}  <-  {path}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


@dataclass(frozen=True)
class _Checked:
    path: Path
    transcript: Transcript
    authorization: str


def _checkable(args: argparse.Namespace, settings: Settings) -> list[_Checked]:
    """Every file, loaded and given its token, before the first request is sent."""
    refused = mint_refusal(settings, args.env_file)
    if refused is not None:
        raise CommandError(refused)
    user = None if args.user is None else user_name(args.user)
    checked: list[_Checked] = []
    for path, transcript in zip(args.files, transcripts(args.files), strict=True):
        if transcript.request is None:
            raise CommandError(
                f"{path} is a raw stream: it records no request to re-send "
                "(it can be replayed and validated, not checked)"
            )
        who = user or transcript.user
        if who is None:
            raise CommandError(f"{path} records no user: pass --user")
        checked.append(_Checked(path, transcript, _authorization(settings, who, args.env_file)))
    if args.update:
        writable(args.files)
    return checked


def _check(args: argparse.Namespace, settings: Settings) -> int:
    out, _err = _consoles()
    url = base_url(args.url)
    files = _checkable(args, settings)
    rows = asyncio.run(_check_all(url, files, args.update, out))
    if len(rows) == 1:
        out.print(f"{rows[0].file}: {rows[0].status} {rows[0].detail}".rstrip())
    _summary(out, rows, f"check against {url}")
    return 1 if any(row.status == "differs" for row in rows) else 0


async def _check_all(url: str, files: list[_Checked], update: bool, out: Console) -> list[_Row]:
    rows: list[_Row] = []
    ids: dict[str, str] = {}  # carried from file to file: later turns use earlier threads
    async with httpx.AsyncClient(base_url=url, timeout=_TIMEOUT) as client:
        with _progress([file.path for file in files], "checking") as advance:
            for file in files:
                try:
                    result = await check(
                        client,
                        file.transcript,
                        authorization=file.authorization,
                        name=str(file.path),
                        ids=ids,
                    )
                except httpx.HTTPError as exc:
                    raise unreachable(url, exc) from None
                rows.append(_row(file.path, result, update, out))
                advance()
    return rows


def _row(path: Path, result: CheckResult, update: bool, out: Console) -> _Row:
    if result.same:
        return _Row(path, "same")
    if update:
        try:
            save(result.actual, path)
        except OSError as exc:
            raise CommandError(f"--update {path}: cannot write it: {reason(exc)}") from None
        return _Row(path, "updated")
    _print_diff(out, result.diff)
    changed = sum(1 for line in result.diff.split("\n") if line[:1] in "+-") - 2
    return _Row(path, "differs", f"{changed} changed lines")


def _validate(args: argparse.Namespace, _settings: Settings) -> int:
    out, _err = _consoles()
    existing_files(args.files)
    rows: list[_Row] = []
    with _progress(args.files, "validating") as advance:
        for path in args.files:
            try:
                found = problems(load(path))
            except (OSError, ValueError, ValidationError) as exc:
                found = [f"cannot load: {exc}"]
            rows.append(_Row(path, "invalid" if found else "ok", "\n".join(found)))
            advance()
    for row in rows:
        if len(rows) == 1 or row.status != "ok":
            out.print(f"{row.file}: {row.status}")
            for line in row.detail.splitlines():
                out.print(f"  {line}", soft_wrap=True)
    _summary(out, rows, "validate (chatkit.types ThreadStreamEvent)")
    return 1 if any(row.status != "ok" for row in rows) else 0


_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_transcript_commands(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """`transcript record | replay | check | validate`; each takes `common`'s options."""
    transcript = commands.add_parser("transcript", help="record, replay, check, validate SSE")
    sub = transcript.add_subparsers(dest="transcript_command", required=True)

    rec = sub.add_parser(
        "record", help="record one streamed turn to a file (.json or .sse)", parents=[common]
    )
    rec.add_argument("--url", required=True, help="the server's base URL")
    rec.add_argument("--user", required=True, help="whom to mint the token for")
    what = rec.add_mutually_exclusive_group(required=True)
    what.add_argument("--message", help="send this message to /api/USER/chat")
    what.add_argument("--envelope", help="send this ChatKit request (a JSON file) to /chatkit")
    rec.add_argument("-o", "--output", required=True, help="the transcript file to write")
    rec.set_defaults(handler=_record)

    rep = sub.add_parser(
        "replay", help="serve recorded streams (no model, no database)", parents=[common]
    )
    rep.add_argument("files", nargs="+", type=Path)
    rep.add_argument("--host", default="127.0.0.1")
    rep.add_argument("--port", type=port, default=8001)
    rep.add_argument("--speed", type=speed, default=1.0, help="timing factor; 0 = instant")
    rep.add_argument("--path", default="/chatkit", help="where raw .sse captures are served")
    rep.set_defaults(handler=_replay)

    chk = sub.add_parser(
        "check", help="re-send recorded requests, diff the new streams", parents=[common]
    )
    chk.add_argument("files", nargs="+", type=Path)
    chk.add_argument("--url", required=True, help="the server's base URL")
    chk.add_argument("--user", help="mint tokens for this user (default: the recorded one)")
    chk.add_argument("--update", action="store_true", help="rewrite the files that differ")
    chk.set_defaults(handler=_check)

    val = sub.add_parser(
        "validate", help="check every event against chatkit.types", parents=[common]
    )
    val.add_argument("files", nargs="+", type=Path)
    val.set_defaults(handler=_validate)

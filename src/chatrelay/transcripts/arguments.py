"""What `chatrelay` commands check before they do anything with a side effect (issue 20).

`record -o turns/01.json` used to run the turn (a task added on the server) and only then
crash writing to a folder that did not exist. Every check here runs first and raises
`CommandError` with one line for a human; the output's folders are made before the request.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from pydantic import JsonValue, ValidationError

from chatrelay.config import CommandError
from chatrelay.transcripts.format import Transcript, load


def one_line(text: object) -> str:
    """`text` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(text).split())


def base_url(text: str) -> str:
    """The `--url` of a server: `http(s)://host[:port][/prefix]`."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise CommandError(f"--url {text!r} is not a URL ({one_line(exc)})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise CommandError(
            f"--url {text!r} is not an http(s) URL: give the server's base URL, "
            "such as http://127.0.0.1:8000"
        )
    if url.query or url.fragment:
        raise CommandError(f"--url {text!r}: a base URL has no query or fragment")
    return text.rstrip("/")


def user_name(text: str) -> str:
    """`--user`: whom the token is for, and the `{user_id}` of the chat URL."""
    if not text.strip() or "/" in text:
        raise CommandError(f"--user {text!r}: a user id is not empty and has no '/'")
    return text


def reason(exc: BaseException) -> str:
    """Why a request or a file operation failed, in a few words."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"not a transcript: {where + ': ' if where else ''}{first['msg']}{more}"
    return one_line(exc) or type(exc).__name__


def unreachable(url: str, exc: httpx.HTTPError) -> CommandError:
    """A request that failed: the server is not there, or the exchange broke off."""
    if isinstance(exc, httpx.ConnectError):
        return CommandError(
            f"cannot reach {url}: {reason(exc)} (is `chatrelay serve`, or `make run`, running?)"
        )
    return CommandError(f"the exchange with {url} failed: {type(exc).__name__}: {reason(exc)}")


def envelope(path: str) -> JsonValue:
    """`--envelope FILE`: a ChatKit request, `{"type": ..., "params": ...}`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--envelope {path}: cannot read it: {reason(exc)}") from None
    try:
        body: JsonValue = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--envelope {path} is not JSON: {reason(exc)}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise CommandError(
            f'--envelope {path} is not a ChatKit request (a JSON object with "type" and '
            '"params", such as {"type": "threads.list", "params": {}})'
        )
    return body


def transcripts(paths: Sequence[Path]) -> list[Transcript]:
    """Every input file, loaded; the first that cannot be is the error."""
    loaded: list[Transcript] = []
    for path in paths:
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a transcript")
        try:
            loaded.append(load(path))
        except (OSError, ValueError, ValidationError) as exc:
            raise CommandError(f"{path}: cannot load it: {reason(exc)}") from None
    return loaded


def existing_files(paths: Sequence[Path]) -> None:
    """Each path names a file that can be read (its content is another matter)."""
    for path in paths:
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a transcript")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise CommandError(f"{path}: cannot read it: {reason(exc)}") from None


def _probe_writable(path: Path, what: str) -> bool:
    """Open `path` for appending (nothing is written): whether it existed before."""
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise CommandError(f"{what} {path}: cannot write to it: {reason(exc)}") from None
    return existed


def writable(paths: Sequence[Path]) -> None:
    """Existing files that a command will rewrite (`check --update`)."""
    for path in paths:
        _probe_writable(path, "--update")


@contextmanager
def output_file(path: Path, option: str = "-o") -> Iterator[Path]:
    """`path`, ready to be written, before the caller sends anything: its folders made and
    the file itself opened once for writing. A file made here is removed again if the block
    fails, so a refused or broken recording leaves no empty transcript behind."""
    if path.is_dir():
        raise CommandError(f"{option} {path} is a directory: name the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"{option} {path}: cannot create the folder {path.parent}: {reason(exc)}"
        ) from None
    existed = _probe_writable(path, option)
    try:
        yield path
    except BaseException:
        if not existed:
            path.unlink(missing_ok=True)
        raise


def port(text: str) -> int:
    """`--port`, for argparse: 0..65535."""
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"--port {text!r} is not a number") from None
    if not 0 <= value <= 65535:
        raise CommandError(f"--port {value} is not a TCP port (0-65535)")
    return value


def speed(text: str) -> float:
    """`replay --speed`, for argparse: a timing factor, 0 (instant) or more."""
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"--speed {text!r} is not a number") from None
    if not value >= 0:  # NaN too
        raise CommandError(f"--speed {text}: 0 (instant) or more")
    return value


def free_to_listen(host: str, port: int) -> None:
    """Whether `host:port` can be listened on now, so a busy port is one line before the
    server starts (uvicorn finds out after its lifespan ran, and logs it among its own)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {reason(exc)}") from None
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                busy = exc.errno == errno.EADDRINUSE
                hint = " (is another server running there?)" if busy else ""
                raise CommandError(f"cannot listen on {host}:{port}: {reason(exc)}{hint}") from None

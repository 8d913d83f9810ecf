"""deploy/haproxy.cfg as HAProxy reads it (sections, keywords, "${NAME-default}" in double
quotes), and Debian's HAProxy run on it: checked with `-c`, or started in front of instances
listening on this machine."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.container import ROOT

CONFIG = ROOT / "deploy" / "haproxy.cfg"
# Makefile's `packages` target installs Debian's haproxy there when it is missing.
HAPROXY = os.environ.get("CHATRELAY_HAPROXY", "/usr/sbin/haproxy")
# HAProxy's section keywords (configuration manual, section 2.1 and 3 to 12).
_SECTIONS = {
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "resolvers",
    "peers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:-(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Section:
    kind: str
    name: str
    lines: tuple[tuple[str, ...], ...]

    def find(self, *prefix: str) -> list[tuple[str, ...]]:
        """The lines starting with these words (`find("timeout", "server")`)."""
        return [line for line in self.lines if line[: len(prefix)] == prefix]


def parse(text: str) -> list[Section]:
    """The sections of an HAProxy configuration, each line split into words as HAProxy splits
    them (double quotes kept together, `#` starts a comment outside quotes)."""
    sections: list[Section] = []
    kind, name, lines = "", "", []
    for raw in text.splitlines():
        lexer = shlex.shlex(raw, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        lexer.quotes = '"'
        words = tuple(lexer)
        if not words:
            continue
        if words[0] in _SECTIONS:
            if kind:
                sections.append(Section(kind, name, tuple(lines)))
            kind, name, lines = words[0], (words[1] if len(words) > 1 else ""), []
        else:
            assert kind, f"a line outside any section: {raw!r}"
            lines.append(words)
    if kind:
        sections.append(Section(kind, name, tuple(lines)))
    return sections


def config() -> list[Section]:
    return parse(CONFIG.read_text())


def section(sections: list[Section], kind: str, name: str = "") -> Section:
    found = [s for s in sections if s.kind == kind and s.name == name]
    assert len(found) == 1, f"{len(found)} {kind} {name!r} sections"
    return found[0]


def expand(word: str, environ: Mapping[str, str]) -> str:
    """HAProxy's "${NAME}" and "${NAME-default}" (the default only for an unset variable)."""

    def one(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        return environ.get(name, default if default is not None else "")

    return _VARIABLE.sub(one, word)


def variables(sections: list[Section]) -> dict[str, str | None]:
    """Every variable the configuration reads (comments aside), with its default (None: none)."""
    words = [word for s in sections for line in s.lines for word in line]
    return {m["name"]: m["default"] for word in words for m in _VARIABLE.finditer(word)}


def check(path: Path, environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`haproxy -c`: HAProxy's own verdict on a configuration file."""
    return subprocess.run(
        [haproxy(), "-c", "-f", str(path)],
        env={"PATH": os.environ.get("PATH", ""), **environ},
        capture_output=True,
        text=True,
        timeout=30,
    )


def haproxy() -> str:
    assert os.access(HAPROXY, os.X_OK), (
        f"no HAProxy at {HAPROXY}: `make test` (or `make packages`) installs Debian's haproxy, "
        "or set CHATRELAY_HAPROXY"
    )
    return HAPROXY


def server_states(stats_url: str) -> dict[str, str]:
    """The chatrelay backend's servers, each with its state and its last health check's
    (`UP L7OK`: up, and /readyz answered 200), from the stats page's CSV."""
    response = httpx.get(f"{stats_url}/;csv", timeout=5)
    response.raise_for_status()
    rows = csv.DictReader(io.StringIO(response.text.removeprefix("# ")))
    return {
        row["svname"]: f"{row['status']} {row['check_status']}"
        for row in rows
        if row["pxname"] == "chatrelay" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


@dataclass(frozen=True)
class Balancer:
    url: str
    stats_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def requests(self) -> list[tuple[str, str]]:
        """Each request HAProxy has logged (once it ended): (server, request line)."""
        pattern = re.compile(r" chatrelay chatrelay/(?P<server>\S+) .*\"(?P<request>[^\"]*)\"$")
        return [
            (match["server"], match["request"])
            for match in map(pattern.search, self.log.read_text().splitlines())
            if match
        ]


@contextmanager
def balancer(backends: Mapping[str, str], listen: str, stats: str, cwd: Path) -> Iterator[Balancer]:
    """HAProxy on the committed configuration, in the foreground, `backends` (server name ->
    host:port) in place of the compose services; returned once every server has passed its
    health check (HAProxy counts a server up before its first check)."""
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "CHATRELAY_LISTEN": listen,
        "CHATRELAY_STATS": stats,
        **{f"CHATRELAY_{name.upper().replace('-', '_')}": addr for name, addr in backends.items()},
    }
    log = cwd / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [haproxy(), "-db", "-f", str(CONFIG)],
            env=environ,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Balancer(f"http://{listen}", f"http://{stats}", log, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if server_states(running.stats_url) == dict.fromkeys(backends, "UP L7OK"):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"servers not UP: {log.read_text()}"
            time.sleep(0.1)
        yield running
    finally:
        process.kill()
        process.wait()

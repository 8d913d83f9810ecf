"""The container setup keeps the properties a graceful, safe deployment needs (issue 20): the
server is PID 1, compose waits out its shutdown, the build context holds no secrets or
virtualenv, the image runs as a non-root user, and no database password is written down.

Each property is checked on the real files; each checker is also shown the regression it
exists for, so it cannot quietly accept everything."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from chatrelay.cli import max_shutdown_seconds
from chatrelay.config import Settings
from tests.container import (
    ROOT,
    command_line,
    copied_sources,
    environment,
    final_stage,
    ignored_by_docker,
    instances,
    interpolate,
    service,
)

_INITS = {"tini", "dumb-init", "docker-init", "catatonit"}
_OPERATORS = {"&&", "||", ";", "|", "&", "\n"}


def pid_1_problem(argv: list[str], *, init: bool = False) -> str | None:
    """Why the server would not be PID 1 (or under an init that forwards signals), or None."""
    if init or Path(argv[0]).name in _INITS:
        return None
    if Path(argv[0]).name == "chatrelay":
        return None  # exec form: the server itself
    if Path(argv[0]).name not in ("sh", "bash", "dash") or argv[1:2] != ["-c"]:
        return f"neither the server, an init nor `sh -c`: {argv}"
    lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
    lexer.whitespace = " \t"  # a newline separates commands, like `;`
    tokens = list(lexer)
    starts = [0] + [i + 1 for i, token in enumerate(tokens) if token in _OPERATORS]
    last = tokens[starts[-1] :]
    separator = tokens[starts[-1] - 1] if len(starts) > 1 else None
    if separator in ("|", "&"):
        return f"the server runs in a pipeline or in the background: {argv[2]!r}"
    if last[:1] != ["exec"] or Path(last[1] if len(last) > 1 else "").name != "chatrelay":
        return f"the shell stays PID 1 (no `exec chatrelay ...` at the end): {argv[2]!r}"
    return None


def _seconds(duration: str) -> float:
    """A compose duration (Go syntax: `30s`, `1m30s`, `1500ms`)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.mark.parametrize("name", instances())
def test_the_server_is_pid_1(name: str) -> None:
    """Regression: `sh -c "chatrelay migrate && chatrelay serve"` left sh as PID 1, which
    ignores SIGTERM, so SHUTDOWN_GRACE_SECONDS never applied and `docker stop` killed turns."""
    assert pid_1_problem(command_line(name), init=bool(service(name).get("init"))) is None


@pytest.mark.parametrize(
    "script",
    [
        "chatrelay migrate && chatrelay serve --host 0.0.0.0 --port 8000",
        "chatrelay migrate; chatrelay serve",
        "exec chatrelay migrate && chatrelay serve",
        "chatrelay migrate && exec chatrelay serve | tee log",
        "chatrelay migrate && exec chatrelay serve &",
        "exec chatrelay serve\nchatrelay migrate",
    ],
)
def test_the_pid_1_check_refuses_a_shell_that_stays(script: str) -> None:
    assert pid_1_problem(["sh", "-c", script]) is not None


def test_the_pid_1_check_accepts_exec_and_inits() -> None:
    assert pid_1_problem(["sh", "-c", "chatrelay migrate && exec chatrelay serve"]) is None
    assert pid_1_problem(["chatrelay", "serve"]) is None
    assert pid_1_problem(["/usr/bin/tini", "--", "sh", "-c", "a && b"]) is None
    assert pid_1_problem(["sh", "-c", "a && b"], init=True) is None


@pytest.mark.parametrize("name", instances())
def test_compose_waits_out_the_whole_shutdown(name: str) -> None:
    """`stop_grace_period` (compose's default is 10 s, then SIGKILL) covers the longest a
    SIGTERM can take with the grace the service is given."""
    app = service(name)
    grace = interpolate(environment(app).get("SHUTDOWN_GRACE_SECONDS", ""), {})
    overrides = {"shutdown_grace_seconds": grace} if grace else {}
    settings = Settings(_env_file=None, **overrides)  # type: ignore[arg-type]
    assert "stop_grace_period" in app, "compose would SIGKILL after 10 s"
    assert _seconds(str(app["stop_grace_period"])) >= max_shutdown_seconds(settings)


def test_the_compose_durations_parse() -> None:
    assert _seconds("1m30s") == 90 and _seconds("1500ms") == 1.5
    with pytest.raises(AssertionError):
        _seconds("30")


# What `docker build` must never receive, and what it needs (Dockerfile COPYs).
NEVER_IN_THE_CONTEXT = [
    ".venv/bin/python",
    ".env",
    ".env.local",
    "src/.env",
    "chatrelay.db",
    "chatrelay.db-wal",
    "chatrelay.db-shm",
    "data/chatrelay.db",
    ".git/HEAD",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/cache.db",
    ".ruff_cache/CACHEDIR.TAG",
    ".import_linter_cache/x.json",
    "src/chatrelay/__pycache__/cli.cpython-311.pyc",
    "src/chatrelay.egg-info/PKG-INFO",
    "turns/01-add-task.json",
    "bench/results/bench.json",
]


@pytest.mark.parametrize("path", NEVER_IN_THE_CONTEXT)
def test_the_build_context_leaves_out(path: str) -> None:
    """Regression: with no .dockerignore, the context carried .venv (~340 MB), .env (the
    secret) and chatrelay.db into the build."""
    assert (ROOT / ".dockerignore").is_file()
    assert ignored_by_docker(path)


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing?"
    needed: list[str] = []
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        needed += [
            str(f.relative_to(ROOT))
            for f in files
            if f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f)
        ]
    assert "src/chatrelay/store/migrations/script.py.mako" in needed
    assert [path for path in needed if ignored_by_docker(path)] == []


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [i.args for i in final_stage() if i.keyword == "USER"]
    assert users, "no USER: the image runs as root"
    user = service("app").get("user", users[-1])
    assert str(user).split(":")[0] not in ("root", "0")


def _literal_password_problem(svc: dict[str, object]) -> str | None:
    env = environment(svc)  # type: ignore[arg-type]
    if "POSTGRES_PASSWORD" in env:
        value = env["POSTGRES_PASSWORD"]
        if not re.fullmatch(r"\$\{\w+:\?[^}]*\}", value):
            return f"POSTGRES_PASSWORD is not a required variable (${{NAME:?...}}): {value!r}"
    url = env.get("DATABASE_URL", "")
    password = re.match(r"[\w+]+://[^:/@]*:(?P<password>.*)@", url)
    if password and not re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", password["password"]):
        return f"DATABASE_URL carries a literal password: {url!r}"
    return None


def test_the_postgres_password_comes_from_the_environment() -> None:
    """Regression: `POSTGRES_PASSWORD: chatrelay`, and the same in the app's DATABASE_URL."""
    for name in ("db", *instances()):
        assert _literal_password_problem(service(name)) is None
    url = environment(service("app"))["DATABASE_URL"]
    shell = {"POSTGRES_PASSWORD": "s3cret-pw"}
    assert interpolate(url, shell) == "postgresql+asyncpg://chatrelay:s3cret-pw@db:5432/chatrelay"
    assert interpolate(environment(service("db"))["POSTGRES_PASSWORD"], shell) == "s3cret-pw"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(url, {})  # compose refuses to start without it


def test_the_password_check_refuses_literals() -> None:
    assert _literal_password_problem({"environment": {"POSTGRES_PASSWORD": "chatrelay"}})
    assert _literal_password_problem({"environment": ["POSTGRES_PASSWORD=${PW:-chatrelay}"]})
    assert _literal_password_problem(
        {"environment": {"DATABASE_URL": "postgresql+asyncpg://chatrelay:chatrelay@db/chatrelay"}}
    )
    assert not _literal_password_problem(
        {"environment": {"DATABASE_URL": "postgresql+asyncpg://u:${PW:?set PW}@db/x"}}
    )

"""What the container runs, read from the Dockerfile and docker-compose.yml as Docker reads them
(no Docker engine needed): the app service, the image's final stage, its command line and
environment, and which paths the build context keeps (.dockerignore)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def instances() -> list[str]:
    """The services that run chatrelay (built from this checkout's Dockerfile, as `app` is)."""
    services: dict[str, dict[str, Any]] = compose()["services"]
    return [name for name, svc in services.items() if svc.get("build") == service("app")["build"]]


def profiles(name: str) -> list[str]:
    """A service's compose profiles (none: it always starts)."""
    return [str(profile) for profile in service(name).get("profiles", [])]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of compose's forms (mapping or `NAME=value` list)."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {name: "" if value is None else str(value) for name, value in raw.items()}


def interpolate(value: str, shell: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` against `shell`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if shell.get(name) or (name in shell and op is not None and ":" not in op):
            return shell[name]
        if op is not None and op.endswith("?"):
            raise KeyError(f"compose needs {name}: {arg}")
        return arg if op is not None else ""

    return _INTERPOLATION.sub(one, value)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped)."""
    instructions: list[Instruction] = []
    pending = ""
    build = service("app")["build"]
    text = (
        build.get("dockerfile_inline") or (ROOT / build.get("dockerfile", "Dockerfile")).read_text()
    )
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    starts = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    return instructions[starts[-1] :]


def _argv(value: str | list[str]) -> list[str]:
    """An exec-form (JSON array) instruction or compose list as is; a shell form via `sh -c`."""
    if isinstance(value, list):
        return [str(part) for part in value]
    if value.lstrip().startswith("["):
        parsed: list[str] = json.loads(value)
        return parsed
    return ["/bin/sh", "-c", value]


def command_line(name: str = "app") -> list[str]:
    """What a chatrelay container executes: compose's `entrypoint`/`command` over the image's."""
    app = service(name)
    stage = final_stage()
    image = {i.keyword: i.args for i in stage if i.keyword in ("ENTRYPOINT", "CMD")}
    entrypoint = app.get("entrypoint", image.get("ENTRYPOINT"))
    command = app.get("command", image.get("CMD"))
    if isinstance(command, str) and "command" in app:
        command = shlex.split(command)  # compose splits a string command, without a shell
    return [*(_argv(entrypoint) if entrypoint else []), *(_argv(command) if command else [])]


def copied_sources() -> list[str]:
    """Every source path a COPY/ADD of the final stage takes from the build context."""
    sources: list[str] = []
    for instruction in final_stage():
        if instruction.keyword in ("COPY", "ADD"):
            parts = [p for p in shlex.split(instruction.args) if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as moby's patternmatcher reads it (Go filepath.Match plus `**`)."""
    cleaned = str(PurePosixPath("/" + pattern)).lstrip("/") or "."
    regex = ""
    i = 0
    while i < len(cleaned):
        if cleaned.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif cleaned.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif cleaned[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif cleaned[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif cleaned[i] == "[":
            end = cleaned.index("]", i)
            regex, i = regex + "[" + cleaned[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            regex, i = regex + re.escape(cleaned[i]), i + 1
    return re.compile(regex + r"\Z")


def ignored_by_docker(path: str) -> bool:
    """Whether `docker build` leaves `path` (relative to the context) out: the last pattern that
    matches the path or one of its parent directories decides (`!` puts it back)."""
    excluded = False
    parents = [str(p) for p in reversed(PurePosixPath(path).parents) if str(p) != "."]
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = _pattern(line.removeprefix("!"))
        if any(regex.match(candidate) for candidate in [path, *parents]):
            excluded = not negated
    return excluded

"""README.md's fenced code blocks, as `tests/integration/test_readme.py` runs them (issue 20: the
README's commands drifted from the product, and nothing noticed).

Every block is accounted for, by its language and the marking on the line right above it:

- ```sh / ```bash, unmarked: run as written, in order, in one bash (`-euo pipefail`, so every
  command must succeed), the shell a reader types into: a variable one block sets (`TOKEN=...`)
  is there in the next;
- ```console marked `<!-- readme-test: output -->`: its `$ ` lines (with their `\\`
  continuations) are run in that shell, and what they print must be the block's other lines,
  after normalising ids and timestamps (`chatrelay.transcripts.Normaliser`) and runs of spaces;
- any shell block marked `<!-- readme-test: background until URL answers -->`: a command that
  serves until Ctrl-C (`make run`, `transcript replay`), run in a shell of its own as a reader
  runs it in another terminal; the next block waits until `GET URL` answers (any status below
  500), and it is stopped (SIGTERM to its process group) once every block has run;
- any block marked `<!-- readme-test: skip (why) -->`: not run, and the reason is required.

Any other block (json, tsx...) must be marked skip; a marking must sit right above a fence.

The blocks are written for a reader's checkout, so the test rewrites them (`as_here`) the same
way everywhere: each example port 8000-8099 (`127.0.0.1:8000`, `--port 8001`, `PORT=8000`)
becomes a free port of the test's, the same one wherever the README repeats it, and `make run`
becomes `make -o .venv/.installed run PORT=8000` (then that free port): the venv is the test's
own, already installed, and the Makefile ignores `PORT` from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chatrelay.transcripts import Normaliser

SHELLS = frozenset({"sh", "bash"})
Kind = Literal["run", "output", "background", "skip"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<language>[\w+-]*)\s*$")
_MARKING = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<marking>.*?)\s*-->\s*$")
_SKIP = re.compile(r"skip \((?P<why>[^()]*\w[^()]*)\)")
_BACKGROUND = re.compile(r"background until (?P<url>https?://\S+) answers")
_EXAMPLE_PORT = re.compile(
    r"(?P<before>127\.0\.0\.1:|localhost:|--port[ =]|\bPORT=)(?P<port>80\d\d)\b"
)
_STRAY = "a marking not right above a fence"
_MAKE_RUN = re.compile(r"\bmake run\b(?P<port> PORT=)?")


@dataclass(frozen=True)
class Block:
    """One fenced block of README.md and what the test does with it."""

    line: int
    """Line number of its opening fence (1-based)."""
    language: str
    text: str
    kind: Kind
    note: str = ""
    """Why it is skipped, or the URL a background block answers on once it is ready."""

    def commands(self) -> str:
        """What to run: the whole text, or for an `output` block its `$ ` lines."""
        if self.kind != "output":
            return self.text
        return "\n".join(_console(self.text)[0])

    def expected(self) -> str:
        """What an `output` block shows the commands print."""
        return "\n".join(_console(self.text)[1])


def _console(text: str) -> tuple[list[str], list[str]]:
    commands: list[str] = []
    output: list[str] = []
    continued = False
    for line in text.splitlines():
        if continued or line.startswith("$ "):
            commands.append(line if continued else line[2:])
            continued = line.endswith("\\")
        else:
            output.append(line)
    return commands, output


def _kind(marking: str | None, language: str) -> tuple[Kind, str] | str:
    """The block's kind and note, or what is wrong with its marking."""
    if marking is None:
        if language in SHELLS:
            return "run", ""
        return f"a ```{language or '(no language)'} block is not run: mark it skip (why)"
    if skip := _SKIP.fullmatch(marking):
        return "skip", skip.group("why").strip()
    if marking == "output":
        if language != "console":
            return "`output` is for a ```console block ($ commands, then what they print)"
        return "output", ""
    if background := _BACKGROUND.fullmatch(marking):
        if language not in SHELLS:
            return f"a background block is a shell block, not ```{language}"
        return "background", background.group("url")
    return f"unknown marking {marking!r}: `skip (why)`, `output` or `background until URL answers`"


def parse(text: str) -> tuple[list[Block], list[str]]:
    """The blocks of a Markdown text, and the problems of those that are not accounted for."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    marking: tuple[int, str] | None = None
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if found := _MARKING.match(line):
            if marking is not None:
                problems.append(f"{marking[0]}: {_STRAY}")
            marking = (number, found.group("marking"))
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if marking is not None:
                problems.append(f"{marking[0]}: {_STRAY}")
                marking = None
            continue
        start, indent, closing = number, fence.group("indent"), fence.group("fence")
        body: list[str] = []
        while number < len(lines) and lines[number].strip() != closing:
            body.append(lines[number].removeprefix(indent))
            number += 1
        number += 1  # the closing fence
        language = fence.group("language")
        kind = _kind(marking[1] if marking else None, language)
        where, marking = (marking[0] if marking else start), None
        if isinstance(kind, str):
            problems.append(f"{where}: {kind}")
            continue
        blocks.append(Block(start, language, "\n".join(body) + "\n", *kind))
    if marking is not None:
        problems.append(f"{marking[0]}: {_STRAY}")
    return blocks, problems


def read(path: Path) -> list[Block]:
    """The blocks of a Markdown file, every one accounted for (else `ValueError`)."""
    blocks, problems = parse(path.read_text())
    if problems:
        raise ValueError("\n".join(f"{path.name}:{problem}" for problem in problems))
    return blocks


def as_here(text: str, port: Callable[[int], int]) -> str:
    """A block's text with the README's example ports (and `make run`) made the test's."""

    def make_run(match: re.Match[str]) -> str:
        return "make -o .venv/.installed run" + (" PORT=" if match.group("port") else " PORT=8000")

    def example_port(match: re.Match[str]) -> str:
        return match.group("before") + str(port(int(match.group("port"))))

    return _EXAMPLE_PORT.sub(example_port, _MAKE_RUN.sub(make_run, text))


def comparable(text: str) -> list[str]:
    """Output lines as an `output` block compares them: ids and timestamps numbered, runs of
    spaces as one, no trailing blank lines."""
    normalise = Normaliser()
    lines = [" ".join(normalise(line).split()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines

"""The package's boundaries (pyproject's import-linter contracts) hold, and breaking one fails.

`make test` runs `lint-imports` on the real tree; these tests prove the contracts have teeth by
adding a forbidden import to a copy of the package and watching the check fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_of_project(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "src" / "chatrelay",
        tmp_path / "src" / "chatrelay",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}  # the copy, not the installed tree
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_import(project: Path, module: str, line: str) -> None:
    path = project / "src" / Path(*module.split(".")).with_suffix(".py")
    source = path.read_text()
    future = "from __future__ import annotations\n"
    assert future in source, path
    path.write_text(source.replace(future, future + line + "\n", 1))


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_of_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("chatrelay.turns.spec", "import fastapi", "Turn core and attachments"),
        ("chatrelay.turns.turn", "import chatkit.types", "Turn core and attachments"),
        ("chatrelay.server.sse", "import agents", "Only chatrelay.agents imports the Agents SDK"),
        ("chatrelay.runtime", "import openai", "Only chatrelay.agents imports the Agents SDK"),
        ("chatrelay.turns.log", "import chatkit", "Only chatrelay.chatkit imports chatkit"),
        ("chatrelay.server.sse", "import chatrelay.agents", "only through the runtime"),
        ("chatrelay.store.db", "import chatrelay.config", "The store imports no other chatrelay"),
        ("chatrelay.turns.spec", "import chatrelay.runtime", "Layers"),
        ("chatrelay.chatkit.items", "import chatrelay.agents.runner", "Layers"),
        ("chatrelay.attachments.service", "import chatrelay.chatkit", "Layers"),
        ("chatrelay.turns.spec", "import chatrelay.attachments", "Layers"),
        ("chatrelay.attachments.links", "import starlette", "Turn core and attachments"),
        ("chatrelay.turns.turn", "import opentelemetry.trace", "Only chatrelay.telemetry"),
        ("chatrelay.server.app", "import opentelemetry.sdk", "Only chatrelay.telemetry"),
        ("chatrelay.turns.tracing", "import chatrelay.telemetry", "Layers"),
    ],
)
def test_a_forbidden_import_breaks_the_suite(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    project = _copy_of_project(tmp_path)
    _add_import(project, module, line)
    result = _lint(project)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith(" BROKEN")]
    assert any(contract in row for row in broken), result.stdout

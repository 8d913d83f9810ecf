"""`chatrelay token alice` from any directory finds the configuration the server uses, or says
in one line what is missing (issue 20: it only worked from the checkout's root, reading `.env`
from the current directory, and a bad setting was a pydantic traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import jwt
import pytest

from chatrelay.config import ENV_FILE_VARIABLE
from tests.container import ROOT
from tests.integration.processes import CLI

pytestmark = pytest.mark.slow

SECRET = "checkout-secret-" + "c" * 40


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A source checkout of chatrelay (its src/ and pyproject.toml) that the real entry point
    imports (PYTHONPATH), so "the checkout's .env" is one this test controls."""
    root = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "src" / "chatrelay",
        root / "src" / "chatrelay",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    path = tmp_path / "somewhere" / "else"
    path.mkdir(parents=True)
    return path


def _env(checkout: Path, **extra: str) -> dict[str, str]:
    drop = ("AUTH_SECRET", "BETTER_AUTH_SECRET", ENV_FILE_VARIABLE, "ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(checkout / "src"), **extra}


def _token(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "token", "alice", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""  # nothing a `$(...)` would take for a token
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _subject(token: str, secret: str) -> str:
    claims = jwt.decode(token.strip(), secret, algorithms=["HS256"])
    return str(claims["sub"])


def test_token_from_any_directory_uses_the_checkouts_env(checkout: Path, elsewhere: Path) -> None:
    (checkout / ".env").write_text(f"AUTH_SECRET={SECRET}\n")  # what `make run` writes
    result = _token(elsewhere, _env(checkout))
    assert result.returncode == 0, result.stderr
    assert _subject(result.stdout, SECRET) == "alice"


def test_token_prefers_the_working_directory_and_a_named_file(
    checkout: Path, elsewhere: Path, tmp_path: Path
) -> None:
    (checkout / ".env").write_text(f"AUTH_SECRET={SECRET}\n")
    (elsewhere / ".env").write_text("AUTH_SECRET=" + "w" * 40 + "\n")
    assert _subject(_token(elsewhere, _env(checkout)).stdout, "w" * 40) == "alice"
    named = tmp_path / "server.env"
    named.write_text("AUTH_SECRET=" + "n" * 40 + "\n")
    by_option = _token(elsewhere, _env(checkout), "--env-file", str(named))
    assert _subject(by_option.stdout, "n" * 40) == "alice"
    by_variable = _token(elsewhere, _env(checkout, **{ENV_FILE_VARIABLE: str(named)}))
    assert _subject(by_variable.stdout, "n" * 40) == "alice"


def test_token_without_a_secret_anywhere_says_so_in_one_line(
    checkout: Path, elsewhere: Path
) -> None:
    line = _one_line_error(_token(elsewhere, _env(checkout)))
    assert line.startswith(
        "chatrelay: error: AUTH_SECRET is not set: not in the environment, and there is no env"
    )
    assert str(elsewhere / ".env") in line and str(checkout / ".env") in line


def test_a_named_env_file_that_does_not_exist_is_one_line(checkout: Path, elsewhere: Path) -> None:
    line = _one_line_error(_token(elsewhere, _env(checkout), "--env-file", "typo.env"))
    assert (
        line == "chatrelay: error: env file typo.env (--env-file) does not exist or is a directory"
    )


def test_an_invalid_setting_is_one_line_not_a_traceback(checkout: Path, elsewhere: Path) -> None:
    (checkout / ".env").write_text("ENV=production\nAUTH_SECRET=too-short\n")
    line = _one_line_error(_token(elsewhere, _env(checkout)))
    assert line == (
        "chatrelay: error: invalid configuration (read from the environment and "
        f"{checkout / '.env'}): AUTH_SECRET needs 32+ bytes in production"
    )

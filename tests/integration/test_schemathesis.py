"""Property-based fuzzing of the whole OpenAPI schema against a real server: no 5xx, ever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.processes import Server, cli_token

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def test_no_generated_request_makes_a_server_error(env: dict[str, str], tmp_path: Path) -> None:
    server = Server({**env, "RATE_LIMIT": "100000/minute"}, tmp_path)
    try:
        token = cli_token(env, tmp_path, "alice")
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                "30",
                "--seed",
                "20261127",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # it writes a .schemathesis/ folder where it runs
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout

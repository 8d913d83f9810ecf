from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from chatrelay.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_are_embedded_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "MODEL", "AUTH_SECRET", "BETTER_AUTH_SECRET", "ENV"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert s.database_url == "sqlite+aiosqlite:///./chatrelay.db"
    assert s.model == "offline"
    assert s.history_limit == 50
    assert s.tracing is False


def test_better_auth_secret_is_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    monkeypatch.setenv("BETTER_AUTH_SECRET", "shared-with-better-auth")
    assert settings().jwt_secret == "shared-with-better-auth"


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: compose's `${OPENAI_BASE_URL:-}` gave the OpenAI client an empty base URL,
    and `AUTH_AUDIENCE=` made every token fail the audience check."""
    for name in ("OPENAI_BASE_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, "")
    s = settings()
    assert (s.openai_base_url, s.auth_issuer, s.auth_audience, s.openai_api_key) == (
        None,
        None,
        None,
        None,
    )


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert settings().cors_origins == ["https://a.example", "https://b.example"]


def test_development_without_secret_gets_a_random_one_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    s = settings()
    with caplog.at_level(logging.WARNING, logger="chatrelay"):
        first, second = s.jwt_secret, s.jwt_secret
    assert first == second and len(first) >= 32
    assert sum("AUTH_SECRET is not set" in r.getMessage() for r in caplog.records) == 1
    assert settings().jwt_secret != first  # random per process (per Settings)


@pytest.mark.parametrize("secret", [None, "short-secret"])
def test_production_refuses_a_missing_or_short_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    with pytest.raises(ValidationError, match="AUTH_SECRET"):
        settings(env="production", auth_secret=secret)


def test_a_remote_model_needs_a_key_or_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        settings(model="gpt-4o-mini")
    assert settings(model="gpt-4o-mini", openai_api_key="sk-x").model == "gpt-4o-mini"
    assert settings(model="llama3", openai_base_url="http://127.0.0.1:11434/v1").model == "llama3"


def test_production_accepts_a_32_byte_secret() -> None:
    assert settings(env="production", auth_secret="s" * 32).jwt_secret == "s" * 32


def test_migrate_on_start_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATE_ON_START", raising=False)
    assert settings().migrate_on_start is True
    monkeypatch.setenv("MIGRATE_ON_START", "false")
    assert settings().migrate_on_start is False

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatrelay import config
from chatrelay.config import (
    ENV_FILE_VARIABLE,
    ConfigError,
    Settings,
    find_env_file,
    load_settings,
    missing_secret,
)


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


# Which env file: `--env-file`, $CHATRELAY_ENV_FILE, ./.env, the source checkout's .env.


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A working directory and a source checkout, both without a .env yet."""
    cwd, checkout = tmp_path / "elsewhere", tmp_path / "checkout"
    cwd.mkdir()
    checkout.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(config, "source_checkout", lambda: checkout)
    return cwd, checkout


def test_the_checkout_is_where_this_code_comes_from() -> None:
    """Tests run from the checkout (an editable install), as `make` installs it."""
    checkout = config.source_checkout()
    assert checkout is not None and (checkout / "src" / "chatrelay" / "config.py").is_file()


def test_without_a_name_the_working_directory_wins_then_the_checkout(
    places: tuple[Path, Path],
) -> None:
    cwd, checkout = places
    assert find_env_file(environ={}) is None
    (checkout / ".env").write_text("AUTH_SECRET=from-checkout\n")
    assert find_env_file(environ={}) == checkout / ".env"
    (cwd / ".env").write_text("AUTH_SECRET=from-cwd\n")
    assert find_env_file(environ={}) == cwd / ".env"


def test_a_named_file_wins_and_must_exist(places: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, _ = places
    (cwd / ".env").write_text("AUTH_SECRET=from-cwd\n")
    named = tmp_path / "prod.env"
    named.write_text("AUTH_SECRET=named\n")
    assert find_env_file(environ={ENV_FILE_VARIABLE: str(named)}) == named
    assert find_env_file(named, environ={ENV_FILE_VARIABLE: "/nowhere"}) == named
    assert find_env_file(environ={ENV_FILE_VARIABLE: os.devnull}) == Path(os.devnull)
    assert find_env_file(environ={ENV_FILE_VARIABLE: ""}) == cwd / ".env"  # empty: unset
    with pytest.raises(ConfigError, match=f"{tmp_path / 'typo.env'} \\(--env-file\\)"):
        find_env_file(tmp_path / "typo.env", environ={})
    with pytest.raises(ConfigError, match=ENV_FILE_VARIABLE):
        find_env_file(environ={ENV_FILE_VARIABLE: str(tmp_path)})  # a directory


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("AUTH_SECRET=from-file\nHISTORY_LIMIT=7\n")
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    monkeypatch.setenv("AUTH_SECRET", "from-environment")
    loaded = load_settings(path)
    assert (loaded.auth_secret, loaded.history_limit) == ("from-environment", 7)


def test_an_invalid_configuration_is_one_line_naming_the_field_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("ENV=production\nAUTH_SECRET=short\nHISTORY_LIMIT=0\n")
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"invalid configuration (read from the environment and {path}): ")
    assert "HISTORY_LIMIT: Input should be greater than or equal to 1" in message
    path.write_text("ENV=production\nAUTH_SECRET=short\n")
    with pytest.raises(ConfigError, match="AUTH_SECRET needs 32\\+ bytes in production$"):
        load_settings(path)


def test_the_missing_secret_message_says_where_it_looked(places: tuple[Path, Path]) -> None:
    cwd, checkout = places
    nowhere = missing_secret(None)
    assert "\n" not in nowhere
    assert f"no env file ({cwd / '.env'}, {checkout / '.env'})" in nowhere
    assert "--env-file" in nowhere and "make run" in nowhere
    assert f"nor in {checkout / '.env'}" in missing_secret(checkout / ".env")


def test_dev_login_is_refused_in_production() -> None:
    """It signs anyone in as anyone: never on a production server."""
    with pytest.raises(ValidationError, match="DEV_LOGIN=true is refused when ENV=production"):
        settings(env="production", dev_login=True, auth_secret="p" * 40)
    assert settings(env="development", dev_login=True).dev_login


@pytest.mark.parametrize(
    ("env", "ui_enabled", "serve_ui"),
    [
        ("development", None, True),
        ("test", None, True),
        ("production", None, False),
        ("production", "true", True),
        ("development", "false", False),
        ("production", "", False),  # `UI_ENABLED=` means unset
    ],
)
def test_the_chat_page_is_on_except_in_production_unless_set(
    monkeypatch: pytest.MonkeyPatch, env: str, ui_enabled: str | None, serve_ui: bool
) -> None:
    monkeypatch.setenv("ENV", env)
    monkeypatch.setenv("AUTH_SECRET", "p" * 40)
    if ui_enabled is None:
        monkeypatch.delenv("UI_ENABLED", raising=False)
    else:
        monkeypatch.setenv("UI_ENABLED", ui_enabled)
    assert settings().serve_ui is serve_ui


# Which verifier: AUTH_SECRET (HS256), or a key set (AUTH_JWKS_URL, or AUTH_ISSUER alone).

JWKS = "https://auth.example/api/auth/jwks"


def test_a_key_set_is_used_with_a_jwks_url_or_an_issuer_without_a_secret() -> None:
    assert settings(auth_secret="k" * 64).uses_jwks is False
    assert settings(auth_secret="k" * 64, auth_issuer="https://auth.example").uses_jwks is False
    assert settings(auth_issuer="https://auth.example").uses_jwks is True  # discovered
    # Both set: the key set wins and the secret is not used (BETTER_AUTH_SECRET is often
    # in the same env file as the JWKS URL).
    assert settings(auth_secret="k" * 64, auth_jwks_url=JWKS).uses_jwks is True


def test_algorithms_are_public_key_ones_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().auth_algorithms == ["EdDSA", "ES256", "RS256", "PS256"]
    monkeypatch.setenv("AUTH_ALGORITHMS", "EdDSA, RS256")
    assert settings().auth_algorithms == ["EdDSA", "RS256"]
    for refused in ("HS256", "none", "EdDSA,HS512", ""):
        monkeypatch.setenv("AUTH_ALGORITHMS", refused)
        with pytest.raises(ValidationError, match="AUTH_ALGORITHMS|auth_algorithms"):
            settings()


def test_a_jwks_url_must_be_http_or_https() -> None:
    with pytest.raises(ValidationError, match="auth_jwks_url"):
        settings(auth_jwks_url="file:///etc/keys.json")
    assert settings(auth_jwks_url="").auth_jwks_url is None


def test_production_with_a_key_set_needs_no_secret_and_refuses_the_dev_login() -> None:
    assert settings(env="production", auth_jwks_url=JWKS).uses_jwks
    with pytest.raises(ValidationError, match="DEV_LOGIN=true mints HS256 tokens"):
        settings(auth_jwks_url=JWKS, dev_login=True)
    with pytest.raises(ValidationError, match="AUTH_SECRET \\(or AUTH_JWKS_URL"):
        settings(env="production")


def test_minting_is_refused_with_a_key_set_and_says_why() -> None:
    refusal = config.mint_refusal(settings(auth_secret="k" * 64, auth_jwks_url=JWKS), None)
    assert refusal is not None and refusal.startswith(
        f"cannot mint a token: this server verifies tokens with {JWKS}"
    )
    assert config.mint_refusal(settings(auth_secret="k" * 64), None) is None
    assert config.mint_refusal(settings(), None) == missing_secret(None)

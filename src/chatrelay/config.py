"""Settings, read once from the environment (and one env file) and passed to `create_app()`."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger("chatrelay")

MIN_PRODUCTION_SECRET_BYTES = 32
ASYMMETRIC_ALGORITHMS = frozenset(
    ("EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
)
"""What `AUTH_ALGORITHMS` may name: public-key signatures only. A key set's public key is
public, so an HMAC allowed beside it could be signed with that key as its secret."""
DEFAULT_ALGORITHMS = ["EdDSA", "ES256", "RS256", "PS256"]
DEFAULT_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
)


class Settings(BaseSettings):
    """Everything an operator can set. Field names map to upper-case env vars."""

    # No env file of its own: which one to read is `load_settings`' job (see `find_env_file`).
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./chatrelay.db"
    database_pool_size: int = Field(default=5, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a request waits for a pooled connection before it is answered 503."""
    migrate_on_start: bool = True
    """`chatrelay serve` brings the database schema to head before it answers (on Postgres
    under an advisory lock, so instances starting together migrate once). `false`: it refuses
    to start on a schema behind head; run `chatrelay migrate` first."""
    auth_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("AUTH_SECRET", "BETTER_AUTH_SECRET")
    )
    """HS256 secret shared with whoever mints tokens. Not used once a key set is configured
    (`uses_jwks`): then only the key set's public keys verify."""
    auth_issuer: str | None = None
    """`iss` every token must carry. Without `AUTH_SECRET` (and `AUTH_JWKS_URL`), also where
    the key set is discovered (`<issuer>/.well-known/openid-configuration`)."""
    auth_audience: str | None = None
    auth_jwks_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """The issuer's public key set (JWKS): tokens are verified with its keys, by `kid`."""
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS), min_length=1
    )
    """With a key set: the `alg`s a token may use (public-key signatures only)."""
    auth_user_claim: str = Field(default="sub", min_length=1)
    """The claim that names the user (a non-empty string)."""
    auth_leeway_seconds: float = Field(default=0.0, ge=0, le=600)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    auth_jwks_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """Each fetch of the key set (and of the discovery document) gives up after this long."""
    auth_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    """A token with an unknown `kid` refetches the key set at most once per this long."""
    auth_jwks_cache_seconds: float = Field(default=600.0, gt=0)
    """How long a fetched key set is used before it is refreshed (in the background), when
    its response has no `Cache-Control: max-age`."""
    model: str = "offline"
    """`offline` for the deterministic built-in model, else a model name for the OpenAI provider."""
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_api: Literal["responses", "chat_completions"] = "responses"
    """Which OpenAI API to call: `chat_completions` for servers (vLLM, Ollama) without Responses."""
    history_limit: int = Field(default=50, ge=1, le=10_000)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    model_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Models a ChatKit client may pick per message (`inference_options.model`)."""
    turn_timeout_seconds: float = Field(default=300.0, gt=0)
    """A turn (all model calls and tools) is cancelled and finalized after this long."""
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    rate_limit: str = "30/minute"
    """Turns a user may start, in `limits` notation (`30/minute`, `500/day`...)."""
    rate_limit_storage: str = "async+memory://"
    """`async+redis://host:6379` to share the limit across processes."""
    max_streams_per_user: int = Field(default=8, ge=1)
    turn_lease_seconds: float = Field(default=30.0, ge=1)
    """A crashed process's hold on a conversation expires after this long."""
    resume_seconds: float = Field(default=300.0, ge=0)
    """How long a finished turn's events stay available to a client resuming its stream."""
    redis_url: str | None = None
    """Several instances: each turn's events, stops and liveness are shared through this Redis
    (`redis://host:6379/0`). Unset: one process, everything in memory."""
    redis_prefix: str = Field(default="chatrelay", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Prefix of every Redis key, so several deployments (or test runs) can share one Redis."""
    instance_heartbeat_seconds: float = Field(default=3.0, gt=0)
    """How often an instance says it is alive; one silent for 3 heartbeats is gone."""
    redis_mirror_interval_seconds: float = Field(default=0.05, ge=0, le=1)
    """Once a turn's text streams, its events reach Redis at most once per this long (its
    first events and its last ones at once): readers on other instances see tokens up to
    this much later, and a model pacing its tokens costs a Redis write per interval, not
    one per token."""
    resume_max_events: int = Field(default=100_000, ge=100)
    """A turn's Redis stream keeps at most this many events (a longer one cannot be resumed
    from another instance)."""
    sse_ping_seconds: float = Field(default=15.0, gt=0)
    sse_send_timeout_seconds: float = Field(default=30.0, gt=0)
    sse_flush_interval_seconds: float = Field(default=0.002, ge=0, le=1)
    """After a write, events arriving within this long go out together in the next one: a
    burst of tokens costs one write, not one per token. The first event is never delayed."""
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0)
    """A socket without `Authorization` must send its auth frame within this long (else 4401)."""
    ws_ping_seconds: float = Field(default=20.0, gt=0)
    """A WebSocket is pinged this long after its last pong (keep-alive through proxies)."""
    ws_ping_timeout_seconds: float = Field(default=60.0, gt=0)
    """A WebSocket whose pong is this late is closed (1011); its turns run on. Longer than a
    reader may pause: one that stops reading for 30 s gets its stream intact afterwards."""
    tracing: bool = False
    """Agents SDK tracing (exports to OpenAI). Off unless asked for, so nothing phones home."""
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    offline_delay_seconds: float = Field(default=0.0, ge=0)
    """A pause between the offline model's words (demos, and tests of slow streams)."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """On SIGTERM, running turns get this long to finish before they are stopped and saved."""
    transcript_dir: Path | None = None
    """Record every streamed response to a transcript file here (secrets redacted). Off if unset."""
    ui_enabled: bool | None = None
    """Serve the chat page at `/`. Unset: on, except with ENV=production."""
    public_url: str | None = None
    """The URL clients reach this server at (`https://chat.example.com`), for the links it
    hands out (attachment uploads and previews). Unset: each request's own base URL."""
    attachment_store: str = "./attachments"
    """Where attachment bytes live: a local directory, or `s3://bucket/prefix` for any
    S3-compatible store (shared by every instance; credentials from the `AWS_*` variables)."""
    attachment_s3_endpoint: str | None = None
    """An S3-compatible server other than AWS (MinIO, Ceph, R2...): its URL."""
    attachment_s3_region: str = "us-east-1"
    attachment_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    """The largest attachment, declared or actual (larger: 413)."""
    attachment_mime_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ATTACHMENT_TYPES)
    )
    """The MIME types a user may attach, checked against the bytes as well as the declared type."""
    attachment_orphan_hours: float = Field(default=24.0, gt=0)
    """An attachment never sent with a message is deleted (row and bytes) after this long."""
    attachment_upload_seconds: float = Field(default=300.0, gt=0)
    """How long an upload link is valid (it is valid once)."""
    attachment_preview_seconds: float = Field(default=3600.0, gt=0)
    """How long an image's preview link is valid (each reload hands out a fresh one)."""
    dev_login: bool = False
    """`POST /auth/dev-token` mints a token for any user name (the chat page's quick sign-in):
    anyone who can reach the server can act as anyone, so it is refused with ENV=production."""

    @field_validator(
        "auth_secret",
        "auth_issuer",
        "auth_audience",
        "auth_jwks_url",
        "openai_api_key",
        "openai_base_url",
        "transcript_dir",
        "ui_enabled",
        "public_url",
        "attachment_s3_endpoint",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `FOO=` in an env file or `${FOO:-}` in compose means "not set", not "the empty string".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "cors_origins", "model_allowlist", "auth_algorithms", "attachment_mime_types", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("auth_algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: list[str]) -> list[str]:
        refused = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if refused:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ValueError(f"{', '.join(refused)} not allowed; choose from {allowed}")
        return value

    @model_validator(mode="after")
    def _check_key_set(self) -> Self:
        if self.uses_jwks and self.dev_login:
            raise ValueError(
                "DEV_LOGIN=true mints HS256 tokens, which a server verifying with a key set "
                "(AUTH_JWKS_URL, or AUTH_ISSUER without AUTH_SECRET) refuses: turn it off"
            )
        return self

    @model_validator(mode="after")
    def _check_production_secret(self) -> Self:
        if self.env == "production" and not self.uses_jwks:
            if not self.auth_secret:
                raise ValueError(
                    "AUTH_SECRET (or AUTH_JWKS_URL, or AUTH_ISSUER) is required when ENV=production"
                )
            if len(self.auth_secret.encode()) < MIN_PRODUCTION_SECRET_BYTES:
                raise ValueError(
                    f"AUTH_SECRET needs {MIN_PRODUCTION_SECRET_BYTES}+ bytes in production"
                )
        return self

    @model_validator(mode="after")
    def _check_dev_login(self) -> Self:
        if self.dev_login and self.env == "production":
            raise ValueError("DEV_LOGIN=true is refused when ENV=production (it signs anyone in)")
        return self

    @model_validator(mode="after")
    def _check_model_credentials(self) -> Self:
        # Fail at start-up, not on the first user's turn.
        if self.model != "offline" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError(
                f"MODEL={self.model} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
            )
        return self

    @property
    def uses_jwks(self) -> bool:
        """Tokens are verified with a key set (asymmetric only), not `AUTH_SECRET`: with
        `AUTH_JWKS_URL`, or with `AUTH_ISSUER` and no secret (the set is then discovered)."""
        return self.auth_jwks_url is not None or (
            self.auth_issuer is not None and self.auth_secret is None
        )

    @cached_property
    def jwt_secret(self) -> str:
        """The configured secret or, in development, a random one (tokens die with the process)."""
        if self.auth_secret:
            return self.auth_secret
        logger.warning(
            "AUTH_SECRET is not set: using a random secret for this process; "
            "tokens minted elsewhere will not verify"
        )
        return secrets.token_urlsafe(48)

    @property
    def serve_ui(self) -> bool:
        """Whether `/` serves the chat page: `UI_ENABLED`, else on outside production."""
        return self.ui_enabled if self.ui_enabled is not None else self.env != "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


ENV_FILE_VARIABLE = "CHATRELAY_ENV_FILE"


class CommandError(Exception):
    """A `chatrelay` command refuses to go on; the message is one line for a human.

    `chatrelay.cli.main` prints it as `chatrelay: error: <message>` and exits 2, before
    anything with a side effect whenever the problem can be seen up front.
    """


class ConfigError(CommandError):
    """The configuration cannot be read or is invalid; the message is one line for a human."""


def source_checkout() -> Path | None:
    """The checkout this code is installed from in editable mode (`make` does that), if any."""
    package = Path(__file__).resolve().parent
    if package.parent.name == "src" and (package.parent.parent / "pyproject.toml").is_file():
        return package.parent.parent
    return None


def env_file_candidates() -> list[Path]:
    """Where an env file is looked for when none is named: `./.env`, then the checkout's."""
    candidates = [Path.cwd() / ".env"]
    checkout = source_checkout()
    if checkout is not None and checkout / ".env" != candidates[0]:
        candidates.append(checkout / ".env")
    return candidates


def find_env_file(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> Path | None:
    """The one env file to read: `explicit` (`--env-file`), else `$CHATRELAY_ENV_FILE`, else
    the first of `env_file_candidates()` that exists. So `chatrelay token` run from any
    directory finds the `.env` that `make run`'s server reads. A named file must exist
    (`/dev/null` names none): a typo never falls back to another file silently."""
    named = explicit if explicit is not None else (environ.get(ENV_FILE_VARIABLE) or None)
    if named is not None:
        path = Path(named).expanduser()
        if not path.exists() or path.is_dir():
            origin = "--env-file" if explicit is not None else ENV_FILE_VARIABLE
            raise ConfigError(f"env file {path} ({origin}) does not exist or is a directory")
        return path
    return next((path for path in env_file_candidates() if path.is_file()), None)


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def load_settings(env_file: Path | None = None) -> Settings:
    """Settings from the environment and `env_file` (the environment wins); `ConfigError`
    with one line naming what is wrong and where it was read from."""
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]  # BaseSettings takes it
    except ValidationError as exc:
        where = f"the environment and {env_file}" if env_file else "the environment"
        raise ConfigError(f"invalid configuration (read from {where}): {_one_line(exc)}") from exc


def cannot_mint(settings: Settings) -> str | None:
    """Why no token can be minted with these settings (a key set verifies them), or None."""
    if not settings.uses_jwks:
        return None
    source = settings.auth_jwks_url or f"the key set of {settings.auth_issuer}"
    return (
        f"cannot mint a token: this server verifies tokens with {source} (public keys only), "
        "and only the issuer holds the private key. Get a token from the issuer (see the "
        "README's recipes), or unset AUTH_JWKS_URL/AUTH_ISSUER to use AUTH_SECRET (HS256)."
    )


def mint_refusal(settings: Settings, env_file: Path | None) -> str | None:
    """Why `chatrelay token` (or a transcript command) cannot mint a token that this
    configuration's server accepts, or None: a key set verifies tokens, or no secret."""
    if settings.uses_jwks:
        return cannot_mint(settings)
    return None if settings.auth_secret else missing_secret(env_file)


def missing_secret(env_file: Path | None) -> str:
    """Why a token cannot be minted: no secret, and where it was looked for (one line)."""
    if env_file is not None:
        where = f"neither in the environment nor in {env_file}"
    else:
        looked = ", ".join(str(path) for path in env_file_candidates())
        where = f"not in the environment, and there is no env file ({looked})"
    return (
        f"AUTH_SECRET is not set: {where}. A token minted now would not verify against a "
        f"server: run `make run` once (it writes .env), or pass --env-file FILE "
        f"(or set {ENV_FILE_VARIABLE}) naming the server's env file."
    )

"""An issuer's public keys (its JWKS), fetched without blocking the event loop and cached.

- Fetched at start-up (`open_key_set`); an instance whose first fetch fails still starts,
  says `ready` False, and retries in the background (1 s, doubling to 30 s) until one works.
- Refreshed in the background when the set's `Cache-Control: max-age` (else
  `AUTH_JWKS_CACHE_SECONDS`) runs out; a failed refresh keeps the cached keys, so tokens
  signed with them verify while the endpoint is down or slow, and no request waits on it.
- A token with a `kid` the set lacks (a rotation) triggers one refetch, shared by every
  request that wants it at the same time, and at most one per
  `AUTH_JWKS_MIN_REFRESH_SECONDS`: forged kids cannot make us hammer the issuer. One that
  comes sooner is refused, and brings the next background refresh forward to the end of
  that interval, so a key published just after a fetch is known within it.
- Every fetch (discovery document and key set together) is bounded by
  `AUTH_JWKS_TIMEOUT_SECONDS`, and a body larger than `MAX_BODY_BYTES` is refused.
- Only signing keys are kept: no `oct` (symmetric) key, none whose `use` is not `sig` or
  whose `key_ops` lacks `verify`. Which key fits which `alg` is the verifier's check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx

from chatrelay import __version__
from chatrelay.config import Settings

logger = logging.getLogger("chatrelay.auth")

MAX_BODY_BYTES = 512 * 1024
MAX_CACHE_SECONDS = 86_400.0
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
DISCOVERY_PATH = "/.well-known/openid-configuration"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)

JWK = Mapping[str, Any]


class KeySetError(Exception):
    """A fetch failed: unreachable, slow, not a key set (the message says which)."""


@dataclass(frozen=True)
class Keys:
    """One fetched key set: its signing keys by `kid` (`""` for a key without one)."""

    by_kid: Mapping[str, JWK]
    ttl: float


@dataclass(frozen=True)
class KeySetConfig:
    jwks_url: str | None
    issuer: str | None
    timeout: float
    min_refresh: float
    default_ttl: float

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySetConfig:
        return cls(
            jwks_url=settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            timeout=settings.auth_jwks_timeout_seconds,
            min_refresh=settings.auth_jwks_min_refresh_seconds,
            default_ttl=settings.auth_jwks_cache_seconds,
        )

    @property
    def source(self) -> str:
        return self.jwks_url or f"{(self.issuer or '').rstrip('/')}{DISCOVERY_PATH}"


class KeySet:
    """The cache. `start()` fetches once and starts the background upkeep; `close()` stops it."""

    def __init__(
        self,
        config: KeySetConfig,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._keys: Keys | None = None
        self._jwks_url = config.jwks_url
        self._last_attempt = -float("inf")
        self._due = clock()
        self._failures = 0
        self._inflight: asyncio.Task[bool] | None = None
        self._upkeep: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._fetched_once = asyncio.Event()
        self.fetches = 0
        """Fetches attempted (each may be a discovery request plus a key set request)."""

    @property
    def ready(self) -> bool:
        """A key set has been fetched (it may be stale now: it is still used)."""
        return self._keys is not None

    @property
    def source(self) -> str:
        return self._config.source

    def retry_after(self) -> float:
        """Seconds until the next background attempt: what a 503 tells the client."""
        return max(1.0, self._due - self._clock())

    def current(self) -> Keys | None:
        return self._keys

    async def wait_ready(self) -> None:
        """Until a key set has been fetched."""
        await self._fetched_once.wait()

    async def start(self) -> None:
        await self.refresh()
        self._upkeep = asyncio.create_task(self._keep_up(), name="jwks-upkeep")

    async def close(self) -> None:
        for task in (self._upkeep, self._inflight):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    async def key(self, kid: str) -> JWK | None:
        """The signing key `kid`, refetching the set once if it is unknown and the last
        fetch is at least `min_refresh` old (or still running: then this waits for it)."""
        keys = self._keys
        if keys is not None and kid in keys.by_kid:
            return keys.by_kid[kid]
        waited = self._clock() - self._last_attempt
        if self._inflight is not None or waited >= self._config.min_refresh:
            await self.refresh()
        else:
            self._bring_forward(self._last_attempt + self._config.min_refresh)
        keys = self._keys
        return None if keys is None else keys.by_kid.get(kid)

    async def refresh(self) -> bool:
        """Fetch now, or join the fetch already running; whether it succeeded. A waiter that
        is cancelled leaves the shared fetch running for the others."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch_once(), name="jwks-fetch")
            self._inflight.add_done_callback(self._fetched)
        return await asyncio.shield(self._inflight)

    def _bring_forward(self, due: float) -> None:
        if due < self._due:
            self._due = due
            self._wake.set()

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch_once(self) -> bool:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            async with asyncio.timeout(self._config.timeout):
                keys = await self._fetch()
        except (KeySetError, httpx.HTTPError, TimeoutError) as exc:
            self._failed(exc)
            return False
        self._keys, self._failures = keys, 0
        self._due = self._clock() + keys.ttl
        self._fetched_once.set()
        logger.info("fetched %d signing key(s) from %s", len(keys.by_kid), self.source)
        return True

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        delay = min(RETRY_FIRST_SECONDS * 2 ** (self._failures - 1), RETRY_MAX_SECONDS)
        self._due = self._clock() + delay
        why = _reason(exc, self._config.timeout)
        if self._keys is None:
            logger.error(
                "cannot fetch the signing keys from %s: %s; authenticated requests get 503 "
                "until a fetch succeeds (next try in %.0f s)",
                self.source,
                why,
                delay,
            )
        else:
            logger.warning(
                "refreshing the signing keys from %s failed: %s; the %d cached key(s) stay "
                "in use (next try in %.0f s)",
                self.source,
                why,
                len(self._keys.by_kid),
                delay,
            )

    async def _keep_up(self) -> None:
        while True:
            delay = self._due - self._clock()
            if delay > 0:
                self._wake.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            await self.refresh()

    async def _fetch(self) -> Keys:
        url = self._jwks_url or await self._discover()
        body, cache_control = await self._get_json(url)
        keys = signing_keys(body)
        return Keys(keys, self._ttl(cache_control))

    async def _discover(self) -> str:
        issuer = self._config.issuer or ""
        document, _ = await self._get_json(self._config.source)
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            raise KeySetError(f"the discovery document names issuer {found!r}, not {issuer!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise KeySetError("the discovery document has no http(s) jwks_uri")
        self._jwks_url = jwks_uri  # an issuer's document names the same set for good
        return jwks_uri

    async def _get_json(self, url: str) -> tuple[Any, str]:
        async with self._client.stream("GET", url) as response:
            if response.status_code != 200:
                raise KeySetError(f"GET {url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise KeySetError(f"GET {url}: body over {MAX_BODY_BYTES} bytes")
            cache_control = response.headers.get("cache-control", "")
        try:
            return json.loads(body), cache_control
        except ValueError as exc:
            raise KeySetError(f"GET {url}: not JSON ({exc})") from None

    def _ttl(self, cache_control: str) -> float:
        """`max-age` (0 for `no-store`/`no-cache`), else the default; never below the
        refetch interval (nor 1 s), so a `max-age=0` cannot make us refetch in a loop."""
        match = _MAX_AGE.search(cache_control)
        lowered = cache_control.lower()
        if "no-store" in lowered or "no-cache" in lowered:
            ttl = 0.0
        else:
            ttl = float(match.group(1)) if match else self._config.default_ttl
        return min(max(ttl, self._config.min_refresh, 1.0), MAX_CACHE_SECONDS)


def signing_keys(body: object) -> dict[str, JWK]:
    """The usable signing keys of a JWKS document, by `kid`; `KeySetError` if none."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise KeySetError('not a JWKS: expected {"keys": [...]}')
    keys: dict[str, JWK] = {}
    for jwk in body["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") in (None, "oct"):
            continue  # never a symmetric key: only the issuer may sign
        if jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        kid = jwk.get("kid", "")
        if isinstance(kid, str):
            keys.setdefault(kid, jwk)
    if not keys:
        raise KeySetError("the key set has no signing key")
    return keys


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    return str(exc) or type(exc).__name__


@asynccontextmanager
async def open_key_set(settings: Settings) -> AsyncIterator[KeySet]:
    """The key set of these settings, fetched once (success or not) before it is yielded."""
    config = KeySetConfig.from_settings(settings)
    async with httpx.AsyncClient(
        timeout=config.timeout,
        follow_redirects=True,
        headers={"Accept": "application/json", "User-Agent": f"chatrelay/{__version__}"},
    ) as client:
        keys = KeySet(config, client)
        await keys.start()
        try:
            yield keys
        finally:
            await keys.close()

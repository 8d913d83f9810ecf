"""Token verification, chosen by configuration: `AUTH_SECRET` (HS256) or an issuer's key set
(asymmetric only). Never both for one token: with a key set, an HS256 token is refused, even
one signed with a public key as its secret, as `alg` is checked against `AUTH_ALGORITHMS`
(public-key algorithms only, `config.ASYMMETRIC_ALGORITHMS`) and the key must fit it.

A verified token is remembered (`_Verified`) until its `exp`, so a client sending the same
token on every request pays for its signature once; with a key set, only while the key that
verified it is still the one in the set (a key removed from the set stops its tokens at once;
a refetched set makes each token's signature be checked once more).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import jwt

from chatrelay.config import Settings
from chatrelay.tokens.keys import JWK, Keys, KeySet, open_key_set
from chatrelay.tokens.mint import ALGORITHMS

logger = logging.getLogger("chatrelay.auth")

VERIFIED_TOKEN_BYTES = 16 * 1024 * 1024
"""How much token text the verified tokens may hold; the least recently used go first."""


class TokenRejected(Exception):
    """The token does not verify; the message says why (it is sent to the client)."""


class KeysUnavailable(Exception):
    """No key set has been fetched yet: the token cannot be checked (a 503, not a 401)."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TokenVerifier(Protocol):
    """What every entry point verifies tokens with (`server/auth.py`)."""

    @property
    def ready(self) -> bool:
        """Whether tokens can be checked at all (a key set has been fetched)."""
        ...

    async def verify(self, token: str) -> str:
        """The user the token names; `TokenRejected` or `KeysUnavailable`."""
        ...


@dataclass(frozen=True)
class ClaimRules:
    """The claims every token must pass, whatever signed it."""

    issuer: str | None
    audience: str | None
    user_claim: str
    leeway: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimRules:
        return cls(
            settings.auth_issuer,
            settings.auth_audience,
            settings.auth_user_claim,
            settings.auth_leeway_seconds,
        )

    def decode(
        self, token: str, key: jwt.PyJWK | str, algorithms: Sequence[str]
    ) -> tuple[str, float]:
        """Verify signature and claims; the user (`user_claim`, a non-empty string) and
        the token's `exp`."""
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={
                    "require": ["exp", self.user_claim],
                    "verify_aud": self.audience is not None,
                    # A key set's weak key (RSA under 2048 bits) is refused, not warned about.
                    "enforce_minimum_key_length": isinstance(key, jwt.PyJWK),
                },
            )
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(str(exc)) from exc
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise TokenRejected(f"'{self.user_claim}' must be a non-empty string")
        return user, float(claims["exp"])


@dataclass(frozen=True)
class _Entry:
    user: str
    expires: float
    keys: Keys | None
    """The key set it was verified with: a hit counts only while that set is the current one."""


class _Verified:
    """Tokens already verified, until their `exp` (+ leeway). Keyed by the token itself: a
    dict compares the whole string on a hash match, so a hit is this exact token (a digest
    would cost more than the lookup on every request, for long RSA tokens most)."""

    def __init__(self, leeway: float, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._leeway = leeway
        self._clock = clock

    def get(self, token: str) -> _Entry | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock() >= entry.expires + self._leeway:
            self.forget(token)
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: _Entry) -> None:
        self.forget(token)
        self._entries[token] = entry
        self._bytes += len(token)
        while self._bytes > VERIFIED_TOKEN_BYTES:
            oldest, _ = self._entries.popitem(last=False)
            self._bytes -= len(oldest)

    def forget(self, token: str) -> None:
        if self._entries.pop(token, None) is not None:
            self._bytes -= len(token)


class SecretVerifier:
    """HS256 with the shared secret, as `chatrelay token` and the dev login mint them."""

    ready = True

    def __init__(self, secret: str, rules: ClaimRules) -> None:
        self._secret = secret
        self._rules = rules
        self._verified = _Verified(rules.leeway)

    async def verify(self, token: str) -> str:
        entry = self._verified.get(token)
        if entry is not None:
            return entry.user
        user, expires = self._rules.decode(token, self._secret, ALGORITHMS)
        self._verified.put(token, _Entry(user, expires, None))
        return user


class KeySetVerifier:
    """An issuer's public keys: `alg` from `AUTH_ALGORITHMS`, the key by the token's `kid`."""

    def __init__(self, keys: KeySet, rules: ClaimRules, algorithms: Sequence[str]) -> None:
        self._keys = keys
        self._rules = rules
        self._algorithms = frozenset(algorithms)
        self._verified = _Verified(rules.leeway)
        self._prepared: dict[tuple[str, str], tuple[JWK, jwt.PyJWK]] = {}

    @property
    def ready(self) -> bool:
        return self._keys.ready

    @property
    def keys(self) -> KeySet:
        return self._keys

    async def verify(self, token: str) -> str:
        entry = self._verified.get(token)
        if entry is not None:
            if entry.keys is self._keys.current():
                return entry.user
            self._verified.forget(token)  # the set was refetched: is its key still there?
        alg, kid = self._header(token)
        if not self._keys.ready:
            raise KeysUnavailable(
                f"the signing keys ({self._keys.source}) have not been fetched yet",
                self._keys.retry_after(),
            )
        key = await self._key(kid)
        keys = self._keys.current()  # the set `key` is from (no await since it was read)
        user, expires = self._rules.decode(token, self._prepare(kid or "", alg, key), [alg])
        self._verified.put(token, _Entry(user, expires, keys))
        return user

    def _header(self, token: str) -> tuple[str, str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(str(exc)) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            allowed = ", ".join(sorted(self._algorithms))
            raise TokenRejected(f"alg {alg!r} is not allowed (allowed: {allowed})")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("'kid' must be a string")
        return alg, kid

    async def _key(self, kid: str | None) -> JWK:
        if kid is None:  # allowed only when the set has one key, so there is no choosing
            keys = self._keys.current()
            if keys is not None and len(keys.by_kid) == 1:
                return next(iter(keys.by_kid.values()))
            raise TokenRejected("the token has no 'kid', and the key set has several keys")
        key = await self._keys.key(kid)
        if key is None:
            raise TokenRejected(f"no signing key with kid {kid!r}")
        return key

    def _prepare(self, kid: str, alg: str, key: JWK) -> jwt.PyJWK:
        """The key, bound to `alg` (parsed once per key): refused unless its type fits (an
        RSA key for RS/PS, P-256 for ES256, Ed25519 for EdDSA) and its own `alg`, if any,
        is this one."""
        prepared = self._prepared.get((kid, alg))
        if prepared is not None and prepared[0] is key:
            return prepared[1]
        if key.get("alg", alg) != alg:
            raise TokenRejected(f"the key {kid!r} is for {key.get('alg')!r}, not {alg!r}")
        try:
            pyjwk = jwt.PyJWK(dict(key), algorithm=alg)
            _check_curve(key, alg)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the key {kid!r} cannot verify {alg!r}: {exc}") from exc
        self._prepared[(kid, alg)] = (key, pyjwk)
        return pyjwk


_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "EdDSA": "Ed25519"}


def _check_curve(key: JWK, alg: str) -> None:
    """ES256 is P-256 (RFC 7518 §3.4), not any EC key; PyJWT takes any curve for any ES."""
    curve = _CURVES.get(alg)
    if curve is not None and key.get("crv") != curve:
        raise jwt.InvalidKeyError(f"curve {key.get('crv')!r} is not {curve}")


@asynccontextmanager
async def open_verifier(settings: Settings) -> AsyncIterator[TokenVerifier]:
    """The verifier the settings choose; with a key set, its first fetch is done (or has
    failed, logged, and retries in the background) before this yields."""
    rules = ClaimRules.from_settings(settings)
    if not settings.uses_jwks:
        yield SecretVerifier(settings.jwt_secret, rules)
        return
    if settings.auth_secret:
        logger.info("AUTH_SECRET is set but unused: tokens are verified with the key set only")
    async with open_key_set(settings) as keys:
        yield KeySetVerifier(keys, rules, settings.auth_algorithms)

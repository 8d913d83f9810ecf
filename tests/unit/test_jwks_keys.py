"""The key set cache (`chatrelay.tokens.keys`) and the key set verifier, against a real JWKS
server on 127.0.0.1 (`tests/fakes/jwks.py`): what is fetched when, and how often."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from chatrelay.tokens import KeySet, KeySetVerifier, KeysUnavailable, TokenRejected
from chatrelay.tokens.keys import KeySetConfig, KeySetError, signing_keys
from chatrelay.tokens.verify import ClaimRules
from tests.fakes.jwks import (
    Issuer,
    SigningKey,
    better_auth_claims,
    claims,
    hs256_signed_with,
    serving,
)

ALL = ("EdDSA", "ES256", "RS256", "PS256")


class Clock:
    """The key set's monotonic clock, moved by the test (the loop's own clock is real)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        running.add("ed25519")
        yield running


@asynccontextmanager
async def key_set(
    issuer: Issuer,
    *,
    clock: Clock | None = None,
    discover: bool = False,
    **options: float,
) -> AsyncIterator[KeySet]:
    config = KeySetConfig(
        jwks_url=None if discover else issuer.jwks_url,
        issuer=issuer.url,
        timeout=options.get("timeout", 2.0),
        min_refresh=options.get("min_refresh", 30.0),
        default_ttl=options.get("default_ttl", 600.0),
    )
    async with httpx.AsyncClient(timeout=config.timeout) as client:
        keys = KeySet(config, client, clock or time.monotonic)
        await keys.start()
        try:
            yield keys
        finally:
            await keys.close()


def verifier(keys: KeySet, algorithms: tuple[str, ...] = ALL, **rules: Any) -> KeySetVerifier:
    settings = {"issuer": None, "audience": None, "user_claim": "sub", "leeway": 0.0, **rules}
    return KeySetVerifier(keys, ClaimRules(**settings), algorithms)


@pytest.mark.parametrize(
    ("kind", "alg"),
    [("ed25519", "EdDSA"), ("p256", "ES256"), ("rsa", "RS256"), ("rsa", "PS256")],
)
async def test_a_token_of_each_key_type_verifies(issuer: Issuer, kind: str, alg: str) -> None:
    key = issuer.add(kind)
    async with key_set(issuer) as keys:
        assert await verifier(keys).verify(key.sign(claims("bob"), alg=alg)) == "bob"
    assert issuer.jwks_requests() == 1  # fetched at start, then never again


async def test_a_better_auth_token_verifies_with_iss_and_aud_the_base_url(issuer: Issuer) -> None:
    """Better Auth's JWT plugin: the user object, `sub` its id, EdDSA, a `kid`, iss = aud."""
    key = issuer.keys[0]
    token = key.sign(better_auth_claims(issuer.url, "user_8Hk2"))
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    async with key_set(issuer) as keys:
        check = verifier(keys, issuer=issuer.url, audience=issuer.url)
        assert await check.verify(token) == "user_8Hk2"
        with pytest.raises(TokenRejected, match="Invalid issuer"):
            await check.verify(key.sign(better_auth_claims("https://elsewhere.example")))
        with pytest.raises(TokenRejected, match="Audience"):
            await verifier(keys, audience="https://api.example").verify(token)


async def test_rotation_a_new_kid_is_fetched_and_a_removed_one_stops_verifying(
    issuer: Issuer,
) -> None:
    clock = Clock()
    old = issuer.keys[0]
    async with key_set(issuer, clock=clock, min_refresh=30) as keys:
        check = verifier(keys)
        old_token = old.sign(claims())
        assert await check.verify(old_token) == "alice"
        new = issuer.add("p256")
        issuer.keys.remove(old)
        clock.now += 31
        assert await check.verify(new.sign(claims("carol"))) == "carol"  # one refetch
        assert issuer.jwks_requests() == 2
        # The old key is gone from the set: its token no longer verifies, remembered or not.
        with pytest.raises(TokenRejected, match="no signing key"):
            await check.verify(old_token)


async def test_forged_kids_cause_one_refetch_per_interval_whatever_their_number(
    issuer: Issuer,
) -> None:
    clock = Clock()
    async with key_set(issuer, clock=clock, min_refresh=30) as keys:
        check = verifier(keys)
        forged = [SigningKey("ed25519").sign(claims()) for _ in range(20)]
        # Right after a fetch: none refetches.
        for token in forged[:5]:
            with pytest.raises(TokenRejected, match="no signing key with kid"):
                await check.verify(token)
        assert issuer.jwks_requests() == 1
        clock.now += 31
        # Concurrent unknown kids share one fetch; the ones after it wait for the interval.
        results = await asyncio.gather(
            *(check.verify(token) for token in forged), return_exceptions=True
        )
        assert all(isinstance(result, TokenRejected) for result in results)
        for token in forged:
            with pytest.raises(TokenRejected):
                await check.verify(token)
        assert issuer.jwks_requests() == 2


async def test_never_fetched_is_unavailable_until_a_background_retry_succeeds(
    issuer: Issuer,
) -> None:
    issuer.down = True
    token = issuer.keys[0].sign(claims())
    async with key_set(issuer) as keys:
        assert not keys.ready
        with pytest.raises(KeysUnavailable) as unavailable:
            await verifier(keys).verify(token)
        assert unavailable.value.retry_after >= 1
        issuer.down = False
        await asyncio.wait_for(keys.wait_ready(), 10)  # the first retry comes after ~1 s
        assert await verifier(keys).verify(token) == "alice"


async def test_cached_keys_keep_working_while_the_endpoint_is_down(issuer: Issuer) -> None:
    key = issuer.keys[0]
    async with key_set(issuer) as keys:
        issuer.down = True
        assert await keys.refresh() is False
        assert keys.ready
        assert await verifier(keys).verify(key.sign(claims())) == "alice"


async def test_a_slow_endpoint_holds_no_request_longer_than_the_timeout(issuer: Issuer) -> None:
    key = issuer.keys[0]
    issuer.delay = 30.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with key_set(issuer, timeout=0.3, min_refresh=0) as keys:
        assert loop.time() - started < 2  # the first fetch gave up after 0.3 s
        assert not keys.ready
        issuer.delay = 0
        await keys.refresh()
        issuer.delay = 30.0
        check = verifier(keys)
        slow_refresh = asyncio.create_task(keys.refresh())  # a refresh hangs meanwhile
        started = loop.time()
        assert await check.verify(key.sign(claims())) == "alice"  # known kid: no waiting
        with pytest.raises(TokenRejected, match="no signing key"):
            await check.verify(SigningKey("ed25519").sign(claims()))  # joins the slow fetch
        assert loop.time() - started < 2
        assert await slow_refresh is False


async def test_cache_control_max_age_sets_how_long_a_set_is_used(issuer: Issuer) -> None:
    issuer.cache_control = "public, max-age=120"
    async with key_set(issuer, min_refresh=30) as keys:
        current = keys.current()
        assert current is not None and current.ttl == 120
        issuer.cache_control = "no-store"
        await keys.refresh()
        current = keys.current()
        assert current is not None and current.ttl == 30  # never below the refetch interval
        issuer.cache_control = None
        await keys.refresh()
        current = keys.current()
        assert current is not None and current.ttl == 600


async def test_discovery_finds_the_key_set_of_the_issuer(issuer: Issuer) -> None:
    async with key_set(issuer, discover=True) as keys:
        assert keys.ready
        assert issuer.requests[:2] == ["/.well-known/openid-configuration", "/api/auth/jwks"]
        assert await verifier(keys).verify(issuer.keys[0].sign(claims())) == "alice"


def test_only_signing_keys_are_kept() -> None:
    ed = SigningKey("ed25519").jwk()
    body = {
        "keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {**SigningKey("rsa").jwk(), "use": "enc"},
            {**SigningKey("p256").jwk(), "key_ops": ["encrypt"]},
            "not a key",
            ed,
        ]
    }
    assert list(signing_keys(body)) == [ed["kid"]]
    with pytest.raises(KeySetError, match="no signing key"):
        signing_keys({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
    with pytest.raises(KeySetError, match="not a JWKS"):
        signing_keys({"key": []})


async def test_tokens_that_must_not_verify(issuer: Issuer) -> None:
    ed = issuer.keys[0]
    rsa = issuer.add("rsa")
    pem = rsa.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": ed.kid})
    refused = {
        "alg none": (unsigned, "alg 'none' is not allowed"),
        "HS256, the PEM as secret": (hs256_signed_with(pem, rsa.kid), "alg 'HS256' is not allowed"),
        "HS256, the JWK as secret": (
            hs256_signed_with(json.dumps(rsa.jwk()).encode(), rsa.kid),
            "alg 'HS256' is not allowed",
        ),
        "expired": (ed.sign(claims(ttl=-10)), "expired"),
        "nbf ahead": (ed.sign(claims(nbf=int(claims()["iat"]) + 600)), "not yet valid"),
        "no exp": (ed.sign({"sub": "alice"}), "exp"),
        "no sub": (ed.sign(claims(sub="")), "'sub' must be a non-empty string"),
        "RS256 on an Ed25519 key": (_resigned(ed, rsa, "RS256"), "cannot verify 'RS256'"),
        "a forged signature": (_resigned(ed, SigningKey("ed25519"), "EdDSA"), "Signature"),
    }
    async with key_set(issuer) as keys:
        check = verifier(keys)
        for name, (token, why) in refused.items():
            with pytest.raises(TokenRejected, match=why):
                await check.verify(token)
                pytest.fail(f"{name} verified")
        only_eddsa = verifier(keys, algorithms=("EdDSA",))
        with pytest.raises(TokenRejected, match="alg 'RS256' is not allowed"):
            await only_eddsa.verify(rsa.sign(claims()))


def _resigned(named: SigningKey, signer: SigningKey, alg: str) -> str:
    """A token naming `named`'s kid, signed by `signer` with `alg`."""
    return jwt.encode(claims(), signer.private, algorithm=alg, headers={"kid": named.kid})


async def test_leeway_admits_a_token_just_expired(issuer: Issuer) -> None:
    token = issuer.keys[0].sign(claims(ttl=-5))
    async with key_set(issuer) as keys:
        assert await verifier(keys, leeway=30.0).verify(token) == "alice"
        with pytest.raises(TokenRejected, match="expired"):
            await verifier(keys).verify(token)

from __future__ import annotations

import pytest

from chatrelay.config import Settings
from chatrelay.server.auth import verify_token
from chatrelay.server.errors import Unauthorized
from chatrelay.tokens import SecretVerifier, mint_token
from chatrelay.tokens.verify import ClaimRules


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, auth_secret="k" * 64, **values)  # type: ignore[arg-type]


def verifier(s: Settings) -> SecretVerifier:
    return SecretVerifier(s.jwt_secret, ClaimRules.from_settings(s))


async def test_minted_token_verifies_to_its_subject() -> None:
    s = settings()
    assert await verify_token(verifier(s), f"Bearer {mint_token(s, 'alice')}") == "alice"
    assert await verify_token(verifier(s), f"bearer   {mint_token(s, 'bob')}") == "bob"


async def test_minted_token_carries_configured_issuer_and_audience() -> None:
    s = settings(auth_issuer="https://auth.example", auth_audience="chatrelay")
    assert await verify_token(verifier(s), f"Bearer {mint_token(s, 'alice')}") == "alice"
    with pytest.raises(Unauthorized):
        await verify_token(verifier(s), f"Bearer {mint_token(settings(), 'alice')}")


async def test_expired_ttl_is_refused() -> None:
    s = settings()
    with pytest.raises(Unauthorized, match="expired"):
        await verify_token(verifier(s), f"Bearer {mint_token(s, 'alice', ttl_seconds=-5)}")


async def test_a_verified_token_is_remembered_until_it_expires() -> None:
    """The second request with a token skips its signature, never its expiry."""
    now = [1_000.0]
    s = settings()
    check = verifier(s)
    check._verified._clock = lambda: now[0]  # the cache's clock only; PyJWT's is real
    token = mint_token(s, "alice", ttl_seconds=60)
    assert await check.verify(token) == "alice"
    entry = check._verified.get(token)
    assert entry is not None and entry.user == "alice"
    now[0] = entry.expires + 1
    assert check._verified.get(token) is None


async def test_another_user_claim_names_the_user() -> None:
    s = settings(auth_user_claim="email")
    token = mint_token(s, "alice@example.com")
    assert await verify_token(verifier(s), f"Bearer {token}") == "alice@example.com"


def test_remembered_tokens_are_bounded_by_their_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatrelay.tokens import verify

    monkeypatch.setattr(verify, "VERIFIED_TOKEN_BYTES", 100)
    remembered = verify._Verified(leeway=0, clock=lambda: 0.0)
    for name in ("a", "b", "c"):
        remembered.put(name * 40, verify._Entry(name, 10.0, None))
    assert remembered.get("a" * 40) is None  # the least recently used went first
    assert remembered.get("b" * 40) is not None and remembered.get("c" * 40) is not None
    assert remembered._bytes == 80

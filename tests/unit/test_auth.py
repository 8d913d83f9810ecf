from __future__ import annotations

import pytest

from chatrelay.config import Settings
from chatrelay.server.auth import verify_token
from chatrelay.server.errors import Unauthorized
from chatrelay.tokens import mint_token


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, auth_secret="k" * 64, **values)  # type: ignore[arg-type]


def test_minted_token_verifies_to_its_subject() -> None:
    s = settings()
    assert verify_token(s, f"Bearer {mint_token(s, 'alice')}") == "alice"
    assert verify_token(s, f"bearer   {mint_token(s, 'bob')}") == "bob"


def test_minted_token_carries_configured_issuer_and_audience() -> None:
    s = settings(auth_issuer="https://auth.example", auth_audience="chatrelay")
    assert verify_token(s, f"Bearer {mint_token(s, 'alice')}") == "alice"
    with pytest.raises(Unauthorized):
        verify_token(s, f"Bearer {mint_token(settings(), 'alice')}")


def test_expired_ttl_is_refused() -> None:
    s = settings()
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(s, f"Bearer {mint_token(s, 'alice', ttl_seconds=-5)}")

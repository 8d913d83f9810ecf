"""Development tokens: HS256 JWTs signed with the configured secret, as `chatrelay token`, the
dev login and the transcript recorder mint them. Verified by `tokens.verify`."""

from __future__ import annotations

import time
from typing import Any

import jwt

from chatrelay.config import Settings, cannot_mint

ALGORITHMS = ["HS256"]  # an allow-list: never trust the token's own `alg`


def mint_token(settings: Settings, user_id: str, ttl_seconds: int = 3600) -> str:
    """A development token signed with the configured secret (`chatrelay token`).

    `ValueError` when a key set verifies tokens: only its issuer can sign one then.
    """
    refused = cannot_mint(settings)
    if refused is not None:
        raise ValueError(refused)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    claims[settings.auth_user_claim] = user_id
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHMS[0])

"""Development tokens: HS256 JWTs signed with the configured secret, as `chatrelay token` and the
transcript recorder mint them. Verification is the server's job (`server/auth.py`)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from chatrelay.config import Settings

ALGORITHMS = ["HS256"]  # an allow-list: never trust the token's own `alg`


def mint_token(settings: Settings, user_id: str, ttl_seconds: int = 3600) -> str:
    """A development token signed with the configured secret (`chatrelay token`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHMS[0])

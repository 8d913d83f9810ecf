"""Bearer JWT verification: HS256 only, `sub` and `exp` required, iss/aud when configured."""

from __future__ import annotations

import time
from typing import Any

import jwt

from chatrelay.config import Settings
from chatrelay.server.errors import Unauthorized

ALGORITHMS = ["HS256"]  # an allow-list: never trust the token's own `alg`
MAX_TOKEN_BYTES = 8192  # real tokens are far smaller; don't spend CPU decoding huge ones


def mint_token(settings: Settings, user_id: str, ttl_seconds: int = 3600) -> str:
    """A development token signed with the configured secret (`chatrelay token`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHMS[0])


def verify_token(settings: Settings, authorization: str | None) -> str:
    """Return the token's subject, or raise `Unauthorized` (401 + WWW-Authenticate)."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("invalid token: too large")
    try:
        claims = jwt.decode(
            token.strip(),
            settings.jwt_secret,
            algorithms=ALGORITHMS,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            options={"require": ["sub", "exp"], "verify_aud": settings.auth_audience is not None},
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("invalid token: 'sub' must be a non-empty string")
    return subject

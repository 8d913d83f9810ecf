"""Bearer JWT verification: HS256 only, `sub` and `exp` required, iss/aud when configured."""

from __future__ import annotations

import jwt

from chatrelay.config import Settings
from chatrelay.server.errors import InvalidToken, Unauthorized
from chatrelay.tokens import ALGORITHMS

MAX_TOKEN_BYTES = 8192  # real tokens are far smaller; don't spend CPU decoding huge ones


def verify_token(settings: Settings, authorization: str | None) -> str:
    """Return the token's subject, or raise `Unauthorized` (401 + WWW-Authenticate).

    `InvalidToken` when a bearer token was presented but fails; plain `Unauthorized` when
    there is none (RFC 6750 §3.1: then the challenge carries no error code).
    """
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("invalid token: too large")
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
        raise InvalidToken(f"invalid token: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("invalid token: 'sub' must be a non-empty string")
    return subject

"""The bearer-token check every bench server does, the way chatrelay does it.

HS256 only (an explicit allow-list), `sub` and `exp` required, and `sub` must be the user id of
the path: a bad or missing token is 401, another user's token is 403.
"""

from __future__ import annotations

import jwt
from fastapi import HTTPException

ALGORITHMS = ["HS256"]


def check_bearer(secret: str, authorization: str | None, user_id: str) -> str:
    """The path's `user_id` once the `Authorization` header proves it, else HTTPException."""
    unauthorized = HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized
    try:
        claims = jwt.decode(
            token.strip(), secret, algorithms=ALGORITHMS, options={"require": ["sub", "exp"]}
        )
    except jwt.InvalidTokenError as exc:
        raise unauthorized from exc
    if claims.get("sub") != user_id:
        raise HTTPException(403, "the token does not belong to this user")
    return user_id

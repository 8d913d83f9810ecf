"""Bearer tokens, checked in this one place for every entry point (chat, ChatKit, resume,
cancel, history, `/mcp`, WebSocket) with the runtime's `TokenVerifier`: `AUTH_SECRET`
(HS256) or the issuer's key set (`chatrelay.tokens.verify`)."""

from __future__ import annotations

from chatrelay.server.errors import InvalidToken, ServiceUnavailable, Unauthorized, retry_after
from chatrelay.tokens import KeysUnavailable, TokenRejected, TokenVerifier

MAX_TOKEN_BYTES = 8192  # real tokens are far smaller; don't spend CPU decoding huge ones


async def verify_token(verifier: TokenVerifier, authorization: str | None) -> str:
    """Return the token's user, or raise `Unauthorized` (401 + WWW-Authenticate).

    `InvalidToken` when a bearer token was presented but fails; plain `Unauthorized` when
    there is none (RFC 6750 §3.1: then the challenge carries no error code). With a key
    set never fetched yet, `ServiceUnavailable` (503 + `Retry-After`): the token may be
    good, and the client should come back rather than sign in again.
    """
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("invalid token: too large")
    try:
        return await verifier.verify(token)
    except TokenRejected as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    except KeysUnavailable as exc:
        raise ServiceUnavailable(str(exc), headers=retry_after(exc.retry_after)) from exc

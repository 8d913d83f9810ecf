"""Request dependencies as `Annotated` aliases; routes just take them as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from chatrelay.runtime import Runtime
from chatrelay.server.auth import verify_token
from chatrelay.server.errors import Forbidden


async def get_runtime(connection: HTTPConnection) -> Runtime:
    # A request or a WebSocket. async: FastAPI runs a plain `def` dependency in a worker
    # thread, a hop on every request.
    runtime: Runtime = connection.app.state.runtime
    return runtime


Context = Annotated[Runtime, Depends(get_runtime)]
AuthorizationHeader = Annotated[
    str | None,
    Header(
        description="`Bearer <JWT>`: HS256 with `AUTH_SECRET`, or signed by a key of the "
        "issuer's key set (`AUTH_JWKS_URL`); `exp` and the user claim required"
    ),
]


async def authenticate(runtime: Runtime, authorization: str | None, path_user_id: str) -> str:
    """The verified token's subject, which must be the user named in the path.

    From here on the user id comes from the token alone.
    """
    subject = await verify_token(runtime.verifier, authorization)
    if subject != path_user_id:
        raise Forbidden("the token does not belong to this user")
    return subject

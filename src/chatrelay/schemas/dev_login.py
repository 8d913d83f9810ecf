"""The dev-login endpoint's wire models (`DEV_LOGIN=true` only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field


class DevTokenRequest(BaseModel):
    """Whom to mint a development token for."""

    user_id: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    ]
    """A user name: letters, digits and `._@-`, starting with a letter or digit."""


class DevToken(BaseModel):
    """A bearer token for `user_id`, as `chatrelay token USER` prints it."""

    token: str
    user_id: str
    expires_in: int
    """Seconds until the token expires."""

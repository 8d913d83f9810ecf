"""Signed links to the upload and preview routes: HMAC-SHA256 over what the link is for,
the attachment's id and when it expires, with a key only the servers know.

The bearer token never appears in a URL (URLs end up in logs and browser history); a link
carries no user either: whoever holds it may do that one thing to that one attachment until
it expires, and an upload link once (the service records its use in the database).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

from chatrelay.attachments.errors import LinkRefused

Purpose = Literal["upload", "preview"]
ROUTE_PREFIX = "/chatkit/attachments"
"""Where the upload (`/{id}`) and preview (`/{id}/preview`) routes live."""


def signing_key(secret: str) -> bytes:
    """A key of its own, derived from the token secret: every instance sharing `AUTH_SECRET`
    verifies every other's links, and a link's signature is never a token's."""
    return hmac.new(secret.encode(), b"chatrelay attachment links v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class LinkSigner:
    key: bytes

    def signature(self, purpose: Purpose, attachment_id: str, expires: int) -> str:
        message = f"{purpose}\n{attachment_id}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def query(self, purpose: Purpose, attachment_id: str, now: float, seconds: float) -> str:
        expires = math.ceil(now + seconds)
        signature = self.signature(purpose, attachment_id, expires)
        return urlencode({"expires": expires, "signature": signature})

    def verify(
        self, purpose: Purpose, attachment_id: str, expires: int, signature: str, now: float
    ) -> None:
        """`LinkRefused` unless the link was signed here, for this, and has not expired. The
        signature is checked first, so a forged link learns nothing (not even whether the
        attachment exists)."""
        expected = self.signature(purpose, attachment_id, expires)
        # Bytes: compare_digest refuses a str that is not ASCII (a forged link may hold any).
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkRefused("invalid link signature")
        if now >= expires:
            raise LinkRefused("this link has expired")


def link_url(base_url: str, purpose: Purpose, attachment_id: str, query: str) -> str:
    path = f"{ROUTE_PREFIX}/{quote(attachment_id, safe='')}"
    if purpose == "preview":
        path += "/preview"
    return f"{base_url.rstrip('/')}{path}?{query}"

"""What the attachment service refuses, in its own words (the HTTP server maps each once)."""

from __future__ import annotations

from chatrelay.turns import TurnRefused


class TooLarge(TurnRefused):
    """Larger than `ATTACHMENT_MAX_BYTES`, by its declared size or by its bytes (413)."""


class UnsupportedType(TurnRefused):
    """A MIME type not on the allow-list, or bytes that are not of the declared type (415)."""


class LinkRefused(TurnRefused):
    """A signed link that is forged, expired, or (an upload link) used already (403)."""

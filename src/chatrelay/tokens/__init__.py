"""Bearer tokens: minting development tokens (HS256, `mint`) and verifying every entry
point's tokens (`verify`: `AUTH_SECRET`, or an issuer's key set from `keys`). The server maps
the errors to HTTP answers (`server/auth.py`)."""

from chatrelay.tokens.keys import KeySet, KeySetError, open_key_set
from chatrelay.tokens.mint import ALGORITHMS, mint_token
from chatrelay.tokens.verify import (
    KeySetVerifier,
    KeysUnavailable,
    SecretVerifier,
    TokenRejected,
    TokenVerifier,
    open_verifier,
)

__all__ = [
    "ALGORITHMS",
    "KeySet",
    "KeySetError",
    "KeySetVerifier",
    "KeysUnavailable",
    "SecretVerifier",
    "TokenRejected",
    "TokenVerifier",
    "mint_token",
    "open_key_set",
    "open_verifier",
]

"""An issuer for tests: real key pairs (Ed25519, P-256, RSA) that sign tokens, and a real HTTP
server on 127.0.0.1 (a thread) that publishes their public keys as a JWKS, with an OIDC
discovery document, and can be made down (503) or slow, and counts what it was asked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

JWKS_PATH = "/api/auth/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"

_ALGORITHMS = {"ed25519": "EdDSA", "p256": "ES256", "rsa": "RS256"}


def _private_key(kind: str) -> Any:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


@dataclass
class SigningKey:
    """One key pair of the issuer, named by its `kid`."""

    kind: str
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    alg: str = ""
    private: Any = None

    def __post_init__(self) -> None:
        self.alg = self.alg or _ALGORITHMS[self.kind]
        self.private = self.private or _private_key(self.kind)

    def jwk(self, with_alg: bool = False) -> dict[str, Any]:
        """The public JWK, as an issuer publishes it (Better Auth's carry no `alg`)."""
        public = jwt.get_algorithm_by_name(self.alg).to_jwk(self.private.public_key(), as_dict=True)
        public["kid"] = self.kid
        if with_alg:
            public["alg"] = self.alg
        return public

    def sign(
        self,
        claims: dict[str, Any],
        *,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        return jwt.encode(
            claims,
            self.private,
            algorithm=alg or self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


def claims(sub: str = "alice", ttl: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl, **extra}


def better_auth_claims(base_url: str, user_id: str = "alice", ttl: int = 900) -> dict[str, Any]:
    """What Better Auth's JWT plugin signs by default: the session's user object, `sub` its
    id, `iat`, `exp` 15 minutes on, and `iss` = `aud` = the app's base URL (plugins/jwt/sign.ts)."""
    now = int(time.time())
    return {
        "id": user_id,
        "name": "Alice Liddell",
        "email": "alice@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": "2026-12-01T10:00:00.000Z",
        "updatedAt": "2026-12-01T10:00:00.000Z",
        "iat": now,
        "sub": user_id,
        "exp": now + ttl,
        "iss": base_url,
        "aud": base_url,
    }


def hs256_signed_with(secret: bytes, kid: str, payload: dict[str, Any] | None = None) -> str:
    """An HS256 token whose secret is, say, a public key (PEM or JWK text): what an
    algorithm-confusion attack sends. Made by hand, as PyJWT refuses such secrets."""

    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = part(header) + b"." + part(payload or claims())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


class Issuer:
    """The JWKS endpoint's state, shared with the server's threads."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.down = False
        self.delay = 0.0
        self.cache_control: str | None = None
        self.requests: list[str] = []
        self.url = ""
        self._lock = threading.Lock()
        self._released = threading.Event()

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def add(self, kind: str, **options: Any) -> SigningKey:
        key = SigningKey(kind, **options)
        self.keys.append(key)
        return key

    def jwks_requests(self) -> int:
        with self._lock:
            return sum(1 for path in self.requests if path == JWKS_PATH)

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(path)
        if self.delay:
            self._released.wait(self.delay)
        if self.down:
            return 503, {}, b'{"error": "down"}'
        if path == JWKS_PATH:
            body = {"keys": [key.jwk() for key in self.keys]}
            headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
            return 200, headers, json.dumps(body).encode()
        if path == DISCOVERY_PATH:
            document = {"issuer": self.url, "jwks_uri": self.jwks_url}
            return 200, {}, json.dumps(document).encode()
        return 404, {}, b"{}"

    def release(self) -> None:
        """Let every slow request finish now (at the end of a test)."""
        self._released.set()


@contextmanager
def serving(issuer: Issuer | None = None) -> Iterator[Issuer]:
    """`issuer` (a new one by default) served on a free port of 127.0.0.1 for the block."""
    issuer = issuer or Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status, headers, body = issuer._answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="jwks-server", daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        issuer.release()
        server.shutdown()
        server.server_close()
        thread.join(5)

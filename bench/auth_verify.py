"""The auth step with an issuer's key set (JWKS, keys cached) against HS256 with a secret, and
a whole authenticated request through the app with each, in the same run. Goal (issue 17):
a JWKS-verified request costs at most 1.2x the HS256 one in the auth step.

Everything runs in this process: `chatrelay.server.auth.verify_token` on the verifier the
settings choose, and `GET /api/{user}/conversations` through the real app (lifespan
running, httpx's ASGI transport, a temporary SQLite file). The key set comes from a JWKS
server on 127.0.0.1 started here (a thread), fetched once at start-up: nothing is fetched
while timing. See bench/README.md.

    .venv/bin/python -m bench.auth_verify [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bench.mcp_tool_latency import running
from bench.report import environment
from chatrelay.config import Settings
from chatrelay.server import create_app
from chatrelay.server.auth import verify_token
from chatrelay.tokens import TokenVerifier

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
USER = "bench"
GOAL = 1.2
KEYS = {
    "EdDSA": lambda: ed25519.Ed25519PrivateKey.generate(),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
Call = Callable[[], Awaitable[object]]


@contextmanager
def jwks_server(keys: dict[str, Any]) -> Iterator[str]:
    """A JWKS of `keys` (kid = alg) on 127.0.0.1; its URL."""
    jwks = []
    for alg, key in keys.items():
        public = jwt.get_algorithm_by_name(alg).to_jwk(key.public_key(), as_dict=True)
        jwks.append({**public, "kid": alg})
    body = json.dumps({"keys": jwks}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()


def settings(workdir: Path, name: str, **auth: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        env="test",
        database_url=f"sqlite+aiosqlite:///{workdir / (name + '.db')}",
        auth_issuer="https://issuer.bench",
        auth_audience="chatrelay",
        model="offline",
        openai_api_key=None,
        openai_base_url=None,
        tracing=False,
        log_level="WARNING",
        _env_file=None,
        **auth,
    )


def tokens(sign: Callable[[dict[str, Any]], str], count: int) -> list[str]:
    """`count` distinct tokens (a `jti` each): a token seen before skips its signature."""
    now = int(time.time())
    base = {"sub": USER, "iat": now, "exp": now + 3600, "iss": "https://issuer.bench"}
    return [sign({**base, "aud": "chatrelay", "jti": uuid.uuid4().hex}) for _ in range(count)]


def auth_calls(verifier: TokenVerifier, fresh: list[str]) -> dict[str, Call]:
    """The auth step on a token seen before, and on one seen for the first time."""
    repeated = f"Bearer {fresh[0]}"
    queue = iter(fresh[1:])
    return {
        "repeat": lambda: verify_token(verifier, repeated),
        "first": lambda: verify_token(verifier, f"Bearer {next(queue)}"),
    }


async def timed(call: Call, batch: int) -> float:
    """Seconds per call, over a batch (single calls are below the clock's useful grain)."""
    start = time.perf_counter()
    for _ in range(batch):
        await call()
    return (time.perf_counter() - start) / batch


async def measure(rounds: int, batch: int, workdir: Path) -> dict[str, Any]:
    private = {alg: make() for alg, make in KEYS.items()}
    secret = secrets.token_urlsafe(48)
    needed = (rounds + 2) * batch + 2  # the warm-up rounds take fresh tokens too
    async with AsyncExitStack() as stack:
        url = stack.enter_context(jwks_server(private))
        hs_app = await stack.enter_async_context(
            running(create_app(settings(workdir, "hs256", auth_secret=secret)))
        )
        jwks_app = await stack.enter_async_context(
            running(create_app(settings(workdir, "jwks", auth_jwks_url=url)))
        )
        variants: dict[str, tuple[Any, list[str]]] = {
            "HS256": (hs_app, tokens(lambda c: jwt.encode(c, secret, "HS256"), needed)),
        }
        for alg, key in private.items():
            sign = lambda c, k=key, a=alg: jwt.encode(c, k, a, headers={"kid": a})  # noqa: E731
            variants[alg] = (jwks_app, tokens(sign, needed))
        calls: dict[str, dict[str, Call]] = {}
        for name, (app, fresh) in variants.items():
            calls[name] = auth_calls(app.state.runtime.verifier, fresh)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
            )
            calls[name]["request"] = _request(http, fresh[0])
        await _check(calls)
        samples = {name: {kind: [] for kind in calls[name]} for name in calls}
        for index in range(rounds + 2):  # the first two rounds warm up
            for name, kinds in calls.items():
                for kind, call in kinds.items():
                    per_call = await timed(call, batch if kind != "request" else batch // 10)
                    if index >= 2:
                        samples[name][kind].append(per_call)
            print(".", end="", flush=True)
        print()
    return {"samples_s": samples, "summary": summarise(samples)}


def _request(http: httpx.AsyncClient, token: str) -> Call:
    headers = {"Authorization": f"Bearer {token}"}

    async def call() -> object:
        response = await http.get(f"/api/{USER}/conversations", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.text}")
        return response

    return call


async def _check(calls: dict[str, dict[str, Call]]) -> None:
    """Every variant verifies to the user before anything is timed."""
    for name, kinds in calls.items():
        user = await kinds["repeat"]()
        if user != USER:
            raise RuntimeError(f"{name} verified as {user!r}")
        await kinds["request"]()


def summarise(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    floor = {kind: statistics.median(values) for kind, values in samples["HS256"].items()}
    return {
        name: {
            kind: {
                "median_us": statistics.median(values) * 1e6,
                "ratio_to_hs256": statistics.median(values) / floor[kind],
            }
            for kind, values in kinds.items()
        }
        for name, kinds in samples.items()
    }


ROWS = {
    "repeat": "auth step, a token seen before (us)",
    "first": "auth step, a token's first request (us)",
    "request": "GET /api/{user}/conversations, whole request (us)",
}


def table(summary: dict[str, dict[str, Any]]) -> str:
    names = list(summary)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind, label in ROWS.items():
        cells = []
        for name in names:
            cell = summary[name][kind]
            ratio = "" if name == "HS256" else f" ({cell['ratio_to_hs256']:.2f}x)"
            cells.append(f"{cell['median_us']:.1f}{ratio}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.auth_verify", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, a few seconds")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 31; quick 3)")
    parser.add_argument("--batch", type=int, help="calls per timed batch (default 200; quick 20)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # the lifespans' info lines are not results
    rounds = args.rounds or (3 if args.quick else 31)
    batch = args.batch or (20 if args.quick else 200)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="chatrelay-auth-bench-") as tmp:
        result = asyncio.run(measure(rounds, batch, Path(tmp)))
    print(table(result["summary"]))
    repeat = max(result["summary"][alg]["repeat"]["ratio_to_hs256"] for alg in KEYS)
    verdict = "met" if repeat <= GOAL else "NOT met"
    print(
        f"goal: a JWKS-verified request's auth step <= {GOAL}x HS256's: {verdict} ({repeat:.2f}x)"
    )
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
    document = {
        "benchmark": "auth_verify",
        "quick": args.quick,
        "params": {"rounds": rounds, "batch": batch, "request_batch": batch // 10},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "environment": environment(REPO, ("pyjwt", "cryptography", "httpx", "fastapi")),
        **result,
    }
    if not args.quick:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"auth_verify-{stamp}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"raw: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

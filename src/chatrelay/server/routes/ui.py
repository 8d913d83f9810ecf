"""The chat page: `/` and its files under `/ui/`, served from package data (`chatrelay/ui`).

Plain HTML, CSS and ES modules, no build step and nothing from another origin, so the
page works on a laptop with no network, in an air-gapped deployment and in CI. The files
are read once, when the app is built, and served with an ETag and a strict
Content-Security-Policy: scripts, styles and requests from this origin only, no inline
script or style, no frames, no plugins, no form posting anywhere (the page's forms are
handled by its script, so a page whose script failed never puts a token in a URL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from chatrelay.config import Settings

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidate every time (a 304 with the ETag): an upgrade never leaves a stale module.
    "Cache-Control": "no-cache",
}
# Only these are served; ES modules must come with a JavaScript type or the browser refuses them.
MEDIA_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
INDEX = "index.html"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _files(entry, f"{prefix}{entry.name}/")
        elif not entry.name.startswith("."):
            yield f"{prefix}{entry.name}", entry


def load_assets() -> dict[str, Asset]:
    """Every servable file of the page, by its path under `chatrelay/ui`."""
    assets: dict[str, Asset] = {}
    for name, entry in _files(resources.files("chatrelay") / "ui"):
        suffix = name[name.rfind(".") :] if "." in name else ""
        if suffix not in MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body, MEDIA_TYPES[suffix], etag)
    if INDEX not in assets:
        raise RuntimeError("the chat page's files are missing from the chatrelay package")
    return assets


def _answer(asset: Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def ui_router(settings: Settings) -> APIRouter:
    """The page's routes (routed only when `settings.serve_ui`)."""
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index(request: Request) -> Response:
        return _answer(assets[INDEX], request)

    @router.get("/ui/config.json")
    async def page_config() -> JSONResponse:
        """What the page cannot know by itself: whether it may offer dev login."""
        return JSONResponse({"dev_login": settings.dev_login}, headers=SECURITY_HEADERS)

    @router.get("/ui/{name:path}")
    async def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            raise HTTPException(404, "no such file")
        return _answer(found, request)

    return router

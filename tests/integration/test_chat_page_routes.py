"""The chat page's HTTP side: `/` and `/ui/*` from package data with strict security headers,
on unless production says otherwise, and the dev-login endpoint behind `DEV_LOGIN`.

What the page does in a browser is tested in tests/browser/."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from chatrelay.server.auth import verify_token
from chatrelay.server.routes.ui import CONTENT_SECURITY_POLICY, MEDIA_TYPES, load_assets
from tests.conftest import AppFactory, client_for

UI_DIR = Path(__file__).resolve().parents[2] / "src" / "chatrelay" / "ui"


async def test_the_page_is_served_at_the_root_with_a_strict_policy(
    app_factory: AppFactory,
) -> None:
    async with client_for(await app_factory()) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere() -> None:
    """What the policy would block anyway, caught before a browser does."""
    for path in UI_DIR.iterdir():
        text = path.read_text()
        # Nothing loaded from another origin (the policy would refuse it: a broken page).
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path.name
        assert not re.search(r"""(from|import\(|fetch\()\s*["'](https?:)?//""", text), path.name
        assert "@import" not in text and "url(" not in text, path.name
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
            assert not re.search(r"\son\w+=", text), path.name  # onclick= and friends
            assert "style=" not in text and "<style" not in text, path.name
        if path.suffix == ".js":
            # Markup from strings (the model's text could get in): DOM APIs only.
            assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", text)
            assert "eval(" not in text and "new Function" not in text, path.name


async def test_every_module_is_served_as_javascript_with_an_etag(
    app_factory: AppFactory,
) -> None:
    async with client_for(await app_factory()) as client:
        for name in ("app.js", "api.js", "sse.js", "markdown.js", "transcript.js", "turns.js"):
            response = await client.get(f"/ui/{name}")
            assert response.status_code == 200, name
            # A module with any other type is refused by the browser.
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            again = await client.get(
                f"/ui/{name}", headers={"If-None-Match": response.headers["etag"]}
            )
            assert again.status_code == 304
            assert again.content == b""


async def test_an_unknown_file_is_a_404_with_a_detail(app_factory: AppFactory) -> None:
    async with client_for(await app_factory()) as client:
        for path in ("/ui/nope.js", "/ui/../config.py", "/ui/", "/ui/%2e%2e/config.py"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["detail"], path


def test_every_file_of_the_page_is_shipped_and_servable() -> None:
    """The wheel carries all of `ui/` (package data), and the server serves every file of it:
    a file of a type it does not serve would be shipped and never reach the page."""
    pyproject = tomllib.loads((UI_DIR.parents[2] / "pyproject.toml").read_text())
    assert "ui/*" in pyproject["tool"]["setuptools"]["package-data"]["chatrelay"]
    assert all(path.is_file() for path in UI_DIR.iterdir())  # "ui/*" takes no subfolders
    served = load_assets()
    for path in UI_DIR.iterdir():
        assert path.suffix in MEDIA_TYPES, path.name
        assert served[path.name].body == path.read_bytes()


@pytest.mark.parametrize(
    ("env", "ui_enabled", "served"),
    [
        ("development", None, True),
        ("test", None, True),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
async def test_the_page_is_on_unless_production_or_turned_off(
    app_factory: AppFactory, env: str, ui_enabled: bool | None, served: bool
) -> None:
    async with client_for(await app_factory(env=env, ui_enabled=ui_enabled)) as client:
        page = await client.get("/")
        config = await client.get("/ui/config.json")
    assert page.status_code == (200 if served else 404)
    assert config.status_code == (200 if served else 404)
    assert "detail" in page.json() if not served else page.text.startswith("<!doctype html>")


async def test_dev_login_mints_a_token_the_server_accepts(app_factory: AppFactory) -> None:
    app = await app_factory(dev_login=True)
    async with client_for(app) as client:
        assert (await client.get("/ui/config.json")).json() == {"dev_login": True}
        minted = await client.post("/auth/dev-token", json={"user_id": "carol"})
        assert minted.status_code == 200
        body = minted.json()
        assert body["user_id"] == "carol" and body["expires_in"] > 0
        headers = {"Authorization": f"Bearer {body['token']}"}
        threads = await client.post(
            "/chatkit", json={"type": "threads.list", "params": {}}, headers=headers
        )
    assert threads.status_code == 200
    assert await verify_token(app.state.runtime.verifier, headers["Authorization"]) == "carol"


@pytest.mark.parametrize(
    "body",
    [{}, {"user_id": ""}, {"user_id": "has space"}, {"user_id": "-x"}, {"user_id": "x" * 65}],
)
async def test_dev_login_refuses_a_bad_user_name(app_factory: AppFactory, body: object) -> None:
    async with client_for(await app_factory(dev_login=True)) as client:
        response = await client.post("/auth/dev-token", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_without_dev_login_there_is_no_such_endpoint(app_factory: AppFactory) -> None:
    async with client_for(await app_factory()) as client:
        response = await client.post("/auth/dev-token", json={"user_id": "carol"})
        config = await client.get("/ui/config.json")
    assert response.status_code == 404
    assert response.json()["detail"]
    assert config.json() == {"dev_login": False}


async def test_the_api_answers_are_unchanged_by_the_page(app_factory: AppFactory) -> None:
    """The page's policy is the page's: JSON answers carry no CSP of their own."""
    async with client_for(await app_factory()) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers

"""Browser tests: Playwright for Python driving Debian's Chromium against a real `chatrelay
serve` process. Never a downloaded browser: `make browser` (run by `make test`) installs
Debian's `chromium` when it is missing; `CHATRELAY_CHROMIUM` names another binary.

Screenshots of each state the tests reach are written to tests/artifacts/browser/ (ignored
by git; CI can keep them)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from chatrelay.config import ENV_FILE_VARIABLE
from tests.browser.relay import Relay
from tests.integration.processes import SECRET, Server

CHROMIUM = Path(os.environ.get("CHATRELAY_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
WORD_DELAY_SECONDS = 0.05  # the offline model's pause between words: replies visibly stream
NO_PROXY_ARGS = ["--no-proxy-server"]  # loopback only, whatever the environment says

expect.set_options(timeout=20_000)


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    dropped = ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
    return {
        **env,
        "AUTH_SECRET": SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        ENV_FILE_VARIABLE: os.devnull,
        "DEV_LOGIN": "true",
        "OFFLINE_DELAY_SECONDS": str(WORD_DELAY_SECONDS),
        **extra,
    }


@dataclass
class ChatServer:
    """A running server, reached through a relay whose connections a test can cut."""

    server: Server
    relay: Relay
    env: dict[str, str]
    cwd: Path

    @property
    def url(self) -> str:
        return self.relay.url


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make browser` (installs Debian's chromium) "
            "or set CHATRELAY_CHROMIUM"
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=NO_PROXY_ARGS)
    yield browser
    browser.close()


def start_server(cwd: Path, **extra: str) -> ChatServer:
    env = server_env(cwd, **extra)
    server = Server(env, cwd)
    return ChatServer(server, Relay(server.port), env, cwd)


def stop_server(chat: ChatServer) -> None:
    chat.relay.close()
    chat.server.stop()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """One server for a module's tests; each test signs in as a user of its own."""
    chat = start_server(tmp_path_factory.mktemp("browser"))
    yield chat
    stop_server(chat)


@dataclass
class PageProblems:
    """What the page must never do: throw, or break its own security policy."""

    errors: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.errors.append(message.text)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    problems = PageProblems()
    page.on("console", problems.console)
    page.on("pageerror", lambda error: problems.errors.append(f"uncaught: {error}"))
    yield page
    context.close()
    assert problems.errors == []


Shot = Callable[[Page, str], Path]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """`shot(page, "streaming")` saves a numbered screenshot under tests/artifacts/browser/."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    taken: list[Path] = []

    def take(page: Page, state: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{len(taken) + 1:02d}-{state}.png"
        page.screenshot(path=path)
        taken.append(path)
        return path

    return take


def new_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(page: Page, url: str, user: str) -> None:
    """Dev login, as a newcomer after `make run` does it."""
    page.goto(url + "/")
    page.get_by_role("textbox", name="User name").fill(user)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()


def replies(page: Page) -> Locator:
    return page.get_by_role("log").locator("article.assistant")


def wait_until_idle(page: Page) -> None:
    """The reply has ended: Send is back and no reply is still streaming."""
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.get_by_role("log").locator("article.streaming")).to_have_count(0)

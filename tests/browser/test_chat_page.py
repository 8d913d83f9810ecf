"""The chat page at `/`, in Chromium, against a real `chatrelay serve`: everything a person
does with it, found by the accessible names screen readers use too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from tests.browser.conftest import (
    ChatServer,
    Shot,
    new_user,
    replies,
    send,
    sign_in,
    start_server,
    stop_server,
    wait_until_idle,
)
from tests.integration.processes import cli_token

pytestmark = pytest.mark.slow

PREFIX = "This is chatrelay's offline model. You said:"
# 80 words at the offline model's pace: a reply of several seconds, to act on mid-stream.
LONG = " ".join(f"word{i}" for i in range(80))


def conversations(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Conversations").get_by_role("link")


def test_sign_in_with_a_token_from_the_command_line(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    page.goto(chat_server.url + "/")
    signin = page.get_by_role("region", name="chatrelay")
    expect(signin).to_contain_text("chatrelay token USER")
    expect(page.get_by_role("textbox", name="User name")).to_be_visible()  # DEV_LOGIN=true
    shot(page, "sign-in")

    page.get_by_role("textbox", name="Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a token")

    forged = cli_token(
        {**chat_server.env, "AUTH_SECRET": "another-secret-" + "q" * 40}, chat_server.cwd, "dora"
    )
    page.get_by_role("textbox", name="Token").fill(forged)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("refused the token")
    shot(page, "refused-token")

    user = new_user("dora")
    page.get_by_role("textbox", name="Token").fill(
        cli_token(chat_server.env, chat_server.cwd, user)
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.get_by_text(user)).to_be_visible()
    expect(conversations(page)).to_have_count(0)
    shot(page, "signed-in")

    page.reload()  # the tab keeps its sign-in
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_reply_streams_in_as_it_is_written(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    message = "Hello there, " + " ".join(f"w{i}" for i in range(40))
    send(page, message)

    reply = replies(page).last
    expect(reply).to_contain_text("offline model")
    # Mid-stream: part of the reply, and a Stop button instead of Send.
    partial = reply.locator(".body").inner_text()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_hidden()
    assert not partial.endswith("w39")
    shot(page, "streaming")

    expect(reply.locator(".body")).to_have_text(f"{PREFIX} {message}")
    wait_until_idle(page)
    assert f"{PREFIX} {message}".startswith(partial)
    log = page.get_by_role("log")
    expect(log.locator("article.user .body")).to_have_text([message])
    # The new thread is in the sidebar, titled from its first message.
    expect(conversations(page)).to_have_count(1)
    expect(conversations(page).first).to_contain_text("Hello there")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hello there")
    shot(page, "streamed")


def test_a_task_added_through_chat_shows_the_tool_call(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    send(page, "add a task to buy milk")

    tool_call = page.get_by_role("log").locator("article.workflow")
    expect(tool_call).to_contain_text("add_task")
    expect(replies(page).last).to_have_text(re.compile(r"Added task \d+: buy milk\."))
    wait_until_idle(page)
    expect(tool_call).to_contain_text("Used 1 tool call")
    expect(tool_call.get_by_label(re.compile("add_task: done"))).to_be_visible()
    expect(tool_call).to_contain_text('"title": "buy milk"')
    shot(page, "tool-call")

    page.reload()  # rebuilt from the store: the same tool call and reply
    expect(page.get_by_role("log").locator("article.workflow")).to_contain_text("add_task")
    expect(replies(page).last).to_have_text(re.compile(r"Added task \d+: buy milk\."))


def test_an_older_conversation_opens_from_the_sidebar(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    send(page, "first conversation here")
    wait_until_idle(page)
    page.get_by_role("button", name="New conversation").click()
    expect(page.get_by_role("log").locator("article")).to_have_count(0)
    send(page, "second conversation now")
    wait_until_idle(page)
    expect(conversations(page)).to_have_count(2)
    expect(conversations(page)).to_have_text(
        [re.compile("second conversation"), re.compile("first conversation")]
    )

    conversations(page).nth(1).click()  # the older one
    log = page.get_by_role("log")
    expect(log.locator("article.user .body")).to_have_text(["first conversation here"])
    expect(replies(page).locator(".body")).to_have_text([f"{PREFIX} first conversation here"])
    expect(conversations(page).nth(1)).to_have_attribute("aria-current", "page")
    shot(page, "older-conversation")

    send(page, "and a follow-up")  # continues that thread, not a new one
    wait_until_idle(page)
    expect(log.locator("article.user")).to_have_count(2)
    expect(conversations(page)).to_have_count(2)
    page.reload()
    expect(page.get_by_role("log").locator("article.user")).to_have_count(2)


def test_stop_keeps_the_partial_reply(page: Page, chat_server: ChatServer, shot: Shot) -> None:
    sign_in(page, chat_server.url, new_user())
    send(page, LONG)
    reply = replies(page).last
    expect(reply).to_contain_text("word5 ")

    page.get_by_role("button", name="Stop").click()
    wait_until_idle(page)
    kept = reply.locator(".body").inner_text()
    assert kept.startswith(PREFIX) and "word5" in kept
    assert f"{PREFIX} {LONG}".startswith(kept) and not kept.endswith("word79")
    expect(page.get_by_role("alert")).to_have_count(0)  # a stop is not an error
    shot(page, "stopped")

    page.reload()  # what was kept is what the store has
    expect(replies(page).last.locator(".body")).to_have_text(kept)


def test_a_reload_mid_reply_resumes_the_turn(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    send(page, LONG)
    expect(replies(page).last).to_contain_text("word3 ")
    resumes: list[Request] = []
    page.on("request", lambda r: resumes.append(r) if r.url.endswith("/stream") else None)

    page.reload()
    # Still streaming after the reload: the reply so far, then the rest as it comes.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(replies(page).last).to_contain_text("word3 ")
    shot(page, "resumed-after-reload")
    wait_until_idle(page)
    # Every word exactly once: resumed right after the last event the page had.
    expect(replies(page).last.locator(".body")).to_have_text(f"{PREFIX} {LONG}")
    assert len(resumes) == 1
    assert int(resumes[0].headers["last-event-id"]) > 0
    shot(page, "finished-after-reload")


def test_a_dropped_connection_resumes_by_last_event_id(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    resumes: list[Request] = []
    page.on("request", lambda r: resumes.append(r) if r.url.endswith("/stream") else None)
    send(page, LONG)
    expect(replies(page).last).to_contain_text("word10 ")

    assert chat_server.relay.cut() >= 1  # the stream's connection, reset mid-reply
    wait_until_idle(page)
    expect(replies(page).last.locator(".body")).to_have_text(f"{PREFIX} {LONG}")
    assert len(resumes) >= 1
    assert int(resumes[0].headers["last-event-id"]) > 10
    expect(page.get_by_role("alert")).to_have_count(0)
    shot(page, "resumed-after-drop")


def test_html_and_javascript_links_in_a_message_are_inert(
    page: Page, chat_server: ChatServer, shot: Shot
) -> None:
    sign_in(page, chat_server.url, new_user())
    attack = (
        "<img src=x onerror=window.__pwned=1> "
        "<script>window.__pwned=2</script> "
        "[click me](javascript:window.__pwned=3) "
        "[data](data:text/html,<b>x</b>) "
        "**bold** and a [real link](https://example.com/docs)"
    )
    send(page, attack)
    wait_until_idle(page)
    log = page.get_by_role("log")
    reply = replies(page).last

    expect(reply).to_contain_text("<img src=x onerror=window.__pwned=1>")  # shown as text
    expect(reply).to_contain_text("<script>window.__pwned=2</script>")
    expect(log.locator("img, script, iframe, object, embed")).to_have_count(0)
    expect(log.locator("[onerror], [onclick], [onload]")).to_have_count(0)
    expect(reply.locator("a")).to_have_count(1)  # only the https link
    expect(reply.get_by_role("link", name="real link")).to_have_attribute(
        "href", "https://example.com/docs"
    )
    expect(reply.get_by_role("link", name="real link")).to_have_attribute(
        "rel", "noopener noreferrer nofollow"
    )
    inert = reply.locator(".inert-link")
    expect(inert).to_have_text(["click me", "data"])
    expect(reply.locator("strong")).to_have_text("bold")
    inert.first.click()  # nothing happens: no navigation, no script
    assert page.evaluate("window.__pwned") is None
    assert page.url.startswith(chat_server.url)
    # The user's own message is plain text.
    expect(log.locator("article.user .body")).to_have_text(attack)
    shot(page, "inert-markup")


def test_a_failed_turn_shows_its_error_with_the_correlation_id(
    page: Page, tmp_path: Path, shot: Shot
) -> None:
    # A turn that outlives its timeout fails, as a stuck model would. No dev login here.
    slow = start_server(
        tmp_path, TURN_TIMEOUT_SECONDS="1", OFFLINE_DELAY_SECONDS="0.2", DEV_LOGIN="false"
    )
    try:
        page.goto(slow.url + "/")
        expect(page.get_by_role("textbox", name="Token")).to_be_visible()
        expect(page.get_by_role("textbox", name="User name")).to_have_count(0)
        page.get_by_role("textbox", name="Token").fill(cli_token(slow.env, slow.cwd, new_user()))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        with page.expect_response(
            lambda r: "threads.create" in (r.request.post_data or "")
        ) as answer:
            send(page, LONG)
        correlation_id = answer.value.headers["x-request-id"]
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("took too long")
        expect(alert).to_contain_text(correlation_id)
        wait_until_idle(page)
        shot(page, "error-with-correlation-id")
    finally:
        stop_server(slow)

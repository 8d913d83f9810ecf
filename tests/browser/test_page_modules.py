"""The page's own modules, run in Chromium as the page runs them: the Markdown renderer (never
markup from text) and the hand-written SSE parser (every line ending, split anywhere)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import ChatServer

pytestmark = pytest.mark.slow

RENDER = """async (text) => {
  const { renderMarkdown } = await import("/ui/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(text));
  return box.innerHTML;
}"""


@pytest.fixture(scope="module")
def module_page(browser: Browser, chat_server: ChatServer) -> Iterator[Page]:
    """The sign-in page: the modules load from the server under its security policy."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(chat_server.url + "/")
    yield page
    context.close()


def render(page: Page, text: str) -> str:
    html: str = page.evaluate(RENDER, text)
    return html


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("plain text", "<p>plain text</p>"),
        ("one\ntwo", "<p>one<br>two</p>"),
        ("para one\n\npara two", "<p>para one</p><p>para two</p>"),
        (
            "**bold** and *em* and _em_",
            "<p><strong>bold</strong> and <em>em</em> and <em>em</em></p>",
        ),
        ("`a <b> c`", "<p><code>a &lt;b&gt; c</code></p>"),
        ("~~gone~~", "<p><del>gone</del></p>"),
        ("snake_case_name and 2 * 3 * 4", "<p>snake_case_name and 2 * 3 * 4</p>"),
        ("window.__name=1 and window.__name=2", "<p>window.__name=1 and window.__name=2</p>"),
        ("\\*not em\\*", "<p>*not em*</p>"),
        ("# Title", "<h3>Title</h3>"),
        ("- a\n- b", "<ul><li>a</li><li>b</li></ul>"),
        ("3. c\n4. d", '<ol start="3"><li>c</li><li>d</li></ol>'),
        ("- a\n  - nested", "<ul><li>a<ul><li>nested</li></ul></li></ul>"),
        ("> quoted", "<blockquote><p>quoted</p></blockquote>"),
        ("```py\nx = '<b>'\n```", "<pre><code data-language=\"py\">x = '&lt;b&gt;'</code></pre>"),
        ("```\nstill streaming", "<pre><code>still streaming</code></pre>"),
        ("---", "<hr>"),
        ("**unclosed", "<p>**unclosed</p>"),
        (
            "[docs](https://example.com/a?b=1)",
            '<p><a href="https://example.com/a?b=1" rel="noopener noreferrer nofollow"'
            ' target="_blank">docs</a></p>',
        ),
        (
            "see https://example.com/x.",
            '<p>see <a href="https://example.com/x" rel="noopener noreferrer nofollow"'
            ' target="_blank">https://example.com/x</a>.</p>',
        ),
        (
            "<mailto:a@example.com>",
            '<p><a href="mailto:a@example.com" rel="noopener noreferrer nofollow"'
            ' target="_blank">mailto:a@example.com</a></p>',
        ),
    ],
)
def test_markdown(module_page: Page, markdown: str, html: str) -> None:
    assert render(module_page, markdown) == html


INERT = '<span class="inert-link" title="link removed: not an http(s) or mailto address">'


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"),
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"),
        (
            '<a href="javascript:alert(1)">x</a>',
            '<p>&lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt;</p>',
        ),
        ("[x](javascript:alert(1))", f"<p>{INERT}x</span></p>"),
        ("[x](JavaScript:alert(1))", f"<p>{INERT}x</span></p>"),
        ("[x]( javascript:alert(1))", f"<p>{INERT}x</span></p>"),
        ("[x](<java\tscript:alert(1)>)", f"<p>{INERT}x</span></p>"),
        ("[x](data:text/html,hi)", f"<p>{INERT}x</span></p>"),
        ("[x](vbscript:msgbox)", f"<p>{INERT}x</span></p>"),
        ("<javascript:alert(1)>", "<p>&lt;javascript:alert(1)&gt;</p>"),
        (
            "![cat](https://example.com/cat.png)",
            '<p><a class="image-link" href="https://example.com/cat.png"'
            ' rel="noopener noreferrer nofollow" target="_blank">[image: cat]</a></p>',
        ),
        ("![x](javascript:alert(1))", f"<p>{INERT}x</span></p>"),
        (
            "[**<b>x</b>**](javascript:1)",
            f"<p>{INERT}<strong>&lt;b&gt;x&lt;/b&gt;</strong></span></p>",
        ),
    ],
)
def test_markup_and_unsafe_links_stay_text(module_page: Page, markdown: str, html: str) -> None:
    assert render(module_page, markdown) == html


def test_deep_nesting_is_bounded(module_page: Page) -> None:
    html = render(module_page, "> " * 500 + "deep")
    assert html.count("<blockquote>") <= 14
    assert "deep" in html


PARSE = """async (chunks) => {
  const { EventStreamParser } = await import("/ui/sse.js");
  const parser = new EventStreamParser();
  const events = [];
  for (const chunk of chunks) events.push(...parser.push(chunk));
  parser.end();
  return events;
}"""


def parse(page: Page, chunks: list[str]) -> list[dict[str, object]]:
    events: list[dict[str, object]] = page.evaluate(PARSE, chunks)
    return events


def test_sse_frames_as_chatrelay_writes_them_split_anywhere(module_page: Page) -> None:
    stream = (
        "".join(f"id: {i}\r\ndata: {json.dumps({'n': i})}\r\n\r\n" for i in range(3))
        + ": ping - 2026-01-01\r\n\r\n"
    )
    expected = [{"type": "message", "data": json.dumps({"n": i}), "id": str(i)} for i in range(3)]
    assert parse(module_page, [stream]) == expected
    for cut in range(1, len(stream)):  # every split, CR and LF apart included
        assert parse(module_page, [stream[:cut], stream[cut:]]) == expected, cut
    assert parse(module_page, list(stream)) == expected


def test_sse_line_endings_multiline_data_and_sticky_ids(module_page: Page) -> None:
    events = parse(
        module_page, ["id: 7\ndata: a\ndata: b\n\n", "data:c\r\r", "event: x\rdata: d\n\n"]
    )
    assert events == [
        {"type": "message", "data": "a\nb", "id": "7"},
        {"type": "message", "data": "c", "id": "7"},
        {"type": "x", "data": "d", "id": "7"},
    ]
    assert parse(module_page, ["data: unfinished"]) == []  # no blank line: not an event

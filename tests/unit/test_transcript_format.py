"""The transcript format: raw `.sse` bytes in and out exactly, redaction, normalisation."""

from __future__ import annotations

import json

import pytest

from chatrelay.transcripts import (
    REDACTED,
    Normaliser,
    RecordedEvent,
    RecordedRequest,
    Transcript,
    dump,
    problems,
)
from chatrelay.transcripts.format import SseReader, clean_headers

SSE_STARLETTE = (
    b'id: 0\r\ndata: {"type":"progress_update","text":"Running add_task\xe2\x80\xa6"}\r\n\r\n'
    b": ping - 2026-01-01 00:00:00.000000+00:00\r\n\r\n"
    b'id: 1\r\ndata: {"type":"notice","level":"info","message":"hi"}\r\n\r\n'
)
STREAMS = {
    "sse-starlette (CRLF, a ping)": SSE_STARLETTE,
    "curl (LF)": b"id: 7\ndata: one\n\nid: 8\ndata: two\n\n",
    "old Mac (CR)": b"data: one\r\rdata: two\r\r",
    "mixed line ends": b"id: 1\r\ndata: a\n\r\ndata: b\r\r\n",
    "multi-line data, event name, retry": b"event: x\ndata: a\ndata:b\nretry: 10\n\n",
    "byte order mark": b"\xef\xbb\xbfid: 1\ndata: a\n\n",
    "extra blank lines": b"\n\n\ndata: a\n\n\n",
    "cut off mid-event": b'id: 1\ndata: a\n\nid: 2\ndata: {"ty',
    "cut off between CR and LF": b"data: a\r\n\r",
    "no events at all": b"",
    "non-ASCII": "data: caf\u00e9 \U0001f375\n\n".encode(),
}


@pytest.mark.parametrize("raw", STREAMS.values(), ids=STREAMS.keys())
def test_raw_streams_export_byte_for_byte(raw: bytes) -> None:
    transcript = Transcript.from_sse_bytes(raw)
    assert transcript.to_sse_bytes() == raw
    stored = Transcript.model_validate_json(dump(transcript))  # through the JSON file, too
    assert stored.to_sse_bytes() == raw


@pytest.mark.parametrize("raw", STREAMS.values(), ids=STREAMS.keys())
def test_any_chunking_gives_the_same_blocks(raw: bytes) -> None:
    whole = Transcript.from_sse_bytes(raw)
    for cut in range(len(raw) + 1):  # including inside a UTF-8 character and a CRLF
        reader = SseReader()
        blocks = reader.feed(raw[:cut]) + reader.feed(raw[cut:], final=True)
        assert [block.raw for block in blocks] == [event.raw for event in whole.events]
        assert reader.tail == whole.tail


def test_fields_are_parsed_as_an_event_source_would() -> None:
    raw = b"event: x\nid: 1\ndata: a\ndata:b\ndata\n: a comment\n\n: only a comment\n\n"
    first, ping = Transcript.from_sse_bytes(raw).events
    assert (first.event, first.id, first.data) == ("x", "1", "a\nb\n")
    assert ping.data is None and ping.id is None
    assert Transcript.from_sse_bytes(raw).data_events() == [first]
    bom = Transcript.from_sse_bytes(STREAMS["byte order mark"]).events[0]
    assert (bom.id, bom.data) == ("1", "a")


def test_a_hand_written_event_is_framed_like_sse_starlette() -> None:
    transcript = Transcript(events=[RecordedEvent(id="3", data='{"a": 1}\n{"b": 2}')])
    raw = transcript.to_sse_bytes()
    assert raw == b'id: 3\r\ndata: {"a": 1}\r\ndata: {"b": 2}\r\n\r\n'
    assert Transcript.from_sse_bytes(raw).events[0].data == transcript.events[0].data


def test_secrets_in_headers_are_redacted_and_noise_dropped() -> None:
    headers = clean_headers(
        [
            ("Authorization", "Bearer abc"),
            ("Cookie", "session=1"),
            ("X-Api-Key", "k"),
            ("Proxy-Authorization", "Basic x"),
            ("X-Auth-Token", "t"),
            ("Set-Cookie", "a=b"),
            ("Host", "example.com"),
            ("User-Agent", "curl/8"),
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", "4"),
        ]
    )
    assert headers == {
        "accept": "text/event-stream",
        "authorization": REDACTED,
        "cookie": REDACTED,
        "last-event-id": "4",
        "proxy-authorization": REDACTED,
        "set-cookie": REDACTED,
        "x-api-key": REDACTED,
        "x-auth-token": REDACTED,
    }
    assert list(headers) == sorted(headers)


def test_request_bodies_are_json_when_they_can_be() -> None:
    as_json = RecordedRequest.of("POST", "/chatkit", [], b'{"type":"threads.list"}')
    assert as_json.body == {"type": "threads.list"} and as_json.raw_body is None
    assert json.loads(as_json.body_bytes()) == {"type": "threads.list"}
    as_text = RecordedRequest.of("POST", "/x", [], b"not json")
    assert as_text.body is None and as_text.body_bytes() == b"not json"
    assert RecordedRequest.of("GET", "/x", [], b"").body_bytes() == b""


def test_normaliser_numbers_ids_by_first_appearance() -> None:
    normalise = Normaliser()
    text = (
        '{"id":"thr_0123456789abcdef0123456789abcdef","item_id":"msg_aa11aa11","x":"msg_aa11aa11",'
        '"wf":"wf_9f8e7d6c5b4a","uuid":"123e4567-e89b-12d3-a456-426614174000",'
        '"correlation_id":"0123456789abcdef0123456789abcdef",'
        '"created_at":"2026-11-27T11:43:29.545682Z","t2":"2026-11-27 11:43:29+00:00",'
        '"status_indicator":"complete","content_part":"output_text"}'
    )
    assert json.loads(normalise(text)) == {
        "id": "<thr:1>",
        "item_id": "<msg:1>",
        "x": "<msg:1>",
        "wf": "<wf:1>",
        "uuid": "<uuid:1>",
        "correlation_id": "<hex:1>",
        "created_at": "<timestamp>",
        "t2": "<timestamp>",
        "status_indicator": "complete",
        "content_part": "output_text",
    }
    assert normalise("msg_bb22bb22 msg_aa11aa11") == "<msg:2> <msg:1>"


def test_validate_names_the_event_and_the_field() -> None:
    good = b'id: 0\ndata: {"type":"notice","level":"info","message":"hi"}\n\n'
    assert problems(Transcript.from_sse_bytes(good)) == []
    bad = b'id: 0\ndata: {"type":"notice","level":"loud","message":"hi"}\n\n: ping\n\n'
    (problem,) = problems(Transcript.from_sse_bytes(bad))
    assert problem.startswith("event #0 (id 0): notice.level: Input should be")
    assert problems(Transcript.from_sse_bytes(b": ping\n\n")) == ["the stream has no events"]
    error = Transcript.model_validate({"response": {"status": 401, "headers": {}, "body": "{}"}})
    assert problems(error) == ["not an event stream (status 401)"]


def test_transcript_dir_is_off_unless_set() -> None:
    from chatrelay.config import Settings

    assert Settings(_env_file=None).transcript_dir is None  # type: ignore[call-arg]
    assert Settings(_env_file=None, transcript_dir="").transcript_dir is None  # type: ignore[call-arg]

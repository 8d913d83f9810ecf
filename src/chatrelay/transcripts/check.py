"""Comparing streams: normalise what differs on every run, then diff what is left.

Ids (`thr_…`, `msg_…`, `wf_…`, `call_…`, uuids, hex request ids) become `<kind:N>`, numbered in
order of first appearance within the exchange; ISO timestamps become `<timestamp>`; time
offsets and comment blocks (keep-alive pings) are left out. What remains is the request line,
the status, the response headers and each event's id and data, one JSON field per line, so a
unified diff points at the field that changed.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

import httpx

from chatrelay.transcripts.format import RecordedRequest, Transcript
from chatrelay.transcripts.record import record

_VOLATILE = re.compile(
    r"(?P<id>\b(?P<kind>[a-z]{2,8})_(?=[A-Za-z]*[0-9])[A-Za-z0-9]{8,}\b)"
    r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<hex>\b[0-9a-f]{32}\b)"
    r"|(?P<time>\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)


@dataclass
class Normaliser:
    """Replaces volatile values in text; `names` maps each id seen to its placeholder."""

    names: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, text: str) -> str:
        return _VOLATILE.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if match.group("time") is not None:
            return "<timestamp>"
        raw = match.group(0)
        if raw not in self.names:
            kind = match.group("kind") or ("uuid" if match.group("uuid") else "hex")
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self.names[raw] = f"<{kind}:{self._counts[kind]}>"
        return self.names[raw]


def _pretty(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return text.split("\n")
    return json.dumps(value, indent=2, ensure_ascii=False).split("\n")


def render(transcript: Transcript, normalise: Normaliser | None = None) -> list[str]:
    """The comparable lines of an exchange (see the module docstring)."""
    normalise = normalise or Normaliser()
    lines: list[str] = []
    if transcript.request is not None:
        lines.append(normalise(f"{transcript.request.method} {transcript.request.path}"))
    response = transcript.response
    lines.append(f"status: {response.status}")
    lines += [f"{name}: {normalise(value)}" for name, value in response.headers.items()]
    if response.body is not None:
        lines += ["", *_pretty(normalise(response.body))]
    for event in transcript.data_events():
        assert event.data is not None
        lines += ["", f"event {event.id}" + (f" ({event.event})" if event.event else "")]
        lines += _pretty(normalise(event.data))
    return lines


_HUNK = re.compile(r"^@@ -(\d+)")


def diff(expected: Transcript, actual: Transcript, *, expected_name: str, actual_name: str) -> str:
    """A unified diff of the normalised exchanges; empty when they match.

    Each hunk header names the event it falls in (as git names the function), since a hunk's
    three lines of context rarely reach the event's own line.
    """
    before, after = render(expected), render(actual)
    lines = list(difflib.unified_diff(before, after, expected_name, actual_name, lineterm=""))
    for index, line in enumerate(lines):
        if (hunk := _HUNK.match(line)) is not None:
            context = 0  # the hunk's leading context lines: the change comes after them
            while lines[index + 1 + context].startswith(" "):
                context += 1
            changed = int(hunk.group(1)) - 1 + context
            where = next((b for b in reversed(before[:changed]) if b.startswith("event ")), "")
            lines[index] = f"{line} {where}".rstrip()
    return "\n".join(lines)


def id_pairs(expected: Transcript, actual: Transcript) -> dict[str, str]:
    """Each id of `expected` and the id in the same place of `actual`."""
    ours, theirs = Normaliser(), Normaliser()
    render(expected, ours)
    render(actual, theirs)
    placeholders = {name: raw for raw, name in theirs.names.items()}
    return {raw: placeholders[name] for raw, name in ours.names.items() if name in placeholders}


def _substitute(text: str, ids: dict[str, str]) -> str:
    if not ids:
        return text
    pattern = re.compile("|".join(re.escape(raw) for raw in sorted(ids, key=len, reverse=True)))
    return pattern.sub(lambda match: ids[match.group(0)], text)


@dataclass
class CheckResult:
    actual: Transcript
    diff: str

    @property
    def same(self) -> bool:
        return not self.diff


async def check(
    client: httpx.AsyncClient,
    expected: Transcript,
    *,
    authorization: str | None,
    name: str,
    ids: dict[str, str] | None = None,
) -> CheckResult:
    """Re-send the recorded request and compare.

    `ids` maps recorded ids to the ones the server gave this time; it carries over from the
    earlier exchanges of a run (so a second turn, or a resume, goes to the conversation the
    check itself created) and is extended with this one's. The returned transcript (what
    `--update` writes) keeps the recorded ids where the new stream has an id in the same
    place, so an update changes a file only where the stream changed.
    """
    if expected.request is None:
        raise ValueError("no request recorded (an imported raw stream): nothing to re-send")
    ids = {} if ids is None else ids
    request = RecordedRequest.model_validate_json(
        _substitute(expected.request.model_dump_json(), ids)
    )
    actual = await record(client, request, authorization=authorization, user=expected.user)
    found = diff(expected, actual, expected_name=f"recorded: {name}", actual_name="now")
    ids.update(id_pairs(expected, actual))
    back = {new: old for old, new in ids.items()}
    stable = Transcript.model_validate_json(_substitute(actual.model_dump_json(), back))
    return CheckResult(stable, found)

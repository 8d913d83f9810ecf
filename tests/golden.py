"""Golden comparisons of two ChatKit servers: record a transcript of the same requests on
each, normalise it, and list every difference.

Normalising: ids become `<kind:N>` in order of first appearance across the transcript (in
links too, whose expiry and signature become `<expires>` and `<signature>`), and
timestamps `<timestamp>`. Comparing: a list of typed things (stream events, thread items) is
aligned on its kinds (`type`, plus the update or item type) and a change in that sequence is
one difference; aligned elements, and everything else, are compared value by value.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.sse import parse_sse, validate_chatkit

ABSENT = "<absent>"
ID_KEYS = frozenset({"id", "thread_id", "item_id", "after"})
TIME_KEYS = frozenset({"created_at"})
LINK_KEYS = frozenset({"url", "preview_url"})
_SIGNED = re.compile(r"(expires|signature)=[^&]+")


@dataclass(frozen=True)
class Difference:
    step: str
    path: str
    """Where: `events` (a stream), `body...` (a response body), `status` or `media_type`.
    A path ending in a list (`events`, `body.data`) compares its sequence of kinds."""
    chatkit: Any
    chatrelay: Any


@dataclass(frozen=True)
class Step:
    name: str
    status: int
    media_type: str
    body: Any
    """Normalised: the list of events of a stream, the JSON of a JSON body, else the text."""


class Normaliser:
    """Ids to `<kind:N>` (N counting that kind: `<thread:1>`, `<assistant_message:2>`) in
    order of first appearance across the transcript, so one extra item on one server does
    not renumber the others; timestamps to `<timestamp>`."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __call__(self, value: Any) -> Any:
        self._register(value)
        return self._rewrite(value)

    def _name(self, raw: str, kind: str) -> str:
        if raw not in self._ids:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._ids[raw] = f"<{kind}:{self._counts[kind]}>"
        return self._ids[raw]

    def _register(self, value: Any) -> None:
        """Name every object's own id (an object without a `type` is a thread)."""
        if isinstance(value, dict):
            if isinstance(value.get("id"), str):
                self._name(value["id"], str(value.get("type", "thread")))
            for child in value.values():
                self._register(child)
        elif isinstance(value, list):
            for child in value:
                self._register(child)

    def _rewrite(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self._rewrite(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rewrite(v) for v in value]
        if key in ID_KEYS and isinstance(value, str):
            return self._name(value, "id")  # a reference to something never shown: `<id:N>`
        if key in TIME_KEYS and isinstance(value, str):
            return "<timestamp>"
        if key in LINK_KEYS and isinstance(value, str):
            return self._link(value)
        return value

    def _link(self, url: str) -> str:
        """A link with the ids in it named, and a signed link's expiry and signature too."""
        for raw, name in self._ids.items():
            url = url.replace(raw, name)
        return _SIGNED.sub(lambda found: f"{found.group(1)}=<{found.group(1)}>", url)


@dataclass
class Transcript:
    client: httpx.AsyncClient
    headers: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    normalise: Normaliser = field(default_factory=Normaliser)

    async def send(self, request_type: str, name: str | None = None, /, **params: Any) -> Any:
        """Send one request and record it as a step (named `name`, else by its type).

        Returns the raw answer, for the ids later requests need: the events of a stream
        (each validated strictly against `chatkit.types`), the JSON of a JSON body, else text.
        """
        body = {"type": request_type, "params": params}
        response = await self.client.post("/chatkit", json=body, headers=self.headers)
        media_type = response.headers.get("content-type", "").split(";")[0]
        raw: Any = response.text
        if media_type == "text/event-stream":
            frames = parse_sse(response.text)
            validate_chatkit(frames)
            raw = [frame.data for frame in frames]
        elif media_type == "application/json":
            raw = response.json()
        step = Step(name or request_type, response.status_code, media_type, self.normalise(raw))
        self.steps.append(step)
        return raw


def kind(value: Any) -> str | None:
    """`thread.item.done:user_message`, `thread.item.updated:workflow.task.added`, `workflow`;
    None for anything that is not a typed object."""
    if not isinstance(value, dict) or "type" not in value:
        return None
    detail = value.get("update") or value.get("item")
    return f"{value['type']}:{detail['type']}" if isinstance(detail, dict) else str(value["type"])


def _leaf(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _typed_list_differences(path: str, chatkit: list[Any], chatrelay: list[Any]) -> list[Any]:
    ours = [str(kind(v)) for v in chatkit]
    theirs = [str(kind(v)) for v in chatrelay]
    found: list[Any] = []
    matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            found.append((path, tuple(ours[i1:i2]), tuple(theirs[j1:j2])))
            continue
        for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
            found += value_differences(f"{path}[{ours[i]}]", chatkit[i], chatrelay[j])
    return found


def value_differences(path: str, chatkit: Any, chatrelay: Any) -> list[tuple[str, Any, Any]]:
    """`(path, chatkit's value, chatrelay's value)` for everything that differs."""
    if isinstance(chatkit, dict) and isinstance(chatrelay, dict):
        found = []
        for key in [*chatkit, *(k for k in chatrelay if k not in chatkit)]:
            found += value_differences(
                f"{path}.{key}", chatkit.get(key, ABSENT), chatrelay.get(key, ABSENT)
            )
        return found
    if isinstance(chatkit, list) and isinstance(chatrelay, list):
        if all(kind(v) is not None for v in [*chatkit, *chatrelay]):
            return _typed_list_differences(path, chatkit, chatrelay)
        if len(chatkit) != len(chatrelay):
            return [(f"{path}.length", len(chatkit), len(chatrelay))]
        found = []
        for index, (a, b) in enumerate(zip(chatkit, chatrelay, strict=True)):
            found += value_differences(f"{path}[{index}]", a, b)
        return found
    return [] if chatkit == chatrelay else [(path, _leaf(chatkit), _leaf(chatrelay))]


def differences(chatkit: list[Step], chatrelay: list[Step]) -> set[Difference]:
    """Every difference between two transcripts of the same requests."""
    assert [s.name for s in chatkit] == [s.name for s in chatrelay]
    found: set[Difference] = set()
    for ours, theirs in zip(chatkit, chatrelay, strict=True):
        pairs: list[tuple[str, Any, Any]] = [
            ("status", ours.status, theirs.status),
            ("media_type", ours.media_type, theirs.media_type),
        ]
        changes = [(path, a, b) for path, a, b in pairs if a != b]
        where = "events" if ours.media_type == "text/event-stream" else "body"
        changes += value_differences(where, ours.body, theirs.body)
        found |= {Difference(ours.name, path, a, b) for path, a, b in changes}
    return found


def assert_differences(found: set[Difference], known: set[Difference]) -> None:
    """Exactly the documented differences: none new, none gone."""

    def listing(ds: set[Difference]) -> str:
        return "".join(f"\n  {d}" for d in sorted(ds, key=repr)) or " none"

    assert found == known, (
        f"new differences:{listing(found - known)}\n"
        f"documented but gone (delete them from the list):{listing(known - found)}"
    )

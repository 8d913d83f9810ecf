"""`Accept` negotiation per RFC 9110 section 12.5.1, for the two answers chat can give."""

from __future__ import annotations

from enum import Enum

from chatrelay.server.errors import NotAcceptable


class Representation(Enum):
    JSON = "application/json"
    SSE = "text/event-stream"


# On a tie (`*/*`, or no Accept at all) JSON wins: it is what a plain HTTP client expects.
_PREFERENCE = (Representation.JSON, Representation.SSE)


def _parse(accept: str) -> list[tuple[str, str, float]]:
    ranges: list[tuple[str, str, float]] = []
    for element in accept.split(","):
        media_range, *params = (part.strip() for part in element.split(";"))
        if not media_range:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        kind, _, subtype = media_range.lower().partition("/")
        ranges.append((kind, subtype or "*", max(0.0, min(quality, 1.0))))
    return ranges


def _quality(representation: Representation, ranges: list[tuple[str, str, float]]) -> float:
    """The q of the most specific range matching the representation (0 when none does)."""
    kind, subtype = representation.value.split("/")
    best: tuple[int, float] = (-1, 0.0)
    for range_kind, range_subtype, quality in ranges:
        if (range_kind, range_subtype) == (kind, subtype):
            specificity = 2
        elif (range_kind, range_subtype) == (kind, "*"):
            specificity = 1
        elif (range_kind, range_subtype) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def negotiate(accept: str | None) -> Representation:
    """Pick JSON or SSE; raise `NotAcceptable` when the client accepts neither."""
    if accept is None or not accept.strip():
        return Representation.JSON
    ranges = _parse(accept)
    scored = [(_quality(rep, ranges), -rank, rep) for rank, rep in enumerate(_PREFERENCE)]
    quality, _, chosen = max(scored, key=lambda entry: (entry[0], entry[1]))
    if quality <= 0.0:
        raise NotAcceptable("supported media types: application/json, text/event-stream")
    return chosen

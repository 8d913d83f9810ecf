"""Every Redis key chatrelay uses, under one prefix (`REDIS_PREFIX`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    def turn(self, turn_id: str) -> str:
        """A turn's events: a stream whose entry `n+1-0` is event `n`."""
        return f"{self.prefix}:turn:{turn_id}"

    def conversation(self, conversation_id: str) -> str:
        """The conversation's latest turn: JSON `{"turn", "user", "instance"}`."""
        return f"{self.prefix}:conversation:{conversation_id}"

    def request(self, key: tuple[str, str | None, str]) -> str:
        """Which turn serves a request id (`RequestKey`): JSON `{"conversation", "turn",
        "instance"}`. Hashed: the parts are client strings of any length and character."""
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
        return f"{self.prefix}:request:{digest}"

    def instance(self, instance_id: str) -> str:
        """Present while the instance is alive (it expires after three missed heartbeats)."""
        return f"{self.prefix}:instance:{instance_id}"

    def streams(self, user_id: str) -> str:
        """The user's open stream slots on every instance: ids scored by expiry (ms)."""
        return f"{self.prefix}:streams:{user_id}"

    @property
    def stops(self) -> str:
        """The pub/sub channel of stop requests, read by every instance."""
        return f"{self.prefix}:stops"

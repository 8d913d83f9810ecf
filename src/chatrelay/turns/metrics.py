"""Prometheus metrics, on a registry of the runtime's own (two apps in one process never clash)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, open_streams: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "chatrelay_turns",
            "Turns by how they ended (completed, stopped, model, timeout, ...)",
            ["outcome"],
            registry=self.registry,
        )
        self.turns_by_format = Counter(
            "chatrelay_format_turns",
            "Turns by the protocol that asked for them (json, chatkit, ai-sdk) and how they ended",
            ["format", "outcome"],
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "chatrelay_time_to_first_token_seconds",
            "From the start of a turn to its first text delta",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turn_duration = Histogram(
            "chatrelay_turn_duration_seconds",
            "From the start of a turn to its commit",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "chatrelay_tool_calls", "Tool calls by tool", ["tool"], registry=self.registry
        )
        self.errors = Counter(
            "chatrelay_turn_errors", "Failed turns by kind", ["kind"], registry=self.registry
        )
        self.repeated_requests = Counter(
            "chatrelay_repeated_requests",
            "Repeated request ids, by answer: attached to the running turn, or the stored reply",
            ["answer"],
            registry=self.registry,
        )
        self.shared_state_errors = Counter(
            "chatrelay_redis_errors",
            "Redis operations that failed, by what they were for (mirror, follow, stop, ...)",
            ["op"],
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "chatrelay_active_streams",
            "Open event streams (SSE and WebSocket)",
            registry=self.registry,
        )
        self.active_streams.set_function(open_streams)

    def render(self) -> bytes:
        return generate_latest(self.registry)

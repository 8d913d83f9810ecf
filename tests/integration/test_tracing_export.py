"""One export over OTLP/HTTP: a real `chatrelay serve` with the standard `OTEL_*` variables
set, and an OTLP receiver this test runs on 127.0.0.1 (the protobuf decoded as a collector
would)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.integration.processes import Server, cli_token, process_env

TURN = "invoke_agent chatrelay"


@dataclass
class Received:
    spans: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    """(resource attributes, span) per span received."""
    headers: list[dict[str, str]] = field(default_factory=list)
    turn_arrived: threading.Event = field(default_factory=threading.Event)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in pairs}


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            received.headers.append({k.lower(): v for k, v in self.headers.items()})
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.spans.append((resource, span))
                        if span.name == TURN:
                            received.turn_arrived.set()
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_served_turn_is_exported_over_otlp_http(tmp_path: Path) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    with otlp_receiver() as (endpoint, received):
        env = process_env(
            f"sqlite+aiosqlite:///{tmp_path / 'chatrelay.db'}",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_HEADERS="x-collector-key=sekret",
            OTEL_SERVICE_NAME="chatrelay-under-test",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        server = Server(env, tmp_path)
        try:
            token = cli_token(env, tmp_path, "alice")
            answer = httpx.post(
                f"{server.url}/api/alice/chat",
                json={"message": "add task export me"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
                },
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert received.turn_arrived.wait(20), "no turn span reached the receiver"
        finally:
            server.stop()

    ours = [span for _, span in received.spans if span.trace_id.hex() == trace_id]
    names = {span.name for span in ours}
    assert {"POST /api/{user_id}/chat", TURN, "chat offline", "execute_tool add_task"} <= names
    assert "commit turn" in names
    resource = received.spans[0][0]
    assert resource["service.name"] == "chatrelay-under-test"
    assert resource["deployment.environment.name"] == "test"
    assert all(h.get("x-collector-key") == "sekret" for h in received.headers)
    [tool] = [span for span in ours if span.name == "execute_tool add_task"]
    assert _attributes(tool.attributes)["gen_ai.tool.name"] == "add_task"

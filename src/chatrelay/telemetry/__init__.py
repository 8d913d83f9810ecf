"""OpenTelemetry traces, off unless configured: the only importer of the OpenTelemetry SDK.

`Telemetry.from_environment()` is None unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then nothing is exported, no provider exists
and the turn core runs with `chatrelay.turns.NO_TRACER`. Every other `OTEL_*` variable
(service name, resource attributes, headers, sampler, batch delays) is read by the SDK
itself. Like the SDK, it reads the process environment, not chatrelay's env file.

The provider is chatrelay's own (never set as the process-wide global), so an embedding
application's provider is not replaced and tests can hand in an in-memory one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from chatrelay import __version__
from chatrelay.telemetry.asgi import TracingMiddleware
from chatrelay.telemetry.turns import OtelTurnTrace, OtelTurnTracer

__all__ = ["OtelTurnTrace", "OtelTurnTracer", "Telemetry", "TracingMiddleware"]

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_TRUE = ("1", "true", "yes", "on")


class Telemetry:
    """A tracer provider and what chatrelay traces with it."""

    def __init__(self, provider: TracerProvider, *, capture_content: bool = False) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("chatrelay", __version__)
        self.turns = OtelTurnTracer(self.tracer, capture_content=capture_content)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Telemetry | None:
        """OTLP/HTTP export as the `OTEL_*` variables say, or None when no endpoint is set
        (or `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`)."""
        if not any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES):
            return None
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
            return None
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
            return None
        # Imported only when configured: nothing of the exporter loads otherwise.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the provider
        # reads OTEL_TRACES_SAMPLER, the exporter OTEL_EXPORTER_OTLP_*.
        resource = Resource.create({"service.version": __version__})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "chatrelay"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        capture = environ.get("OTEL_CAPTURE_CONTENT", "").strip().lower() in _TRUE
        return cls(provider, capture_content=capture)

    def shutdown(self) -> None:
        """Export what is still queued (bounded by the exporter's timeout), then stop."""
        self.provider.shutdown()

"""OpenTelemetry traces of a job: HTTP request → command → decision → attempt → event → projection.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set: then every service exports its spans over OTLP/HTTP (the exporter
reads the other ``OTEL_*`` variables itself; ``OTEL_SERVICE_NAME`` defaults
to ``jobledger-<service>``; the provider sends what it holds at the process's exit). The trace travels between processes in the W3C
``traceparent`` header of each Kafka record (commands and events), and
between the decider and the runner of one process in memory. Off, every
helper here is one test of :data:`ENABLED`: nothing is created, nothing sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ENABLED = False
"""Set by :func:`configure_tracing` when an OTLP endpoint is configured."""
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT = "traceparent"

_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
Headers = list[tuple[str, bytes]]


def configure_tracing(service: str) -> bool:
    """Export this process's spans if an OTLP endpoint is configured; whether it is."""
    global ENABLED, _tracer
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"jobledger-{service}"})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("jobledger")
    ENABLED = True
    return True


def span(name: str, parent: Any = None, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any):
    """A span around a ``with`` block (the current one's child, or ``parent``'s: a context
    from :func:`context_of` or :func:`current`); a no-op while tracing is off."""
    if not ENABLED:
        return nullcontext()
    return _span(name, parent, kind, attributes)


@contextmanager
def _span(name: str, parent: Any, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[None]:
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with _tracer.start_as_current_span(name, kind=kind, attributes={k: v for k, v in attributes.items() if v is not None}):
            yield
    finally:
        if token is not None:
            otel_context.detach(token)


def ended_span(name: str, parent: Any, start_ns: int, **attributes: Any) -> None:
    """A span that began at ``start_ns`` (``time.time_ns()``) and ends now, under ``parent``:
    one record's share of work done for a batch (a projection)."""
    if ENABLED and parent is not None:
        _tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes).end()


def headers() -> Headers:
    """The current span as a ``traceparent`` record header (none while tracing is off)."""
    if not ENABLED:
        return []
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


def context_of(record_headers) -> Any:
    """The trace a record's headers carry, as a parent for :func:`span` (``None``: none)."""
    if not ENABLED or not record_headers:
        return None
    carrier = {name: value.decode("latin-1") for name, value in record_headers if name == TRACEPARENT and value}
    return _propagator.extract(carrier) if carrier else None


def current() -> Any:
    """The current trace context, to hand to a span started elsewhere (``None`` while off)."""
    return otel_context.get_current() if ENABLED else None

"""OpenTelemetry tracing with W3C trace context carried in Kafka headers."""

import os
import random
import re
from collections.abc import Iterable, Sequence

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

KafkaHeaders = Sequence[tuple[str, bytes | None]]

_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def configure_tracing(service: str, otlp_endpoint: str | None) -> None:
    """Install a tracer provider once per process; export over OTLP when an endpoint is set.

    Without an endpoint nothing reads the spans, so they are not recorded
    unless OTEL_TRACES_SAMPLER names a sampler. Each span still gets a span
    context, and the W3C trace context still travels in Kafka headers, with
    the sampled flag off. Recording them cost the consent service about 7% of
    its CPU time per event (ADR 0031). The consumer's batch path skips even
    the unrecorded span (`unrecorded_trace_headers`). A provider installed
    before, as tests do, is left alone.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    # None lets the SDK read OTEL_TRACES_SAMPLER, with parent-based always-on as its default.
    sampler = None if otlp_endpoint or os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({"service.name": f"medgov-{service}"}), sampler=sampler)
    if otlp_endpoint:
        # Imported only here: the exporter and protobuf add memory that a process without an endpoint does not need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)


def spans_recorded() -> bool:
    """Tell whether spans may be recorded: False once `configure_tracing` installed a provider that records none."""
    provider = trace.get_tracer_provider()
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)


# A W3C traceparent of version 00 whose trace id and span id are not all zeros.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def unrecorded_trace_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Return the trace context to store with the events a record causes, in a process that records no spans.

    A record with a valid traceparent passes on its own trace headers, as the
    relay does for an event emitted in such a process. A record without one
    gets a new trace id and span id with the sampled flag off, the context
    an unrecorded span would have. Starting, entering and leaving such a span
    for each record took about 20 microseconds, which this saves.
    """
    carrier = _trace_carrier(headers)
    if _TRACEPARENT.fullmatch(carrier.get("traceparent", "")):
        return carrier
    return {"traceparent": f"00-{random.getrandbits(128) or 1:032x}-{random.getrandbits(64) or 1:016x}-00"}


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers() -> dict[str, str]:
    """Return the current trace context as a plain dict (stored with outbox rows)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def headers_of_span(span: trace.Span) -> dict[str, str]:
    """Return the trace context of `span` as a plain dict, without making it the current span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def context_from_headers(headers: Iterable[tuple[str, bytes | None]] | dict[str, str]) -> context.Context:
    """Build a parent context from Kafka headers, ignoring values that are null or not UTF-8."""
    return propagate.extract(_trace_carrier(headers))


def _trace_carrier(headers: Iterable[tuple[str, bytes | None]] | dict[str, str]) -> dict[str, str]:
    """Return the W3C trace headers among `headers` as text, leaving out values that are null or not UTF-8."""
    carrier: dict[str, str] = {}
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key not in _TRACE_HEADERS or value is None:
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
        carrier[key] = value
    return carrier

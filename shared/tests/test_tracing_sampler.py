"""Spans are recorded only when something reads them, and the trace context travels either way.

Each case runs in a child process, because a tracer provider can be set
only once per process.
"""

import json
import os
import subprocess
import sys

import pytest

START_SPANS = """
import json
from opentelemetry import trace
from medgov_shared.observability.tracing import (
    configure_tracing, context_from_headers, headers_of_span, spans_recorded, tracer,
)

configure_tracing("consent", None)
incoming = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
child = tracer("medgov.test").start_span("child", context=context_from_headers(incoming))
root = tracer("medgov.test").start_span("root")
print(json.dumps({
    "child_recording": child.is_recording(),
    "child_headers": headers_of_span(child),
    "root_recording": root.is_recording(),
    "root_valid": root.get_span_context().is_valid,
    "spans_recorded": spans_recorded(),
}))
"""


def _spans_in_child(**environment: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "OTEL_TRACES_SAMPLER"}
    result = subprocess.run(
        [sys.executable, "-c", START_SPANS], env={**env, **environment}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_endpoint_spans_not_recorded() -> None:
    spans = _spans_in_child()

    assert spans["child_recording"] is False
    assert spans["root_recording"] is False
    assert spans["root_valid"] is True
    assert spans["spans_recorded"] is False
    trace_id, flags = spans["child_headers"]["traceparent"].split("-")[1::2]
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert flags == "00"


@pytest.mark.parametrize("sampler", ["parentbased_always_on", "always_on"])
def test_named_sampler_records_spans(sampler: str) -> None:
    spans = _spans_in_child(OTEL_TRACES_SAMPLER=sampler)

    assert spans["child_recording"] is True
    assert spans["root_recording"] is True
    assert spans["spans_recorded"] is True
    assert spans["child_headers"]["traceparent"].endswith("-01")

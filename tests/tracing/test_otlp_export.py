"""Spans leave a service over OTLP/HTTP when an endpoint is set, as the Kubernetes manifests set it.

The exporter runs in a child process, because a tracer provider can be set
only once per process and this one's belongs to the other tracing tests.
The collector is a local HTTP server that records what it receives.
"""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPORT_ONE_SPAN = """
import sys
from opentelemetry import trace
from medgov_shared.observability.tracing import configure_tracing, tracer

configure_tracing("consent", sys.argv[1])
with tracer("medgov.test").start_as_current_span("otlp-export-check"):
    pass
assert trace.get_tracer_provider().force_flush(10_000), "spans were not flushed within 10 s"
"""


class Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Collector.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_span_exported_to_the_configured_endpoint() -> None:
    Collector.received.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        result = subprocess.run([sys.executable, "-c", EXPORT_ONE_SPAN, endpoint], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()

    assert result.returncode == 0, result.stderr[-2000:]
    assert [(path, content_type) for path, content_type, _ in Collector.received] == [("/v1/traces", "application/x-protobuf")]
    body = Collector.received[0][2]
    assert b"otlp-export-check" in body
    assert b"medgov-consent" in body

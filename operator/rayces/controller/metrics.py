"""The operator's Prometheus metrics, and the HTTP server that serves them with `/readyz`.

One registry per process, so tests that start several operators in one interpreter do not
collide with the global default registry.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "rayces_reconciles",
    "Reconciles of custom resources, by kind.",
    ["kind"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "rayces_reconcile_errors",
    "Reconciles that raised, by kind and error class.",
    ["kind", "error"],
    registry=REGISTRY,
)
JOBS_STARTED = Counter(
    "rayces_jobs_started",
    "Jobs created, by action (migrate, rollback, inspect).",
    ["action"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "rayces_jobs_finished",
    "Job results recorded in status, by action and outcome reason.",
    ["action", "outcome"],
    registry=REGISTRY,
)
MIGRATION_DURATION = Histogram(
    "rayces_migration_duration_seconds",
    "Duration of the raycesctl run a Job reported, by action.",
    ["action"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
    registry=REGISTRY,
)
API_CALLS = Counter(
    "rayces_api_requests",
    "Requests the reconciler sent to the Kubernetes API, by verb and resource.",
    ["verb", "resource"],
    registry=REGISTRY,
)


class _Handler(BaseHTTPRequestHandler):
    ready: threading.Event

    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = generate_latest(REGISTRY)
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif self.path in ("/readyz", "/healthz"):
            if self.ready.is_set():
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(503, b"starting\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        return


def serve_metrics(host: str, port: int, ready: threading.Event) -> ThreadingHTTPServer:
    """Serve `/metrics` and `/readyz` (503 until `ready` is set) in a daemon thread."""
    handler = type("Handler", (_Handler,), {"ready": ready})
    server = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server

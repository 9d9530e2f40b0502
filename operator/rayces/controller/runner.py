"""`raycesctl operator`: load settings and credentials once, then run kopf until a signal.

The command line is parsed in `rayces.cli.operator_commands` (the cli layer knows no kopf); it
finds this function through the `rayces.commands` entry point, so the layers still import one
way. Logs are one JSON object per line on stderr; `/metrics` and `/readyz` are served on one
port, kopf's liveness probe (`/healthz`) on another.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

_STANDARD_RECORD_KEYS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                document[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(document, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("rayces", "alembic"):  # one format for every line, through the root handler
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # kopf's per-object logger repeats every handler call at INFO; keep its warnings.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run(
    *,
    namespaces: Sequence[str],
    kubeconfig: str | None,
    host: str,
    metrics_port: int,
    health_port: int,
    log_level: str,
) -> int:
    """Run the operator in the foreground; return an exit code when it stops."""
    import kopf
    from kubernetes import client

    from rayces.controller import handlers, metrics
    from rayces.controller.cluster import SchemaMigrationCluster
    from rayces.controller.kubeapi import KubeApi, load_configuration
    from rayces.controller.organization_cluster import PLURAL, OrganizationCluster
    from rayces.controller.runtime import Runtime
    from rayces.controller.settings import settings_from_environment

    configure_logging(log_level)
    logger = logging.getLogger("rayces.operator")
    try:
        settings = settings_from_environment()
        configuration = load_configuration(kubeconfig)
    except Exception as error:
        logger.error("cannot start: %s", error)
        return 2
    api = KubeApi(client.ApiClient(configuration))
    cluster = SchemaMigrationCluster(api=api, settings=settings)
    runtime = Runtime(cluster, namespaces)
    organizations = Runtime(
        OrganizationCluster(api=api, settings=settings, migrations=cluster),
        namespaces,
        kind="Organization",
        plural=PLURAL,
        act_on_deleting=True,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry, runtime, configuration, organizations)
    ready = threading.Event()
    server = metrics.serve_metrics(host, metrics_port, ready)
    logger.info(
        "starting",
        extra={
            "namespaces": ",".join(namespaces),
            "metrics": f"http://{host}:{metrics_port}/metrics",
            "liveness": f"http://{host}:{health_port}/healthz",
        },
    )
    # kopf sets the flag once its watches are up; /readyz answers 200 from then on.
    kopf_ready = threading.Event()

    def announce_ready() -> None:
        kopf_ready.wait()
        ready.set()

    watcher = threading.Thread(target=announce_ready, name="ready", daemon=True)
    watcher.start()
    try:
        kopf.run(
            registry=registry,
            settings=handlers.kopf_settings(),
            namespaces=list(namespaces),
            standalone=True,
            liveness_endpoint=f"http://{host}:{health_port}/healthz",
            ready_flag=kopf_ready,
        )
    finally:
        server.shutdown()
        runtime.stop()
        organizations.stop()
    logger.info("stopped")
    return 0

"""kopf wiring, and nothing else: which events reach which function of the runtime.

The only module that uses `@kopf.on.*`. Handlers are registered into a registry given by the
caller (`runner.run`), so tests and the benchmark can start operators side by side.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client

from rayces.controller.jobs import ANNOTATION_OWNER, GROUP, LABEL_MANAGED_BY, VERSION
from rayces.controller.runtime import Runtime
from rayces.controller.settings import MANAGER, PERSISTENCE_PREFIX


def kopf_settings() -> kopf.OperatorSettings:
    """kopf's settings, fixed before it starts (its observers read them at once)."""
    settings = kopf.OperatorSettings()
    # Our own prefix for kopf's bookkeeping, so no other kopf operator collides with it.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=PERSISTENCE_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PERSISTENCE_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PERSISTENCE_PREFIX}/finalizer"
    # One replica (Deployment strategy Recreate): no peering, no KopfPeering CRDs.
    settings.peering.standalone = True
    # The namespaces are given by name and the CRDs are installed with the operator: no
    # cluster-wide watch of namespaces and CRDs, so the Role stays namespaced.
    settings.scanning.disabled = True
    # We post our own Events, one per step, with reasons a person can act on.
    settings.posting.enabled = False
    # Watch only our own Jobs, filtered by the apiserver, not every Job of the namespace.
    settings.watching.label_selectors["batch", "v1", "jobs"] = f"{LABEL_MANAGED_BY}={MANAGER}"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def register(
    registry: kopf.OperatorRegistry, runtime: Runtime, configuration: client.Configuration
) -> None:
    """Register the operator's handlers into `registry`."""

    @kopf.on.startup(registry=registry)
    def start(**_: Any) -> None:
        runtime.start()

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        runtime.stop()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        header = configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or configuration.get_api_key_with_prefix("authorization")
        parts = header.split(" ", 1) if header else []
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, header or None)
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            scheme=scheme,
            token=token,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )

    @kopf.on.event(GROUP, VERSION, "schemamigrations", registry=registry)
    def schemamigration_event(
        type: str | None, namespace: str | None, name: str | None, **_: Any
    ) -> None:
        if not namespace or not name:
            return
        if type == "DELETED":
            runtime.forget(namespace, name)
            return
        runtime.reconcile(namespace, name)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)
    def job_event(namespace: str | None, annotations: Any, **_: Any) -> None:
        owner = (annotations or {}).get(ANNOTATION_OWNER)
        if namespace and owner:
            runtime.reconcile(namespace, str(owner))

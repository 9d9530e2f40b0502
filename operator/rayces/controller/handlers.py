"""kopf wiring, and nothing else: which events reach which function of the runtime.

The only module that uses `@kopf.on.*`. Handlers are registered into a registry given by the
caller (`runner.run`), so tests and the benchmark can start operators side by side.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client

from rayces.controller.jobs import (
    ANNOTATION_ORGANIZATION,
    ANNOTATION_OWNER,
    GROUP,
    LABEL_DATABASE,
    LABEL_MANAGED_BY,
    VERSION,
)
from rayces.controller.organization_cluster import OrganizationCluster
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
    registry: kopf.OperatorRegistry,
    runtime: Runtime,
    configuration: client.Configuration,
    organizations: Runtime | None = None,
) -> None:
    """Register the operator's handlers into `registry`.

    :param organizations: the Organizations' runtime (its cluster an `OrganizationCluster`).
    """

    @kopf.on.startup(registry=registry)
    def start(**_: Any) -> None:
        runtime.start()
        if organizations is not None:
            organizations.start()

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        runtime.stop()
        if organizations is not None:
            organizations.stop()

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
        else:
            runtime.reconcile(namespace, name)
        if organizations is not None:
            # The Organizations waiting for this schema go on by themselves (an index, no polls).
            assert isinstance(organizations.cluster, OrganizationCluster)
            for organization in organizations.cluster.referring_to(namespace, name):
                organizations.schedule(namespace, organization)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)
    def job_event(
        type: str | None, namespace: str | None, annotations: Any, labels: Any, body: Any, **_: Any
    ) -> None:
        owner = (annotations or {}).get(ANNOTATION_OWNER)
        if namespace and owner:
            runtime.reconcile(namespace, str(owner))
        organization = (annotations or {}).get(ANNOTATION_ORGANIZATION)
        if namespace and organization and organizations is not None:
            conditions = (body.get("status") or {}).get("conditions") or []
            finished = any(
                item.get("type") in ("Complete", "Failed") and item.get("status") == "True"
                for item in conditions
            )
            # A running Job changes nothing an Organization decides on: only its end does, and
            # a finished Job sends several events; the first is acted on.
            if not (finished or type == "DELETED"):
                return
            assert isinstance(organizations.cluster, OrganizationCluster)
            job = str((body.get("metadata") or {}).get("name"))
            database = str((labels or {}).get(LABEL_DATABASE) or "")
            after = organizations.cluster.first_end(database, job)
            if after is None:
                return
            organizations.reconcile(namespace, str(organization))
            for waiting in after:
                organizations.schedule(*waiting)

    if organizations is None:
        return

    @kopf.on.event(GROUP, VERSION, "organizations", registry=registry)
    def organization_event(
        type: str | None, namespace: str | None, name: str | None, body: Any, **_: Any
    ) -> None:
        if not namespace or not name or organizations is None:
            return
        assert isinstance(organizations.cluster, OrganizationCluster)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if type != "DELETED" and organizations.cluster.is_own_write(namespace, name, version):
            return  # our own write coming back: nothing new to decide
        if type == "DELETED":
            organizations.forget(namespace, name)
            organizations.cluster.forget(namespace, name)
            return
        organizations.reconcile(namespace, name)

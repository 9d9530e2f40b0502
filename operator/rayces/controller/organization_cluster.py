"""The I/O edge of the Organization reconciler: look at the cluster, then carry out a decision.

`observe` reads the resource's own Jobs (by label) and its SchemaMigration; only when a seed Job
is about to be made does it list the namespace's Organizations and the seed Jobs running on the
same database, under a lock per database so two reconciles never both take the last slot.
`carry_out` adds or removes the finalizer, creates the one Job, writes status only when it
changed and posts Events (through the SchemaMigration side's `post_event`, one way of posting).

It also keeps two small indexes the handlers use to wake resources without polling: which
Organizations refer to which SchemaMigration, and which wait for a seed slot on which database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rayces.controller.cluster import SchemaMigrationCluster
from rayces.controller.jobs import (
    ANNOTATION_INTENT,
    GROUP,
    LABEL_ACTION,
    LABEL_DATABASE,
    LABEL_GENERATION,
    LABEL_ORGANIZATION_UID,
    ORGANIZATION_KIND,
    VERSION,
    OrganizationIntent,
)
from rayces.controller.kubeapi import MERGE_PATCH, ApiError, KubeApi
from rayces.controller.organization import (
    FINALIZER,
    WAITING_FOR_SLOT,
    OrganizationDecision,
    OrganizationJob,
    OrganizationObserved,
    OrganizationPeer,
    reconcile_organization,
)
from rayces.controller.outcomes import job_state, pod_state
from rayces.controller.settings import OperatorSettings

PLURAL = "organizations"
MIGRATIONS = "schemamigrations"

logger = logging.getLogger("rayces.operator")

Key = tuple[str, str]


def _custom(namespace: str, plural: str, name: str = "") -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _jobs(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


def _label(obj: Mapping[str, Any], key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def _organization_job(
    job: Mapping[str, Any], pods: list[Mapping[str, Any]]
) -> OrganizationJob | None:
    metadata = job.get("metadata") or {}
    intent = OrganizationIntent.from_annotation(
        str((metadata.get("annotations") or {}).get(ANNOTATION_INTENT, ""))
    )
    if intent is None:
        return None
    uid = metadata.get("uid")
    state = job_state(job)
    if metadata.get("deletionTimestamp") and not state.finished:
        state = replace(state, active=True)
    try:
        generation = int(_label(job, LABEL_GENERATION) or 0)
    except ValueError:
        generation = 0
    return OrganizationJob(
        name=str(metadata.get("name")),
        generation=generation,
        intent=intent,
        created_at=str(metadata.get("creationTimestamp") or ""),
        state=state,
        pods=tuple(
            pod_state(pod)
            for pod in pods
            if ((pod.get("metadata") or {}).get("labels") or {}).get(
                "batch.kubernetes.io/controller-uid"
            )
            == uid
        ),
    )


def _peer(item: Mapping[str, Any]) -> OrganizationPeer:
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    ready: Mapping[str, Any] = next(
        (c for c in (item.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"),
        {},
    )
    return OrganizationPeer(
        name=str(metadata.get("name")),
        uid=str(metadata.get("uid")),
        created_at=str(metadata.get("creationTimestamp") or ""),
        subdomain=str(spec.get("subdomain") or ""),
        schema_migration=str((spec.get("schemaMigrationRef") or {}).get("name") or ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        waiting_for_slot=ready.get("reason") == WAITING_FOR_SLOT,
    )


#: How many finished seed Jobs `OrganizationCluster` remembers having handed on, so that its
#: memory stays bounded however long the operator runs.
HANDED_ON_MEMORY = 4096


@dataclass
class OrganizationCluster:
    """Reads and writes on behalf of the Organization reconciler."""

    api: KubeApi
    settings: OperatorSettings
    migrations: SchemaMigrationCluster
    revisions: Callable[[], tuple[str, ...] | None] | None = None
    _database_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    #: (namespace, SchemaMigration) → Organizations referring to it
    referrers: dict[Key, set[str]] = field(default_factory=dict)
    #: database label → (creationTimestamp, namespace, name) of Organizations waiting for a slot
    waiting: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    #: seed Jobs whose finished slot was already handed to the next in line, oldest first; only
    #: the newest `HANDED_ON_MEMORY` are kept (a finished Job's repeated events come soon after)
    handed_on: dict[str, None] = field(default_factory=dict)
    #: the resourceVersions of our own writes to each Organization in its last reconcile
    written: dict[Key, set[str]] = field(default_factory=dict)

    def _lock_for(self, database: str) -> threading.Lock:
        with self._guard:
            return self._database_locks.setdefault(database, threading.Lock())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.api.request("GET", _custom(namespace, PLURAL, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def _migration(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.api.request("GET", _custom(namespace, MIGRATIONS, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def observe(self, resource: Mapping[str, Any]) -> OrganizationObserved:
        metadata = resource.get("metadata") or {}
        namespace, uid = str(metadata.get("namespace")), str(metadata.get("uid"))
        selector = f"{LABEL_ORGANIZATION_UID}={uid}"
        jobs = (
            self.api.request("GET", _jobs(namespace), query={"labelSelector": selector}).get(
                "items"
            )
            or []
        )
        pods: list[Mapping[str, Any]] = []
        if any(job_state(job).finished for job in jobs):
            pods = (
                self.api.request(
                    "GET",
                    f"/api/v1/namespaces/{namespace}/pods",
                    query={"labelSelector": selector},
                ).get("items")
                or []
            )
        reference = ((resource.get("spec") or {}).get("schemaMigrationRef") or {}).get("name")
        migration = self._migration(namespace, str(reference)) if reference else None
        return OrganizationObserved(
            resource=resource,
            migration=migration,
            jobs=tuple(
                item for item in (_organization_job(job, pods) for job in jobs) if item is not None
            ),
            revisions=self.revisions() if self.revisions else self.migrations.chain(),
            now=datetime.now(UTC),
        )

    def _with_peers(self, observed: OrganizationObserved, database: str) -> OrganizationObserved:
        metadata = observed.resource.get("metadata") or {}
        namespace, uid = str(metadata.get("namespace")), str(metadata.get("uid"))
        items = self.api.request("GET", _custom(namespace, PLURAL)).get("items") or []
        seeds = (
            self.api.request(
                "GET",
                _jobs(namespace),
                query={"labelSelector": f"{LABEL_DATABASE}={database},{LABEL_ACTION}=seed"},
            ).get("items")
            or []
        )
        active = tuple(
            str(job["metadata"]["name"])
            for job in seeds
            if job_state(job).active and _label(job, LABEL_ORGANIZATION_UID) != uid
        )
        return replace(
            observed,
            peers=tuple(
                _peer(item) for item in items if item.get("metadata", {}).get("uid") != uid
            ),
            active_seeds=active,
        )

    def reconcile(self, resource: Mapping[str, Any]) -> OrganizationDecision:
        """Observe, decide, and carry the decision out; returns it for logs and tests."""
        started = self.api.total_calls
        observed = self.observe(resource)
        decision = reconcile_organization(observed, self.settings)
        if decision.needs_peers and decision.database is not None:
            # Decide and create under the database's lock: the slot count stays true.
            with self._lock_for(decision.database):
                observed = self._with_peers(observed, decision.database)
                decision = reconcile_organization(observed, self.settings)
                self.carry_out(resource, decision)
        else:
            self.carry_out(resource, decision)
        self._index(resource, decision)
        conditions = decision.status.get("conditions") or []
        ready: dict[str, Any] = next(
            (item for item in conditions if item.get("type") == "Ready"), {}
        )
        logger.info(
            "reconciled",
            extra={
                "object": f"{resource['metadata']['namespace']}/{resource['metadata']['name']}",
                "kind": ORGANIZATION_KIND,
                "reason": ready.get("reason"),
                "api_calls": self.api.total_calls - started,
                "job_created": (decision.job or {}).get("metadata", {}).get("name"),
            },
        )
        return decision

    def _index(self, resource: Mapping[str, Any], decision: OrganizationDecision) -> None:
        metadata = resource.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        reference = ((resource.get("spec") or {}).get("schemaMigrationRef") or {}).get("name")
        entry = (str(metadata.get("creationTimestamp") or ""), namespace, name)
        with self._guard:
            if reference:
                self.referrers.setdefault((namespace, str(reference)), set()).add(name)
            for queue in self.waiting.values():
                queue.discard(entry)
            if decision.waiting_for_slot and decision.database:
                self.waiting.setdefault(decision.database, set()).add(entry)

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self.written.pop((namespace, name), None)
            for referrers in self.referrers.values():
                referrers.discard(name)
            for queue in self.waiting.values():
                for entry in [entry for entry in queue if entry[1:] == (namespace, name)]:
                    queue.discard(entry)

    def referring_to(self, namespace: str, migration: str) -> list[str]:
        """The Organizations last seen referring to SchemaMigration `migration`."""
        with self._guard:
            return sorted(self.referrers.get((namespace, migration), ()))

    def first_end(self, database: str, finished_job: str) -> list[Key] | None:
        """None when `finished_job`'s end was seen already (a finished Job sends several events);
        else the Organization first in line for the seed slot it freed on `database`."""
        with self._guard:
            if finished_job in self.handed_on:
                return None
            self.handed_on[finished_job] = None
            while len(self.handed_on) > HANDED_ON_MEMORY:
                del self.handed_on[next(iter(self.handed_on))]
            queue = self.waiting.get(database, set())
            if not queue:
                return []
            # Out of the queue at once: the next Job to end hands its slot to the next one.
            first = min(queue)
            queue.discard(first)
        return [(first[1], first[2])]

    def is_own_write(self, namespace: str, name: str, resource_version: str | None) -> bool:
        """Whether an event shows the Organization as our own last write left it."""
        with self._guard:
            return bool(resource_version) and resource_version in self.written.get(
                (namespace, name), ()
            )

    def _wrote(self, resource: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        metadata = resource.get("metadata") or {}
        version = (answer.get("metadata") or {}).get("resourceVersion")
        if version:
            with self._guard:
                key = (str(metadata.get("namespace")), str(metadata.get("name")))
                self.written.setdefault(key, set()).add(str(version))

    def carry_out(self, resource: Mapping[str, Any], decision: OrganizationDecision) -> None:
        metadata = resource["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        path = _custom(namespace, PLURAL, name)
        with self._guard:
            self.written.pop((namespace, name), None)
        finalizers = list(metadata.get("finalizers") or ())
        if decision.finalizer == "add" and FINALIZER not in finalizers:
            answer = self.api.request(
                "PATCH",
                path,
                body={
                    "metadata": {
                        "finalizers": [*finalizers, FINALIZER],
                        "resourceVersion": metadata.get("resourceVersion"),
                    }
                },
                content_type=MERGE_PATCH,
            )
            self._wrote(resource, answer)
        if decision.job is not None:
            try:
                self.api.request("POST", _jobs(namespace), body=decision.job)
            except ApiError as error:
                if (
                    error.status == 403
                    and "terminat" in error.message
                    and metadata.get("deletionTimestamp")
                ):
                    # The namespace is going: no Job can run, so the rows stay.
                    self._post(
                        resource,
                        "Warning",
                        "NamespaceTerminating",
                        f"namespace {namespace} is being deleted, so the deletion policy could "
                        "not run and the tenant's rows were kept",
                    )
                    self._release(resource, finalizers)
                    return
                if error.status != 409:
                    raise
        old = resource.get("status") or {}
        if decision.status != old and decision.finalizer != "remove":
            patch: dict[str, Any] = {key: None for key in old if key not in decision.status}
            patch.update(decision.status)
            answer = self.api.request(
                "PATCH", path + "/status", body={"status": patch}, content_type=MERGE_PATCH
            )
            self._wrote(resource, answer)
        for event in decision.events:
            self._post(resource, event.type, event.reason, event.message)
        if decision.finalizer == "remove":
            self._release(resource, finalizers)

    def _release(self, resource: Mapping[str, Any], finalizers: list[str]) -> None:
        metadata = resource["metadata"]
        try:
            self.api.request(
                "PATCH",
                _custom(str(metadata["namespace"]), PLURAL, str(metadata["name"])),
                body={
                    "metadata": {
                        "finalizers": [item for item in finalizers if item != FINALIZER],
                        "resourceVersion": metadata.get("resourceVersion"),
                    }
                },
                content_type=MERGE_PATCH,
            )
        except ApiError as error:
            if error.status != 404:
                raise

    def _post(self, resource: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        self.migrations.post_event(resource, kind, reason, message, involved_kind=ORGANIZATION_KIND)

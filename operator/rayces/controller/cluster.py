"""The I/O edge of the SchemaMigration reconciler: look at the cluster, then carry out a decision.

`observe` gathers what `schemamigration.reconcile` needs with few requests (the namespace's
operator-managed Jobs, the resource's Pods, its peers), `carry_out` creates the one Job, stores
a dry run's SQL, writes status only when it changed, marks recorded Jobs and posts Events.
A Secret is looked at only when a Job is about to be made, and only its metadata: the operator
never receives a database URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rayces.controller import metrics, plans
from rayces.controller.jobs import (
    ANNOTATION_INTENT,
    GROUP,
    KIND,
    LABEL_DATABASE,
    LABEL_GENERATION,
    LABEL_MANAGED_BY,
    LABEL_OWNER_UID,
    VERSION,
    JobIntent,
)
from rayces.controller.kubeapi import MERGE_PATCH, METADATA_ONLY, ApiError, KubeApi
from rayces.controller.outcomes import job_state, pod_state
from rayces.controller.schemamigration import (
    Decision,
    Observed,
    ObservedJob,
    Peer,
    complete_dry_run,
    database_label,
    reconcile,
)
from rayces.controller.settings import MANAGER, OperatorSettings

LABEL_RECORDED = "rayces.io/recorded"
PLURAL = "schemamigrations"

logger = logging.getLogger("rayces.operator")


def _path(namespace: str, resource: str, name: str = "", *, core: bool = False) -> str:
    prefix = "/api/v1" if core else "/apis/batch/v1"
    if resource == PLURAL:
        prefix = f"/apis/{GROUP}/{VERSION}"
    return f"{prefix}/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")


def _observed_job(job: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> ObservedJob | None:
    metadata = job.get("metadata") or {}
    labels = metadata.get("labels") or {}
    intent = JobIntent.from_annotation(
        str((metadata.get("annotations") or {}).get(ANNOTATION_INTENT, ""))
    )
    if intent is None:
        return None
    uid = metadata.get("uid")
    own_pods = tuple(
        pod_state(pod)
        for pod in pods
        if ((pod.get("metadata") or {}).get("labels") or {}).get(
            "batch.kubernetes.io/controller-uid"
        )
        == uid
    )
    state = job_state(job)
    if metadata.get("deletionTimestamp") and not state.finished:
        state = replace(state, active=True)
    try:
        generation = int(labels.get(LABEL_GENERATION) or 0)
    except ValueError:
        generation = 0
    return ObservedJob(
        name=str(metadata.get("name")),
        generation=generation,
        intent=intent,
        created_at=str(metadata.get("creationTimestamp") or ""),
        recorded=labels.get(LABEL_RECORDED) == "true",
        state=state,
        pods=own_pods,
    )


@dataclass
class SchemaMigrationCluster:
    """Reads and writes on behalf of the reconciler."""

    api: KubeApi
    settings: OperatorSettings
    revisions: tuple[str, ...] | None = None

    def chain(self) -> tuple[str, ...] | None:
        if self.revisions is None:
            try:
                self.revisions = plans.revision_chain()
            except (plans.PlanError, OSError, ValueError) as error:
                logger.warning("cannot read the revision chain: %s", error)
        return self.revisions

    def observe(
        self, resource: Mapping[str, Any], *, secret_exists: bool | None = None
    ) -> Observed:
        metadata = resource.get("metadata") or {}
        namespace = str(metadata.get("namespace"))
        uid = str(metadata.get("uid"))
        jobs = (
            self.api.request(
                "GET",
                _path(namespace, "jobs"),
                query={"labelSelector": f"{LABEL_MANAGED_BY}={MANAGER}"},
            ).get("items")
            or []
        )
        own = [job for job in jobs if _label(job, LABEL_OWNER_UID) == uid]
        pods: list[Mapping[str, Any]] = []
        if own:
            pods = (
                self.api.request(
                    "GET",
                    _path(namespace, "pods", core=True),
                    query={"labelSelector": f"{LABEL_OWNER_UID}={uid}"},
                ).get("items")
                or []
            )
        observed_jobs = tuple(
            item for item in (_observed_job(job, pods) for job in own) if item is not None
        )
        database = database_label(resource)
        busy = ""
        for job in jobs:
            if (
                database
                and _label(job, LABEL_DATABASE) == database
                and _label(job, LABEL_OWNER_UID) != uid
                and job_state(job).active
            ):
                busy = str((job.get("metadata") or {}).get("name"))
        peers_list = self.api.request("GET", _path(namespace, PLURAL)).get("items") or []
        peers = tuple(_peer(item) for item in peers_list)
        return Observed(
            resource=resource,
            jobs=observed_jobs,
            peers=peers,
            secret_exists=secret_exists,
            database_busy_with=busy or None,
            revisions=self.chain(),
            now=datetime.now(UTC),
        )

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether the Secret exists, asking for its metadata only."""
        try:
            self.api.request(
                "GET", _path(namespace, "secrets", name, core=True), accept=METADATA_ONLY
            )
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def reconcile(self, resource: Mapping[str, Any]) -> Decision:
        """Observe, decide, and carry the decision out; returns it for logs and tests."""
        started = self.api.total_calls
        observed = self.observe(resource)
        decision = reconcile(observed, self.settings)
        if decision.needs_secret_check:
            spec = resource.get("spec") or {}
            reference = (spec.get("database") or {}).get("urlSecretRef") or {}
            exists = self.secret_exists(
                str(resource["metadata"]["namespace"]), str(reference.get("name"))
            )
            decision = reconcile(replace(observed, secret_exists=exists), self.settings)
        self.carry_out(resource, decision)
        calls = self.api.total_calls - started
        conditions = decision.status.get("conditions") or []
        ready: dict[str, Any] = next(
            (item for item in conditions if item.get("type") == "Ready"), {}
        )
        logger.info(
            "reconciled",
            extra={
                "object": f"{resource['metadata']['namespace']}/{resource['metadata']['name']}",
                "reason": ready.get("reason"),
                "api_calls": calls,
                "job_created": (decision.job or {}).get("metadata", {}).get("name"),
            },
        )
        return decision

    def carry_out(self, resource: Mapping[str, Any], decision: Decision) -> None:
        metadata = resource["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        status = decision.status
        if decision.job is not None:
            try:
                self.api.request("POST", _path(namespace, "jobs"), body=decision.job)
                metrics.JOBS_STARTED.labels(
                    action=decision.job["metadata"]["labels"]["rayces.io/action"]
                ).inc()
            except ApiError as error:
                if error.status != 409:
                    raise
        if decision.dry_run is not None:
            status = self._store_dry_run(resource, decision)
        old = resource.get("status") or {}
        if status != old:
            patch: dict[str, Any] = {key: None for key in old if key not in status}
            patch.update(status)
            self.api.request(
                "PATCH",
                _path(namespace, PLURAL, name) + "/status",
                body={"status": patch},
                content_type=MERGE_PATCH,
            )
        for job_name in decision.record_jobs:
            self.api.request(
                "PATCH",
                _path(namespace, "jobs", job_name),
                body={"metadata": {"labels": {LABEL_RECORDED: "true"}}},
                content_type=MERGE_PATCH,
            )
        recorded = set(decision.record_jobs)
        for job_name, outcome in decision.outcomes:
            if job_name not in recorded:
                continue
            action = next(
                (
                    str(job.get("action"))
                    for job in status.get("history") or ()
                    if job.get("job") == job_name
                ),
                "migrate",
            )
            metrics.JOBS_FINISHED.labels(action=action, outcome=outcome.reason).inc()
            if outcome.result is not None:
                metrics.MIGRATION_DURATION.labels(action=action).observe(
                    outcome.result.duration_seconds
                )
        for event in decision.events:
            self.post_event(resource, event.type, event.reason, event.message)

    def _store_dry_run(self, resource: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
        assert decision.dry_run is not None
        request = decision.dry_run
        metadata = resource["metadata"]
        namespace = str(metadata["namespace"])
        plan = plans.render_plan(request.from_revision, request.to_revision)
        stored = plans.truncate_utf8(plan.sql, self.settings.dry_run_max_bytes)
        size, stored_size = len(plan.sql.encode()), len(stored.encode())
        header = (
            f"-- dry run of SchemaMigration {metadata['name']}: {request.from_revision} -> "
            f"{request.to_revision}, {len(plan.revisions)} revision(s), {size} bytes"
            + (f", truncated to {stored_size} bytes" if stored_size < size else "")
            + "\n"
        )
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": request.config_map,
                "namespace": namespace,
                "labels": {
                    LABEL_MANAGED_BY: MANAGER,
                    LABEL_OWNER_UID: str(metadata["uid"]),
                },
                "ownerReferences": [_owner_reference(resource)],
            },
            "data": {
                "plan.sql": header + stored,
                "fromRevision": request.from_revision,
                "toRevision": request.to_revision,
                "truncated": "true" if stored_size < size else "false",
            },
        }
        try:
            self.api.request("POST", _path(namespace, "configmaps", core=True), body=config_map)
        except ApiError as error:
            if error.status != 409:
                raise
            self.api.request(
                "PUT",
                _path(namespace, "configmaps", request.config_map, core=True),
                body=config_map,
            )
        job = str((decision.status.get("lastRun") or {}).get("job") or "")
        return complete_dry_run(
            decision,
            job=job,
            config_map=request.config_map,
            from_revision=request.from_revision,
            to_revision=request.to_revision,
            size_bytes=size,
            stored_bytes=stored_size,
            revisions=len(plan.revisions),
        )

    def post_event(
        self,
        resource: Mapping[str, Any],
        kind: str,
        reason: str,
        message: str,
        *,
        involved_kind: str = KIND,
    ) -> None:
        metadata = resource["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": involved_kind,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGER},
            "reportingComponent": f"{GROUP}/{MANAGER}",
            "reportingInstance": MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.request(
                "POST", _path(str(metadata["namespace"]), "events", core=True), body=event
            )
        except ApiError as error:  # an Event is worth a log line, not a failed reconcile
            logger.warning("cannot post event %s: %s", reason, error)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.api.request("GET", _path(namespace, PLURAL, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise


def _label(obj: Mapping[str, Any], key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def _peer(item: Mapping[str, Any]) -> Peer:
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    reference = (spec.get("database") or {}).get("urlSecretRef") or {}
    return Peer(
        name=str(metadata.get("name")),
        uid=str(metadata.get("uid")),
        created_at=str(metadata.get("creationTimestamp") or ""),
        secret_name=str(reference.get("name") or ""),
        secret_key=str(reference.get("key") or "DATABASE_URL"),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def _owner_reference(resource: Mapping[str, Any]) -> dict[str, Any]:
    metadata = resource["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }

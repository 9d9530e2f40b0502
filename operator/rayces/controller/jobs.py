"""Job manifests for `raycesctl`, built by pure functions from a spec and an intent.

A Job's pod template is immutable, so each intent (what to run, towards which revision, which
attempt) is its own Job, named deterministically from the resource's uid and generation and a
short hash of the intent: reconciling twice creates the same name, and the second create is a
409 the reconciler treats as "already there". Labels tie a Job to its resource, generation and
database, so the operator lists only its own Jobs and keeps one Job at a time per database.

The database URL reaches the container only through `secretKeyRef`; the manifest never holds it.
`podFailurePolicy` is derived from raycesctl's exit codes (`rayces.migrations.results`): a
failure that would fail again the same way ends the Job at once, a transient one counts against
`backoffLimit`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from rayces.controller.settings import MANAGER, OperatorSettings
from rayces.controller.specs import (
    JobSettings,
    OrganizationSpec,
    SchemaMigrationSpec,
    SecretKeyRef,
)
from rayces.migrations.results import ExitCode

Action = Literal["migrate", "rollback", "inspect"]

GROUP = "rayces.io"
VERSION = "v1alpha1"
KIND = "SchemaMigration"
CONTAINER_NAME = "raycesctl"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OWNER_UID = "rayces.io/schemamigration-uid"
LABEL_GENERATION = "rayces.io/generation"
LABEL_ACTION = "rayces.io/action"
LABEL_DATABASE = "rayces.io/database"
ANNOTATION_OWNER = "rayces.io/schemamigration"
ANNOTATION_INTENT = "rayces.io/intent"

#: Exit codes after which the same command would fail the same way: fail the Job at once.
PERMANENT_EXIT_CODES = (
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.DATA_LOSS_REFUSED,
    ExitCode.PERMISSION_DENIED,
    ExitCode.VERIFICATION_FAILED,
    ExitCode.PRECONDITION_FAILED,
)
#: Exit codes worth another pod (within backoffLimit), and then another Job with backoff.
TRANSIENT_EXIT_CODES = (ExitCode.CONNECTION, ExitCode.LOCK_TIMEOUT)

#: uid and gid of the image's user.
IMAGE_USER = 10001


@dataclass(frozen=True)
class JobIntent:
    """What one Job is for.

    :param action: `migrate` (upgrade), `rollback` (downgrade) or `inspect` (read the current
        revision only, for a dry run).
    :param target_revision: where the run should end (`base` allowed for rollback).
    :param purpose: `apply` for the spec's target, `rollback-on-failure` for the automatic undo.
    :param attempt: 1 for the first try; each retry after a transient failure is a new Job.
    :param retry_token: the `rayces.io/retry` value acted on, so a retry request is a new Job.
    """

    action: Action
    target_revision: str
    purpose: Literal["apply", "rollback-on-failure", "dry-run"] = "apply"
    attempt: int = 1
    retry_token: str = ""
    allow_data_loss: bool = False

    def digest(self) -> str:
        document = json.dumps(
            [
                self.action,
                self.target_revision,
                self.purpose,
                self.attempt,
                self.retry_token,
                self.allow_data_loss,
            ]
        )
        return hashlib.sha256(document.encode()).hexdigest()[:8]

    def to_annotation(self) -> str:
        return json.dumps(
            {
                "action": self.action,
                "targetRevision": self.target_revision,
                "purpose": self.purpose,
                "attempt": self.attempt,
                "retryToken": self.retry_token,
                "allowDataLoss": self.allow_data_loss,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_annotation(cls, text: str) -> JobIntent | None:
        """The intent a Job was created for; None when the annotation is missing or foreign."""
        try:
            document = json.loads(text)
            action = document["action"]
            purpose = document["purpose"]
            if action not in ("migrate", "rollback", "inspect"):
                return None
            if purpose not in ("apply", "rollback-on-failure", "dry-run"):
                return None
            return cls(
                action=action,
                target_revision=str(document["targetRevision"]),
                purpose=purpose,
                attempt=int(document["attempt"]),
                retry_token=str(document.get("retryToken") or ""),
                allow_data_loss=bool(document.get("allowDataLoss")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Owner:
    """The SchemaMigration a Job belongs to."""

    name: str
    namespace: str
    uid: str
    generation: int


def database_key(namespace: str, spec: SchemaMigrationSpec) -> str:
    """A label value naming the database (namespace, Secret and key) without revealing it."""
    identity = f"{namespace}/{spec.database.name}/{spec.database.key}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def job_name(owner: Owner, intent: JobIntent) -> str:
    """`smig-<uid prefix>-g<generation>-<intent hash>`: the same inputs, the same name (≤ 63)."""
    return f"smig-{owner.uid.replace('-', '')[:10]}-g{owner.generation}-{intent.digest()}"


def raycesctl_arguments(spec: SchemaMigrationSpec, intent: JobIntent) -> list[str]:
    """The command line of the Job's container (the image's entrypoint is raycesctl)."""
    if intent.action == "inspect":
        return [
            "raycesctl",
            "current-revision",
            "--output",
            "json",
            "--termination-message-path",
            TERMINATION_MESSAGE_PATH,
        ]
    arguments = [
        "raycesctl",
        intent.action,
        "--to",
        intent.target_revision,
        "--output",
        "json",
        "--quiet",
        "--termination-message-path",
        TERMINATION_MESSAGE_PATH,
        "--lock-wait-timeout",
        str(spec.lock_wait_timeout_seconds),
    ]
    if spec.lock_timeout:
        arguments += ["--lock-timeout", spec.lock_timeout]
    if spec.statement_timeout:
        arguments += ["--statement-timeout", spec.statement_timeout]
    if spec.default_organization_name:
        arguments += ["--default-organization-name", spec.default_organization_name]
    if spec.default_organization_subdomain:
        arguments += ["--default-organization-subdomain", spec.default_organization_subdomain]
    if intent.action == "rollback" and intent.allow_data_loss:
        arguments.append("--allow-data-loss")
    return arguments


def pod_failure_policy() -> dict[str, Any]:
    """FailJob on permanent exit codes; a pod disrupted by the cluster does not count."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [int(code) for code in PERMANENT_EXIT_CODES],
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }


def restricted_pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": IMAGE_USER,
        "runAsGroup": IMAGE_USER,
        "fsGroup": IMAGE_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_migration_job(
    owner: Owner,
    spec: SchemaMigrationSpec,
    intent: JobIntent,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The Job that runs `raycesctl` for `intent` against the database of `spec`."""
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_OWNER_UID: owner.uid,
        LABEL_GENERATION: str(owner.generation),
        LABEL_ACTION: intent.action,
        LABEL_DATABASE: database_key(owner.namespace, spec),
    }
    return raycesctl_job(
        name=job_name(owner, intent),
        namespace=owner.namespace,
        labels=labels,
        annotations={ANNOTATION_OWNER: owner.name, ANNOTATION_INTENT: intent.to_annotation()},
        owner_reference={
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        },
        command=raycesctl_arguments(spec, intent),
        database=spec.database,
        job=spec.job,
        settings=settings,
    )


def raycesctl_job(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    owner_reference: dict[str, Any],
    command: list[str],
    database: SecretKeyRef,
    job: JobSettings,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """A Job running `command` (raycesctl) with the database URL from `database`, restricted,
    its JSON result in the termination message: the one pod template of every operator Job."""
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": job.image or settings.job_image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": database.name, "key": database.key}},
            },
            {"name": "RAYCES_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
        ],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if job.service_account_name:
        pod_spec["serviceAccountName"] = job.service_account_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference],
        },
        "spec": {
            "backoffLimit": job.backoff_limit,
            "activeDeadlineSeconds": job.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "podFailurePolicy": pod_failure_policy(),
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# ---------------------------------------------------------------- Organization Jobs

ORGANIZATION_KIND = "Organization"
LABEL_ORGANIZATION_UID = "rayces.io/organization-uid"
ANNOTATION_ORGANIZATION = "rayces.io/organization"

OrganizationAction = Literal["seed", "archive", "purge"]


@dataclass(frozen=True)
class OrganizationIntent:
    """What one Organization Job is for: seed (with the spec it brings in line), archive or purge.

    :param attempt: 1 for the first try; a retry after a transient failure is a new Job.
    :param retry_token: the `rayces.io/retry` value acted on, so a retry request is a new Job.
    :param adopt: a seed that may take over a row no Organization resource owns (`--adopt`),
        so adding the adopt annotation after a refusal is a new Job.
    """

    action: OrganizationAction
    attempt: int = 1
    retry_token: str = ""
    adopt: bool = False

    def digest(self) -> str:
        parts: list[object] = [self.action, self.attempt, self.retry_token]
        document = json.dumps([*parts, "adopt"] if self.adopt else parts)
        return hashlib.sha256(document.encode()).hexdigest()[:8]

    def to_annotation(self) -> str:
        document: dict[str, object] = {
            "action": self.action,
            "attempt": self.attempt,
            "retryToken": self.retry_token,
        }
        if self.adopt:
            document["adopt"] = True
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_annotation(cls, text: str) -> OrganizationIntent | None:
        """The intent a Job was created for; None when the annotation is missing or foreign."""
        try:
            document = json.loads(text)
            action = document["action"]
            if action not in ("seed", "archive", "purge"):
                return None
            return cls(
                action=action,
                attempt=int(document["attempt"]),
                retry_token=str(document.get("retryToken") or ""),
                adopt=document.get("adopt") is True,
            )
        except (ValueError, KeyError, TypeError):
            return None


def organization_job_name(owner: Owner, intent: OrganizationIntent) -> str:
    """`org-<uid prefix>-g<generation>-<intent hash>`: the same inputs, the same name (≤ 63)."""
    return f"org-{owner.uid.replace('-', '')[:10]}-g{owner.generation}-{intent.digest()}"


def organization_arguments(
    spec: OrganizationSpec, intent: OrganizationIntent, *, owner_uid: str | None = None
) -> list[str]:
    """The command line of an Organization Job: the spec as `raycesctl seed` options.

    A seed for a resource claims the row with `--owner <uid>` (and `--adopt` when the intent
    allows taking over a row no resource owns), so a row held by someone else is refused by
    the seed itself, before it changes anything.
    """
    result = ["--output", "json", "--termination-message-path", TERMINATION_MESSAGE_PATH]
    if intent.action == "archive":
        return ["raycesctl", "tenant", "archive", "--org", spec.subdomain, *result]
    if intent.action == "purge":
        force = ["--force-with-balances"] if spec.force_delete_with_balances else []
        return ["raycesctl", "tenant", "purge", "--org", spec.subdomain, "--yes", *force, *result]
    arguments = [
        "raycesctl",
        "seed",
        "--org",
        spec.subdomain,
        "--name",
        spec.display_name,
        "--time-zone",
        spec.time_zone,
        "--suspended" if spec.suspended else "--no-suspended",
        "--initial-credits",
        str(spec.initial_credits),
        "--slot-days",
        str(spec.slot_days),
    ]
    if spec.roles:
        arguments += ["--roles", ",".join(spec.roles)]
    if owner_uid is not None:
        arguments += ["--owner", owner_uid, *(["--adopt"] if intent.adopt else [])]
    return arguments + result


def build_organization_job(
    owner: Owner,
    spec: OrganizationSpec,
    intent: OrganizationIntent,
    migration: SchemaMigrationSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The Job that runs `raycesctl seed|tenant ...` for an Organization against the database
    of its SchemaMigration (`migration`), with that SchemaMigration's Job settings."""
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_ORGANIZATION_UID: owner.uid,
        LABEL_GENERATION: str(owner.generation),
        LABEL_ACTION: intent.action,
        LABEL_DATABASE: database_key(owner.namespace, migration),
    }
    return raycesctl_job(
        name=organization_job_name(owner, intent),
        namespace=owner.namespace,
        labels=labels,
        annotations={
            ANNOTATION_ORGANIZATION: owner.name,
            ANNOTATION_INTENT: intent.to_annotation(),
        },
        owner_reference={
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": ORGANIZATION_KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        },
        command=organization_arguments(spec, intent, owner_uid=owner.uid),
        database=migration.database,
        job=replace(migration.job, backoff_limit=min(migration.job.backoff_limit, 2)),
        settings=settings,
    )

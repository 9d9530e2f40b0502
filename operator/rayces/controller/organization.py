"""The Organization reconciler: what the cluster looks like → the status patch and the one next
step (a seed, archive or purge Job, the finalizer), decided without any I/O.

Level-based like the SchemaMigration reconciler: everything it needs is in the resource, its
SchemaMigration, its Jobs and their Pods, and (only when a seed Job is about to be made) the
other Organizations of the namespace and the seed Jobs running on the same database
(`OrganizationObserved`). Its memory across calls is the status it wrote.

The order of decisions, each ending the reconcile:

1. being deleted → the deletion policy (Retain releases; Archive and Delete run a Job first);
2. a spec the operator cannot act on (an unknown time zone, a blank name) → Stalled;
3. the SchemaMigration missing, not Ready, or below the revision seeding needs → Reconciling,
   or, for a tenant already seeded, Ready=False `SchemaNotReady` until it is Ready again;
4. a seed Job running → Reconciling; the newest seed Job of this generation says how it went;
5. seeded for this generation → Ready; otherwise the next seed Job, after the checks only the
   operator can make: the subdomain free, and fewer than N seed Jobs on the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rayces.controller.conditions import READY, Verdict, build_conditions, condition
from rayces.controller.jobs import (
    OrganizationIntent,
    Owner,
    build_organization_job,
    database_key,
    organization_job_name,
)
from rayces.controller.outcomes import JobState, PodState, read_outcome, retry_delay
from rayces.controller.schemamigration import Event, redact
from rayces.controller.settings import RETRY_ANNOTATION, OperatorSettings
from rayces.controller.specs import (
    OrganizationSpec,
    SchemaMigrationSpec,
    SpecError,
    parse_organization_spec,
    parse_schema_migration_spec,
)
from rayces.migrations.results import ErrorKind, TenantResult

#: The first revision with everything `raycesctl seed` writes (roles, RLS, state machines).
SEED_REVISION = "20250718000017"
#: Our finalizer: the deletion policy runs before the resource goes.
FINALIZER = "rayces.io/tenant"
#: Annotation that lets a new resource take over an existing row with its subdomain.
ADOPT_ANNOTATION = "rayces.io/adopt-existing"
SCHEMA_READY = "SchemaReady"
SEEDED = "Seeded"
#: Reasons of a resource waiting for a seed slot (the queue is read from the others' status).
WAITING_FOR_SLOT = "WaitingForSeedSlot"


@dataclass(frozen=True)
class OrganizationJob:
    """One of the resource's Jobs, with its pods."""

    name: str
    generation: int
    intent: OrganizationIntent
    created_at: str
    state: JobState
    pods: tuple[PodState, ...] = ()


@dataclass(frozen=True)
class OrganizationPeer:
    """Another Organization of the namespace, as far as subdomains and the seed queue go."""

    name: str
    uid: str
    created_at: str
    subdomain: str
    schema_migration: str
    deleting: bool = False
    waiting_for_slot: bool = False


@dataclass(frozen=True)
class OrganizationObserved:
    """Everything the reconciler looks at for one Organization."""

    resource: Mapping[str, Any]
    #: the SchemaMigration named in spec.schemaMigrationRef; None when it does not exist
    migration: Mapping[str, Any] | None = None
    jobs: tuple[OrganizationJob, ...] = ()
    #: the namespace's other Organizations; None when not looked at yet
    peers: tuple[OrganizationPeer, ...] | None = None
    #: names of the seed Jobs of other Organizations running on the same database
    active_seeds: tuple[str, ...] = ()
    #: the operator's revision chain, oldest first (None when it could not be read)
    revisions: tuple[str, ...] | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class OrganizationDecision:
    """What to do: write `status`, create `job`, add or remove the finalizer, post Events."""

    status: dict[str, Any]
    job: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()
    #: "add" or "remove" our finalizer; None leaves it
    finalizer: str | None = None
    #: the I/O layer must list the peers and the database's seed Jobs, then decide again
    needs_peers: bool = False
    requeue_after: float | None = None
    #: the database label of the resource's Jobs (None before the SchemaMigration is known)
    database: str | None = None
    #: waiting for a seed slot: the I/O layer keeps it in line for the next slot that frees
    waiting_for_slot: bool = False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _flag_condition(
    previous: Sequence[Mapping[str, Any]] | None,
    kind: str,
    *,
    flag: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> dict[str, Any]:
    status = "Unknown" if flag is None else ("True" if flag else "False")
    before = condition(previous, kind)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (
            str(before.get("lastTransitionTime") or now) if before.get("status") == status else now
        ),
    }


def seed_revision_reached(current: str | None, revisions: Sequence[str] | None) -> bool:
    """Whether `current` is `SEED_REVISION` or later in the chain."""
    if not current or current == "base":
        return False
    if revisions is None or SEED_REVISION not in revisions or current not in revisions:
        return current >= SEED_REVISION
    return revisions.index(current) >= revisions.index(SEED_REVISION)


class _Builder:
    """One reconcile's status, events and conditions."""

    def __init__(self, observed: OrganizationObserved, settings: OperatorSettings) -> None:
        self.observed = observed
        self.settings = settings
        self.metadata: Mapping[str, Any] = observed.resource.get("metadata") or {}
        self.generation = int(self.metadata.get("generation") or 1)
        self.annotations: Mapping[str, Any] = self.metadata.get("annotations") or {}
        self.retry_token = str(self.annotations.get(RETRY_ANNOTATION) or "")
        self.old: Mapping[str, Any] = observed.resource.get("status") or {}
        # A seed may take over a row no resource owns when asked to, or when this resource
        # seeded the row before (its status has the id: a row seeded before owners were
        # recorded is claimed, not refused).
        self.adopt = (
            str(self.annotations.get(ADOPT_ANNOTATION) or "") == "true"
            or self.old.get("organizationId") is not None
        )
        self.status: dict[str, Any] = {
            key: value for key, value in self.old.items() if key != "conditions"
        }
        self.status["observedGeneration"] = self.generation
        self.events: list[Event] = []
        self.schema: tuple[bool | None, str, str] = (None, "Unknown", "")
        self.seeded: tuple[bool, str, str] = self._seeded_now()
        self.database: str | None = None
        self.now = observed.now

    def _seeded_now(self) -> tuple[bool, str, str]:
        if self.old.get("seededGeneration") == self.generation:
            return True, "Seeded", f"seeded at {self.old.get('seededAt')}"
        if self.old.get("organizationId") is not None:
            return False, "SpecChanged", "the spec changed since the last seed"
        return False, "NotSeeded", "not seeded yet"

    @property
    def owner(self) -> Owner:
        return Owner(
            name=str(self.metadata.get("name")),
            namespace=str(self.metadata.get("namespace")),
            uid=str(self.metadata.get("uid")),
            generation=self.generation,
        )

    def decide(self, verdict: Verdict, **changes: Any) -> OrganizationDecision:
        conditions = self.old.get("conditions")
        before = condition(conditions, READY)
        before_phase = next(
            (
                phase
                for kind, phase in (
                    ("Stalled", "stalled"),
                    ("Reconciling", "reconciling"),
                    (READY, "ready"),
                )
                if condition(conditions, kind).get("status") == "True"
            ),
            "idle",
        )
        message = redact(verdict.message)
        if (before_phase, before.get("reason")) != (verdict.phase, verdict.reason):
            kind = "Warning" if verdict.phase == "stalled" else "Normal"
            self.events.append(Event(kind, verdict.reason, message))
        now = _iso(self.now)
        built = build_conditions(
            conditions,
            Verdict(verdict.phase, verdict.reason, message),
            self.generation,
            now,
        )
        schema_flag, schema_reason, schema_message = self.schema
        seeded_flag, seeded_reason, seeded_message = self.seeded
        built.append(
            _flag_condition(
                conditions,
                SCHEMA_READY,
                flag=schema_flag,
                reason=schema_reason,
                message=redact(schema_message),
                generation=self.generation,
                now=now,
            )
        )
        built.append(
            _flag_condition(
                conditions,
                SEEDED,
                flag=seeded_flag,
                reason=seeded_reason,
                message=redact(seeded_message),
                generation=self.generation,
                now=now,
            )
        )
        self.status["conditions"] = built
        return OrganizationDecision(
            status=self.status,
            events=tuple(self.events),
            database=self.database,
            waiting_for_slot=verdict.reason == WAITING_FOR_SLOT,
            **changes,
        )


def _command_text(spec: OrganizationSpec, intent: OrganizationIntent) -> str:
    if intent.action == "seed":
        return f"raycesctl seed --org {spec.subdomain}"
    if intent.action == "archive":
        return f"raycesctl tenant archive --org {spec.subdomain}"
    return f"raycesctl tenant purge --org {spec.subdomain} --yes"


def _result(job: OrganizationJob) -> tuple[Any, TenantResult | None]:
    outcome = read_outcome(job.state, job.pods)
    result: TenantResult | None = None
    for pod in job.pods:
        if pod.termination_message:
            try:
                result = TenantResult.from_termination_message(pod.termination_message)
            except ValueError:
                continue
    return outcome, result


def _error_text(outcome: Any, result: TenantResult | None) -> str:
    error = result.error if result is not None and result.error is not None else outcome.error
    if error is None:
        return "failed"
    hint = f" ({error.hint})" if error.hint else ""
    return redact(f"{error.message}{hint}")


def reconcile_organization(
    observed: OrganizationObserved, settings: OperatorSettings
) -> OrganizationDecision:
    """Decide the status of one Organization and its next step. Pure."""
    builder = _Builder(observed, settings)
    finalizers = tuple(builder.metadata.get("finalizers") or ())
    if builder.metadata.get("deletionTimestamp"):
        if FINALIZER not in finalizers:
            return OrganizationDecision(status=dict(builder.old))
        return _finalize(builder)
    adding = None if FINALIZER in finalizers else "add"
    try:
        spec = parse_organization_spec(observed.resource.get("spec"))
    except SpecError as error:
        return builder.decide(Verdict("stalled", "InvalidSpec", str(error)), finalizer=adding)
    waiting = _schema_verdict(builder, spec)
    if waiting is not None:
        return builder.decide(waiting, finalizer=adding)
    assert observed.migration is not None
    migration = parse_schema_migration_spec(observed.migration.get("spec"))
    builder.database = database_key(builder.owner.namespace, migration)
    seeds = [job for job in observed.jobs if job.intent.action == "seed"]
    active = [job for job in seeds if job.state.active]
    if active:
        job = min(active, key=lambda item: item.created_at)
        return builder.decide(
            Verdict(
                "reconciling",
                "Seeding",
                f"Job {job.name} runs {_command_text(spec, job.intent)}"
                + (f" (attempt {job.intent.attempt})" if job.intent.attempt > 1 else ""),
            ),
            finalizer=adding,
        )
    epoch = [
        job
        for job in seeds
        if job.generation == builder.generation
        and job.intent.retry_token == builder.retry_token
        and job.intent.adopt == builder.adopt
    ]
    latest = max(epoch, key=lambda job: (job.created_at, job.intent.attempt), default=None)
    if builder.seeded[0] and (latest is None or builder.status.get("lastJob") == latest.name):
        return _ready(builder, spec, adding)
    if latest is not None:
        decided = _after_seed(builder, spec, migration, latest, adding)
        if decided is not None:
            return decided
    return _next_seed(builder, spec, migration, attempt=1, adding=adding)


def _schema_verdict(builder: _Builder, spec: OrganizationSpec) -> Verdict | None:
    """Why seeding must wait for the schema, or None when the schema is ready for it."""
    migration = builder.observed.migration
    name = spec.schema_migration
    namespace = builder.owner.namespace
    seeded_before = builder.old.get("organizationId") is not None
    if migration is None:
        builder.schema = (False, "SchemaMigrationNotFound", f"SchemaMigration {name} not found")
        return Verdict(
            "reconciling",
            "SchemaMigrationNotFound",
            f"waiting for SchemaMigration {name} in namespace {namespace}: it does not exist; "
            "create it or fix spec.schemaMigrationRef.name",
        )
    try:
        parse_schema_migration_spec(migration.get("spec"))
    except SpecError as error:
        builder.schema = (False, "SchemaMigrationInvalid", str(error))
        return Verdict(
            "reconciling",
            "WaitingForSchema",
            f"waiting for SchemaMigration {name}: its spec is invalid ({error})",
        )
    metadata = migration.get("metadata") or {}
    status = migration.get("status") or {}
    ready = condition(status.get("conditions"), READY)
    current = status.get("currentRevision")
    fresh = status.get("observedGeneration") == metadata.get("generation")
    if not (fresh and ready.get("status") == "True"):
        reason = str(ready.get("reason") or "NotReady")
        builder.schema = (
            False,
            "SchemaNotReady",
            f"SchemaMigration {name} is not Ready ({reason})",
        )
        wait = f"waiting for SchemaMigration {name} to be Ready (now {reason}"
        wait += f": {ready.get('message')})" if ready.get("message") else ")"
        if seeded_before and builder.seeded[0]:
            return Verdict("reconciling", "SchemaNotReady", wait)
        return Verdict("reconciling", "WaitingForSchema", wait)
    if not seed_revision_reached(str(current) if current else None, builder.observed.revisions):
        builder.schema = (
            False,
            "SchemaTooOld",
            f"SchemaMigration {name} is at {current or 'base'}, before {SEED_REVISION}",
        )
        return Verdict(
            "reconciling",
            "WaitingForSchema",
            f"waiting for SchemaMigration {name} to reach revision {SEED_REVISION} or later "
            f"(it is at {current or 'base'}); raise its spec.targetRevision",
        )
    builder.schema = (True, "SchemaReady", f"SchemaMigration {name} is Ready at {current}")
    return None


def _ready(builder: _Builder, spec: OrganizationSpec, adding: str | None) -> OrganizationDecision:
    builder.status.pop("retry", None)
    return builder.decide(
        Verdict(
            "ready",
            "Seeded",
            f"organization {spec.subdomain} (id {builder.status.get('organizationId')}) is in "
            "line with the spec",
        ),
        finalizer=adding,
    )


def _after_seed(
    builder: _Builder,
    spec: OrganizationSpec,
    migration: SchemaMigrationSpec,
    latest: OrganizationJob,
    adding: str | None,
) -> OrganizationDecision | None:
    outcome, result = _result(latest)
    if outcome.succeeded:
        if builder.status.get("lastJob") != latest.name:
            changed = ", ".join(sorted((result.changed_fields or {}) if result else ()))
            builder.events.append(
                Event(
                    "Normal",
                    "SeedSucceeded",
                    f"Job {latest.name}: "
                    + ("created the organization" if result and result.organization_created else "")
                    + (f"changed {changed}" if changed else "")
                    + ("" if result and result.changed else "nothing to change"),
                )
            )
        builder.status["lastJob"] = latest.name
        if result is not None and result.organization_id is not None:
            builder.status["organizationId"] = result.organization_id
        builder.status["seededAt"] = outcome.finished_at or _iso(builder.now)
        builder.status["seededGeneration"] = builder.generation
        builder.status["job"] = latest.name
        builder.seeded = (True, "Seeded", f"seeded by Job {latest.name}")
        return _ready(builder, spec, adding)
    builder.status["lastJob"] = latest.name
    builder.status["job"] = latest.name
    error = result.error if result is not None and result.error is not None else outcome.error
    if error is not None and error.kind is ErrorKind.PRECONDITION_FAILED:
        # The seed's only precondition: `--owner` found the row held by another owner, or by
        # none, and changed nothing. Retrying cannot help; the adopt annotation or
        # `rayces.io/retry` (once the row is freed) starts a new Job.
        builder.status.pop("retry", None)
        builder.seeded = (False, "SubdomainTaken", f"Job {latest.name} changed nothing")
        return builder.decide(
            Verdict(
                "stalled",
                "SubdomainTaken",
                f"Job {latest.name} refused subdomain {spec.subdomain}: "
                f"{_error_text(outcome, result)}",
            ),
            finalizer=adding,
        )
    retryable = outcome.error is not None and outcome.error.retryable
    attempt = latest.intent.attempt
    settings = builder.settings
    if retryable and attempt < settings.max_attempts:
        delay = retry_delay(
            attempt,
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_cap_seconds,
        )
        due = (_parse_time(outcome.finished_at) or builder.now) + timedelta(seconds=delay)
        if builder.now < due:
            builder.status["retry"] = {"attempt": attempt, "nextAttemptAt": _iso(due)}
            return builder.decide(
                Verdict(
                    "reconciling",
                    "RetryScheduled",
                    f"seed attempt {attempt} of {settings.max_attempts} failed: "
                    f"{_error_text(outcome, result)}; next attempt at {_iso(due)}",
                ),
                requeue_after=max((due - builder.now).total_seconds(), 0.5),
                finalizer=adding,
            )
        builder.status.pop("retry", None)
        return _next_seed(builder, spec, migration, attempt=attempt + 1, adding=adding)
    builder.status.pop("retry", None)
    builder.seeded = (False, "SeedFailed", f"Job {latest.name} failed")
    return builder.decide(
        Verdict(
            "stalled",
            "SeedFailed" if outcome.reason == "JobFailed" else outcome.reason,
            f"Job {latest.name} ({_command_text(spec, latest.intent)}) failed: "
            f"{_error_text(outcome, result)}. Fix the cause, then change the spec or set the "
            f"annotation {RETRY_ANNOTATION}",
        ),
        finalizer=adding,
    )


def _subdomain_owner(builder: _Builder, spec: OrganizationSpec) -> str:
    """The earlier Organization with the same subdomain on the same SchemaMigration, or ''."""
    mine = (str(builder.metadata.get("creationTimestamp") or ""), builder.owner.name)
    rivals = [
        peer
        for peer in builder.observed.peers or ()
        if peer.uid != builder.owner.uid
        and not peer.deleting
        and peer.subdomain == spec.subdomain
        and peer.schema_migration == spec.schema_migration
        and (peer.created_at, peer.name) < mine
    ]
    return min(rivals, key=lambda peer: (peer.created_at, peer.name)).name if rivals else ""


def _next_seed(
    builder: _Builder,
    spec: OrganizationSpec,
    migration: SchemaMigrationSpec,
    *,
    attempt: int,
    adding: str | None,
) -> OrganizationDecision:
    observed = builder.observed
    if observed.peers is None:
        return builder.decide(
            Verdict("reconciling", "Checking", "looking at the other Organizations"),
            needs_peers=True,
            finalizer=adding,
        )
    holder = _subdomain_owner(builder, spec)
    if holder:
        return builder.decide(
            Verdict(
                "stalled",
                "SubdomainTaken",
                f"Organization {holder} already has subdomain {spec.subdomain} in the database "
                f"of SchemaMigration {spec.schema_migration}; choose another subdomain or "
                f"delete {holder}",
            ),
            finalizer=adding,
        )
    limit = builder.settings.seed_jobs_per_database
    mine = (str(builder.metadata.get("creationTimestamp") or ""), builder.owner.name)
    ahead = sorted(
        peer.name
        for peer in observed.peers
        if peer.waiting_for_slot
        and peer.schema_migration == spec.schema_migration
        and (peer.created_at, peer.name) < mine
    )
    running = len(observed.active_seeds)
    if running + len(ahead) >= limit:
        # One message for the whole wait (no status rewrite each time the line moves); the
        # seed Job that ends next hands its slot on, so no polling either.
        return builder.decide(
            Verdict(
                "reconciling",
                WAITING_FOR_SLOT,
                f"waiting for a seed slot: at most {limit} seed Jobs run at once on the database "
                f"of SchemaMigration {spec.schema_migration}; Organizations start in the order "
                "they were created",
            ),
            finalizer=adding,
            requeue_after=builder.settings.resync_seconds * 12,
        )
    intent = OrganizationIntent(
        action="seed", attempt=attempt, retry_token=builder.retry_token, adopt=builder.adopt
    )
    manifest = build_organization_job(builder.owner, spec, intent, migration, builder.settings)
    name = organization_job_name(builder.owner, intent)
    builder.status["job"] = name
    builder.events.append(
        Event("Normal", "JobCreated", f"Job {name}: {_command_text(spec, intent)}")
    )
    return builder.decide(
        Verdict(
            "reconciling",
            "Seeding",
            f"starting Job {name}: {_command_text(spec, intent)}"
            + (f" (attempt {attempt})" if attempt > 1 else ""),
        ),
        job=manifest,
        finalizer=adding,
    )


# ---------------------------------------------------------------- deletion


def _release(builder: _Builder, kind: str, reason: str, message: str) -> OrganizationDecision:
    builder.events.append(Event(kind, reason, redact(message)))
    return OrganizationDecision(
        status=dict(builder.old), events=tuple(builder.events), finalizer="remove"
    )


def _finalize(builder: _Builder) -> OrganizationDecision:
    """Apply the deletion policy, then release the resource. Never waits on what cannot come."""
    observed = builder.observed
    try:
        spec = parse_organization_spec(observed.resource.get("spec"))
    except SpecError as error:
        return _release(
            builder, "Warning", "Released", f"the spec is invalid ({error}); rows left as they are"
        )
    seeds = [job for job in observed.jobs if job.intent.action == "seed" and job.state.active]
    if seeds:
        return builder.decide(
            Verdict(
                "reconciling",
                "Deleting",
                f"waiting for Job {seeds[0].name} to finish before {spec.deletion_policy}",
            )
        )
    organization_id = builder.old.get("organizationId")
    if spec.deletion_policy == "Retain":
        return _release(
            builder,
            "Normal",
            "Retained",
            f"deletionPolicy Retain: organization {spec.subdomain} (id {organization_id}) kept",
        )
    if organization_id is None:
        return _release(
            builder, "Normal", "Released", f"organization {spec.subdomain} was never seeded"
        )
    if observed.migration is None:
        return _release(
            builder,
            "Warning",
            "SchemaMigrationGone",
            f"SchemaMigration {spec.schema_migration} was deleted first, so deletionPolicy "
            f"{spec.deletion_policy} could not run and the rows of {spec.subdomain} were kept; "
            f"run `raycesctl tenant {'archive' if spec.deletion_policy == 'Archive' else 'purge'}"
            f" --org {spec.subdomain}` by hand",
        )
    try:
        migration = parse_schema_migration_spec(observed.migration.get("spec"))
    except SpecError as error:
        return _release(
            builder,
            "Warning",
            "SchemaMigrationInvalid",
            f"SchemaMigration {spec.schema_migration} is invalid ({error}); rows kept",
        )
    builder.database = database_key(builder.owner.namespace, migration)
    action: Any = "archive" if spec.deletion_policy == "Archive" else "purge"
    jobs = [
        job
        for job in observed.jobs
        if job.intent.action == action
        and job.intent.retry_token == builder.retry_token
        and job.generation == builder.generation
    ]
    active = [job for job in jobs if job.state.active]
    intent = OrganizationIntent(action=action, retry_token=builder.retry_token)
    if active:
        return builder.decide(
            Verdict(
                "reconciling",
                "Deleting",
                f"Job {active[0].name} runs {_command_text(spec, active[0].intent)}",
            )
        )
    latest = max(jobs, key=lambda job: (job.created_at, job.intent.attempt), default=None)
    if latest is not None:
        outcome, result = _result(latest)
        if outcome.succeeded:
            if action == "purge":
                removed = (result.rows_removed if result else None) or {}
                rows = ", ".join(f"{table} {count}" for table, count in removed.items() if count)
                return _release(
                    builder,
                    "Normal",
                    "Purged",
                    f"Job {latest.name} purged {spec.subdomain}: rows removed: {rows or 'none'}",
                )
            return _release(
                builder, "Normal", "Archived", f"Job {latest.name} archived {spec.subdomain}"
            )
        attempt = latest.intent.attempt
        settings = builder.settings
        if outcome.retryable and attempt < settings.max_attempts:
            delay = retry_delay(
                attempt,
                base_seconds=settings.retry_base_seconds,
                cap_seconds=settings.retry_cap_seconds,
            )
            due = (_parse_time(outcome.finished_at) or builder.now) + timedelta(seconds=delay)
            if builder.now < due:
                return builder.decide(
                    Verdict(
                        "reconciling",
                        "RetryScheduled",
                        f"{action} attempt {attempt} failed: {_error_text(outcome, result)}; "
                        f"next attempt at {_iso(due)}",
                    ),
                    requeue_after=max((due - builder.now).total_seconds(), 0.5),
                )
            intent = OrganizationIntent(
                action=action, attempt=attempt + 1, retry_token=builder.retry_token
            )
        else:
            refused = outcome.error is not None and outcome.error.kind == "precondition_failed"
            return builder.decide(
                Verdict(
                    "stalled",
                    ("PurgeRefused" if refused else "PurgeFailed")
                    if action == "purge"
                    else "ArchiveFailed",
                    f"Job {latest.name} ({_command_text(spec, latest.intent)}) failed: "
                    f"{_error_text(outcome, result)}. Fix the cause and set the annotation "
                    f"{RETRY_ANNOTATION} to a new value, or set deletionPolicy: Retain",
                )
            )
    manifest = build_organization_job(builder.owner, spec, intent, migration, builder.settings)
    name = organization_job_name(builder.owner, intent)
    builder.events.append(
        Event("Normal", "JobCreated", f"Job {name}: {_command_text(spec, intent)}")
    )
    return builder.decide(
        Verdict("reconciling", "Deleting", f"starting Job {name}: {_command_text(spec, intent)}"),
        job=manifest,
    )

"""The SchemaMigration reconciler: what the cluster looks like → the status to write and the
one next step (a Job to create, a plan to render), decided without any I/O.

Level-based, so running it twice, or after a restart, or after missing events, gives the same
answer: everything it needs is in the resource, its Jobs and their Pods (`Observed`). Its own
memory across calls is the status it wrote (attempt counts, the retry token acted on, the last
recorded run) and a label on each Job whose result it has recorded.

The order of decisions, each ending the reconcile:

1. a spec the operator cannot act on → Stalled `InvalidSpec`;
2. record every finished Job not yet recorded (lastRun, history, currentRevision, Events);
3. a Job still running (this generation's or an older one) → Reconciling, adopt it;
4. what the newest Job of this generation and retry token says: at the target (Ready), a
   failure to roll back, a retry to wait for or give up on, a refusal to report;
5. otherwise the next Job, after the checks only the operator can make: a known target
   revision, a database no other resource claims, no other Job on that database, the Secret.

A Stalled resource stays so until its spec changes (a new generation) or the annotation
`rayces.io/retry` gets a new value; only a missing Secret is looked for again by itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rayces.controller.conditions import (
    READY,
    RECONCILING,
    STALLED,
    Verdict,
    build_conditions,
    condition,
)
from rayces.controller.jobs import (
    JobIntent,
    Owner,
    build_migration_job,
    database_key,
    job_name,
)
from rayces.controller.outcomes import (
    JobState,
    PodState,
    RunOutcome,
    blocked_reason,
    read_outcome,
    retry_delay,
)
from rayces.controller.settings import RETRY_ANNOTATION, OperatorSettings
from rayces.controller.specs import SchemaMigrationSpec, SpecError, parse_schema_migration_spec
from rayces.migrations.results import ErrorKind

HISTORY_LIMIT = 10
#: Revision name used in status for "no revision applied".
BASE = "base"

_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]*@")


def redact(text: str) -> str:
    """`text` with any `scheme://user:password@` reduced to `scheme://***@`."""
    return _CREDENTIALS.sub(r"\1***@", text)


@dataclass(frozen=True)
class ObservedJob:
    """One of the resource's Jobs, with its pods, as the I/O layer listed them."""

    name: str
    generation: int
    intent: JobIntent
    created_at: str
    recorded: bool
    state: JobState
    pods: tuple[PodState, ...] = ()


@dataclass(frozen=True)
class Peer:
    """Another SchemaMigration in the namespace, as far as database claims go."""

    name: str
    uid: str
    created_at: str
    secret_name: str
    secret_key: str
    deleting: bool = False


@dataclass(frozen=True)
class Observed:
    """Everything the reconciler looks at for one SchemaMigration."""

    resource: Mapping[str, Any]
    jobs: tuple[ObservedJob, ...] = ()
    peers: tuple[Peer, ...] = ()
    #: None when not looked at yet (the I/O layer looks only when a Job is about to be made)
    secret_exists: bool | None = None
    #: active Jobs of other resources on the same database
    database_busy_with: str | None = None
    #: the operator's revision chain, oldest first (None when it could not be read)
    revisions: tuple[str, ...] | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the resource."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class DryRunRequest:
    """Render the SQL from `from_revision` to `to_revision` offline and store it."""

    config_map: str
    from_revision: str
    to_revision: str


@dataclass(frozen=True)
class Decision:
    """What to do: write `status`, create `job`, mark Jobs recorded, post Events."""

    status: dict[str, Any]
    job: dict[str, Any] | None = None
    record_jobs: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    dry_run: DryRunRequest | None = None
    #: the I/O layer needs to know whether the Secret exists before deciding again
    needs_secret_check: bool = False
    #: reconcile again after this many seconds even without an event
    requeue_after: float | None = None
    outcomes: tuple[tuple[str, RunOutcome], ...] = ()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _revision_label(revision: str | None) -> str:
    return BASE if revision is None else revision


def resolve_revision(target: str, revisions: Sequence[str] | None) -> str | None:
    """The full id `target` names in `revisions` (`head`, `base`, an id or a unique prefix).

    :returns: the id, `base`, or None when `revisions` does not know it.
    """
    if target == BASE:
        return BASE
    if revisions is None:
        return target
    if not revisions:
        return None
    if target == "head":
        return revisions[-1]
    if target in revisions:
        return target
    matches = [revision for revision in revisions if revision.startswith(target)]
    return matches[0] if len(matches) == 1 else None


def direction(current: str, target: str, revisions: Sequence[str]) -> str:
    """`migrate`, `rollback` or `none`, from the two revisions' places in the chain."""
    position = {revision: index for index, revision in enumerate(revisions)}
    here = -1 if current == BASE else position.get(current, -1)
    there = -1 if target == BASE else position[target]
    if there > here:
        return "migrate"
    if there < here:
        return "rollback"
    return "none"


def claim_holder(uid: str, created_at: str, name: str, peers: Sequence[Peer], spec: Any) -> str:
    """The name of the earlier resource that claims the same database, or an empty string."""
    rivals = [
        peer
        for peer in peers
        if peer.uid != uid
        and not peer.deleting
        and peer.secret_name == spec.database.name
        and peer.secret_key == spec.database.key
        and (peer.created_at, peer.name) < (created_at, name)
    ]
    return min(rivals, key=lambda peer: (peer.created_at, peer.name)).name if rivals else ""


def _run_summary(job: ObservedJob, outcome: RunOutcome) -> dict[str, Any]:
    result = outcome.result
    summary: dict[str, Any] = {
        "job": job.name,
        "action": job.intent.action,
        "purpose": job.intent.purpose,
        "attempt": job.intent.attempt,
        "generation": job.generation,
        "targetRevision": job.intent.target_revision,
        "outcome": "Succeeded" if outcome.succeeded else "Failed",
        "reason": outcome.reason,
        "exitCode": outcome.exit_code,
        "startedAt": outcome.started_at,
        "finishedAt": outcome.finished_at,
    }
    if result is not None:
        summary["fromRevision"] = _revision_label(result.from_revision)
        summary["toRevision"] = _revision_label(result.to_revision)
        summary["durationSeconds"] = round(result.duration_seconds, 3)
    if outcome.error is not None:
        summary["error"] = {
            "kind": str(outcome.error.kind),
            "message": redact(outcome.error.message),
            "hint": redact(outcome.error.hint),
            "revision": outcome.error.revision,
        }
    return summary


def _last_run(job: ObservedJob, outcome: RunOutcome) -> dict[str, Any]:
    summary = _run_summary(job, outcome)
    if outcome.result is not None:
        if outcome.result.adoption_message:
            summary["adoption"] = outcome.result.adoption_message
        if outcome.result.rails_only_versions:
            summary["railsOnlyVersions"] = list(outcome.result.rails_only_versions)
        summary["steps"] = [
            {
                "revision": step.revision,
                "name": step.name,
                "direction": step.direction,
                "durationSeconds": round(step.duration_seconds, 3),
            }
            for step in outcome.result.steps
        ]
    return summary


def _outcome_text(outcome: RunOutcome) -> str:
    if outcome.error is None:
        return "succeeded"
    text = redact(outcome.error.message)
    if outcome.error.revision:
        text += f" (revision {outcome.error.revision})"
    return text


def _command_text(intent: JobIntent) -> str:
    if intent.action == "inspect":
        return "raycesctl current-revision"
    return f"raycesctl {intent.action} --to {intent.target_revision}"


class _Builder:
    """Accumulates one reconcile's status changes and events."""

    def __init__(self, observed: Observed, settings: OperatorSettings) -> None:
        self.observed = observed
        self.settings = settings
        resource = observed.resource
        self.metadata: Mapping[str, Any] = resource.get("metadata") or {}
        self.generation = int(self.metadata.get("generation") or 1)
        annotations = self.metadata.get("annotations") or {}
        self.retry_token = str(annotations.get(RETRY_ANNOTATION) or "")
        self.old: Mapping[str, Any] = resource.get("status") or {}
        self.status: dict[str, Any] = {
            key: value for key, value in self.old.items() if key != "conditions"
        }
        self.new_epoch = (
            self.old.get("observedGeneration") != self.generation
            or str(self.old.get("observedRetry") or "") != self.retry_token
        )
        if self.new_epoch:
            for key in ("retry", "activeJob"):
                self.status.pop(key, None)
        self.status["observedGeneration"] = self.generation
        if self.retry_token:
            self.status["observedRetry"] = self.retry_token
        else:
            self.status.pop("observedRetry", None)
        self.events: list[Event] = []
        self.record: list[str] = []
        self.outcomes: list[tuple[str, RunOutcome]] = []
        self.now = observed.now

    @property
    def owner(self) -> Owner:
        return Owner(
            name=str(self.metadata.get("name")),
            namespace=str(self.metadata.get("namespace")),
            uid=str(self.metadata.get("uid")),
            generation=self.generation,
        )

    def decide(self, verdict: Verdict, **changes: Any) -> Decision:
        # An Event per step: when the phase or its reason changes, not on every reconcile.
        before = (
            _phase(self.old.get("conditions")),
            condition(self.old.get("conditions"), READY).get("reason"),
        )
        if before != (verdict.phase, verdict.reason) or self.new_epoch:
            kind = "Warning" if verdict.phase == "stalled" else "Normal"
            self.events.append(Event(kind, verdict.reason, redact(verdict.message)))
        self.status["conditions"] = build_conditions(
            self.old.get("conditions"),
            replace(verdict, message=redact(verdict.message)),
            self.generation,
            _iso(self.now),
        )
        return Decision(
            status=self.status,
            record_jobs=tuple(self.record),
            events=tuple(self.events),
            outcomes=tuple(self.outcomes),
            **changes,
        )


def _phase(conditions: Sequence[Mapping[str, Any]] | None) -> str:
    for kind, phase in ((STALLED, "stalled"), (RECONCILING, "reconciling"), (READY, "ready")):
        if condition(conditions, kind).get("status") == "True":
            return phase
    return "idle"


def reconcile(observed: Observed, settings: OperatorSettings) -> Decision:
    """Decide the status of one SchemaMigration and its next step. Pure."""
    builder = _Builder(observed, settings)
    try:
        spec = parse_schema_migration_spec(observed.resource.get("spec"))
    except SpecError as error:
        return builder.decide(Verdict("stalled", "InvalidSpec", f"{error}"))
    builder.status["targetRevision"] = spec.target_revision
    _record_finished_jobs(builder, spec)

    active = [job for job in observed.jobs if job.state.active]
    if active:
        job = min(active, key=lambda item: item.created_at)
        builder.status["activeJob"] = job.name
        blocked = blocked_reason(job.pods)
        if blocked is not None:
            reason, message = blocked
            return builder.decide(
                Verdict("reconciling", reason, f"Job {job.name} is waiting: {message}"),
                requeue_after=settings.resync_seconds,
            )
        if job.intent.purpose == "rollback-on-failure":
            builder.status["rollback"] = {
                **(builder.status.get("rollback") or {}),
                "outcome": "Running",
                "job": job.name,
            }
        return builder.decide(
            Verdict(
                "reconciling",
                "JobRunning",
                f"Job {job.name} runs {_command_text(job.intent)}"
                + (f" (attempt {job.intent.attempt})" if job.intent.attempt > 1 else ""),
            )
        )
    builder.status.pop("activeJob", None)

    epoch = [
        job
        for job in observed.jobs
        if job.generation == builder.generation and job.intent.retry_token == builder.retry_token
    ]
    lost = _lost_job(builder, spec, epoch)
    if lost is not None:
        return lost
    latest = max(epoch, key=_creation_order, default=None)
    if latest is not None:
        decided = _after_job(builder, spec, latest, epoch)
        if decided is not None:
            return decided
    return _next_job(builder, spec, attempt=1)


def _creation_order(job: ObservedJob) -> tuple[str, int, int]:
    """Jobs in the order they were made (timestamps have one-second resolution: a rollback
    always follows the upgrade it undoes, and attempt n+1 follows attempt n)."""
    return (job.created_at, int(job.intent.purpose == "rollback-on-failure"), job.intent.attempt)


def _lost_job(
    builder: _Builder, spec: SchemaMigrationSpec, epoch: Sequence[ObservedJob]
) -> Decision | None:
    """A Job that vanished before finishing (deleted by hand) counts as a transient failure."""
    names = {job.name for job in builder.observed.jobs}
    recorded = {str(item.get("job")) for item in builder.status.get("history") or () if item}
    vanished = str(builder.old.get("activeJob") or "")
    retry = builder.status.get("retry") or {}
    settings = builder.settings
    if vanished and vanished not in names and vanished not in recorded and not builder.new_epoch:
        attempt = max((job.intent.attempt for job in epoch), default=0) + 1
        due = builder.now + timedelta(
            seconds=retry_delay(
                attempt,
                base_seconds=settings.retry_base_seconds,
                cap_seconds=settings.retry_cap_seconds,
            )
        )
        retry = {
            "attempt": attempt,
            "maxAttempts": settings.max_attempts,
            "reason": "JobDeleted",
            "message": f"Job {vanished} was deleted before it finished",
            "nextAttemptAt": _iso(due),
        }
        builder.status["retry"] = retry
        builder.events.append(Event("Warning", "JobDeleted", str(retry["message"])))
    if retry.get("reason") != "JobDeleted":
        return None
    attempt = int(retry.get("attempt") or 1)
    if attempt >= settings.max_attempts:
        builder.status.pop("retry", None)
        return builder.decide(
            Verdict(
                "stalled",
                "JobDeleted",
                f"gave up after {attempt} attempts: {retry.get('message')}; set the annotation "
                f"{RETRY_ANNOTATION} to a new value to try again",
            )
        )
    due = _parse_time(str(retry.get("nextAttemptAt") or "")) or builder.now
    if builder.now < due:
        return builder.decide(
            Verdict(
                "reconciling",
                "RetryScheduled",
                f"attempt {attempt} of {settings.max_attempts} failed: {retry.get('message')}; "
                f"next attempt at {_iso(due)}",
            ),
            requeue_after=max((due - builder.now).total_seconds(), 0.5),
        )
    builder.status.pop("retry", None)
    return _next_job(builder, spec, attempt=attempt + 1)


def _record_finished_jobs(builder: _Builder, spec: SchemaMigrationSpec) -> None:
    recorded_names = {str(item.get("job")) for item in builder.status.get("history") or () if item}
    finished = sorted(
        (job for job in builder.observed.jobs if job.state.finished),
        key=_creation_order,
    )
    for job in finished:
        outcome = read_outcome(job.state, job.pods)
        builder.outcomes.append((job.name, outcome))
        if job.recorded or job.name in recorded_names:
            continue
        builder.record.append(job.name)
        summary = _run_summary(job, outcome)
        history = [*list(builder.status.get("history") or ()), summary]
        builder.status["history"] = history[-HISTORY_LIMIT:]
        builder.status["lastRun"] = _last_run(job, outcome)
        if outcome.result is not None and outcome.result.revisions_known:
            builder.status["currentRevision"] = _revision_label(outcome.result.to_revision)
        if job.intent.purpose == "rollback-on-failure":
            builder.status["rollback"] = _rollback_status(builder, job, outcome)
        if outcome.result is not None and outcome.result.rails_only_versions:
            builder.events.append(
                Event(
                    "Warning",
                    "RailsOnlyVersions",
                    f"schema_migrations holds {', '.join(outcome.result.rails_only_versions)}: "
                    "migrations only the Rails application knows (newer than every revision "
                    "here); they were left as they are",
                )
            )
        builder.events.append(
            Event(
                "Normal" if outcome.succeeded else "Warning",
                "JobSucceeded" if outcome.succeeded else "JobFailed",
                f"Job {job.name} ({_command_text(job.intent)}): {_outcome_text(outcome)}",
            )
        )


def _rollback_status(builder: _Builder, job: ObservedJob, outcome: RunOutcome) -> dict[str, Any]:
    """`status.rollback` once the rollback-on-failure Job has finished: how it ended, and what it
    dropped although it held rows, with why that was safe."""
    rollback = dict(builder.status.get("rollback") or {})
    target = job.intent.target_revision
    rollback.update(
        {
            "attempted": True,
            "job": job.name,
            "toRevision": target,
            "outcome": "Succeeded" if outcome.succeeded else "Failed",
            "message": f"rolled back to {target}"
            if outcome.succeeded
            else "rollback failed: " + _outcome_text(outcome),
        }
    )
    dropped = outcome.result.dropped if outcome.result and outcome.succeeded else ()
    if dropped:
        rollback["dropped"] = [
            {"object": item.object, "rows": item.rows, "reason": item.reason} for item in dropped
        ]
        listed = ", ".join(f"{item.object} ({item.rows} rows)" for item in dropped)
        rollback["message"] += (
            f"; dropped {listed}: every row in them was written by the failed upgrade itself "
            "(its default organization, column defaults and backfills), so nothing anyone "
            "else wrote was lost"
        )
    return rollback


def _found_above_target(builder: _Builder, intent: JobIntent) -> bool:
    """Whether a `migrate` Job was refused because the database, as it reported, is above the
    target (a downgrade, which `migrate` never does)."""
    current = builder.status.get("currentRevision")
    chain = builder.observed.revisions
    if intent.action != "migrate" or current is None or not chain:
        return False
    known = (*chain, BASE)
    if current not in known or intent.target_revision not in known:
        return False
    return direction(str(current), intent.target_revision, chain) == "rollback"


def _outcome_of(builder: _Builder, job: ObservedJob) -> RunOutcome:
    for name, outcome in builder.outcomes:
        if name == job.name:
            return outcome
    return read_outcome(job.state, job.pods)


def _after_job(
    builder: _Builder, spec: SchemaMigrationSpec, latest: ObservedJob, epoch: Sequence[ObservedJob]
) -> Decision | None:
    """The verdict the newest finished Job of this epoch leads to; None: start the next Job."""
    outcome = _outcome_of(builder, latest)
    intent = latest.intent
    if intent.purpose == "rollback-on-failure":
        failed_upgrade = builder.status.get("rollback") or {}
        what = str(failed_upgrade.get("cause") or "the upgrade failed")
        if outcome.succeeded:
            return builder.decide(
                Verdict(
                    "stalled",
                    "MigrationFailed",
                    f"{what}; rolled back to {intent.target_revision} by Job {latest.name}. "
                    "Fix the revision or the data, then change the spec or set the annotation "
                    f"{RETRY_ANNOTATION}",
                )
            )
        return builder.decide(
            Verdict(
                "stalled",
                "RollbackFailed",
                f"{what}; the rollback to {intent.target_revision} failed too: "
                f"{_outcome_text(outcome)}. The database is at "
                f"{builder.status.get('currentRevision', 'an unknown revision')}; repair it by "
                f"hand, then set the annotation {RETRY_ANNOTATION}",
            )
        )
    if outcome.succeeded:
        if intent.purpose == "dry-run":
            return _after_inspection(builder, spec, latest, outcome)
        at = builder.status.get("currentRevision", intent.target_revision)
        builder.status.pop("retry", None)
        return builder.decide(
            Verdict("ready", "AtTargetRevision", f"the database is at revision {at}")
        )
    assert outcome.error is not None
    kind = outcome.error.kind
    if outcome.retryable:
        return _retry_or_give_up(builder, spec, latest, outcome, epoch)
    builder.status.pop("retry", None)
    if kind == ErrorKind.USAGE and _found_above_target(builder, intent):
        # The first Job of a resource that did not know the database's revision guessed
        # `migrate`; the refusal reported the revision, which is above the target: go down
        # (under the data-loss guard) instead of stalling.
        return None
    if kind == ErrorKind.DATA_LOSS_REFUSED:
        return builder.decide(
            Verdict(
                "stalled",
                "DataLossRefused",
                f"{_command_text(intent)} would delete data: {_outcome_text(outcome)}. "
                "Set spec.allowDataLoss: true to go ahead, or raise spec.targetRevision",
            )
        )
    result = outcome.result
    moved = result is not None and result.to_revision != result.from_revision
    if intent.action == "migrate" and spec.rollback_on_failure and result is not None:
        cause = f"{_command_text(intent)} failed: {_outcome_text(outcome)}"
        back_to = _revision_label(result.from_revision)
        if moved:
            builder.status["rollback"] = {
                "attempted": True,
                "fromRevision": _revision_label(result.to_revision),
                "toRevision": back_to,
                "outcome": "Running",
                "cause": redact(cause),
                "message": f"rolling back to {back_to}",
            }
            rollback = JobIntent(
                action="rollback",
                target_revision=back_to,
                purpose="rollback-on-failure",
                attempt=1,
                retry_token=builder.retry_token,
                allow_data_loss=spec.allow_data_loss,
            )
            return _create(builder, spec, rollback)
        builder.status["rollback"] = {
            "attempted": False,
            "fromRevision": back_to,
            "toRevision": back_to,
            "outcome": "NotNeeded",
            "cause": redact(cause),
            "message": f"nothing to roll back: the database is still at {back_to}",
        }
    hint = f" ({redact(outcome.error.hint)})" if outcome.error.hint else ""
    if kind == ErrorKind.USAGE:
        return builder.decide(
            Verdict(
                "stalled",
                "InvalidInvocation",
                f"raycesctl refused {_command_text(intent)}: {_outcome_text(outcome)}{hint}; "
                "fix the spec",
            )
        )
    return builder.decide(
        Verdict(
            "stalled",
            outcome.reason,
            f"{_command_text(intent)} failed: {_outcome_text(outcome)}{hint}. Fix the cause, "
            f"then change the spec or set the annotation {RETRY_ANNOTATION}",
        )
    )


def _retry_or_give_up(
    builder: _Builder,
    spec: SchemaMigrationSpec,
    latest: ObservedJob,
    outcome: RunOutcome,
    epoch: Sequence[ObservedJob],
) -> Decision:
    settings = builder.settings
    attempt = latest.intent.attempt
    if attempt >= settings.max_attempts:
        builder.status.pop("retry", None)
        return builder.decide(
            Verdict(
                "stalled",
                outcome.reason,
                f"gave up after {attempt} attempts: {_outcome_text(outcome)}. Fix the cause, "
                f"then set the annotation {RETRY_ANNOTATION} to a new value",
            )
        )
    delay = retry_delay(
        attempt, base_seconds=settings.retry_base_seconds, cap_seconds=settings.retry_cap_seconds
    )
    finished = _parse_time(outcome.finished_at) or builder.now
    due = finished + timedelta(seconds=delay)
    if builder.now < due:
        builder.status["retry"] = {
            "attempt": attempt,
            "maxAttempts": settings.max_attempts,
            "reason": outcome.reason,
            "backoffSeconds": delay,
            "nextAttemptAt": _iso(due),
        }
        return builder.decide(
            Verdict(
                "reconciling",
                "RetryScheduled",
                f"attempt {attempt} of {settings.max_attempts} failed: "
                f"{_outcome_text(outcome)}; next attempt at {_iso(due)} "
                f"(backoff {delay:g}s)",
            ),
            requeue_after=max((due - builder.now).total_seconds(), 0.5),
        )
    builder.status.pop("retry", None)
    return _next_job(builder, spec, attempt=attempt + 1, intent_like=latest.intent)


def _after_inspection(
    builder: _Builder, spec: SchemaMigrationSpec, job: ObservedJob, outcome: RunOutcome
) -> Decision:
    current = _revision_label(outcome.result.to_revision if outcome.result else None)
    target = resolve_revision(spec.target_revision, builder.observed.revisions) or (
        spec.target_revision
    )
    dry_run = builder.status.get("dryRun") or {}
    config_map = f"{builder.owner.name}-dry-run"
    if dry_run.get("job") == job.name:
        size = dry_run.get("sizeBytes", 0)
        truncated = " (truncated: the whole plan is larger)" if dry_run.get("truncated") else ""
        return builder.decide(
            Verdict(
                "ready",
                "DryRunPlanned",
                f"dry run: {size} bytes of SQL from {current} to {target} in ConfigMap "
                f"{config_map}{truncated}; nothing was applied",
            )
        )
    return builder.decide(
        Verdict("reconciling", "RenderingPlan", f"rendering the SQL from {current} to {target}"),
        dry_run=DryRunRequest(config_map=config_map, from_revision=current, to_revision=target),
    )


def complete_dry_run(
    decision: Decision,
    *,
    job: str,
    config_map: str,
    from_revision: str,
    to_revision: str,
    size_bytes: int,
    stored_bytes: int,
    revisions: int,
) -> dict[str, Any]:
    """The status once a dry run's SQL is stored; the next reconcile reports it Ready."""
    status = dict(decision.status)
    status["dryRun"] = {
        "job": job,
        "configMap": config_map,
        "fromRevision": from_revision,
        "toRevision": to_revision,
        "revisions": revisions,
        "sizeBytes": size_bytes,
        "storedBytes": stored_bytes,
        "truncated": stored_bytes < size_bytes,
    }
    return status


def _next_job(
    builder: _Builder,
    spec: SchemaMigrationSpec,
    *,
    attempt: int,
    intent_like: JobIntent | None = None,
) -> Decision:
    observed = builder.observed
    owner = builder.owner
    if spec.suspend:
        return builder.decide(
            Verdict("idle", "Suspended", "spec.suspend is true: no Job is started")
        )
    target = resolve_revision(spec.target_revision, observed.revisions)
    if target is None:
        known = observed.revisions or ()
        return builder.decide(
            Verdict(
                "stalled",
                "UnknownRevision",
                f"spec.targetRevision {spec.target_revision!r} is not a revision of this "
                f"operator's schema (head is {known[-1] if known else 'unknown'}); give head, "
                "base or a revision id",
            )
        )
    holder = claim_holder(
        owner.uid,
        str(builder.metadata.get("creationTimestamp") or ""),
        owner.name,
        observed.peers,
        spec,
    )
    if holder:
        return builder.decide(
            Verdict(
                "stalled",
                "DatabaseClaimed",
                f"SchemaMigration {holder} already manages the database in Secret "
                f"{spec.database.name} key {spec.database.key}; delete one of the two or point "
                "this one at another database",
            ),
            # the claim ends when the other resource goes; no event tells this one
            requeue_after=builder.settings.resync_seconds,
        )
    current = builder.status.get("currentRevision")
    if spec.dry_run:
        intent = JobIntent(
            action="inspect",
            target_revision=target,
            purpose="dry-run",
            attempt=attempt,
            retry_token=builder.retry_token,
        )
    elif current is not None and observed.revisions and current in (*observed.revisions, BASE):
        way = direction(str(current), target, observed.revisions)
        if way == "none":
            builder.status.pop("retry", None)
            return builder.decide(
                Verdict("ready", "AtTargetRevision", f"the database is at revision {current}")
            )
        intent = JobIntent(
            action="migrate" if way == "migrate" else "rollback",
            target_revision=target,
            attempt=attempt,
            retry_token=builder.retry_token,
            allow_data_loss=spec.allow_data_loss and way == "rollback",
        )
    elif target == BASE:
        intent = JobIntent(
            action="rollback",
            target_revision=BASE,
            attempt=attempt,
            retry_token=builder.retry_token,
            allow_data_loss=spec.allow_data_loss,
        )
    else:
        intent = JobIntent(
            action="migrate",
            target_revision=target,
            attempt=attempt,
            retry_token=builder.retry_token,
        )
    if intent_like is not None and intent_like.purpose == intent.purpose:
        intent = replace(intent, attempt=attempt)
    # Only a Job to start waits for the database: a resource already at its target stays Ready
    # while other Jobs (an Organization's seed, say) use the same database.
    if observed.database_busy_with:
        return builder.decide(
            Verdict(
                "reconciling",
                "WaitingForDatabase",
                f"Job {observed.database_busy_with} is running on the same database",
            ),
            requeue_after=builder.settings.resync_seconds,
        )
    if observed.secret_exists is None:
        return builder.decide(
            Verdict("reconciling", "CheckingSecret", "looking for the database Secret"),
            needs_secret_check=True,
        )
    if not observed.secret_exists:
        return _secret_missing(builder, spec)
    builder.status.pop("secretChecks", None)
    return _create(builder, spec, intent)


def _secret_missing(builder: _Builder, spec: SchemaMigrationSpec) -> Decision:
    settings = builder.settings
    checks = dict(builder.status.get("secretChecks") or {})
    due = _parse_time(checks.get("nextCheckAt"))
    count = int(checks.get("count") or 0)
    # Counted with backoff up to the bound; after it, still looked at every resync (the
    # Secret is picked up within 30 seconds) but status is no longer rewritten each time.
    if count < settings.max_attempts and (due is None or builder.now >= due):
        count += 1
        delay = retry_delay(
            count, base_seconds=settings.retry_base_seconds, cap_seconds=settings.retry_cap_seconds
        )
        due = builder.now + timedelta(seconds=delay)
        checks = {"count": count, "nextCheckAt": _iso(due)}
    if count >= settings.max_attempts:
        checks = {"count": count}
    builder.status["secretChecks"] = checks
    what = (
        f"Secret {spec.database.name} (key {spec.database.key}) not found in namespace "
        f"{builder.owner.namespace}"
    )
    if count >= settings.max_attempts:
        return builder.decide(
            Verdict(
                "stalled",
                "SecretNotFound",
                f"{what} after {count} checks; create it (deploy/samples has a template); it is "
                "picked up within 30 seconds",
            ),
            requeue_after=min(settings.resync_seconds, 30.0),
        )
    return builder.decide(
        Verdict(
            "reconciling",
            "SecretNotFound",
            f"{what} (check {count} of {settings.max_attempts}); next check at "
            f"{_iso(due) if due else 'once it is due'}",
        ),
        requeue_after=min(settings.resync_seconds, 30.0),
    )


def _create(builder: _Builder, spec: SchemaMigrationSpec, intent: JobIntent) -> Decision:
    owner = builder.owner
    manifest = build_migration_job(owner, spec, intent, builder.settings)
    name = job_name(owner, intent)
    builder.status["activeJob"] = name
    builder.events.append(Event("Normal", "JobCreated", f"Job {name}: {_command_text(intent)}"))
    return builder.decide(
        Verdict(
            "reconciling",
            "JobStarting",
            f"starting Job {name}: {_command_text(intent)}"
            + (f" (attempt {intent.attempt})" if intent.attempt > 1 else ""),
        ),
        job=manifest,
    )


def database_label(resource: Mapping[str, Any]) -> str | None:
    """The database label of a resource's Jobs, or None when its spec is invalid."""
    try:
        spec = parse_schema_migration_spec(resource.get("spec"))
    except SpecError:
        return None
    namespace = str((resource.get("metadata") or {}).get("namespace"))
    return database_key(namespace, spec)

"""The controller's pure parts without a server: spec checks, Job manifests, outcomes,
conditions and the reconciler's decisions, table-driven."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rayces.controller.conditions import Verdict, build_conditions
from rayces.controller.jobs import JobIntent, Owner, build_migration_job, job_name
from rayces.controller.outcomes import JobState, PodState, job_state, read_outcome, retry_delay
from rayces.controller.schemamigration import (
    HISTORY_LIMIT,
    Decision,
    Observed,
    ObservedJob,
    Peer,
    complete_dry_run,
    reconcile,
    redact,
    resolve_revision,
)
from rayces.controller.settings import OperatorSettings, settings_from_environment
from rayces.controller.specs import SpecError, parse_schema_migration_spec
from rayces.migrations.results import DroppedData, ErrorInfo, ErrorKind, MigrationResult

REVISIONS = ("r1", "r2", "r3", "r4")
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = OperatorSettings(retry_base_seconds=10, retry_cap_seconds=300, max_attempts=4)
OWNER_UID = "0d5c2f1e-aaaa-bbbb-cccc-123456789abc"


def resource(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "booking",
            "namespace": "raycesv3",
            "uid": OWNER_UID,
            "generation": generation,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": annotations or {},
        },
        "spec": {
            "database": {"urlSecretRef": {"name": "db", "key": "DATABASE_URL"}},
            "targetRevision": "head",
            **(spec or {}),
        },
        "status": status or {},
    }


def finished_job(
    intent: JobIntent,
    *,
    exit_code: int,
    result: MigrationResult | None,
    generation: int = 1,
    name: str | None = None,
    finished_at: datetime = NOW - timedelta(seconds=1),
    recorded: bool = False,
) -> ObservedJob:
    owner = Owner("booking", "raycesv3", OWNER_UID, generation)
    message = json.dumps(result.to_dict()) if result is not None else ""
    return ObservedJob(
        name=name or job_name(owner, intent),
        generation=generation,
        intent=intent,
        created_at=f"2026-01-01T00:00:{intent.attempt:02d}Z",
        recorded=recorded,
        state=JobState(
            name=name or job_name(owner, intent),
            active=False,
            succeeded=exit_code == 0,
            failed=exit_code != 0,
        ),
        pods=(
            PodState(
                name="pod",
                phase="Succeeded" if exit_code == 0 else "Failed",
                exit_code=exit_code,
                termination_message=message,
                finished_at=finished_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ),
        ),
    )


def result(
    from_revision: str | None, to_revision: str | None, kind: ErrorKind | None = None
) -> MigrationResult:
    error = None
    if kind is not None:
        error = ErrorInfo(kind=kind, message=f"{kind} happened", revision=to_revision)
    return MigrationResult(
        command="upgrade",
        from_revision=from_revision,
        to_revision=to_revision,
        target_revision="r4",
        error=error,
    )


def decide(observed_resource: dict[str, Any], *jobs: ObservedJob, **changes: Any) -> Decision:
    observed = Observed(
        resource=observed_resource,
        jobs=tuple(jobs),
        secret_exists=changes.pop("secret_exists", True),
        revisions=changes.pop("revisions", REVISIONS),
        now=changes.pop("now", NOW),
        **changes,
    )
    return reconcile(observed, changes.pop("settings", SETTINGS))


def ready(decision: Decision) -> dict[str, Any]:
    return next(c for c in decision.status["conditions"] if c["type"] == "Ready")


def true_condition(decision: Decision) -> tuple[str, str]:
    """(type, reason) of the condition that is True; Ready/False when none is."""
    for item in decision.status["conditions"]:
        if item["status"] == "True":
            return str(item["type"]), str(item["reason"])
    return "none", str(ready(decision)["reason"])


# ---------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(
            {"timeouts": {"lockWaitTimeoutSeconds": 60}, "job": {"activeDeadlineSeconds": 60}},
            "timeouts.lockWaitTimeoutSeconds",
            id="lock-wait-not-shorter-than-deadline",
        ),
        pytest.param(
            {"timeouts": {"statementTimeout": "2h"}, "job": {"activeDeadlineSeconds": 3600}},
            "timeouts.statementTimeout",
            id="statement-timeout-beyond-deadline",
        ),
        pytest.param(
            {"database": {"urlSecretRef": {"name": "Upper"}}},
            "database.urlSecretRef.name",
            id="secret-name",
        ),
        pytest.param(
            {"database": {"urlSecretRef": {"name": "db", "key": "a/b"}}},
            "database.urlSecretRef.key",
            id="secret-key",
        ),
        pytest.param({"targetRevision": ""}, "targetRevision", id="empty-target"),
        pytest.param({"dryRun": "yes"}, "dryRun", id="dry-run-not-boolean"),
        pytest.param({"database": "db"}, "database", id="database-not-object"),
    ],
)
def test_specs_the_crd_cannot_refuse_are_refused_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_schema_migration_spec(resource(spec)["spec"])
    assert raised.value.field == field
    assert str(raised.value).startswith(f"spec.{field}: ")


def test_a_valid_spec_reads_with_defaults() -> None:
    spec = parse_schema_migration_spec(resource({"allowDataLoss": True})["spec"])
    assert spec.database.key == "DATABASE_URL"
    assert spec.allow_data_loss is True
    assert spec.job.active_deadline_seconds == 3600
    assert spec.lock_wait_timeout_seconds == 60


# ---------------------------------------------------------------- Jobs


def test_the_job_is_deterministic_restricted_and_holds_no_secret() -> None:
    spec = parse_schema_migration_spec(
        resource({"job": {"backoffLimit": 2, "activeDeadlineSeconds": 900}})["spec"]
    )
    owner = Owner("booking", "raycesv3", OWNER_UID, 3)
    intent = JobIntent(action="migrate", target_revision="r4")
    job = build_migration_job(owner, spec, intent, SETTINGS)
    assert job == build_migration_job(owner, spec, intent, SETTINGS)
    assert job["metadata"]["name"] == job_name(owner, intent)
    assert len(job["metadata"]["name"]) <= 63
    assert job_name(owner, JobIntent("migrate", "r4", attempt=2)) != job["metadata"]["name"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == OWNER_UID
    assert job["metadata"]["labels"]["rayces.io/generation"] == "3"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 900
    assert job["spec"]["ttlSecondsAfterFinished"] == SETTINGS.job_ttl_seconds
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {
            "containerName": "raycesctl",
            "operator": "In",
            "values": [1, 2, 5, 6, 7, 8],
        },
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    container = pod["containers"][0]
    assert container["command"][:4] == ["raycesctl", "migrate", "--to", "r4"]
    assert "--termination-message-path" in container["command"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["env"][0]["valueFrom"] == {
        "secretKeyRef": {"name": "db", "key": "DATABASE_URL"}
    }
    assert "value" not in container["env"][0]


@pytest.mark.parametrize(
    ("allow", "flag"),
    [
        pytest.param(True, True, id="allowed-passes-the-flag"),
        pytest.param(False, False, id="not-allowed-no-flag"),
    ],
)
def test_allow_data_loss_becomes_the_rollback_flag(allow: bool, flag: bool) -> None:
    spec = parse_schema_migration_spec(resource({"allowDataLoss": allow})["spec"])
    owner = Owner("booking", "raycesv3", OWNER_UID, 1)
    intent = JobIntent("rollback", "r2", allow_data_loss=spec.allow_data_loss)
    command = build_migration_job(owner, spec, intent, SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    assert ("--allow-data-loss" in command) is flag


# ---------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    ("state", "exit_code", "message", "kind", "retryable"),
    [
        pytest.param("Failed", 1, None, ErrorKind.MIGRATION_FAILED, False, id="exit-1-no-json"),
        pytest.param("Failed", 3, None, ErrorKind.CONNECTION, True, id="exit-3-no-json"),
        pytest.param("Failed", 5, None, ErrorKind.DATA_LOSS_REFUSED, False, id="exit-5"),
        pytest.param("Failed", 143, None, ErrorKind.INTERRUPTED, True, id="sigterm"),
        pytest.param("Failed", 42, None, ErrorKind.INTERNAL, False, id="unknown-exit"),
        pytest.param("Failed", 1, "not json", ErrorKind.MIGRATION_FAILED, False, id="bad-json"),
        pytest.param(
            "Failed",
            4,
            json.dumps(result("r1", "r1", ErrorKind.LOCK_TIMEOUT).to_dict()),
            ErrorKind.LOCK_TIMEOUT,
            True,
            id="json-lock-timeout",
        ),
    ],
)
def test_outcomes_from_exit_code_and_termination_message(
    state: str, exit_code: int, message: str | None, kind: ErrorKind, retryable: bool
) -> None:
    job = JobState(name="j", active=False, succeeded=False, failed=True)
    pod = PodState(name="p", phase=state, exit_code=exit_code, termination_message=message)
    outcome = read_outcome(job, [pod])
    assert outcome.error is not None
    assert outcome.error.kind == kind
    assert outcome.retryable is retryable


def test_a_deadline_is_an_interruption_worth_a_retry() -> None:
    job = JobState(
        name="j", active=False, succeeded=False, failed=True, failure_reason="DeadlineExceeded"
    )
    outcome = read_outcome(job, [])
    assert outcome.error is not None and outcome.error.kind == ErrorKind.INTERRUPTED
    assert "activeDeadlineSeconds" in outcome.error.message


def test_a_failed_job_whose_pod_is_gone_ends_when_it_was_marked_failed() -> None:
    """A deleted Pod takes its finish time along; the retry's backoff counts from the Job's
    Failed condition (a failed Job has no completionTime), so the retry comes due."""
    job = job_state(
        {
            "metadata": {"name": "j"},
            "status": {
                "startTime": "2026-01-01T11:59:00Z",
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "lastTransitionTime": "2026-01-01T11:59:30Z",
                    }
                ],
            },
        }
    )
    outcome = read_outcome(job, [])
    assert outcome.finished_at == "2026-01-01T11:59:30Z"
    assert outcome.error is not None and outcome.error.retryable


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [
        pytest.param(1, 10, id="first"),
        pytest.param(2, 20, id="doubles"),
        pytest.param(5, 160, id="fifth"),
        pytest.param(6, 300, id="capped"),
        pytest.param(99, 300, id="far-capped"),
    ],
)
def test_retry_delay_is_exponential_and_capped_at_five_minutes(attempt: int, seconds: int) -> None:
    assert retry_delay(attempt, base_seconds=10, cap_seconds=300) == seconds


# ---------------------------------------------------------------- conditions


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    first = build_conditions(None, Verdict("reconciling", "JobRunning", "a"), 1, "T1")
    second = build_conditions(first, Verdict("reconciling", "JobRunning", "b"), 1, "T2")
    third = build_conditions(second, Verdict("ready", "AtTargetRevision", "c"), 1, "T3")
    by_type = {item["type"]: item for item in second}
    assert by_type["Reconciling"]["lastTransitionTime"] == "T1"
    assert by_type["Reconciling"]["message"] == "b"
    after = {item["type"]: item for item in third}
    assert after["Ready"]["lastTransitionTime"] == "T3"
    assert after["Reconciling"]["lastTransitionTime"] == "T3"
    assert after["Stalled"]["lastTransitionTime"] == "T1"
    assert all(item["observedGeneration"] == 1 for item in third)


# ---------------------------------------------------------------- the reconciler


def test_a_new_resource_gets_one_migrate_job() -> None:
    decision = decide(resource())
    assert decision.job is not None
    assert decision.job["spec"]["template"]["spec"]["containers"][0]["command"][1:4] == [
        "migrate",
        "--to",
        "r4",
    ]
    assert true_condition(decision) == ("Reconciling", "JobStarting")
    assert decision.status["observedGeneration"] == 1
    assert [event.reason for event in decision.events] == ["JobCreated", "JobStarting"]


def test_the_secret_is_looked_at_before_a_job_is_made() -> None:
    decision = decide(resource(), secret_exists=None)
    assert decision.needs_secret_check is True
    assert decision.job is None


def test_reconciling_twice_gives_the_same_decision() -> None:
    job = finished_job(JobIntent("migrate", "r4"), exit_code=0, result=result(None, "r4"))
    first = decide(resource(), job)
    again = decide(resource(status=first.status), job)
    assert again.status == first.status
    assert again.job is None
    assert again.events == ()


def test_a_finished_job_is_recorded_once_with_history_bounded() -> None:
    history = [{"job": f"old-{index}"} for index in range(HISTORY_LIMIT)]
    job = finished_job(JobIntent("migrate", "r4"), exit_code=0, result=result("r1", "r4"))
    decision = decide(resource(status={"history": history}), job)
    assert decision.record_jobs == (job.name,)
    assert len(decision.status["history"]) == HISTORY_LIMIT
    assert decision.status["history"][-1]["job"] == job.name
    assert decision.status["currentRevision"] == "r4"
    assert decision.status["lastRun"]["fromRevision"] == "r1"
    assert true_condition(decision) == ("Ready", "AtTargetRevision")
    assert ready(decision)["status"] == "True"


def test_at_the_target_already_a_new_generation_needs_no_job() -> None:
    status = {"currentRevision": "r4", "observedGeneration": 1}
    decision = decide(resource(status=status, generation=2))
    assert decision.job is None
    assert ready(decision)["status"] == "True"
    assert decision.status["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("current", "target", "action"),
    [
        pytest.param("r2", "r4", "migrate", id="raise"),
        pytest.param("r4", "r2", "rollback", id="lower"),
        pytest.param("r4", "base", "rollback", id="to-base"),
        pytest.param("base", "head", "migrate", id="from-base"),
    ],
)
def test_direction_comes_from_the_revision_chain(current: str, target: str, action: str) -> None:
    decision = decide(resource({"targetRevision": target}, status={"currentRevision": current}))
    assert decision.job is not None
    assert decision.job["metadata"]["labels"]["rayces.io/action"] == action


def test_an_unknown_revision_is_stalled_without_a_job() -> None:
    decision = decide(resource({"targetRevision": "r9"}))
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "UnknownRevision")


def test_an_invalid_spec_is_stalled_not_raised() -> None:
    decision = decide(resource({"database": {"urlSecretRef": {"name": "Bad_Name"}}}))
    assert true_condition(decision) == ("Stalled", "InvalidSpec")
    assert "spec.database.urlSecretRef.name" in ready(decision)["message"]


def test_the_second_resource_on_a_database_is_stalled_naming_the_first() -> None:
    peers = (
        Peer("older", "uid-older", "2025-12-31T00:00:00Z", "db", "DATABASE_URL"),
        Peer("other-db", "uid-x", "2025-12-30T00:00:00Z", "db", "OTHER_KEY"),
    )
    decision = decide(resource(), peers=peers)
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "DatabaseClaimed")
    assert "SchemaMigration older" in ready(decision)["message"]


def test_a_job_of_another_resource_on_the_database_makes_it_wait() -> None:
    decision = decide(resource(), database_busy_with="smig-other")
    assert decision.job is None
    assert true_condition(decision) == ("Reconciling", "WaitingForDatabase")


def test_a_resource_at_its_target_stays_ready_while_another_job_uses_the_database() -> None:
    status = {"currentRevision": "r4", "observedGeneration": 1}
    decision = decide(
        resource({"targetRevision": "r4"}, status=status), database_busy_with="org-seed"
    )
    assert decision.job is None
    assert true_condition(decision) == ("Ready", "AtTargetRevision")


def test_a_running_job_is_adopted_not_duplicated() -> None:
    intent = JobIntent("migrate", "r4")
    job = finished_job(intent, exit_code=0, result=None)
    running = ObservedJob(
        name=job.name,
        generation=1,
        intent=intent,
        created_at="2026",
        recorded=False,
        state=JobState(name=job.name, active=True, succeeded=False, failed=False),
    )
    decision = decide(resource(), running)
    assert decision.job is None
    assert decision.status["activeJob"] == job.name
    assert true_condition(decision) == ("Reconciling", "JobRunning")


def test_a_transient_failure_schedules_a_retry_with_backoff() -> None:
    job = finished_job(
        JobIntent("migrate", "r4"), exit_code=3, result=result("r1", "r1", ErrorKind.CONNECTION)
    )
    decision = decide(resource(), job)
    assert decision.job is None
    assert true_condition(decision) == ("Reconciling", "RetryScheduled")
    assert "next attempt at 2026-01-01T12:00:09Z" in ready(decision)["message"]
    assert decision.status["retry"]["backoffSeconds"] == 10
    assert decision.requeue_after == pytest.approx(9)
    later = decide(resource(status=decision.status), job, now=NOW + timedelta(seconds=10))
    assert later.job is not None
    assert later.job["metadata"]["annotations"]["rayces.io/intent"].count('"attempt":2') == 1


def test_a_job_stopped_before_it_read_the_database_leaves_the_current_revision() -> None:
    """A Pod deleted while raycesctl started: the interrupted result knows no revision (not
    base), so currentRevision stays what it was, and the run is retried."""
    unknown = MigrationResult(
        command="upgrade",
        from_revision=None,
        to_revision=None,
        target_revision=None,
        error=ErrorInfo(kind=ErrorKind.INTERRUPTED, message="interrupted by SIGTERM"),
        revisions_known=False,
    )
    read_back = MigrationResult.from_termination_message(unknown.to_json())
    assert read_back.revisions_known is False
    job = finished_job(JobIntent("migrate", "r4"), exit_code=143, result=unknown)
    decision = decide(resource(status={"currentRevision": "r2"}), job)
    assert decision.status["currentRevision"] == "r2"
    assert true_condition(decision) == ("Reconciling", "RetryScheduled")
    known = finished_job(
        JobIntent("migrate", "r4"), exit_code=143, result=result("r2", "r3", ErrorKind.INTERRUPTED)
    )
    assert (
        decide(resource(status={"currentRevision": "r2"}), known).status["currentRevision"] == "r3"
    )


def test_after_the_last_attempt_it_is_stalled() -> None:
    jobs = [
        finished_job(
            JobIntent("migrate", "r4", attempt=attempt),
            exit_code=4,
            result=result("r1", "r1", ErrorKind.LOCK_TIMEOUT),
        )
        for attempt in range(1, SETTINGS.max_attempts + 1)
    ]
    decision = decide(resource(), *jobs, now=NOW + timedelta(hours=1))
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "LockTimeout")
    assert f"gave up after {SETTINGS.max_attempts} attempts" in ready(decision)["message"]


def test_a_failed_upgrade_with_rollback_on_failure_starts_one_rollback() -> None:
    failed = finished_job(
        JobIntent("migrate", "r4"),
        exit_code=1,
        result=result("r1", "r3", ErrorKind.MIGRATION_FAILED),
    )
    decision = decide(resource({"rollbackOnFailure": True}), failed)
    assert decision.job is not None
    command = decision.job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[1:4] == ["rollback", "--to", "r1"]
    assert decision.status["rollback"]["fromRevision"] == "r3"
    assert decision.status["rollback"]["outcome"] == "Running"
    rollback_intent = JobIntent.from_annotation(
        decision.job["metadata"]["annotations"]["rayces.io/intent"]
    )
    assert rollback_intent is not None
    rolled_back = finished_job(rollback_intent, exit_code=0, result=result("r3", "r1"))
    done = decide(
        resource({"rollbackOnFailure": True}, status=decision.status), failed, rolled_back
    )
    assert done.job is None
    assert true_condition(done) == ("Stalled", "MigrationFailed")
    assert done.status["rollback"]["outcome"] == "Succeeded"
    assert done.status["currentRevision"] == "r1"
    assert "rolled back to r1" in ready(done)["message"]


def test_the_rollback_status_says_what_it_dropped_and_why_that_was_safe() -> None:
    failed = finished_job(
        JobIntent("migrate", "r4"),
        exit_code=1,
        result=result("r1", "r3", ErrorKind.MIGRATION_FAILED),
    )
    dropped = (
        DroppedData("table organizations", 1, "every row was written by the upgrade run from r1"),
        DroppedData("column users.organization_id", 240, "written by the run"),
    )
    report = dataclasses.replace(result("r3", "r1"), dropped=dropped)
    rollback = finished_job(
        JobIntent("rollback", "r1", purpose="rollback-on-failure"),
        exit_code=0,
        # as the controller reads it: through the termination message
        result=MigrationResult.from_termination_message(report.termination_message()),
    )
    decision = decide(resource({"rollbackOnFailure": True}), failed, rollback)
    status = decision.status["rollback"]
    assert status["outcome"] == "Succeeded"
    assert status["dropped"] == [
        {
            "object": "table organizations",
            "rows": 1,
            "reason": "every row was written by the upgrade run from r1",
        },
        {"object": "column users.organization_id", "rows": 240, "reason": "written by the run"},
    ]
    assert status["message"].startswith(
        "rolled back to r1; dropped table organizations (1 rows), column users.organization_id "
        "(240 rows): every row in them was written by the failed upgrade itself"
    )


def test_rails_adoption_and_versions_only_rails_knows_are_reported() -> None:
    report = dataclasses.replace(
        result(None, "r2"), adopted_from_rails="r1", rails_only_versions=("20990101000000",)
    )
    job = finished_job(JobIntent("migrate", "r2"), exit_code=0, result=report)
    decision = decide(resource({"targetRevision": "r2"}), job)
    assert decision.status["lastRun"]["adoption"] == "adopted from Rails at r1"
    assert decision.status["lastRun"]["railsOnlyVersions"] == ["20990101000000"]
    warnings = [event for event in decision.events if event.reason == "RailsOnlyVersions"]
    assert len(warnings) == 1
    assert warnings[0].type == "Warning"
    assert "20990101000000" in warnings[0].message


def test_a_failed_rollback_is_reported_and_never_retried() -> None:
    failed = finished_job(
        JobIntent("migrate", "r4"),
        exit_code=1,
        result=result("r1", "r3", ErrorKind.MIGRATION_FAILED),
    )
    rollback = finished_job(
        JobIntent("rollback", "r1", purpose="rollback-on-failure"),
        exit_code=3,
        result=result("r3", "r3", ErrorKind.CONNECTION),
    )
    decision = decide(
        resource({"rollbackOnFailure": True}), failed, rollback, now=NOW + timedelta(hours=1)
    )
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "RollbackFailed")
    assert decision.status["rollback"]["outcome"] == "Failed"


def test_nothing_to_roll_back_when_the_database_did_not_move() -> None:
    failed = finished_job(
        JobIntent("migrate", "r4"),
        exit_code=1,
        result=result("r2", "r2", ErrorKind.MIGRATION_FAILED),
    )
    decision = decide(resource({"rollbackOnFailure": True}), failed)
    assert decision.job is None
    assert decision.status["rollback"]["outcome"] == "NotNeeded"
    assert true_condition(decision) == ("Stalled", "MigrationFailed")


def test_data_loss_refused_is_stalled_until_the_spec_allows_it() -> None:
    intent = JobIntent("rollback", "r2")
    refused = finished_job(
        intent,
        exit_code=5,
        result=MigrationResult(
            command="downgrade",
            from_revision="r4",
            to_revision="r4",
            target_revision="r2",
            error=ErrorInfo(
                kind=ErrorKind.DATA_LOSS_REFUSED,
                message="would drop credit_balances (12 rows)",
                hint="pass --allow-data-loss",
            ),
        ),
    )
    status = {"currentRevision": "r4"}
    decision = decide(resource({"targetRevision": "r2"}, status=status), refused)
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "DataLossRefused")
    assert "credit_balances (12 rows)" in ready(decision)["message"]
    assert "spec.allowDataLoss: true" in ready(decision)["message"]
    allowed = decide(
        resource(
            {"targetRevision": "r2", "allowDataLoss": True}, status=decision.status, generation=2
        ),
        refused,
    )
    assert allowed.job is not None
    assert (
        "--allow-data-loss" in allowed.job["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def test_a_first_migrate_refused_above_the_target_turns_into_a_rollback() -> None:
    # A new resource does not know the database's revision: its first Job is `migrate`, which
    # refuses to go down and reports where the database is.
    refused = finished_job(
        JobIntent("migrate", "r2"), exit_code=2, result=result("r4", "r4", ErrorKind.USAGE)
    )
    decision = decide(resource({"targetRevision": "r2"}), refused)
    assert decision.status["currentRevision"] == "r4"
    assert decision.job is not None
    assert decision.job["metadata"]["labels"]["rayces.io/action"] == "rollback"
    assert true_condition(decision) == ("Reconciling", "JobStarting")


def test_a_usage_error_not_explained_by_the_revision_still_stalls() -> None:
    refused = finished_job(
        JobIntent("migrate", "r4"), exit_code=2, result=result("r1", "r1", ErrorKind.USAGE)
    )
    decision = decide(resource(), refused)
    assert decision.job is None
    assert true_condition(decision) == ("Stalled", "InvalidInvocation")


def test_the_retry_annotation_starts_a_stalled_resource_again_and_is_echoed() -> None:
    failed = finished_job(
        JobIntent("migrate", "r4"),
        exit_code=1,
        result=result("r1", "r1", ErrorKind.MIGRATION_FAILED),
    )
    stalled = decide(resource(), failed)
    assert true_condition(stalled) == ("Stalled", "MigrationFailed")
    same = decide(resource(status=stalled.status), failed)
    assert same.job is None
    retried = decide(
        resource(status=stalled.status, annotations={"rayces.io/retry": "now"}), failed
    )
    assert retried.job is not None
    assert retried.status["observedRetry"] == "now"
    assert retried.job["metadata"]["name"] != failed.name


def test_a_missing_secret_is_checked_with_backoff_then_stalled() -> None:
    status: dict[str, Any] = {}
    now = NOW
    reasons = []
    for _ in range(SETTINGS.max_attempts):
        decision = decide(resource(status=status), secret_exists=False, now=now)
        reasons.append(true_condition(decision))
        assert decision.job is None
        assert decision.requeue_after is not None and decision.requeue_after <= 30
        status = decision.status
        now += timedelta(hours=1)
    assert reasons[0] == ("Reconciling", "SecretNotFound")
    assert reasons[-1] == ("Stalled", "SecretNotFound")
    # Given up: looked at again, but the status (and so the API) is left alone.
    again = decide(resource(status=status), secret_exists=False, now=now)
    assert again.status == status
    assert again.events == ()
    found = decide(resource(status=status), secret_exists=True, now=now)
    assert found.job is not None


def test_a_job_deleted_before_it_finished_is_retried_after_a_backoff() -> None:
    status = {"observedGeneration": 1, "activeJob": "smig-gone"}
    decision = decide(resource(status=status))
    assert decision.job is None
    assert decision.status["retry"]["reason"] == "JobDeleted"
    assert decision.events[0].reason == "JobDeleted"
    later = decide(resource(status=decision.status), now=NOW + timedelta(minutes=1))
    assert later.job is not None
    assert '"attempt":2' in later.job["metadata"]["annotations"]["rayces.io/intent"]


def test_a_dry_run_inspects_then_asks_for_the_plan_then_is_ready() -> None:
    decision = decide(resource({"dryRun": True}))
    assert decision.job is not None
    assert decision.job["spec"]["template"]["spec"]["containers"][0]["command"][1] == (
        "current-revision"
    )
    intent = JobIntent.from_annotation(decision.job["metadata"]["annotations"]["rayces.io/intent"])
    assert intent is not None
    inspected = finished_job(intent, exit_code=0, result=result("r2", "r2"))
    planning = decide(resource({"dryRun": True}, status=decision.status), inspected)
    assert planning.dry_run is not None
    assert (planning.dry_run.from_revision, planning.dry_run.to_revision) == ("r2", "r4")
    status = complete_dry_run(
        planning,
        job=inspected.name,
        config_map=planning.dry_run.config_map,
        from_revision="r2",
        to_revision="r4",
        size_bytes=2_000_000,
        stored_bytes=900_000,
        revisions=2,
    )
    assert status["dryRun"]["truncated"] is True
    done = decide(resource({"dryRun": True}, status=status), inspected)
    assert done.job is None and done.dry_run is None
    assert true_condition(done) == ("Ready", "DryRunPlanned")
    assert "truncated" in ready(done)["message"]


def test_suspended_starts_nothing() -> None:
    decision = decide(resource({"suspend": True}))
    assert decision.job is None
    assert true_condition(decision) == ("none", "Suspended")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "cannot connect to postgresql://app:hunter2@db:5432/x",
            "cannot connect to postgresql://***@db:5432/x",
            id="url",
        ),
        pytest.param("no url here", "no url here", id="plain"),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_messages_in_status_never_carry_a_password() -> None:
    leaky = MigrationResult(
        command="upgrade",
        from_revision=None,
        to_revision=None,
        target_revision=None,
        error=ErrorInfo(
            kind=ErrorKind.CONNECTION,
            message="connection to postgresql://app:hunter2@db/x failed",
        ),
    )
    job = finished_job(JobIntent("migrate", "r4"), exit_code=3, result=leaky)
    decision = decide(resource(), job)
    text = json.dumps(decision.status) + json.dumps([event.message for event in decision.events])
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param("head", "r4", id="head"),
        pytest.param("base", "base", id="base"),
        pytest.param("r2", "r2", id="exact"),
        pytest.param("r9", None, id="unknown"),
    ],
)
def test_resolve_revision(target: str, expected: str | None) -> None:
    assert resolve_revision(target, REVISIONS) == expected


def test_settings_are_read_once_from_the_environment() -> None:
    settings = settings_from_environment({"RAYCES_RETRY_CAP_SECONDS": "60"})
    assert settings.retry_cap_seconds == 60
    with pytest.raises(ValueError, match="RAYCES_MAX_ATTEMPTS"):
        settings_from_environment({"RAYCES_MAX_ATTEMPTS": "zero"})

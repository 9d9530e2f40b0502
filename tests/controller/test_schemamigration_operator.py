"""SchemaMigration end to end: kubectl, the operator as its ServiceAccount, Jobs on the emulated
node running the real raycesctl against a real PostgreSQL database.

Each test uses its own database and Secret, and deletes its resource afterwards.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from tests.controller.operator_support import (
    BASELINE,
    DEPLOY_DIR,
    NAMESPACE,
    TEST_SETTINGS,
    Cluster,
    OperatorProcess,
    applied,
    baseline_with_duplicate_emails,
    database_contents,
    database_revision,
    eventually,
    free_port,
    head_revision,
    kubectl,
    migration_lock_held,
    raycesctl,
    relation_exists,
    revisions,
    schema_migration,
    shipped_schema_migration,
    unique,
)

from rayces.migrations.embedded import temporary_database


def test_samples_reach_ready_at_head(
    operator_cluster: Cluster, postgres_server_url: str, tmp_path: Path
) -> None:
    with temporary_database(postgres_server_url, prefix="sample") as url:
        secret = (DEPLOY_DIR / "samples" / "database-secret.yaml").read_text()
        secret = secret.replace("postgresql://USER:PASSWORD@HOST:5432/DATABASE", url)
        kubeconfig = operator_cluster.plane.kubeconfig
        kubectl(kubeconfig, "apply", "-f", "-", stdin=secret)
        kubectl(kubeconfig, "apply", "-f", str(DEPLOY_DIR / "samples" / "schemamigration.yaml"))
        try:
            kubectl(
                kubeconfig,
                "-n",
                NAMESPACE,
                "wait",
                "--for=condition=Ready",
                "schemamigration/booking",
                "--timeout=240s",
            )
            status = operator_cluster.status("booking")
            assert database_revision(url) == head_revision()
            assert status["currentRevision"] == head_revision()
            assert status["lastRun"]["outcome"] == "Succeeded"
            assert status["lastRun"]["toRevision"] == head_revision()
            assert len(status["lastRun"]["steps"]) == len(revisions())
            printed = kubectl(
                kubeconfig, "-n", NAMESPACE, "get", "schemamigration", "booking"
            ).stdout
            assert head_revision() in printed and "AtTargetRevision" in printed
        finally:
            operator_cluster.delete("booking")


def test_a_failing_revision_is_rolled_back_and_reported(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("failing"), unique("db")
    with temporary_database(postgres_server_url, prefix="failing") as url:
        baseline_with_duplicate_emails(url)
        before = database_contents(url)
        operator_cluster.secret(secret, url)
        # The sample as shipped: rollbackOnFailure, no allowDataLoss. The rollback drops the
        # organizations and the organization columns, which hold only what the failed run wrote.
        with applied(operator_cluster, shipped_schema_migration(name, secret)):
            status = operator_cluster.wait_for(name, "Stalled", "MigrationFailed", timeout=300)
            assert database_revision(url) == BASELINE
            assert database_contents(url) == before
            assert status["currentRevision"] == BASELINE
            rollback = status["rollback"]
            assert rollback["attempted"] is True
            assert rollback["outcome"] == "Succeeded"
            assert rollback["fromRevision"] == "20250713000004"
            assert rollback["toRevision"] == BASELINE
            dropped = {item["object"]: item["rows"] for item in rollback["dropped"]}
            assert dropped["table organizations"] == 1
            assert dropped["column users.organization_id"] == 62
            assert "written by the failed upgrade itself" in rollback["message"]
            failed = [run for run in status["history"] if run["purpose"] == "apply"][-1]
            assert failed["outcome"] == "Failed"
            assert failed["exitCode"] == 1
            assert failed["error"]["kind"] == "migration_failed"
            assert failed["error"]["revision"] == "20250713000005"
            assert "twin@example.test" in failed["error"]["message"]
            stalled = operator_cluster.condition(name, "Stalled")
            assert "20250713000005" in stalled["message"]
            assert f"rolled back to {BASELINE}" in stalled["message"]
            assert operator_cluster.condition(name, "Ready")["status"] == "False"
            assert operator_cluster.job_actions(name) == ["migrate", "rollback"]
            reasons = {event["reason"] for event in operator_cluster.events_of(name)}
            assert {"JobCreated", "JobFailed", "JobSucceeded", "MigrationFailed"} <= reasons
            # Stalled means given up: no third Job, however long we look.
            time.sleep(5)
            assert len(operator_cluster.jobs_of(name)) == 2


def test_lowering_the_target_downgrades_and_raising_it_upgrades(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("downgrade"), unique("db")
    with temporary_database(postgres_server_url, prefix="downgrade") as url:
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(name, secret, "20250718000014")):
            operator_cluster.wait_for(name, "Ready")
            assert database_revision(url) == "20250718000014"
            # Empty tables go down freely (credit tables and rules hold no rows).
            operator_cluster.apply(schema_migration(name, secret, "20250713000011"))
            status = operator_cluster.wait_for(name, "Ready")
            assert database_revision(url) == "20250713000011"
            assert status["lastRun"]["action"] == "rollback"
            assert [step["direction"] for step in status["lastRun"]["steps"]] == ["downgrade"] * 3
            # Same revision, other spec: Ready without a Job.
            jobs = len(operator_cluster.jobs_of(name))
            operator_cluster.apply(
                schema_migration(name, secret, "20250713000011", timeouts={"lockTimeout": "9s"})
            )
            operator_cluster.wait_for(name, "Ready")
            assert len(operator_cluster.jobs_of(name)) == jobs


def test_a_downgrade_that_would_drop_rows_is_refused_until_allowed(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("dataloss"), unique("db")
    with temporary_database(postgres_server_url, prefix="dataloss") as url:
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(name, secret, "20250713000011")):
            operator_cluster.wait_for(name, "Ready")
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(
                    "INSERT INTO organizations (name, subdomain) VALUES ('Clinic', 'clinic')"
                )
                connection.execute(
                    "INSERT INTO roles (organization_id, name) "
                    "SELECT id, 'admin' FROM organizations WHERE subdomain = 'clinic'"
                )
            # Lowered to ...0009: the downgrade drops user_roles (empty) and roles (one row).
            operator_cluster.apply(schema_migration(name, secret, "20250713000009"))
            status = operator_cluster.wait_for(name, "Stalled", "DataLossRefused", timeout=240)
            assert database_revision(url) == "20250713000011"
            assert status["lastRun"]["exitCode"] == 5
            assert status["lastRun"]["error"]["kind"] == "data_loss_refused"
            message = operator_cluster.condition(name, "Stalled")["message"]
            assert "roles" in message
            assert "allowDataLoss" in message
            assert operator_cluster.condition(name, "Ready")["status"] == "False"
            assert sorted(operator_cluster.job_actions(name)) == ["migrate", "rollback"]
            # Given up: no further Job until the spec changes.
            time.sleep(5)
            assert len(operator_cluster.jobs_of(name)) == 2
            operator_cluster.apply(
                schema_migration(name, secret, "20250713000009", allowDataLoss=True)
            )
            status = operator_cluster.wait_for(name, "Ready", timeout=240)
            assert database_revision(url) == "20250713000009"
            assert status["currentRevision"] == "20250713000009"
            assert status["lastRun"]["action"] == "rollback"
            assert sorted(operator_cluster.job_actions(name)) == ["migrate", "rollback", "rollback"]
            assert not relation_exists(url, "roles")


def test_a_dry_run_stores_the_sql_and_changes_nothing(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("dryrun"), unique("db")
    with temporary_database(postgres_server_url, prefix="dryrun") as url:
        result = raycesctl("migrate", "--to", "20250713000004", "--database-url", url, "-q")
        assert result.returncode == 0, result.stderr
        before = schema_fingerprint(url)
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(name, secret, dryRun=True)):
            status = operator_cluster.wait_for(name, "Ready", "DryRunPlanned")
            assert database_revision(url) == "20250713000004"
            assert schema_fingerprint(url) == before
            dry_run = status["dryRun"]
            assert dry_run["fromRevision"] == "20250713000004"
            assert dry_run["toRevision"] == head_revision()
            assert dry_run["truncated"] is False
            config_map = operator_cluster.config_map(dry_run["configMap"])
            sql = config_map["data"]["plan.sql"]
            assert "ALTER TABLE users" in sql
            assert "CREATE TABLE professionals" in sql
            assert "CREATE TABLE organizations" not in sql  # already applied
            assert config_map["metadata"]["ownerReferences"][0]["name"] == name
            assert dry_run["sizeBytes"] == dry_run["storedBytes"] > 1000
            assert url.split("@")[0] not in json.dumps(status)
            actions = operator_cluster.job_actions(name)
            assert actions == ["inspect"]


def test_a_dry_run_too_large_for_a_config_map_is_truncated_and_says_so(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    # The test operator keeps at most RAYCES_DRY_RUN_MAX_BYTES (44,000) of SQL: more than
    # the upgrade from ...0004 (about 38,500 bytes), less than the whole upgrade (about 49,500).
    limit = int(TEST_SETTINGS["RAYCES_DRY_RUN_MAX_BYTES"])
    name, secret = unique("bigplan"), unique("db")
    with temporary_database(postgres_server_url, prefix="bigplan") as url:
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(name, secret, dryRun=True)):
            status = operator_cluster.wait_for(name, "Ready", "DryRunPlanned")
            dry_run = status["dryRun"]
            assert dry_run["fromRevision"] == "base"
            assert dry_run["truncated"] is True
            assert dry_run["storedBytes"] <= limit < dry_run["sizeBytes"]
            assert "truncated" in operator_cluster.condition(name, "Ready")["message"]
            data = operator_cluster.config_map(dry_run["configMap"])["data"]
            assert data["truncated"] == "true"
            assert f"truncated to {dry_run['storedBytes']} bytes" in data["plan.sql"]
            assert database_revision(url) is None


def test_a_missing_secret_is_picked_up_when_it_appears(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("nosecret"), unique("db")
    with (
        temporary_database(postgres_server_url, prefix="nosecret") as url,
        applied(operator_cluster, schema_migration(name, secret)),
    ):
        # Checked with backoff, then Stalled, and still picked up by itself.
        operator_cluster.wait_for(name, "Stalled", "SecretNotFound", timeout=120)
        assert secret in operator_cluster.condition(name, "Stalled")["message"]
        steps = [
            (event["type"], event["message"])
            for event in operator_cluster.events_of(name)
            if event["reason"] == "SecretNotFound"
        ]
        assert any(kind == "Normal" and "check 1 of 3" in text for kind, text in steps), steps
        assert any(kind == "Warning" and "after 3 checks" in text for kind, text in steps), steps
        assert operator_cluster.jobs_of(name) == []
        appeared = time.monotonic()
        operator_cluster.secret(secret, url)
        eventually("a Job after the Secret appeared", lambda: operator_cluster.jobs_of(name), 30)
        assert time.monotonic() - appeared <= 30
        status = operator_cluster.wait_for(name, "Ready")
        assert database_revision(url) == head_revision()
        assert status["targetRevision"] == "head"


def test_a_job_deleted_by_hand_is_replaced_after_a_backoff(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("deleted"), unique("db")
    with (
        temporary_database(postgres_server_url, prefix="deleted") as url,
        applied(
            operator_cluster,
            schema_migration(name, secret, timeouts={"lockWaitTimeoutSeconds": 600}),
        ),
    ):
        operator_cluster.secret(secret, url)
        with migration_lock_held(url):
            first = eventually("a running Job", lambda: operator_cluster.job_names(name))[0]
            operator_cluster.wait_for(name, "Reconciling", "JobRunning")
            client.BatchV1Api(operator_cluster.api).delete_namespaced_job(
                first, NAMESPACE, propagation_policy="Foreground"
            )
            deleted = eventually(
                "a JobDeleted event",
                lambda: [
                    event
                    for event in operator_cluster.events_of(name)
                    if event["reason"] == "JobDeleted"
                ],
            )
            assert first in deleted[0]["message"]
            eventually(
                "a second Job",
                lambda: [job for job in operator_cluster.job_names(name) if job != first],
            )
            assert len(operator_cluster.job_names(name)) == 1
        status = operator_cluster.wait_for(name, "Ready")
        assert status["lastRun"]["attempt"] == 2
        assert database_revision(url) == head_revision()


def test_the_retry_annotation_restarts_a_stalled_resource(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("retry"), unique("db")
    with temporary_database(postgres_server_url, prefix="retry") as url:
        baseline_with_duplicate_emails(url)
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(name, secret)):
            operator_cluster.wait_for(name, "Stalled", "MigrationFailed", timeout=240)
            assert database_revision(url) == "20250713000004"
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("UPDATE users SET email = 'other@example.test' WHERE name = 'b'")
            kubectl(
                operator_cluster.plane.kubeconfig,
                "-n",
                NAMESPACE,
                "annotate",
                f"schemamigration/{name}",
                "rayces.io/retry=fixed-emails",
            )
            status = operator_cluster.wait_for(name, "Ready", timeout=240)
            assert status["observedRetry"] == "fixed-emails"
            assert database_revision(url) == head_revision()


def test_a_restarted_operator_adopts_the_job_and_records_its_result(
    operator_cluster: Cluster, running_operator: OperatorProcess, postgres_server_url: str
) -> None:
    name, secret = unique("restart"), unique("db")
    with temporary_database(postgres_server_url, prefix="restart") as url:
        operator_cluster.secret(secret, url)
        with applied(
            operator_cluster,
            schema_migration(name, secret, timeouts={"lockWaitTimeoutSeconds": 600}),
        ):
            with migration_lock_held(url):
                operator_cluster.wait_for(name, "Reconciling", "JobRunning")
                running_operator.kill()
            # The Job finishes while no operator runs.
            eventually(
                "the Job to finish",
                lambda: operator_cluster.jobs_of(name)[0].get("status", {}).get("succeeded") == 1,
            )
            assert operator_cluster.condition(name, "Ready")["status"] == "False"
            running_operator.start()
            status = operator_cluster.wait_for(name, "Ready")
            jobs = operator_cluster.jobs_of(name)
            assert len(jobs) == 1
            assert status["lastRun"]["job"] == jobs[0]["metadata"]["name"]
            assert status["currentRevision"] == head_revision()
            assert jobs[0]["metadata"]["labels"]["rayces.io/recorded"] == "true"


def test_two_resources_on_one_database_the_second_is_stalled(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    first, second, secret = unique("first"), unique("second"), unique("db")
    with temporary_database(postgres_server_url, prefix="twice") as url:
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, schema_migration(first, secret)):
            operator_cluster.wait_for(first, "Ready")
            with applied(operator_cluster, schema_migration(second, secret, "20250713000001")):
                operator_cluster.wait_for(second, "Stalled", "DatabaseClaimed")
                message = operator_cluster.condition(second, "Stalled")["message"]
                assert f"SchemaMigration {first}" in message
                assert operator_cluster.jobs_of(second) == []
            assert database_revision(url) == head_revision()


def test_transient_failures_back_off_then_stall(operator_cluster: Cluster) -> None:
    name, secret = unique("unreachable"), unique("db")
    # Nothing listens on this port: raycesctl exits 3 (cannot connect), a transient failure.
    closed_port = free_port()
    password_url = f"postgresql://rayces:s3cret-password@127.0.0.1:{closed_port}/nowhere"
    operator_cluster.secret(secret, password_url)
    with applied(
        operator_cluster,
        schema_migration(name, secret, timeouts={"lockWaitTimeoutSeconds": 5}),
    ):
        status = operator_cluster.wait_for(name, "Stalled", "DatabaseUnreachable", timeout=240)
        assert "gave up after 3 attempts" in operator_cluster.condition(name, "Stalled")["message"]
        assert [run["attempt"] for run in status["history"]] == [1, 2, 3]
        assert all(run["exitCode"] == 3 for run in status["history"])
        scheduled = [
            event["message"]
            for event in operator_cluster.events_of(name)
            if event["reason"] == "RetryScheduled"
        ]
        # The Reconciling message said what failed and when the next attempt comes.
        assert scheduled, "no RetryScheduled event"
        for attempt, backoff in ((1, 5), (2, 10)):
            assert any(
                f"attempt {attempt} of 3 failed: cannot connect" in message
                and f"(backoff {backoff}s)" in message
                and "next attempt at" in message
                for message in scheduled
            ), scheduled
        # The attempts were spaced by the doubling backoff (5 s, then 10 s, in these tests).
        runs = status["history"]
        for earlier, later, backoff in ((runs[0], runs[1], 5), (runs[1], runs[2], 10)):
            gap = datetime.fromisoformat(later["startedAt"]) - datetime.fromisoformat(
                earlier["finishedAt"]
            )
            assert gap.total_seconds() >= backoff, (earlier, later)
        # No secret anywhere the operator writes: status, events, Job specs.
        events = " ".join(event.get("message", "") for event in operator_cluster.events_of(name))
        jobs = json.dumps(operator_cluster.jobs_of(name))
        for text in (json.dumps(status), events, jobs):
            assert "s3cret-password" not in text


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        pytest.param(
            {"timeouts": {"lockWaitTimeoutSeconds": 600}, "job": {"activeDeadlineSeconds": 300}},
            "InvalidSpec",
            "spec.timeouts.lockWaitTimeoutSeconds",
            id="lock-wait-longer-than-the-deadline",
        ),
        pytest.param(
            {"timeouts": {"statementTimeout": "2h"}, "job": {"activeDeadlineSeconds": 600}},
            "InvalidSpec",
            "spec.timeouts.statementTimeout",
            id="statement-timeout-longer-than-the-deadline",
        ),
        pytest.param(
            {"database": {"urlSecretRef": {"name": "Not_A_Secret"}}},
            "InvalidSpec",
            "spec.database.urlSecretRef.name",
            id="secret-name-not-a-dns-name",
        ),
        pytest.param(
            {"targetRevision": "20990101000000"},
            "UnknownRevision",
            "20990101000000",
            id="unknown-revision",
        ),
    ],
)
def test_a_spec_the_crd_accepts_but_the_operator_cannot_act_on_is_stalled(
    operator_cluster: Cluster, spec: dict[str, Any], reason: str, words: str
) -> None:
    name = unique("invalid")
    manifest = schema_migration(name, unique("db"))
    manifest["spec"].update(spec)
    with applied(operator_cluster, manifest):
        operator_cluster.wait_for(name, "Stalled", reason)
        assert words in operator_cluster.condition(name, "Stalled")["message"]
        assert operator_cluster.jobs_of(name) == []
    # The operator is still serving.
    assert operator_cluster.plane is not None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param({"targetRevision": "not a revision!"}, "spec.targetRevision", id="revision"),
        pytest.param({"database": {}}, "spec.database.urlSecretRef", id="no-secret-ref"),
        pytest.param({"job": {"backoffLimit": 11}}, "spec.job.backoffLimit", id="backoff-limit"),
        pytest.param(
            {"timeouts": {"lockTimeout": "5 seconds"}}, "spec.timeouts.lockTimeout", id="duration"
        ),
        pytest.param({"allowDataLoss": "yes"}, "spec.allowDataLoss", id="allow-data-loss-type"),
        pytest.param({"dryRun": 1}, "spec.dryRun", id="dry-run-type"),
    ],
)
def test_kubectl_apply_refuses_what_the_crd_can_refuse(
    operator_cluster: Cluster, spec: dict[str, Any], words: str
) -> None:
    manifest = schema_migration(unique("refused"), "db")
    manifest["spec"].update(spec)
    answer = kubectl(
        operator_cluster.plane.kubeconfig,
        "apply",
        "-f",
        "-",
        stdin=json.dumps(manifest),
        check=False,
    )
    assert answer.returncode != 0
    assert words in answer.stderr


def schema_fingerprint(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]

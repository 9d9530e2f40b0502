"""The Organization reconciler without a server: schema waits, the seed queue, subdomain claims,
results read back, and a schema that moves on; table-driven."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rayces.controller.jobs import OrganizationIntent, organization_arguments
from rayces.controller.organization import (
    FINALIZER,
    SEED_REVISION,
    WAITING_FOR_SLOT,
    OrganizationDecision,
    OrganizationJob,
    OrganizationObserved,
    OrganizationPeer,
    reconcile_organization,
    seed_revision_reached,
)
from rayces.controller.outcomes import JobState, PodState
from rayces.controller.settings import OperatorSettings, settings_from_environment
from rayces.controller.specs import SpecError, parse_organization_spec

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = OperatorSettings(seed_jobs_per_database=2)
CHAIN = ("20240606034427", "20250718000016", SEED_REVISION, "20250801000018")
UID = "11111111-2222-3333-4444-555555555555"


def organization(
    *,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    created: str = "2026-01-01T00:00:05Z",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "acme",
            "namespace": "raycesv3",
            "uid": UID,
            "generation": generation,
            "creationTimestamp": created,
            "finalizers": [FINALIZER],
        },
        "spec": {
            "subdomain": "acme",
            "displayName": "Acme",
            "schemaMigrationRef": {"name": "booking"},
            **spec,
        },
        "status": status or {},
    }


def migration(ready: bool = True, revision: str | None = SEED_REVISION) -> dict[str, Any]:
    return {
        "metadata": {"name": "booking", "generation": 3},
        "spec": {"database": {"urlSecretRef": {"name": "db"}}, "targetRevision": "head"},
        "status": {
            "observedGeneration": 3,
            "currentRevision": revision,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "AtTargetRevision" if ready else "JobRunning",
                    "message": "" if ready else "Job smig-1 runs raycesctl migrate",
                }
            ],
        },
    }


REFUSED = {
    "kind": "precondition_failed",
    "retryable": False,
    "message": "organization acme (id 7) already exists and is owned by no Organization "
    f"resource, not {UID}; nothing was changed",
    "hint": 'annotate the Organization with rayces.io/adopt-existing: "true" (raycesctl: '
    "--adopt) to adopt a row no resource owns, or choose another subdomain",
}


def seed_job(
    *,
    succeeded: bool = True,
    created: bool = True,
    generation: int = 1,
    name: str = "org-1",
    error: dict[str, Any] | None = None,
    intent: OrganizationIntent | None = None,
) -> OrganizationJob:
    result = {
        "schema_version": 1,
        "command": "seed",
        "status": "succeeded" if succeeded else "failed",
        "organization": "acme",
        "organization_id": 7,
        "changed": True,
        "organization_created": created,
    }
    if not succeeded:
        result["error"] = error or {
            "kind": "connection",
            "retryable": True,
            "message": "could not connect",
            "hint": "",
        }
    return OrganizationJob(
        name=name,
        generation=generation,
        intent=intent or OrganizationIntent(action="seed"),
        created_at="2026-01-01T00:01:00Z",
        state=JobState(name=name, active=False, succeeded=succeeded, failed=not succeeded),
        pods=(
            PodState(
                name=f"{name}-pod",
                phase="Succeeded" if succeeded else "Failed",
                exit_code=0 if succeeded else (8 if error else 3),
                termination_message=json.dumps(result),
                finished_at="2026-01-01T11:59:58Z",
            ),
        ),
    )


def peer(
    name: str, created: str, *, waiting: bool = False, subdomain: str = ""
) -> OrganizationPeer:
    return OrganizationPeer(
        name=name,
        uid=f"uid-{name}",
        created_at=created,
        subdomain=subdomain or name,
        schema_migration="booking",
        waiting_for_slot=waiting,
    )


def decide(resource: dict[str, Any], **observed: Any) -> OrganizationDecision:
    observed.setdefault("migration", migration())
    return reconcile_organization(
        OrganizationObserved(resource=resource, revisions=CHAIN, now=NOW, **observed), SETTINGS
    )


def conditions(decision: OrganizationDecision) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in decision.status["conditions"]}


def phase(decision: OrganizationDecision) -> tuple[str, str]:
    found = conditions(decision)
    for kind in ("Stalled", "Reconciling", "Ready"):
        if found[kind]["status"] == "True":
            return kind, found[kind]["reason"]
    return "None", found["Ready"]["reason"]


@pytest.mark.parametrize(
    ("observed", "expected", "words"),
    [
        pytest.param(
            {"migration": None},
            ("Reconciling", "SchemaMigrationNotFound"),
            "SchemaMigration booking",
            id="missing",
        ),
        pytest.param(
            {"migration": migration(ready=False)},
            ("Reconciling", "WaitingForSchema"),
            "to be Ready",
            id="not-ready",
        ),
        pytest.param(
            {"migration": migration(revision="20250718000016")},
            ("Reconciling", "WaitingForSchema"),
            SEED_REVISION,
            id="too-old",
        ),
        pytest.param(
            {"migration": migration(revision="20250801000018")},
            ("Reconciling", "Checking"),
            "other Organizations",
            id="later-revision-is-enough",
        ),
    ],
)
def test_seeding_waits_for_a_ready_schema_saying_what_for(
    observed: dict[str, Any], expected: tuple[str, str], words: str
) -> None:
    decision = decide(organization(), **observed)
    assert phase(decision) == expected
    assert words in conditions(decision)["Reconciling"]["message"]
    assert decision.job is None


@pytest.mark.parametrize(
    ("peers", "active", "created", "expected_job"),
    [
        pytest.param((), (), True, True, id="free"),
        pytest.param((), ("org-a", "org-b"), False, False, id="all-slots-taken"),
        pytest.param(
            (peer("early", "2026-01-01T00:00:01Z", waiting=True),),
            ("org-a",),
            False,
            False,
            id="one-ahead-takes-the-last-slot",
        ),
        pytest.param(
            (peer("late", "2026-01-01T00:00:09Z", waiting=True),),
            ("org-a",),
            True,
            True,
            id="one-behind-waits-for-us",
        ),
    ],
)
def test_at_most_n_seed_jobs_per_database_in_order(
    peers: tuple[OrganizationPeer, ...],
    active: tuple[str, ...],
    created: bool,
    expected_job: bool,
) -> None:
    decision = decide(organization(), peers=peers, active_seeds=active)
    assert (decision.job is not None) == expected_job
    if not expected_job:
        assert phase(decision) == ("Reconciling", WAITING_FOR_SLOT)
        assert "at most 2 seed Jobs run at once" in conditions(decision)["Reconciling"]["message"]
        assert decision.waiting_for_slot


def test_the_seed_job_carries_the_spec_and_the_schema_migrations_secret() -> None:
    decision = decide(
        organization(timeZone="Europe/Madrid", suspended=True, seed={"roles": ["a", "b"]}),
        peers=(),
    )
    assert decision.job is not None
    container = decision.job["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:4] == ["raycesctl", "seed", "--org", "acme"]
    assert command[6:8] == ["--time-zone", "Europe/Madrid"]
    assert "--suspended" in command and "a,b" in command
    assert command[-3:] == ["json", "--termination-message-path", "/dev/termination-log"]
    secret = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "db", "key": "DATABASE_URL"}
    assert decision.job["metadata"]["ownerReferences"][0]["kind"] == "Organization"


def test_a_seed_result_fills_status_and_a_new_schema_target_does_not_reseed() -> None:
    seeded = decide(organization(), jobs=(seed_job(),))
    assert phase(seeded) == ("Ready", "Seeded")
    assert seeded.status["organizationId"] == 7
    assert seeded.status["seededAt"] == "2026-01-01T11:59:58Z"
    assert conditions(seeded)["Seeded"]["status"] == "True"
    again = organization(status=seeded.status)
    moving = decide(again, jobs=(seed_job(),), migration=migration(ready=False))
    assert phase(moving) == ("Reconciling", "SchemaNotReady")
    assert conditions(moving)["SchemaReady"]["status"] == "False"
    assert conditions(moving)["Seeded"]["status"] == "True"
    moved = decide(
        organization(status=moving.status),
        jobs=(seed_job(),),
        migration=migration(revision="20250801000018"),
    )
    assert phase(moved) == ("Ready", "Seeded") and moved.job is None
    changed = decide(organization(generation=2, status=moved.status), jobs=(seed_job(),), peers=())
    assert changed.job is not None, "a spec change re-runs the seed"


def test_a_seed_refused_for_ownership_is_stalled_subdomain_taken_without_retrying() -> None:
    refused = seed_job(succeeded=False, error=REFUSED)
    decision = decide(organization(), jobs=(refused,), peers=())
    assert phase(decision) == ("Stalled", "SubdomainTaken")
    message = conditions(decision)["Stalled"]["message"]
    assert "owned by no Organization resource" in message
    assert 'rayces.io/adopt-existing: "true"' in message
    assert decision.job is None and "retry" not in decision.status
    assert conditions(decision)["Seeded"]["status"] == "False"
    # a connection failure with the same shape is retried, not SubdomainTaken
    transient = decide(organization(), jobs=(seed_job(succeeded=False),), peers=())
    assert phase(transient) == ("Reconciling", "RetryScheduled")


@pytest.mark.parametrize(
    ("annotations", "adopt"),
    [
        pytest.param({"rayces.io/adopt-existing": "true"}, True, id="adopt-annotation"),
        pytest.param({"rayces.io/retry": "1"}, False, id="retry-annotation"),
    ],
)
def test_after_a_refusal_an_annotation_starts_a_new_seed(
    annotations: dict[str, str], adopt: bool
) -> None:
    resource = organization()
    resource["metadata"]["annotations"] = annotations
    refused = seed_job(succeeded=False, error=REFUSED)
    decision = decide(resource, jobs=(refused,), peers=())
    assert decision.job is not None
    command = decision.job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--owner") + 1] == UID
    assert ("--adopt" in command) is adopt


def test_a_seeded_organization_claims_its_row_with_adopt() -> None:
    """A row seeded before owners were recorded is claimed, not refused, on the next seed."""
    seeded = decide(organization(), jobs=(seed_job(),))
    changed = decide(organization(generation=2, status=seeded.status), jobs=(seed_job(),), peers=())
    assert changed.job is not None
    command = changed.job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--adopt" in command


def test_a_subdomain_held_by_an_earlier_organization_is_stalled_naming_it() -> None:
    decision = decide(
        organization(), peers=(peer("first", "2026-01-01T00:00:01Z", subdomain="acme"),)
    )
    assert phase(decision) == ("Stalled", "SubdomainTaken")
    assert "Organization first" in conditions(decision)["Stalled"]["message"]


def test_a_transient_seed_failure_is_retried_after_a_backoff() -> None:
    decision = decide(organization(), jobs=(seed_job(succeeded=False),))
    assert phase(decision) == ("Reconciling", "RetryScheduled")
    assert decision.requeue_after is not None and decision.requeue_after > 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"timeZone": "Mars/Base"}, "timeZone", id="zone"),
        pytest.param({"timeZone": "../etc/passwd"}, "timeZone", id="zone-path"),
        pytest.param({"displayName": " "}, "displayName", id="blank-name"),
        pytest.param({"seed": {"roles": ["a,b"]}}, "seed.roles", id="comma-role"),
        pytest.param({"deletionPolicy": "Shred"}, "deletionPolicy", id="policy"),
    ],
)
def test_specs_the_controller_refuses(spec: dict[str, Any], field: str) -> None:
    body = organization(**spec)["spec"]
    with pytest.raises(SpecError) as refused:
        parse_organization_spec(body)
    assert refused.value.field == field
    decision = decide(organization(**spec))
    assert phase(decision) == ("Stalled", "InvalidSpec") and decision.job is None


@pytest.mark.parametrize(
    ("status", "deleting_with", "expected"),
    [
        pytest.param({"organizationId": 7}, "Retain", "Retained", id="retain"),
        pytest.param({}, "Delete", "Released", id="never-seeded"),
    ],
)
def test_deletion_releases_without_a_job_when_nothing_is_to_be_done(
    status: dict[str, Any], deleting_with: str, expected: str
) -> None:
    resource = organization(status=status, deletionPolicy=deleting_with)
    resource["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    decision = decide(resource)
    assert decision.finalizer == "remove" and decision.job is None
    assert [event.reason for event in decision.events] == [expected]


def test_deletion_after_the_schema_migration_went_keeps_the_rows_and_says_so() -> None:
    resource = organization(status={"organizationId": 7}, deletionPolicy="Delete")
    resource["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    decision = decide(resource, migration=None)
    assert decision.finalizer == "remove"
    assert decision.events[0].reason == "SchemaMigrationGone"
    assert "tenant purge --org acme" in decision.events[0].message


def test_purge_arguments_force_only_when_asked() -> None:
    spec = parse_organization_spec(organization(forceDeleteWithBalances=True)["spec"])
    forced = organization_arguments(spec, OrganizationIntent(action="purge"))
    assert forced[:6] == ["raycesctl", "tenant", "purge", "--org", "acme", "--yes"]
    assert "--force-with-balances" in forced
    plain = parse_organization_spec(organization()["spec"])
    assert "--force-with-balances" not in organization_arguments(
        plain, OrganizationIntent(action="purge")
    )


@pytest.mark.parametrize(
    ("current", "reached"),
    [
        pytest.param(None, False, id="base"),
        pytest.param("20250718000016", False, id="before"),
        pytest.param(SEED_REVISION, True, id="at"),
        pytest.param("20250801000018", True, id="after"),
    ],
)
def test_seed_revision_reached(current: str | None, reached: bool) -> None:
    assert seed_revision_reached(current, CHAIN) is reached


def test_the_seed_slot_setting_is_read_from_the_environment() -> None:
    assert settings_from_environment({}).seed_jobs_per_database == 4
    assert (
        settings_from_environment({"RAYCES_SEED_JOBS_PER_DATABASE": "9"}).seed_jobs_per_database
        == 9
    )


def test_the_seed_revision_is_a_revision_of_the_scripts() -> None:
    versions = Path(__file__).resolve().parents[2] / "alembic" / "versions"
    assert [path.name for path in versions.glob(f"{SEED_REVISION}_*.py")]


def test_handed_on_seed_jobs_are_remembered_once_and_boundedly() -> None:
    from kubernetes import client

    from rayces.controller.cluster import SchemaMigrationCluster
    from rayces.controller.kubeapi import KubeApi
    from rayces.controller.organization_cluster import HANDED_ON_MEMORY, OrganizationCluster

    api = KubeApi(client.ApiClient())
    cluster = OrganizationCluster(
        api=api, settings=SETTINGS, migrations=SchemaMigrationCluster(api=api, settings=SETTINGS)
    )
    assert cluster.first_end("db", "seed-0") == []
    assert cluster.first_end("db", "seed-0") is None  # a finished Job's second event
    for number in range(1, HANDED_ON_MEMORY + 10):
        cluster.first_end("db", f"seed-{number}")
    assert len(cluster.handed_on) == HANDED_ON_MEMORY
    assert "seed-0" not in cluster.handed_on

"""Organization end to end: kubectl, the operator as its ServiceAccount, seed/archive/purge Jobs
on the emulated node running the real raycesctl against a real PostgreSQL database.

Each test uses its own database, Secret and SchemaMigration, and deletes what it made.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import random
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import psycopg
import pytest
from kubernetes import client
from tests.controller.operator_support import (
    DEPLOY_DIR,
    NAMESPACE,
    Cluster,
    OperatorProcess,
    Organizations,
    applied,
    eventually,
    kubectl,
    organization,
    raycesctl,
    row,
    schema_migration,
    unique,
)
from tests.controller.test_health import kstatus_binary, kstatus_of, lua_health

from rayces.migrations.embedded import temporary_database

__all__ = ["kstatus_binary"]  # the fixture, shared with test_health

GROUP, VERSION, PLURAL = "rayces.io", "v1alpha1", "organizations"


@contextlib.contextmanager
def schema(cluster: Cluster, url: str, *, name: str | None = None) -> Iterator[str]:
    """A Secret and a SchemaMigration at head on `url`, Ready, deleted afterwards."""
    migration, secret = name or unique("schema"), unique("db")
    cluster.secret(secret, url)
    with applied(cluster, schema_migration(migration, secret)):
        cluster.wait_for(migration, "Ready", timeout=300)
        yield migration


def test_samples_two_tenants_end_to_end(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    kubeconfig = operator_cluster.plane.kubeconfig
    with temporary_database(postgres_server_url, prefix="orgsample") as url:
        secret = (DEPLOY_DIR / "samples" / "database-secret.yaml").read_text()
        secret = secret.replace("postgresql://USER:PASSWORD@HOST:5432/DATABASE", url)
        kubectl(kubeconfig, "apply", "-f", "-", stdin=secret)
        kubectl(kubeconfig, "apply", "-f", str(DEPLOY_DIR / "samples" / "schemamigration.yaml"))
        for sample in ("organization.yaml", "second-organization.yaml"):
            kubectl(kubeconfig, "apply", "-f", str(DEPLOY_DIR / "samples" / sample))
        try:
            kubectl(
                kubeconfig,
                "-n",
                NAMESPACE,
                "wait",
                "--for=condition=Ready",
                "organization",
                "--all",
                "--timeout=300s",
            )
            printed = kubectl(kubeconfig, "-n", NAMESPACE, "get", "org").stdout
            header = printed.splitlines()[0].split()
            assert header[:5] == ["NAME", "SUBDOMAIN", "ID", "READY", "REASON"], printed
            for name in ("acme-therapy", "riverside-clinic"):
                line = next(line for line in printed.splitlines() if line.startswith(name))
                assert "True" in line and "Seeded" in line, printed
                status = (organizations.get(name) or {})["status"]
                assert isinstance(status["organizationId"], int)
                assert status["seededAt"] and status["job"].startswith("org-")
                for kind in ("SchemaReady", "Seeded"):
                    assert organizations.condition(name, kind)["status"] == "True"
            assert row(url, "acme-therapy") == (
                "Acme Therapy Center",
                "active",
                "America/Argentina/Buenos_Aires",
            )
            assert row(url, "riverside") == ("Riverside Clinic", "active", "Europe/Madrid")
            verified = raycesctl("verify", "--database-url", url, "--output", "json")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert json.loads(verified.stdout)["status"] == "succeeded"
        finally:
            for name in ("acme-therapy", "riverside-clinic"):
                organizations.delete(name)
            for name in ("acme-therapy", "riverside-clinic"):
                organizations.gone(name)
            operator_cluster.delete("booking")


def test_time_zone_and_suspension_reseed_and_each_deletion_policy(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    with (
        temporary_database(postgres_server_url, prefix="orgpolicy") as url,
        schema(operator_cluster, url) as migration,
    ):
        names = {policy: unique(policy.lower()) for policy in ("Retain", "Archive", "Delete")}
        try:
            for policy, name in names.items():
                operator_cluster.apply(organization(name, migration, deletionPolicy=policy))
            for name in names.values():
                organizations.wait_for(name, "Ready", "Seeded")
            retained = names["Retain"]
            first = (organizations.get(retained) or {})["status"]
            changed = organization(retained, migration, deletionPolicy="Retain")
            changed["spec"]["timeZone"] = "Asia/Tokyo"
            changed["spec"]["suspended"] = True
            operator_cluster.apply(changed)
            second = organizations.wait_for(retained, "Ready", "Seeded")
            assert second["job"] != first["job"]
            assert second["organizationId"] == first["organizationId"]
            assert row(url, retained) == (retained.title(), "suspended", "Asia/Tokyo")

            for name in names.values():
                organizations.delete(name)
            for name in names.values():
                organizations.gone(name)
            assert row(url, names["Retain"]) is not None
            archived = row(url, names["Archive"])
            assert archived is not None and archived[1] == "archived"
            assert row(url, names["Delete"]) is None
            purged = [
                event
                for event in organizations.events(names["Delete"])
                if event["reason"] == "Purged"
            ]
            assert purged and "organizations 1" in purged[0]["message"], purged
        finally:
            for name in names.values():
                organizations.delete(name)


def test_an_organization_waits_for_its_schema_migration(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    name, migration = unique("early"), unique("later")
    with temporary_database(postgres_server_url, prefix="orgearly") as url:
        operator_cluster.apply(organization(name, migration))
        try:
            waiting = organizations.wait_for(name, "Reconciling", "SchemaMigrationNotFound")
            ready = {c["type"]: c for c in waiting["conditions"]}
            assert migration in ready["Reconciling"]["message"]
            assert ready["SchemaReady"]["status"] == "False"
            with schema(operator_cluster, url, name=migration):
                status = organizations.wait_for(name, "Ready", "Seeded")
                assert row(url, name) is not None
                assert status["organizationId"] >= 1
        finally:
            organizations.delete(name)
            organizations.gone(name)


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        pytest.param({"timeZone": "Mars/Olympus_Mons"}, "InvalidSpec", "IANA", id="time-zone"),
        pytest.param({"displayName": "   "}, "InvalidSpec", "blank", id="blank-name"),
    ],
)
def test_a_spec_the_operator_refuses_is_stalled_without_a_job(
    operator_cluster: Cluster, spec: dict[str, Any], reason: str, words: str
) -> None:
    organizations = Organizations(operator_cluster)
    name = unique("bad")
    operator_cluster.apply(organization(name, "nowhere", **spec))
    try:
        status = organizations.wait_for(name, "Stalled", reason, timeout=120)
        stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
        assert words in stalled["message"]
        assert "job" not in status
    finally:
        organizations.delete(name)
        organizations.gone(name)


def test_a_subdomain_taken_by_another_organization_is_stalled_naming_it(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    first, second = unique("first"), unique("second")
    with (
        temporary_database(postgres_server_url, prefix="orgtaken") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            operator_cluster.apply(organization(first, migration, subdomain=first))
            organizations.wait_for(first, "Ready", "Seeded")
            operator_cluster.apply(organization(second, migration, subdomain=first))
            status = organizations.wait_for(second, "Stalled", "SubdomainTaken")
            message = {c["type"]: c for c in status["conditions"]}["Stalled"]["message"]
            assert first in message
        finally:
            for name in (first, second):
                organizations.delete(name)
            for name in (first, second):
                organizations.gone(name)


def full_row(url: str, subdomain: str) -> tuple[Any, ...]:
    """Every column of the organizations row, as the database holds it."""
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT id, name, subdomain, status, time_zone, settings::text, created_at, "
            "updated_at, xmin::text FROM organizations WHERE subdomain = %s",
            (subdomain,),
        ).fetchone()
    assert found is not None
    return tuple(found)


def test_an_existing_row_no_resource_owns_is_stalled_unchanged_until_adopted(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    name = unique("taken")
    with (
        temporary_database(postgres_server_url, prefix="orgunowned") as url,
        schema(operator_cluster, url) as migration,
    ):
        made = raycesctl("seed", "--database-url", url, "--org", name, "--name", "Theirs")
        assert made.returncode == 0, made.stderr
        before = full_row(url, name)
        try:
            operator_cluster.apply(
                organization(
                    name, migration, displayName="Ours", timeZone="Asia/Tokyo", suspended=True
                )
            )
            status = organizations.wait_for(name, "Stalled", "SubdomainTaken")
            message = {c["type"]: c for c in status["conditions"]}["Stalled"]["message"]
            assert "no Organization resource" in message
            assert 'rayces.io/adopt-existing: "true"' in message
            assert "organizationId" not in status
            assert full_row(url, name) == before, "a refused seed changed the row"
            kubectl(
                operator_cluster.plane.kubeconfig,
                "-n", NAMESPACE, "annotate", f"organization/{name}",
                "rayces.io/adopt-existing=true",
            )  # fmt: skip
            adopted = organizations.wait_for(name, "Ready", "Seeded")
            assert adopted["organizationId"] == before[0]
            assert row(url, name) == ("Ours", "suspended", "Asia/Tokyo")
            uid = (organizations.get(name) or {})["metadata"]["uid"]
            assert json.loads(full_row(url, name)[5])["rayces.io/owner"] == uid
        finally:
            organizations.delete(name)
            organizations.gone(name)


def test_the_operator_restarted_mid_seed_finishes_it(
    operator_cluster: Cluster, running_operator: OperatorProcess, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    name = unique("restart")
    with (
        temporary_database(postgres_server_url, prefix="orgrestart") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            operator_cluster.apply(organization(name, migration))
            eventually(
                "a seed Job",
                lambda: (organizations.get(name) or {}).get("status", {}).get("job"),
            )
            running_operator.kill()
            running_operator.start()
            status = organizations.wait_for(name, "Ready", "Seeded")
            assert row(url, name) is not None
            uid = (organizations.get(name) or {})["metadata"]["uid"]
            jobs = client.BatchV1Api(operator_cluster.api).list_namespaced_job(
                NAMESPACE, label_selector=f"rayces.io/organization-uid={uid}"
            )
            assert [(job.metadata or client.V1ObjectMeta()).name for job in jobs.items] == [
                status["job"]
            ]
        finally:
            organizations.delete(name)
            organizations.gone(name)


def test_a_purge_is_refused_while_credits_are_held_until_retried_or_forced(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    held, forced = unique("held"), unique("forced")
    with (
        temporary_database(postgres_server_url, prefix="orgbalance") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            operator_cluster.apply(organization(held, migration, deletionPolicy="Delete"))
            operator_cluster.apply(
                organization(
                    forced, migration, deletionPolicy="Delete", forceDeleteWithBalances=True
                )
            )
            for name in (held, forced):
                organizations.wait_for(name, "Ready", "Seeded")
                demo = raycesctl(
                    "seed", "--org", name, "--name", name.title(), "--profile", "demo",
                    "--initial-credits", "5", "--slot-days", "1", "--database-url", url,
                )  # fmt: skip
                assert demo.returncode == 0, demo.stderr
            organizations.delete(held)
            organizations.delete(forced)
            organizations.gone(forced)
            assert row(url, forced) is None
            status = organizations.wait_for(held, "Stalled", "PurgeRefused")
            message = {c["type"]: c for c in status["conditions"]}["Stalled"]["message"]
            assert "non-zero credit balances" in message and "rayces.io/retry" in message
            assert row(url, held) is not None
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(
                    "UPDATE credit_balances SET balance = 0 WHERE organization_id = "
                    "(SELECT id FROM organizations WHERE subdomain = %s)",
                    (held,),
                )
            kubectl(
                operator_cluster.plane.kubeconfig,
                "-n", NAMESPACE, "annotate", f"organization/{held}", "rayces.io/retry=1",
            )  # fmt: skip
            organizations.gone(held)
            assert row(url, held) is None
        finally:
            for name in (held, forced):
                organizations.delete(name)


def random_spec(rng: random.Random, index: int, migration: str) -> dict[str, Any]:
    """An Organization spec the CRD schema accepts, with values chosen at random."""
    alphabet = string.ascii_letters + string.digits + " -_.,'é漢\t/"
    zones = [*rng.sample(sorted(available_timezones()), 3), "Nowhere/Land", "UTC", "", "EST5EDT"]
    spec: dict[str, Any] = {
        "subdomain": f"fz{index}-" + "".join(rng.choices(string.ascii_lowercase, k=6)),
        "displayName": "".join(rng.choices(alphabet, k=rng.randint(1, 80))),
        "timeZone": rng.choice(zones) or "Z" * rng.randint(1, 64),
        "suspended": rng.random() < 0.5,
        "schemaMigrationRef": {"name": migration},
        "deletionPolicy": rng.choice(["Retain", "Archive", "Delete"]),
    }
    seed: dict[str, Any] = {"slotDays": rng.randint(0, 366)}
    if rng.random() < 0.5:
        seed["roles"] = [
            "".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(rng.randint(0, 5))
        ]
    if rng.random() < 0.7:
        seed["initialCredits"] = rng.choice([0, 1, rng.randint(0, 2**40)])
    spec["seed"] = seed
    return spec


def test_random_valid_by_schema_specs_end_ready_or_stalled_with_a_reason(
    operator_cluster: Cluster, running_operator: OperatorProcess, postgres_server_url: str
) -> None:
    seed = int(os.environ.get("RAYCES_FUZZ_SEED", "0")) or random.randrange(1, 2**32)
    rng = random.Random(seed)
    organizations = Organizations(operator_cluster)
    names = [unique(f"fuzz{index}") for index in range(10)]
    with (
        temporary_database(postgres_server_url, prefix="orgfuzz") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            for index, name in enumerate(names):
                manifest = organization(name, migration)
                manifest["spec"] = random_spec(rng, index, migration)
                operator_cluster.apply(manifest)

            def settled(name: str) -> tuple[str, str] | None:
                found = {c["type"]: c for c in (organizations.get(name) or {}).get(
                    "status", {}).get("conditions") or []}  # fmt: skip
                for kind in ("Ready", "Stalled"):
                    if found.get(kind, {}).get("status") == "True" and found[kind]["reason"]:
                        return kind, str(found[kind]["reason"])
                return None

            ends = {
                name: eventually(
                    f"{name} Ready or Stalled (RAYCES_FUZZ_SEED={seed})",
                    functools.partial(settled, name),
                    timeout=300,
                )
                for name in names
            }
            assert running_operator.process is not None and running_operator.process.running()
            assert "Traceback" not in running_operator.log_text()
            for name, (kind, reason) in ends.items():
                spec = (organizations.get(name) or {})["spec"]
                if kind == "Ready":
                    assert row(url, spec["subdomain"]) is not None, (seed, name)
                else:
                    assert reason in ("InvalidSpec", "InvalidInvocation"), (seed, name, reason)
        finally:
            for name in names:
                with contextlib.suppress(client.ApiException):
                    retain = {"spec": {"deletionPolicy": "Retain"}}
                    client.CustomObjectsApi(operator_cluster.api).patch_namespaced_custom_object(
                        GROUP, VERSION, NAMESPACE, PLURAL, name, retain
                    )
                organizations.delete(name)
            for name in names:
                organizations.gone(name)


def test_two_operators_at_once_make_one_job_per_step(
    operator_cluster: Cluster, running_operator: OperatorProcess, postgres_server_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """deploy/ runs one replica (Recreate); should two run at once (a careless rollout), every
    Job is named from the resource and its intent, so the second create is a 409, not a Job."""
    second = OperatorProcess(
        kubeconfig=running_operator.kubeconfig, log_path=tmp_path / "second.log"
    )
    second.start()
    organizations = Organizations(operator_cluster)
    names = [unique("twin") for _ in range(3)]
    try:
        with (
            temporary_database(postgres_server_url, prefix="orgtwins") as url,
            schema(operator_cluster, url) as migration,
        ):
            try:
                for name in names:
                    operator_cluster.apply(organization(name, migration))
                for name in names:
                    organizations.wait_for(name, "Ready", "Seeded")
                    uid = (organizations.get(name) or {})["metadata"]["uid"]
                    jobs = client.BatchV1Api(operator_cluster.api).list_namespaced_job(
                        NAMESPACE, label_selector=f"rayces.io/organization-uid={uid}"
                    )
                    assert len(jobs.items) == 1, [
                        (job.metadata or client.V1ObjectMeta()).name for job in jobs.items
                    ]
                smig = operator_cluster.jobs_of(migration)
                assert len(smig) == 1, [job["metadata"]["name"] for job in smig]
                assert second.process is not None and second.process.running()
            finally:
                for name in names:
                    organizations.delete(name)
                for name in names:
                    organizations.gone(name)
    finally:
        second.stop()


def test_kstatus_and_argo_health_of_live_organizations(
    operator_cluster: Cluster, postgres_server_url: str, kstatus_binary: Path
) -> None:
    organizations = Organizations(operator_cluster)
    ready, waiting, stalled = unique("kready"), unique("kwait"), unique("kstall")
    seen: dict[str, dict[str, Any]] = {}
    with (
        temporary_database(postgres_server_url, prefix="orgkstatus") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            operator_cluster.apply(organization(ready, migration))
            operator_cluster.apply(organization(waiting, unique("absent")))
            operator_cluster.apply(organization(stalled, migration, timeZone="Nowhere/Land"))
            organizations.wait_for(ready, "Ready", "Seeded")
            seen["ready"] = organizations.get(ready) or {}
            organizations.wait_for(waiting, "Reconciling", "SchemaMigrationNotFound")
            seen["reconciling"] = organizations.get(waiting) or {}
            organizations.wait_for(stalled, "Stalled", "InvalidSpec")
            seen["stalled"] = organizations.get(stalled) or {}
        finally:
            for name in (ready, waiting, stalled):
                organizations.delete(name)
            for name in (ready, waiting, stalled):
                organizations.gone(name)
    stale = copy.deepcopy(seen["ready"])
    stale["metadata"]["generation"] += 1
    seen["not-yet-observed"] = stale
    expected = {
        "ready": ("Healthy", "Current"),
        "reconciling": ("Progressing", "InProgress"),
        "stalled": ("Degraded", "Failed"),
        "not-yet-observed": ("Progressing", "InProgress"),
    }
    for phase, obj in seen.items():
        health = lua_health("Organization", obj)["status"]
        computed = kstatus_of(kstatus_binary, obj)["status"]
        assert (health, computed) == expected[phase], (phase, obj.get("status"))


def test_at_most_four_seed_jobs_run_at_once_on_a_database_the_rest_wait_in_line(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    organizations = Organizations(operator_cluster)
    names = [f"{unique('line')}-{index}" for index in range(7)]
    batch = client.BatchV1Api(operator_cluster.api)
    most = 0
    with (
        temporary_database(postgres_server_url, prefix="orgline") as url,
        schema(operator_cluster, url) as migration,
    ):
        try:
            for name in names:
                operator_cluster.apply(organization(name, migration))

            def all_ready() -> bool | None:
                nonlocal most
                running = batch.list_namespaced_job(
                    NAMESPACE, label_selector="rayces.io/action=seed"
                ).items
                owned = [
                    job
                    for job in running
                    if ((job.metadata and job.metadata.annotations) or {}).get(
                        "rayces.io/organization"
                    )
                    in names
                    and not (job.status and (job.status.succeeded or job.status.failed))
                ]
                most = max(most, len(owned))
                ready = [organizations.condition(name, "Ready") for name in names]
                return all(item.get("reason") == "Seeded" for item in ready) or None

            eventually("seven tenants Ready", all_ready, timeout=300)
            assert 1 <= most <= 4, most
            waited = [
                event
                for name in names
                for event in organizations.events(name)
                if event["reason"] == "WaitingForSeedSlot"
            ]
            assert waited, "some Organization waited for a seed slot"
            assert "at most 4 seed Jobs run at once" in waited[0]["message"]
            assert all(row(url, name) is not None for name in names)
        finally:
            for name in names:
                organizations.delete(name)
            for name in names:
                organizations.gone(name)

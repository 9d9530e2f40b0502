"""Organizations seeded, archived and purged by Jobs on the real node: the project's image.

The operator is conftest.py's `node_operator`: Jobs of the project image, run by containerd as
uid 10001 on a read-only root, reaching the test PostgreSQL through the node's bridge. One
SchemaMigration brings one database to head for every test here (a tenant needs a schema, not
a fresh one), so each test pays only for its own seed and deletion Jobs.

The same scenarios with more detail (re-seeding, Retain, balances, the seed line) run against
the node emulator in test_organization_operator.py; these prove the image and the node keep
seeding and deletion true.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from kubernetes import client
from tests.controller.operator_support import (
    Cluster,
    OperatorProcess,
    Organizations,
    assert_pod_ran_on_the_real_node,
    assert_ran_on_the_real_node,
    organization,
    pods_of,
    row,
    schema_migration,
    terminated_pod,
    unique,
)
from tests.controlplane.harness import ControlPlane
from tests.controlplane.realnode import RealNode

from rayces.migrations.embedded import temporary_database
from rayces.migrations.results import TenantResult


@dataclass(frozen=True)
class NodeSchema:
    """A database at head and the SchemaMigration (in the node operator's namespace) of it."""

    migration: str
    url: str


@pytest.fixture(scope="module")
def node_schema(
    real_node: RealNode,
    node_operator: OperatorProcess,
    deployed: ControlPlane,
    postgres_server_url: str,
) -> Iterator[NodeSchema]:
    """One database brought to head by a SchemaMigration whose Job ran on the real node."""
    with (
        temporary_database(postgres_server_url, prefix="orgnode") as url,
        deployed.api_client() as api,
    ):
        cluster = Cluster(plane=deployed, api=api, namespace=node_operator.namespace)
        migration, secret = unique("schema"), unique("db")
        cluster.secret(secret, real_node.pod_database_url(url))
        cluster.apply(schema_migration(migration, secret, namespace=cluster.namespace))
        try:
            cluster.wait_for(migration, "Ready", timeout=300)
            yield NodeSchema(migration=migration, url=url)
        finally:
            cluster.delete(migration)


def tenant_rows(url: str, organization_id: int, tables: list[str]) -> dict[str, int]:
    """How many rows of each table belong to the tenant (by `organization_id`, or `id`)."""
    counts = {}
    with psycopg.connect(url) as connection:
        for table in tables:
            column = "id" if table == "organizations" else "organization_id"
            found = connection.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" = %s',
                (organization_id,),
            ).fetchone()
            counts[table] = int(found[0]) if found else -1
    return counts


@pytest.mark.parametrize(
    ("policy", "deletion"),
    [
        pytest.param("Delete", ("purge", "Purged"), id="delete"),
        pytest.param("Archive", ("archive", "Archived"), id="archive"),
    ],
)
def test_seeded_then_deleted_on_the_real_node(
    node_cluster: Cluster,
    real_node: RealNode,
    node_schema: NodeSchema,
    policy: str,
    deletion: tuple[str, str],
) -> None:
    """Seed Job, then the policy's Job (`action`) and its Event (`reason`), all on the node."""
    action, reason = deletion
    organizations = Organizations(node_cluster)
    name = unique(policy.lower())
    node_cluster.apply(
        organization(
            name, node_schema.migration, namespace=node_cluster.namespace, deletionPolicy=policy
        )
    )
    try:
        status = organizations.wait_for(name, "Ready", "Seeded", timeout=300)
        organization_id = status["organizationId"]
        assert isinstance(organization_id, int) and status["seededAt"]
        assert_ran_on_the_real_node(node_cluster, real_node, status["job"])
        (seed_pod,) = pods_of(node_cluster, status["job"])
        (seeded,) = seed_pod["status"]["containerStatuses"]
        assert seeded["state"]["terminated"]["exitCode"] == 0
        assert row(node_schema.url, name) == (name.title(), "active", "UTC")
        assert tenant_rows(node_schema.url, organization_id, ["organizations"]) == {
            "organizations": 1
        }

        uid = (organizations.get(name) or {})["metadata"]["uid"]
        before = client.CoreV1Api(node_cluster.api).list_namespaced_pod(node_cluster.namespace)
        organizations.delete(name)
        organizations.gone(name)
        # The Job goes with its Organization; the watch from before the deletion still saw it.
        pod = terminated_pod(
            node_cluster,
            str((before.metadata or client.V1ListMeta()).resource_version),
            label_selector=f"rayces.io/organization-uid={uid},rayces.io/action={action}",
        )
        assert_pod_ran_on_the_real_node(pod, real_node)
        (ended,) = pod["status"]["containerStatuses"]
        assert ended["state"]["terminated"]["exitCode"] == 0
        result = TenantResult.from_termination_message(ended["state"]["terminated"]["message"])
        assert (result.command, result.succeeded) == (f"tenant {action}", True)
        assert result.organization_id == organization_id

        (event,) = [event for event in organizations.events(name) if event["reason"] == reason]
        assert pod["metadata"]["labels"]["job-name"] in event["message"]
        if policy == "Archive":
            assert row(node_schema.url, name) == (name.title(), "archived", "UTC")
        else:
            assert row(node_schema.url, name) is None
            removed = dict(re.findall(r"(\w+) (\d+)", event["message"].split("rows removed:")[1]))
            assert removed["organizations"] == "1", event["message"]
            assert {table: str(count) for table, count in (result.rows_removed or {}).items()
                    if count} == removed  # fmt: skip
            assert len(removed) > 1, event["message"]  # the seeded roles and the like went too
            assert tenant_rows(node_schema.url, organization_id, sorted(removed)) == dict.fromkeys(
                removed, 0
            )
    finally:
        organizations.delete(name)
        organizations.gone(name)

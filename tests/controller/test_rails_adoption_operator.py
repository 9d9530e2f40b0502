"""A SchemaMigration on the database the Rails application made: adopted and migrated when
its schema matches Rails' `schema_migrations`, Stalled `AdoptionRefused` with each difference
when it does not, and a migration only Rails knows reported by a Warning Event. The sample
`deploy/samples/schemamigration.yaml` as shipped, on the control plane and the node emulator."""

from __future__ import annotations

import psycopg
from tests.controller.operator_support import (
    BASELINE,
    Cluster,
    applied,
    database_revision,
    head_revision,
    relation_exists,
    shipped_schema_migration,
    unique,
)
from tests.db.rails_database import make_rails_database

from rayces.migrations.embedded import temporary_database


def rails_versions(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    return [version for (version,) in rows]


def test_a_database_rails_made_is_adopted_and_migrated(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("rails"), unique("db")
    with temporary_database(postgres_server_url, prefix="rails") as url:
        make_rails_database(url)
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, shipped_schema_migration(name, secret)):
            status = operator_cluster.wait_for(name, "Ready", "AtTargetRevision", timeout=300)
            assert database_revision(url) == head_revision()
            assert status["lastRun"]["adoption"] == f"adopted from Rails at {BASELINE}"
            assert status["lastRun"]["fromRevision"] == BASELINE
            # Rails' record kept in step: every revision applied is in schema_migrations.
            assert rails_versions(url)[-1] == head_revision()
            assert "railsOnlyVersions" not in status["lastRun"]


def test_a_database_that_differs_from_its_rails_record_is_stalled_with_the_differences(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("mismatch"), unique("db")
    with temporary_database(postgres_server_url, prefix="mismatch") as url:
        make_rails_database(url, rows=False)
        with psycopg.connect(url) as connection:
            connection.execute("ALTER TABLE users DROP COLUMN uid")
            connection.execute("DROP INDEX index_likes_on_user_id")
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, shipped_schema_migration(name, secret)):
            status = operator_cluster.wait_for(name, "Stalled", "AdoptionRefused", timeout=300)
            message = operator_cluster.condition(name, "Stalled")["message"]
            assert "users.uid: missing" in message
            assert "index index_likes_on_user_id: missing" in message
            assert status["rollback"]["outcome"] == "NotNeeded"
            assert rails_versions(url) == [BASELINE]
            assert not relation_exists(url, "alembic_version")


def test_a_migration_only_rails_knows_is_reported_by_a_warning_event(
    operator_cluster: Cluster, postgres_server_url: str
) -> None:
    name, secret = unique("railsonly"), unique("db")
    later = "20990101000000"
    with temporary_database(postgres_server_url, prefix="railsonly") as url:
        make_rails_database(url, (BASELINE, later), rows=False)
        operator_cluster.secret(secret, url)
        with applied(operator_cluster, shipped_schema_migration(name, secret)):
            status = operator_cluster.wait_for(name, "Ready", "AtTargetRevision", timeout=300)
            assert status["lastRun"]["railsOnlyVersions"] == [later]
            warnings = [
                event
                for event in operator_cluster.events_of(name)
                if event["reason"] == "RailsOnlyVersions"
            ]
            assert warnings and warnings[0]["type"] == "Warning"
            assert later in warnings[0]["message"]
            assert later in rails_versions(url)

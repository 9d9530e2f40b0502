"""The offline SQL (`alembic upgrade --sql`, `raycesctl plan`) is complete and runs in psql.

Rendered without any database, piped into psql with ON_ERROR_STOP, it must build exactly the
schema the online upgrade builds, take it back down to nothing, and migrate a populated MyHub
database with the configured default organization.
"""

from __future__ import annotations

from sqlalchemy import text
from tests.db.alembic_helpers import (
    BASELINE,
    HEAD,
    catalog_snapshot,
    connect,
    current_revision,
    offline_sql,
    run_psql,
    scratch_database,
    snapshot_difference,
    upgrade,
)


def test_offline_upgrade_and_downgrade_run_in_psql_like_online(
    database_url: str, postgres_server_url: str
) -> None:
    with connect(database_url) as connection:
        empty = catalog_snapshot(connection)
        upgrade(connection, "head")
        online_head = catalog_snapshot(connection)

    # A second empty database, migrated by psql alone.
    with scratch_database(postgres_server_url) as offline_url:
        result = run_psql(offline_url, offline_sql("upgrade", None, "head"))
        assert result.returncode == 0, result.stderr
        with connect(offline_url) as connection:
            assert current_revision(connection) == HEAD
            assert snapshot_difference(online_head, catalog_snapshot(connection)) == {}

            result = run_psql(offline_url, offline_sql("downgrade", HEAD, "base"))
            assert result.returncode == 0, result.stderr
            assert current_revision(connection) is None
            assert snapshot_difference(empty, catalog_snapshot(connection)) == {}


def test_offline_upgrade_migrates_populated_baseline(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        connection.execute(
            text(
                "INSERT INTO users (email, created_at, updated_at) "
                "SELECT 'u' || g || '@myhub.test', now(), now() FROM generate_series(1, 500) g;"
            )
        )
        connection.execute(
            text(
                "INSERT INTO posts (created_at, updated_at) "
                "SELECT now(), now() FROM generate_series(1, 50);"
                "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
                "SELECT g, g % 50 + 1, now(), now() FROM generate_series(1, 500) g"
            )
        )
        connection.commit()

    sql = offline_sql(
        "upgrade",
        BASELINE,
        "head",
        {"default_organization_name": "Plan's Org", "default_organization_subdomain": "plan"},
    )
    result = run_psql(database_url, sql)
    assert result.returncode == 0, result.stderr

    with connect(database_url) as connection:
        assert current_revision(connection) == HEAD
        organizations = connection.execute(text("SELECT id, name, subdomain FROM organizations"))
        [(organization, name, subdomain)] = organizations.all()
        assert (name, subdomain) == ("Plan's Org", "plan")
        for table in ("users", "posts", "likes"):
            counts = connection.execute(
                text(
                    f"SELECT count(*), count(*) FILTER (WHERE organization_id = :organization) "
                    f"FROM {table}"
                ),
                {"organization": organization},
            ).one()
            assert counts[0] == counts[1] > 0

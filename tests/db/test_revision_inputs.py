"""What revisions remember and respect between runs: the default organization one revision
chose, and an extension that was there before them."""

from __future__ import annotations

import psycopg
import pytest

from rayces.migrations import commands
from rayces.migrations.errors import UsageError

BASELINE = "20240606034427"


def _fill(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO users (id, name, created_at, updated_at) "
            "SELECT g, 'u' || g, now(), now() FROM generate_series(1, 50) g;"
        )
        connection.execute(
            "INSERT INTO posts (id, post_id, created_at, updated_at) "
            "SELECT g, 'p' || g, now(), now() FROM generate_series(1, 50) g;"
        )
        connection.execute(
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
            "SELECT g, g, now(), now() FROM generate_series(1, 50) g"
        )


def test_later_revisions_use_the_organization_an_earlier_run_chose(database_url: str) -> None:
    commands.upgrade(database_url, BASELINE)
    _fill(database_url)
    commands.upgrade(
        database_url,
        "20250713000002",
        x_arguments={
            "default_organization_name": "Acme Clinic",
            "default_organization_subdomain": "acme",
        },
    )
    result = commands.upgrade(database_url)  # no options this time
    assert result.succeeded
    with psycopg.connect(database_url) as connection:
        organizations = connection.execute("SELECT id, subdomain FROM organizations").fetchall()
        tenants = {
            table: connection.execute(f"SELECT DISTINCT organization_id FROM {table}").fetchall()
            for table in ("users", "posts", "likes")
        }
    assert [subdomain for _, subdomain in organizations] == ["acme"]
    acme = organizations[0][0]
    assert tenants == {"users": [(acme,)], "posts": [(acme,)], "likes": [(acme,)]}


@pytest.mark.parametrize(
    "subdomain",
    [
        pytest.param("acme\n", id="trailing-newline"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_default_organization_is_a_usage_error_and_writes_nothing(
    database_url: str, subdomain: str
) -> None:
    commands.upgrade(database_url, BASELINE)
    _fill(database_url)
    with pytest.raises(UsageError, match="subdomain"):
        commands.upgrade(database_url, x_arguments={"default_organization_subdomain": subdomain})
    # Refused before any revision ran, not when 20250713000002 reached it.
    assert commands.status(database_url).current_revision == BASELINE
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT to_regclass('organizations')").fetchone() == (None,)


def _has_btree_gist(database_url: str) -> bool:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'")
        return row.fetchone() == (1,)


@pytest.mark.parametrize(
    ("installed_before", "kept_after_downgrade"),
    [
        pytest.param(True, True, id="installed-before-is-kept"),
        pytest.param(False, False, id="created-by-the-revision-is-dropped"),
    ],
)
def test_downgrade_of_20250718000014_drops_only_a_btree_gist_it_created(
    database_url: str, installed_before: bool, kept_after_downgrade: bool
) -> None:
    commands.upgrade(database_url, "20250718000013")
    if installed_before:
        with psycopg.connect(database_url) as connection:
            connection.execute("CREATE EXTENSION btree_gist")
    commands.upgrade(database_url, "20250718000014")
    assert _has_btree_gist(database_url)
    commands.downgrade(database_url, to="20250718000013")
    assert _has_btree_gist(database_url) == kept_after_downgrade

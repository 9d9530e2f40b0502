"""A MyHub database with rows in it upgrades to head and back without losing or changing any.

Users, posts and likes existing at the baseline are assigned to the default organization (its
name and subdomain configurable), likes take their user's organization, the tables are never
rewritten (their relfilenode stays), and a downgrade to the baseline gives back every row and
exactly the baseline schema. Failures leave the database at the last completed revision, and
running the migration again after fixing the cause succeeds.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from tests.db.alembic_helpers import (
    BASELINE,
    HEAD,
    catalog_snapshot,
    connect,
    current_revision,
    downgrade,
    snapshot_difference,
    upgrade,
)
from tests.db.populated import BASELINE_TABLES as BASELINE_ROWS

from rayces.migrations.errors import UsageError
from rayces.migrations.settings import Settings

USERS = 12_000  # ids 3, 6, 9, ...: sparse, and more than one backfill batch
POSTS = 3_000
LIKES = 15_000
ACME = {"default_organization_name": "Acme Clinic", "default_organization_subdomain": "acme"}
BASELINE_TABLES = ("users", "posts", "likes")


def _fill_baseline(connection: Connection, users: int = USERS) -> None:
    """MyHub-like rows: every 7th user has no e-mail; each like pairs users and posts of one
    parity (odd users like odd posts), so the tests can split tenants along it."""
    connection.execute(
        text(
            """
            INSERT INTO users (id, name, email, image, username, uid, created_at, updated_at)
            SELECT g * 3, 'User ' || g,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE 'user' || g || '@myhub.test' END,
                   'https://img.test/' || g || '.png', 'user' || g, 'uid-' || g,
                   timestamp '2024-01-01 12:00:00.123456' + g * interval '1 minute 1 second',
                   timestamp '2024-03-01 08:30:00' + g * interval '1 second'
              FROM generate_series(1, :users) AS g
            """
        ),
        {"users": users},
    )
    connection.execute(
        text(
            """
            INSERT INTO posts (id, post_id, hash_id, source, metadata, filename, created_at,
                               updated_at)
            SELECT g, 'p' || g, md5(g::text), 'instagram',
                   jsonb_build_object('likes', g % 100, 'tags', jsonb_build_array('a', g)),
                   'file' || g || '.jpg',
                   timestamp '2024-02-01 00:00:00' + g * interval '1 hour',
                   timestamp '2024-02-01 00:00:00' + g * interval '1 hour'
              FROM generate_series(1, :posts) AS g
            """
        ),
        {"posts": POSTS},
    )
    connection.execute(
        text(
            """
            INSERT INTO likes (user_id, post_id, created_at, updated_at)
            SELECT user_number * 3, 2 * (g % (:posts / 2)) + 1 + (user_number + 1) % 2,
                   timestamp '2024-04-01 00:00:00' + g * interval '1 second',
                   timestamp '2024-04-01 00:00:00' + g * interval '1 second'
              FROM generate_series(1, :likes) AS g,
                   LATERAL (SELECT (g * 7) % :users + 1 AS user_number) AS picked
            """
        ),
        {"posts": POSTS, "likes": LIKES, "users": users},
    )
    connection.execute(text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))"))
    connection.commit()


_FINGERPRINTS = BASELINE_ROWS


def _fingerprints(connection: Connection) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every baseline column of every row (timestamps as instants,
    read as UTC before the conversion and as what they are after it)."""
    result = {}
    for table, row in _FINGERPRINTS.items():
        count, digest = connection.execute(
            text(f"SELECT count(*), md5(string_agg({row}, '|' ORDER BY id)) FROM {table}")
        ).one()
        result[table] = (count, digest)
    connection.rollback()
    return result


def _relfilenodes(connection: Connection) -> dict[str, int]:
    nodes = {
        table: connection.scalar(
            text(f"SELECT relfilenode FROM pg_class WHERE relname = '{table}'")
        )
        for table in BASELINE_TABLES
    }
    connection.rollback()
    return nodes


def _organizations(connection: Connection) -> list[tuple[int, str, str]]:
    rows = connection.execute(text("SELECT id, name, subdomain FROM organizations ORDER BY id"))
    result = [(row.id, row.name, row.subdomain) for row in rows]
    connection.rollback()
    return result


def _organization_ids(connection: Connection, table: str) -> list[int | None]:
    ids = list(connection.scalars(text(f"SELECT DISTINCT organization_id FROM {table}")))
    connection.rollback()
    return ids


def test_populated_baseline_round_trip_keeps_every_row(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        baseline_schema = catalog_snapshot(connection)
        _fill_baseline(connection)
        rows = _fingerprints(connection)
        assert rows["users"][0] == USERS
        assert rows["likes"][0] == LIKES
        storage = _relfilenodes(connection)

        upgrade(connection, "head", ACME)
        assert current_revision(connection) == HEAD
        [(acme, name, subdomain)] = _organizations(connection)
        assert (name, subdomain) == ("Acme Clinic", "acme")
        for table in BASELINE_TABLES:
            assert _organization_ids(connection, table) == [acme]
        assert _fingerprints(connection) == rows
        # Adding columns, backfilling, SET NOT NULL and timestamp -> timestamptz under UTC:
        # none of it rewrote a table.
        assert _relfilenodes(connection) == storage
        defaults = connection.execute(
            text(
                "SELECT count(DISTINCT jti), count(*) FILTER (WHERE encrypted_password = ''), "
                "count(*) FILTER (WHERE role = 'client') FROM users"
            )
        ).one()
        assert tuple(defaults) == (USERS, USERS, USERS)
        connection.rollback()

        downgrade(connection, BASELINE)
        assert current_revision(connection) == BASELINE
        assert _fingerprints(connection) == rows
        assert snapshot_difference(baseline_schema, catalog_snapshot(connection)) == {}
        assert _relfilenodes(connection) == storage

        upgrade(connection, "head", ACME)
        assert current_revision(connection) == HEAD
        assert _organizations(connection) == [(acme, "Acme Clinic", "acme")]
        assert _fingerprints(connection) == rows


def test_likes_take_their_users_organization(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _fill_baseline(connection, users=600)
        upgrade(connection, "20250713000003")
        # Move odd users and odd posts (which only odd users like) to a second tenant.
        connection.execute(
            text("INSERT INTO organizations (id, name, subdomain) VALUES (100, 'Odd', 'odd')")
        )
        connection.execute(text("UPDATE users SET organization_id = 100 WHERE (id / 3) % 2 = 1"))
        connection.execute(text("UPDATE posts SET organization_id = 100 WHERE id % 2 = 1"))
        connection.commit()

        upgrade(connection, "head")
        mismatched = connection.scalar(
            text(
                "SELECT count(*) FROM likes JOIN users ON users.id = likes.user_id "
                "WHERE likes.organization_id <> users.organization_id"
            )
        )
        per_tenant = dict(
            connection.execute(
                text("SELECT organization_id, count(*) FROM likes GROUP BY organization_id")
            ).all()
        )
        connection.rollback()
        assert mismatched == 0
        assert set(per_tenant) == {100, _organizations(connection)[0][0]}
        assert sum(per_tenant.values()) == LIKES


def _few_rows(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO users (name, email, created_at, updated_at) VALUES "
            "('Ana', 'ana@myhub.test', now(), now()), ('Bob', NULL, now(), now())"
        )
    )
    connection.commit()


@pytest.mark.parametrize(
    ("x_arguments", "environment", "expected"),
    [
        pytest.param({}, {}, ("Default Organization", "default"), id="built-in-defaults"),
        pytest.param(
            {},
            {
                "RAYCES_DEFAULT_ORGANIZATION_NAME": "Env Org",
                "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN": "env-org",
            },
            ("Env Org", "env-org"),
            id="environment-variables",
        ),
        pytest.param(
            ACME,
            {
                "RAYCES_DEFAULT_ORGANIZATION_NAME": "Env Org",
                "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN": "env-org",
            },
            ("Acme Clinic", "acme"),
            id="x-arguments-before-environment",
        ),
        pytest.param(
            {"default_organization_name": "O'Brien & Co: 100% :name"},
            {},
            ("O'Brien & Co: 100% :name", "default"),
            id="name-with-quotes-colons-and-percent",
        ),
    ],
)
def test_default_organization_is_configurable(
    database_url: str,
    x_arguments: dict[str, str],
    environment: dict[str, str],
    expected: tuple[str, str],
) -> None:
    # The environment reaches the revisions as -x values, through the settings read once.
    arguments = {**Settings.from_environment(environment).revision_arguments(), **x_arguments}
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _few_rows(connection)
        upgrade(connection, "20250713000002", arguments)
        [(organization, *name_and_subdomain)] = _organizations(connection)
        assert tuple(name_and_subdomain) == expected
        assert _organization_ids(connection, "users") == [organization]


def test_empty_database_gets_no_default_organization(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, "head")
        assert _organizations(connection) == []


def test_existing_organization_with_the_subdomain_is_reused(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _few_rows(connection)
        upgrade(connection, "20250713000001")
        connection.execute(
            text("INSERT INTO organizations (id, name, subdomain) VALUES (7, 'Acme', 'acme')")
        )
        connection.commit()
        upgrade(connection, "head", ACME)
        assert _organizations(connection) == [(7, "Acme", "acme")]
        assert _organization_ids(connection, "users") == [7]


def test_invalid_subdomain_is_refused_before_anything_is_written(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _few_rows(connection)
        with pytest.raises(UsageError, match="not a DNS label"):
            upgrade(connection, "head", {"default_organization_subdomain": "Not A Label"})
        assert current_revision(connection) == "20250713000001"
        assert _organizations(connection) == []


def test_duplicate_emails_stop_20250713000005_and_name_them(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _fill_baseline(connection, users=300)
        connection.execute(
            text(
                "UPDATE users SET email = 'twin@myhub.test' WHERE id IN (3, 6);"
                "UPDATE users SET email = 'triplet@myhub.test' WHERE id IN (9, 12, 15)"
            )
        )
        connection.commit()

        with pytest.raises(DBAPIError) as raised:
            upgrade(connection, "head")
        message = str(raised.value.orig)
        assert "twin@myhub.test" in message
        assert "triplet@myhub.test" in message
        assert "3 users" in message
        assert "2 e-mail address(es)" in message
        assert current_revision(connection) == "20250713000004"
        # Nothing of 20250713000005 was applied.
        devise_columns = connection.scalar(
            text(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'users' AND column_name = 'encrypted_password'"
            )
        )
        connection.rollback()
        assert devise_columns == 0

        connection.execute(text("UPDATE users SET email = NULL WHERE id IN (6, 12, 15)"))
        connection.commit()
        upgrade(connection, "head")
        assert current_revision(connection) == HEAD


def test_revision_failing_after_its_autocommit_steps_can_be_run_again(database_url: str) -> None:
    """20250713000006 fails in its backfill, after the column was added and committed."""
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _fill_baseline(connection, users=300)
        upgrade(connection, "20250713000005")
        # Refuse every update of users: the backfill of jti fails after the column was added
        # and committed (a trigger cannot name jti before the revision creates it).
        connection.execute(
            text(
                "CREATE FUNCTION refuse_updates() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'updates refused for the test'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse_updates BEFORE UPDATE ON users "
                "FOR EACH ROW EXECUTE FUNCTION refuse_updates()"
            )
        )
        connection.commit()

        with pytest.raises(DBAPIError, match="updates refused for the test"):
            upgrade(connection, "head")
        assert current_revision(connection) == "20250713000005"
        added = connection.scalar(
            text("SELECT count(*) FROM information_schema.columns WHERE column_name = 'jti'")
        )
        connection.rollback()
        assert added == 1, "the column should have been committed before the failure"

        connection.execute(text("DROP TRIGGER refuse_updates ON users"))
        connection.execute(text("DROP FUNCTION refuse_updates()"))
        connection.commit()
        upgrade(connection, "head")
        assert current_revision(connection) == HEAD
        missing = connection.scalar(text("SELECT count(*) FROM users WHERE jti IS NULL"))
        connection.rollback()
        assert missing == 0


def test_index_left_invalid_by_a_failed_concurrent_build_is_rebuilt(database_url: str) -> None:
    with connect(database_url) as connection:
        upgrade(connection, BASELINE)
        _fill_baseline(connection, users=300)
        upgrade(connection, "20250713000005")
        # What a failed CREATE UNIQUE INDEX CONCURRENTLY leaves behind: an INVALID index.
        connection.execute(text("UPDATE users SET uid = 'same' WHERE id IN (3, 6)"))
        connection.commit()
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(DBAPIError):
            autocommit.execute(
                text("CREATE UNIQUE INDEX CONCURRENTLY index_users_on_jti ON users (uid)")
            )
        connection.rollback()
        connection.execution_options(isolation_level="READ COMMITTED")
        valid = connection.scalar(
            text(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'index_users_on_jti'::regclass"
            )
        )
        connection.rollback()
        assert valid is False

        upgrade(connection, "head")
        definition, valid = connection.execute(
            text(
                "SELECT pg_get_indexdef(indexrelid), indisvalid FROM pg_index "
                "WHERE indexrelid = 'index_users_on_jti'::regclass"
            )
        ).one()
        connection.rollback()
        assert valid is True
        assert definition.endswith("USING btree (jti)")

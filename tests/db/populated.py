"""Populated MyHub databases for tests that stop a run part-way: one baseline filled once,
copies of it (`CREATE DATABASE ... TEMPLATE`) at any revision, and fingerprints of its rows.

A copy costs a fraction of a second however many rows it holds, so a test that needs a fresh
populated database per case pays for the filling and for each revision's migration only once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from tests.db.alembic_helpers import BASELINE

from rayces.migrations import commands

USERS, POSTS, LIKES = 240, 120, 600
BASELINE_TABLES = {
    "users": "concat_ws(',', id, name, email, image, username, uid, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
    "posts": "concat_ws(',', id, post_id, hash_id, source, metadata::text, filename, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
    "likes": "concat_ws(',', id, user_id, post_id, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
}


def url_of(server_url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(statement)
    return name


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def copy_of(server_url: str, template: str) -> Iterator[str]:
    name = create_database(server_url, f"case_{uuid.uuid4().hex[:12]}", template)
    try:
        yield url_of(server_url, name)
    finally:
        drop_database(server_url, name)


def fill_baseline(
    database_url: str,
    users: int = USERS,
    posts: int = POSTS,
    likes: int = LIKES,
    *,
    user_id_step: int = 2,
) -> None:
    """MyHub rows as the Rails app left them: users (every 7th without an e-mail), posts and
    likes. User ids go up by `user_id_step`, so a larger step spreads few users over several
    backfill batches (which go by id ranges)."""
    with psycopg.connect(database_url) as connection:
        connection.execute(
            """
            INSERT INTO users (id, name, email, image, username, uid, created_at, updated_at)
            SELECT g * %(step)s, 'User ' || g,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE 'u' || g || '@x.test' END,
                   'img' || g, 'user' || g, 'uid-' || g,
                   timestamp '2024-01-01 12:00:00.123456' + g * interval '61 seconds',
                   timestamp '2024-03-01 08:30:00' + g * interval '1 second'
              FROM generate_series(1, %(users)s) AS g;
            INSERT INTO posts (id, post_id, hash_id, source, metadata, filename, created_at,
                               updated_at)
            SELECT g, 'p' || g, md5(g::text), 'instagram', jsonb_build_object('n', g),
                   'f' || g || '.jpg', timestamp '2024-02-01' + g * interval '1 hour',
                   timestamp '2024-02-01' + g * interval '1 hour'
              FROM generate_series(1, %(posts)s) AS g;
            INSERT INTO likes (user_id, post_id, created_at, updated_at)
            SELECT (g % %(users)s + 1) * %(step)s, g % %(posts)s + 1,
                   timestamp '2024-04-01' + g * interval '1 second',
                   timestamp '2024-04-01' + g * interval '1 second'
              FROM generate_series(1, %(likes)s) AS g;
            SELECT setval('users_id_seq', (SELECT max(id) FROM users));
            """.replace("%(users)s", str(users))
            .replace("%(posts)s", str(posts))
            .replace("%(likes)s", str(likes))
            .replace("%(step)s", str(user_id_step))
        )


def fingerprints(database_url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SET timezone = 'UTC'")
        return {
            table: connection.execute(
                f"SELECT count(*), md5(string_agg({row}, '|' ORDER BY id)) FROM {table}"
            ).fetchone()  # type: ignore[misc]
            for table, row in BASELINE_TABLES.items()
        }


class Templates:
    """Databases prepared once, at a given revision, from one populated baseline."""

    def __init__(
        self,
        server_url: str,
        users: int = USERS,
        posts: int = POSTS,
        likes: int = LIKES,
        *,
        user_id_step: int = 2,
    ) -> None:
        self.server_url = server_url
        self.names: dict[str, str] = {}
        baseline = create_database(server_url, f"tpl_{uuid.uuid4().hex[:8]}_baseline")
        url = url_of(server_url, baseline)
        commands.upgrade(url, BASELINE)
        fill_baseline(url, users, posts, likes, user_id_step=user_id_step)
        self.names[BASELINE] = baseline
        self.baseline_dump = commands.dump_schema(url)
        self.baseline_rows = fingerprints(url)

    def at(self, revision: str) -> str:
        if revision not in self.names:
            name = create_database(
                self.server_url, f"tpl_{uuid.uuid4().hex[:8]}_{revision}", self.names[BASELINE]
            )
            commands.upgrade(url_of(self.server_url, name), revision)
            self.names[revision] = name
        return self.names[revision]

    def drop_all(self) -> None:
        for name in self.names.values():
            drop_database(self.server_url, name)


@contextmanager
def prepared_templates(server_url: str, *counts: int, user_id_step: int = 2) -> Iterator[Templates]:
    """`Templates` for the block (a module fixture's body), dropped afterwards."""
    prepared = Templates(server_url, *counts, user_id_step=user_id_step)
    try:
        yield prepared
    finally:
        prepared.drop_all()

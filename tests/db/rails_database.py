"""MyHub's database as the Rails application made it, for tests and benchmarks of adoption.

It is the SQL Rails 7.1 runs for MyHub's schema.rb on PostgreSQL (`create_table` with `t.string`,
`t.jsonb`, `t.references ..., foreign_key: true` and `t.timestamps`): `bigserial` ids with their
`*_id_seq` sequences, `character varying`, `timestamp(6)`, `index_likes_on_*` indexes, foreign
keys named `fk_rails_<hash>`, and Rails' own `schema_migrations` and `ar_internal_metadata`.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from tests.db.alembic_helpers import BASELINE
from tests.db.populated import fill_baseline

#: What Rails 7.1 runs for MyHub's schema.rb on PostgreSQL (its `ActiveRecord::Migration[7.1]`
#: `create_table` bodies, as `rails db:migrate` logs them), and its own two tables.
RAILS_BASELINE_SQL = """
CREATE TABLE "schema_migrations" ("version" character varying NOT NULL PRIMARY KEY);
CREATE TABLE "ar_internal_metadata" ("key" character varying NOT NULL PRIMARY KEY,
  "value" character varying, "created_at" timestamp(6) NOT NULL,
  "updated_at" timestamp(6) NOT NULL);
CREATE TABLE "users" ("id" bigserial primary key, "name" character varying,
  "email" character varying, "image" character varying, "username" character varying,
  "uid" character varying, "created_at" timestamp(6) NOT NULL,
  "updated_at" timestamp(6) NOT NULL);
CREATE TABLE "posts" ("id" bigserial primary key, "post_id" character varying,
  "hash_id" character varying, "source" character varying, "metadata" jsonb,
  "filename" character varying, "created_at" timestamp(6) NOT NULL,
  "updated_at" timestamp(6) NOT NULL);
CREATE TABLE "likes" ("id" bigserial primary key, "user_id" bigint NOT NULL,
  "post_id" bigint NOT NULL, "created_at" timestamp(6) NOT NULL,
  "updated_at" timestamp(6) NOT NULL,
  CONSTRAINT "fk_rails_1e09b5dabf" FOREIGN KEY ("user_id") REFERENCES "users" ("id"),
  CONSTRAINT "fk_rails_87a8aac469" FOREIGN KEY ("post_id") REFERENCES "posts" ("id"));
CREATE INDEX "index_likes_on_user_id" ON "likes" ("user_id");
CREATE INDEX "index_likes_on_post_id" ON "likes" ("post_id");
INSERT INTO "ar_internal_metadata" ("key", "value", "created_at", "updated_at")
  VALUES ('environment', 'production', '2024-06-06 03:44:27', '2024-06-06 03:44:27');
"""


def make_rails_database(
    database_url: str, versions: Sequence[str] = (BASELINE,), *, rows: bool = True
) -> None:
    """MyHub's database as Rails made it, with `versions` in `schema_migrations`.

    :param rows: fill it with the test suite's MyHub rows (`tests.db.populated`).
    """
    with psycopg.connect(database_url) as connection:
        connection.execute(RAILS_BASELINE_SQL)  # type: ignore[arg-type, unused-ignore]
    if rows:
        fill_baseline(database_url)
    set_rails_versions(database_url, versions)


def set_rails_versions(database_url: str, versions: Sequence[str]) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute("DELETE FROM schema_migrations")
        for version in versions:
            connection.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))

"""The revision chain: its shape, and every step up, down and up again on a real database.

A downgrade must restore exactly the schema the upgrade started from, and the upgrade after it
must build exactly the schema the first one built; both are compared as catalog snapshots
(tables, column order and types, defaults, nullability, constraints, indexes, sequences, types,
functions, extensions).
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text
from tests.db.alembic_helpers import (
    BASELINE,
    HEAD,
    Revision,
    catalog_snapshot,
    connect,
    current_revision,
    design_revision_table,
    downgrade,
    revisions,
    snapshot_difference,
    upgrade,
)

CHAIN = revisions()


def test_revisions_are_the_designs_table_in_order() -> None:
    design = design_revision_table()
    assert len(design) == 18
    assert [(entry.id, entry.slug) for entry in CHAIN] == design


def test_history_is_linear_from_the_baseline_to_one_head() -> None:
    assert CHAIN[0].id == BASELINE
    assert CHAIN[0].down is None
    assert CHAIN[-1].id == HEAD
    for previous, entry in itertools.pairwise(CHAIN):
        assert entry.down == previous.id, f"{entry.id} should revise {previous.id}"


@pytest.mark.parametrize("entry", CHAIN, ids=[f"{e.id}_{e.slug}" for e in CHAIN])
def test_revision_file_is_self_contained(entry: Revision) -> None:
    source = entry.path.read_text()
    assert entry.path.name == f"{entry.id}_{entry.slug}.py"
    # Old revisions must never change meaning when the live models change.
    assert "rayces.schema" not in source
    assert "import rayces.schema" not in source
    assert "def upgrade() -> None:" in source
    assert "def downgrade() -> None:" in source


def test_base_to_head_to_base_to_head(database_url: str) -> None:
    with connect(database_url) as connection:
        empty = catalog_snapshot(connection)
        upgrade(connection, "head")
        assert current_revision(connection) == HEAD
        head = catalog_snapshot(connection)

        downgrade(connection, "base")
        assert current_revision(connection) is None
        assert snapshot_difference(empty, catalog_snapshot(connection)) == {}

        upgrade(connection, "head")
        assert current_revision(connection) == HEAD
        assert snapshot_difference(head, catalog_snapshot(connection)) == {}


def test_injected_connection_runs_autocommit_blocks(database_url: str) -> None:
    """Concurrent index builds and committing backfills work through the injected connection."""
    with connect(database_url) as connection:
        upgrade(connection, "head")
        assert not connection.in_transaction()
        invalid = connection.scalars(
            text(
                "SELECT indexrelid::regclass::text FROM pg_index "
                "WHERE NOT indisvalid OR NOT indisready"
            )
        ).all()
        assert invalid == []
        # The isolation level autocommit blocks switch to is given back.
        assert connection.get_isolation_level() != "AUTOCOMMIT"
        # The connection is usable afterwards and sees the committed version.
        assert current_revision(connection) == HEAD


STEPS = CHAIN


@pytest.mark.parametrize("entry", STEPS, ids=[f"{e.id}_{e.slug}" for e in STEPS])
def test_step_up_down_up_restores_the_schema(database_url: str, entry: Revision) -> None:
    with connect(database_url) as connection:
        if entry.down is not None:
            upgrade(connection, entry.down)
        before = catalog_snapshot(connection)

        upgrade(connection, entry.id)
        assert current_revision(connection) == entry.id
        after = catalog_snapshot(connection)
        assert snapshot_difference(before, after) != {}, "the revision changes nothing"

        downgrade(connection, entry.down or "base")
        assert current_revision(connection) == entry.down
        assert snapshot_difference(before, catalog_snapshot(connection)) == {}

        upgrade(connection, entry.id)
        assert current_revision(connection) == entry.id
        assert snapshot_difference(after, catalog_snapshot(connection)) == {}

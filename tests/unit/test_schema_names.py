"""Names in the models follow the design contract's naming rules, checked without a database.

PostgreSQL silently truncates identifiers longer than 63 bytes, so a too-long name would create
a constraint whose name nobody wrote down; the database tests cannot see that, as the revisions
and the models would be truncated alike.
"""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKeyConstraint, Table

from rayces.schema import Base

POSTGRESQL_NAME_LIMIT = 63
TABLES = [pytest.param(table, id=table.name) for table in Base.metadata.sorted_tables]


@pytest.mark.parametrize("table", TABLES)
def test_names_fit_postgresql(table: Table) -> None:
    names = [str(c.name) for c in table.constraints] + [str(i.name) for i in table.indexes]
    assert all(name != "None" for name in names), names
    too_long = [name for name in names if len(name.encode()) > POSTGRESQL_NAME_LIMIT]
    assert too_long == []


@pytest.mark.parametrize("table", TABLES)
def test_foreign_keys_are_named_after_their_own_column(table: Table) -> None:
    for key in table.constraints:
        if isinstance(key, ForeignKeyConstraint):
            own = [c.name for c in key.columns if c.name != "organization_id"] or ["organization"]
            assert key.name == f"fk_{table.name}_{own[0].removesuffix('_id')}"


def test_every_tenant_owned_table_references_organizations() -> None:
    for table in Base.metadata.sorted_tables:
        if table.name == "organizations":
            continue
        assert not table.c.organization_id.nullable, table.name
        referenced = {
            (tuple(c.name for c in key.columns), key.referred_table.name)
            for key in table.foreign_key_constraints
        }
        assert (("organization_id",), "organizations") in referenced, table.name

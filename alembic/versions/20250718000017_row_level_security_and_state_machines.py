"""Row-level security on every tenant-owned table, the `rayces_app` role, and state triggers.

Tenant isolation by the database itself, beneath whatever the application does:

Every object is created in the schema the migrating session works in (the first schema of its
search_path, as for every other revision); nothing names `public`. The functions run with a fixed
`search_path` (`pg_catalog, pg_temp`): they use nothing of the application's schema, so no object
a session creates can stand in for one they use.

- `current_organization_id()` reads the tenant a transaction declared with
  `SELECT set_config('app.current_organization_id', '<id>', true)`; NULL when none was declared.
- Every tenant-owned table gets `ENABLE ROW LEVEL SECURITY` and a policy `tenant_isolation`
  for all commands: a row is visible, and may be written, only when its `organization_id` is the
  declared tenant. With no tenant declared nothing is visible. `organizations` shows its own row
  only. The table owner (the migrating role) is not subject to RLS (no `FORCE`), so migrations,
  seeds and administrators keep full access.
- The role `rayces_app` (NOLOGIN; an administrator grants LOGIN or membership) is created when the
  migrating role may create roles, and granted the table privileges the application needs. When it
  cannot be created here, an administrator creates it and runs this revision's grants again (see
  docs/schema.md, "Row-level security"); the policies apply to every role but the owner anyway.
- `index_credit_transactions_on_org_id_and_payment_reference`: a payment reference is recorded
  once per organization, so a purchase callback delivered twice cannot credit twice.
- A trigger per state machine (appointments, students, credit_transactions), rendered from the
  transition tables in `rayces.domain.state_machines` and kept here as literal SQL, so this
  revision never changes meaning; a test checks the literal against the tables.

Every table the revision changes is locked up front, in one `LOCK TABLE` that lists referencing
tables before the tables they reference and waits at most 50 ms per attempt
(`lock_tables_briefly`): writers keep writing while it runs, and an insert that holds its own table
while its foreign-key check needs a parent can never deadlock with it.

A row inserted without `organization_id` by `rayces_app` (the legacy-write trigger of revisions
0002-0004 fills it with the default organization) passes the policy only when the declared tenant
is the default organization; under any other tenant, or none, the insert is refused.

The role is cluster-wide and may serve other databases: the downgrade revokes its privileges in
this database and leaves the role itself.

The revision commits in two steps, each recorded in the step journal: `security` (everything
above but the index, one transaction) and `payment_reference_index` (built concurrently, outside
a transaction); the downgrade drops the index first, then the rest. Each step can run again over
a part of itself, so a run stopped between or inside them is resumed by `migrate` and undone by
`rollback` like any other stepped revision.

Revision ID: 20250718000017
Revises: 20250718000016
Create Date: 2025-07-18 00:00:17
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.journal import RevisionSteps
from rayces.migrations.online_operations import (
    create_index_concurrently,
    drop_index_concurrently,
    lock_tables_briefly,
)

revision: str = "20250718000017"
down_revision: str | None = "20250718000016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops that can hold rows: nothing (policies, triggers, functions, an index).
downgrade_drops: tuple[str, ...] = ()

APPLICATION_ROLE = "rayces_app"

TENANT_TABLES = (
    "users",
    "posts",
    "likes",
    "students",
    "professionals",
    "appointments",
    "roles",
    "user_roles",
    "credit_balances",
    "credit_transactions",
    "availability_rules",
    "time_slots",
)

#: Every table the revision changes, referencing tables before the tables they reference (a test
#: checks this against the foreign keys), so that locking them in this order never deadlocks
#: with a writer whose foreign-key check needs a parent of the table it writes.
LOCK_ORDER = (
    "likes",
    "posts",
    "time_slots",
    "credit_transactions",
    "credit_balances",
    "appointments",
    "availability_rules",
    "students",
    "professionals",
    "user_roles",
    "roles",
    "users",
    "organizations",
)

PAYMENT_REFERENCE_INDEX = "index_credit_transactions_on_org_id_and_payment_reference"

_CURRENT_ORGANIZATION_FUNCTION = """\
CREATE OR REPLACE FUNCTION current_organization_id() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$SELECT NULLIF(current_setting('app.current_organization_id', true), '')::bigint$$"""

# As a scalar subquery the declared tenant is read once per statement (an InitPlan), not once
# per row, and serves as an index condition.
_DECLARED_TENANT = "(SELECT current_organization_id())"

_CREATE_ROLE_IF_ALLOWED = f"""\
DO $role$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APPLICATION_ROLE}')
       AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
        CREATE ROLE {APPLICATION_ROLE} NOLOGIN;
    END IF;
END
$role$"""


def _if_role_exists(statements: Sequence[str]) -> str:
    """A DO block running `statements` when the role exists; `%1$I` in a statement stands for
    the schema the session works in (`current_schema()`), resolved when the block runs."""
    body = "\n".join(
        f"        EXECUTE format({_quote(statement)}, current_schema());"
        for statement in statements
    )
    return (
        "DO $grants$\nBEGIN\n"
        f"    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APPLICATION_ROLE}') THEN\n"
        f"{body}\n"
        "    END IF;\nEND\n$grants$"
    )


def _quote(statement: str) -> str:
    return "'" + statement.replace("'", "''") + "'"


_GRANTS = (
    f"GRANT USAGE ON SCHEMA %1$I TO {APPLICATION_ROLE}",
    f"GRANT SELECT ON organizations TO {APPLICATION_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TENANT_TABLES)} TO {APPLICATION_ROLE}",
    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %1$I TO {APPLICATION_ROLE}",
)

_REVOKES = (
    f"REVOKE USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %1$I FROM {APPLICATION_ROLE}",
    f"REVOKE ALL ON {', '.join(TENANT_TABLES)} FROM {APPLICATION_ROLE}",
    f"REVOKE ALL ON organizations FROM {APPLICATION_ROLE}",
    f"REVOKE USAGE ON SCHEMA %1$I FROM {APPLICATION_ROLE}",
)

# (table, trigger, function, CREATE FUNCTION, CREATE TRIGGER)
STATE_MACHINE_TRIGGERS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "appointments",
        "trg_appointments_state_machine",
        "appointments_state_machine",
        """\
CREATE FUNCTION appointments_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $function$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state
           AND NEW.state IN ('draft', 'pre_confirmed', 'confirmed', 'executed', 'cancelled')
           AND (OLD.state, NEW.state) NOT IN (
               ('draft', 'pre_confirmed'),
               ('pre_confirmed', 'confirmed'),
               ('confirmed', 'executed'),
               ('draft', 'cancelled'),
               ('pre_confirmed', 'cancelled'),
               ('confirmed', 'cancelled')
           ) THEN
            RAISE EXCEPTION
                'appointments %: no appointment event leads from % to %',
                OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.confirmed_at IS NOT NULL AND NEW.confirmed_at IS DISTINCT FROM OLD.confirmed_at THEN
            RAISE EXCEPTION
                'appointments %: confirmed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.executed_at IS NOT NULL AND NEW.executed_at IS DISTINCT FROM OLD.executed_at THEN
            RAISE EXCEPTION
                'appointments %: executed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.cancelled_at IS NOT NULL AND NEW.cancelled_at IS DISTINCT FROM OLD.cancelled_at THEN
            RAISE EXCEPTION
                'appointments %: cancelled_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
    END IF;
    IF NEW.state = 'draft' AND NEW.confirmed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'draft' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'draft' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.confirmed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.confirmed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed requires confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.confirmed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed requires confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.executed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed requires executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'cancelled' AND NEW.cancelled_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state cancelled requires cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'cancelled' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state cancelled does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NOT (NEW.executed_at >= NEW.starts_at) THEN
        RAISE EXCEPTION
            'appointments %: an appointment cannot be executed before it starts',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    RETURN NEW;
END
$function$""",
        """\
CREATE TRIGGER trg_appointments_state_machine
    BEFORE INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointments_state_machine()""",
    ),
    (
        "students",
        "trg_students_state_machine",
        "students_state_machine",
        """\
CREATE FUNCTION students_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $function$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state
           AND NEW.state IN ('admission', 'active', 'inactive', 'discharged')
           AND (OLD.state, NEW.state) NOT IN (
               ('admission', 'active'),
               ('active', 'inactive'),
               ('inactive', 'active'),
               ('active', 'discharged'),
               ('inactive', 'discharged')
           ) THEN
            RAISE EXCEPTION
                'students %: no student event leads from % to %',
                OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_students_state_machine';
        END IF;
    END IF;
    RETURN NEW;
END
$function$""",
        """\
CREATE TRIGGER trg_students_state_machine
    BEFORE INSERT OR UPDATE ON students
    FOR EACH ROW EXECUTE FUNCTION students_state_machine()""",
    ),
    (
        "credit_transactions",
        "trg_credit_transactions_state_machine",
        "credit_transactions_state_machine",
        """\
CREATE FUNCTION credit_transactions_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $function$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IN ('completed') AND NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION
                'credit_transactions %: a credit transaction that is % cannot change',
                OLD.id, OLD.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine',
                      HINT = 'record a compensating transaction instead';
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status
           AND NEW.status IN ('pending', 'completed', 'failed', 'cancelled')
           AND (OLD.status, NEW.status) NOT IN (
               ('pending', 'completed'),
               ('pending', 'failed'),
               ('pending', 'cancelled')
           ) THEN
            RAISE EXCEPTION
                'credit_transactions %: no credit transaction event leads from % to %',
                OLD.id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine';
        END IF;
        IF OLD.processed_at IS NOT NULL AND NEW.processed_at IS DISTINCT FROM OLD.processed_at THEN
            RAISE EXCEPTION
                'credit_transactions %: processed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine';
        END IF;
    END IF;
    IF NEW.status = 'pending' AND NEW.processed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'credit_transactions %: state pending does not allow processed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_credit_transactions_state_machine';
    END IF;
    IF NEW.status = 'completed' AND NEW.processed_at IS NULL THEN
        RAISE EXCEPTION
            'credit_transactions %: state completed requires processed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_credit_transactions_state_machine';
    END IF;
    RETURN NEW;
END
$function$""",
        """\
CREATE TRIGGER trg_credit_transactions_state_machine
    BEFORE INSERT OR UPDATE ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION credit_transactions_state_machine()""",
    ),
)


def upgrade() -> None:
    steps = RevisionSteps(revision, "upgrade")
    steps.step("security", _create_security)
    with op.get_context().autocommit_block():
        steps.step(
            "payment_reference_index",
            lambda: create_index_concurrently(
                PAYMENT_REFERENCE_INDEX,
                "credit_transactions",
                ["organization_id", "payment_reference"],
                unique=True,
                where="payment_reference IS NOT NULL",
            ),
        )
    steps.finish()


def downgrade() -> None:
    # Each step also copes with an upgrade that stopped part-way: this is how `rollback` undoes
    # one.
    steps = RevisionSteps(revision, "downgrade")
    with op.get_context().autocommit_block():
        steps.step(
            "drop_payment_reference_index", lambda: drop_index_concurrently(PAYMENT_REFERENCE_INDEX)
        )
    steps.step("drop_security", _drop_security)
    steps.finish()


def _create_security() -> None:
    """The function, RLS and policies, the role and its grants, the state triggers: one
    transaction, safe to run again over a part of it (after an interrupted downgrade)."""
    lock_tables_briefly(LOCK_ORDER)
    op.execute(_CURRENT_ORGANIZATION_FUNCTION)
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (organization_id = {_DECLARED_TENANT}) "
            f"WITH CHECK (organization_id = {_DECLARED_TENANT})"
        )
    op.execute("ALTER TABLE organizations ENABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON organizations")
    op.execute(
        "CREATE POLICY tenant_isolation ON organizations FOR SELECT "
        f"USING (id = {_DECLARED_TENANT})"
    )
    op.execute(_CREATE_ROLE_IF_ALLOWED)
    op.execute(_if_role_exists(_GRANTS))
    for _, _, _, function, trigger in STATE_MACHINE_TRIGGERS:
        op.execute(_or_replace(function))
        op.execute(_or_replace(trigger))


def _drop_security() -> None:
    """Everything `_create_security` made, whatever part of it is there."""
    lock_tables_briefly(LOCK_ORDER)
    for table, trigger, function, _, _ in reversed(STATE_MACHINE_TRIGGERS):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute(_if_role_exists(_REVOKES))
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON organizations")
    op.execute("ALTER TABLE organizations DISABLE ROW LEVEL SECURITY")
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS current_organization_id()")


def _or_replace(statement: str) -> str:
    """`CREATE FUNCTION`/`CREATE TRIGGER` as `CREATE OR REPLACE ...`: the same object, and safe
    to run again. The literals above stay as the renderer writes them (a test compares them)."""
    for kind in ("FUNCTION", "TRIGGER"):
        if statement.startswith(f"CREATE {kind} "):
            return statement.replace(f"CREATE {kind} ", f"CREATE OR REPLACE {kind} ", 1)
    raise ValueError(f"not a CREATE FUNCTION or CREATE TRIGGER: {statement[:40]!r}")

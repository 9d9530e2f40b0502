"""The credit ledger on a real PostgreSQL: movements, refusals, and many workers at once."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from tests.db.tenant_rows import create_organization, create_tenant_rows

from rayces.domain.errors import DuplicatePaymentError, InsufficientCreditsError, InvalidInputError
from rayces.domain.ledger import add_credits, cancel_appointment, confirm_appointment
from rayces.domain.verification import ledger_violations
from rayces.schema import Appointment
from rayces.tenancy import scope_sessions, tenant_scope

WORKERS = 16


def new_tenant(engine: Engine, subdomain: str) -> dict[str, int]:
    """An organization with a user whose balance is empty (no purchase recorded)."""
    with engine.begin() as connection:
        organization = create_organization(connection, subdomain)
        rows = create_tenant_rows(connection, organization)
        connection.execute(
            text("DELETE FROM credit_transactions WHERE organization_id = :o"), {"o": organization}
        )
        connection.execute(
            text(
                "UPDATE credit_balances SET balance = 0, lifetime_purchased = 0 "
                "WHERE organization_id = :o"
            ),
            {"o": organization},
        )
    return {"organization": organization, **rows}


@pytest.fixture
def factory(migrated_engine: Engine) -> sessionmaker[Session]:
    return scope_sessions(sessionmaker(migrated_engine))  # type: ignore[no-any-return]


@pytest.fixture
def tenant(migrated_engine: Engine, request: pytest.FixtureRequest) -> dict[str, int]:
    slug = "ledger-" + str(abs(hash(request.node.name)) % 10**8)
    return new_tenant(migrated_engine, slug)


def balance_of(engine: Engine, organization: int) -> tuple[int, int, int]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT balance, lifetime_purchased, lifetime_used FROM credit_balances "
                "WHERE organization_id = :o"
            ),
            {"o": organization},
        ).one()
    return (row[0], row[1], row[2])


def no_ledger_violations(engine: Engine, organization: int) -> None:
    with engine.connect() as connection:
        assert ledger_violations(connection, organization) == []


def in_tenant(
    factory: sessionmaker[Session], organization: int, work: Callable[[Session], Any]
) -> Any:
    with tenant_scope(organization), factory() as session:
        result = work(session)
        session.commit()
        return result


def test_purchase_then_debit_keeps_the_invariant(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    org, user = tenant["organization"], tenant["users"]
    entry = in_tenant(factory, org, lambda s: add_credits(s, user, 10, "purchase", {"pack": 10}))
    assert entry.balance == 10
    entry = in_tenant(factory, org, lambda s: add_credits(s, user, -3, "appointment_debit"))
    assert entry.balance == 7
    assert balance_of(migrated_engine, org) == (7, 10, 3)
    no_ledger_violations(migrated_engine, org)


@pytest.mark.parametrize(
    ("amount", "kind", "message"),
    [
        pytest.param(-5, "purchase", "a purchase needs a positive", id="negative-purchase"),
        pytest.param(0, "admin_adjustment", "non-zero", id="zero-adjustment"),
        pytest.param(2, "appointment_debit", "negative", id="positive-debit"),
        pytest.param(1, "gift", "unknown transaction type 'gift'", id="unknown-type"),
    ],
)
def test_bad_amounts_are_refused_before_the_database(
    factory: sessionmaker[Session], tenant: dict[str, int], amount: int, kind: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        in_tenant(factory, tenant["organization"], lambda s: add_credits(s, 1, amount, kind))


def test_an_overdraft_changes_nothing(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    org, user = tenant["organization"], tenant["users"]
    in_tenant(factory, org, lambda s: add_credits(s, user, 2))
    with pytest.raises(InsufficientCreditsError, match="has 2 credits"):
        in_tenant(factory, org, lambda s: add_credits(s, user, -3, "appointment_debit"))
    assert balance_of(migrated_engine, org) == (2, 2, 0)
    no_ledger_violations(migrated_engine, org)


def test_a_payment_reference_applies_once(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    org, user = tenant["organization"], tenant["users"]
    in_tenant(factory, org, lambda s: add_credits(s, user, 5, payment_reference="mp-1"))
    with pytest.raises(DuplicatePaymentError, match="'mp-1' is already recorded"):
        in_tenant(factory, org, lambda s: add_credits(s, user, 5, payment_reference="mp-1"))
    assert balance_of(migrated_engine, org) == (5, 5, 0)


def test_sixteen_workers_debit_and_refund_one_balance(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    org, user = tenant["organization"], tenant["users"]
    in_tenant(factory, org, lambda s: add_credits(s, user, 40))
    start = threading.Barrier(WORKERS)

    def worker(seed: int) -> tuple[int, int]:
        generator = random.Random(seed)
        applied = refused = 0
        start.wait()
        for _ in range(25):
            amount = generator.choice([-3, -2, -1, -1, 1, 2])
            kind = "appointment_debit" if amount < 0 else "cancellation_refund"
            try:
                in_tenant(factory, org, lambda s, a=amount, k=kind: add_credits(s, user, a, k))
                applied += amount
            except InsufficientCreditsError:
                refused += 1
        return applied, refused

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(worker, range(WORKERS)))
    balance, purchased, used = balance_of(migrated_engine, org)
    assert balance == 40 + sum(applied for applied, _ in outcomes)
    assert balance >= 0
    assert balance == purchased - used
    no_ledger_violations(migrated_engine, org)


def test_duplicate_payment_references_race_and_one_applies(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    org, user = tenant["organization"], tenant["users"]
    start = threading.Barrier(WORKERS)

    def worker(_: int) -> str:
        start.wait()
        try:
            in_tenant(factory, org, lambda s: add_credits(s, user, 10, payment_reference="race"))
        except DuplicatePaymentError:
            return "duplicate"
        return "applied"

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(worker, range(WORKERS)))
    assert sorted(outcomes).count("applied") == 1
    assert outcomes.count("duplicate") == WORKERS - 1
    assert balance_of(migrated_engine, org) == (10, 10, 0)


NOW = dt.datetime(2030, 5, 1, 12, tzinfo=dt.UTC)


def _appointment(session: Session, rows: dict[str, int], starts_at: dt.datetime) -> Appointment:
    appointment = Appointment(
        professional_id=rows["professionals"],
        client_id=rows["users"],
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
        uses_credit=True,
        state="pre_confirmed",
    )
    session.add(appointment)
    session.flush()
    return appointment


@pytest.mark.parametrize(
    ("hours_ahead", "refunded"),
    [
        pytest.param(48, True, id="two-days-ahead-refunded"),
        pytest.param(24, True, id="exactly-the-window-refunded"),
        pytest.param(23, False, id="too-late-kept"),
    ],
)
def test_confirm_debits_and_an_early_cancel_refunds(
    migrated_engine: Engine,
    factory: sessionmaker[Session],
    tenant: dict[str, int],
    hours_ahead: int,
    refunded: bool,
) -> None:
    org = tenant["organization"]
    in_tenant(factory, org, lambda s: add_credits(s, tenant["users"], 3))

    def book_confirm_cancel(session: Session) -> tuple[Any, Any]:
        appointment = _appointment(session, tenant, NOW + dt.timedelta(hours=hours_ahead))
        debit = confirm_appointment(session, appointment, now=NOW)
        refund = cancel_appointment(session, appointment, "ill", now=NOW)
        return debit, refund

    debit, refund = in_tenant(factory, org, book_confirm_cancel)
    assert debit is not None and debit.amount == -1
    assert (refund is not None) == refunded
    assert balance_of(migrated_engine, org)[0] == (3 if refunded else 2)
    no_ledger_violations(migrated_engine, org)


def test_confirm_without_credits_changes_nothing(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    with pytest.raises(InsufficientCreditsError):
        in_tenant(
            factory,
            tenant["organization"],
            lambda s: confirm_appointment(s, _appointment(s, tenant, NOW), now=NOW),
        )
    with migrated_engine.connect() as connection:
        states = connection.scalars(
            text("SELECT state FROM appointments WHERE organization_id = :o AND uses_credit"),
            {"o": tenant["organization"]},
        ).all()
    assert states == []


@pytest.fixture(autouse=True)
def _no_leftover_tenant() -> Iterator[None]:
    yield
    from rayces.tenancy import current_tenant

    assert current_tenant() is None

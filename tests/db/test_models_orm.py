"""The models work as an ORM on the migrated schema: rows go in, relationships come back.

Everything runs in one transaction that is rolled back, so the module's shared database stays
empty for the other tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from rayces.schema import (
    Appointment,
    AppointmentState,
    CreditBalance,
    CreditTransaction,
    CreditTransactionStatus,
    CreditTransactionType,
    Organization,
    Professional,
    Role,
    RoleAssignment,
    Student,
    StudentState,
    TimeSlot,
    User,
    UserRole,
)

STARTS_AT = dt.datetime(2025, 7, 21, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def session(migrated_engine: Engine) -> Iterator[Session]:
    with migrated_engine.connect() as connection:
        transaction = connection.begin()
        # Commits inside the test become savepoints of the outer transaction.
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        transaction.rollback()


def _tenant(session: Session, subdomain: str) -> Organization:
    organization = Organization(name=subdomain.title(), subdomain=subdomain)
    session.add(organization)
    session.flush()
    return organization


def test_a_tenant_books_an_appointment_paid_with_credits(session: Session) -> None:
    org = _tenant(session, "acme")
    guardian = User(organization=org, email="guardian@example.com", role=UserRole.CLIENT)
    therapist = User(organization=org, email="therapist@example.com", role=UserRole.PROFESSIONAL)
    professional = Professional(organization=org, user=therapist, specialization="speech")
    student = Student(organization=org, guardian=guardian, first_name="Ana", last_name="Paz")
    appointment = Appointment(
        organization=org,
        professional=professional,
        student=student,
        client=guardian,
        starts_at=STARTS_AT,
        ends_at=STARTS_AT + dt.timedelta(hours=1),
        uses_credit=True,
    )
    slot = TimeSlot(
        organization=org,
        professional=professional,
        date=STARTS_AT.date(),
        start_time=dt.time(14),
        end_time=dt.time(15),
        available=False,
        appointment=appointment,
    )
    balance = CreditBalance(organization=org, user=guardian, balance=4, lifetime_purchased=5)
    purchase = CreditTransaction(
        organization=org,
        user=guardian,
        credit_balance=balance,
        amount=5,
        transaction_type=CreditTransactionType.PURCHASE,
        status=CreditTransactionStatus.COMPLETED,
        # A completed transaction carries when it was processed (the state trigger requires it).
        processed_at=STARTS_AT,
    )
    debit = CreditTransaction(
        organization=org,
        user=guardian,
        credit_balance=balance,
        appointment=appointment,
        amount=-1,
        transaction_type=CreditTransactionType.APPOINTMENT_DEBIT,
    )
    role = Role(organization=org, name="therapists", permissions=["appointments:write"])
    assignment = RoleAssignment(organization=org, user=therapist, role=role)
    session.add_all([slot, purchase, debit, assignment])
    session.commit()
    session.expunge_all()

    loaded = session.scalars(
        select(User)
        .where(User.email == "guardian@example.com")
        .options(selectinload(User.client_appointments))
    ).one()

    # Database defaults came back: state machines start where the contract says.
    (booked,) = loaded.client_appointments
    assert booked.state == AppointmentState.DRAFT
    assert booked.student is not None
    assert booked.student.state == StudentState.ADMISSION
    assert booked.currency == "ARS"
    assert loaded.jti
    assert loaded.created_at.tzinfo is not None

    assert loaded.organization.subdomain == "acme"
    assert [s.first_name for s in loaded.guarded_students] == ["Ana"]
    assert booked.professional.user.email == "therapist@example.com"
    assert booked.time_slot is not None
    assert booked.time_slot.start_time == dt.time(14)
    assert loaded.credit_balance is not None
    assert [t.amount for t in loaded.credit_balance.transactions] == [5, -1]
    assert [t.status for t in loaded.credit_balance.transactions] == ["completed", "pending"]
    assert [t.transaction_type for t in booked.credit_transactions] == ["appointment_debit"]
    assert booked.professional.user.role_assignments[0].role.permissions == ["appointments:write"]
    assert {u.email for u in loaded.organization.users} == {
        "guardian@example.com",
        "therapist@example.com",
    }


def test_a_row_cannot_point_at_another_tenants_row(session: Session) -> None:
    acme = _tenant(session, "acme")
    globex = _tenant(session, "globex")
    acme_user = User(organization=acme, email="someone@acme.example")
    session.add(acme_user)
    session.flush()

    # Same user id, other tenant: the composite key (organization_id, user_id) has no parent.
    balance = CreditBalance(organization=globex, user_id=acme_user.id)
    session.add(balance)
    with pytest.raises(IntegrityError, match="fk_credit_balances_user"):
        session.flush()

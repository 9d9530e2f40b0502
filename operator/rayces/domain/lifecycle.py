"""Typed events on the models: `AppointmentLifecycle(appointment).confirm()`, `may_confirm()`.

The schema layer's models know nothing of the state machines (the machines live above them), so
the events are offered by small facades over a row. Each method fires one event of the table in
`rayces.domain.state_machines`; a test checks that every event of a machine has its method.
"""

from __future__ import annotations

import datetime as dt

from rayces.domain.state_machines import (
    APPOINTMENT,
    CREDIT_TRANSACTION,
    STUDENT,
    StateMachine,
    fire,
    may_fire,
)
from rayces.schema import Appointment, CreditTransaction, Student


class _Lifecycle:
    machine: StateMachine

    def __init__(self, row: object) -> None:
        self.row = row

    @property
    def state(self) -> str:
        return str(getattr(self.row, self.machine.column))

    def fire(self, event: str, *, now: dt.datetime | None = None, **values: object) -> str:
        """Fire `event` by name; raises `IllegalTransitionError` naming the state and event."""
        return fire(self.machine, self.row, event, now=now, **values)

    def may(self, event: str, *, now: dt.datetime | None = None, **values: object) -> bool:
        return may_fire(self.machine, self.row, event, now=now, **values)


class AppointmentLifecycle(_Lifecycle):
    """draft → pre_confirmed → confirmed → executed; cancelled from any but executed."""

    machine = APPOINTMENT

    def __init__(self, appointment: Appointment) -> None:
        super().__init__(appointment)

    def pre_confirm(self, *, now: dt.datetime | None = None) -> str:
        return self.fire("pre_confirm", now=now)

    def may_pre_confirm(self, *, now: dt.datetime | None = None) -> bool:
        return self.may("pre_confirm", now=now)

    def confirm(self, *, now: dt.datetime | None = None) -> str:
        """Stamps `confirmed_at`."""
        return self.fire("confirm", now=now)

    def may_confirm(self, *, now: dt.datetime | None = None) -> bool:
        return self.may("confirm", now=now)

    def execute(self, *, now: dt.datetime | None = None) -> str:
        """Stamps `executed_at`; refused before the appointment starts."""
        return self.fire("execute", now=now)

    def may_execute(self, *, now: dt.datetime | None = None) -> bool:
        return self.may("execute", now=now)

    def cancel(self, reason: str, *, now: dt.datetime | None = None) -> str:
        """Stamps `cancelled_at` and records `cancellation_reason` (required)."""
        return self.fire("cancel", now=now, cancellation_reason=reason)

    def may_cancel(self, reason: str = "-", *, now: dt.datetime | None = None) -> bool:
        return self.may("cancel", now=now, cancellation_reason=reason)


class StudentLifecycle(_Lifecycle):
    """admission → active ⇄ inactive → discharged (discharge from active or inactive)."""

    machine = STUDENT

    def __init__(self, student: Student) -> None:
        super().__init__(student)

    def activate(self) -> str:
        return self.fire("activate")

    def may_activate(self) -> bool:
        return self.may("activate")

    def deactivate(self) -> str:
        return self.fire("deactivate")

    def may_deactivate(self) -> bool:
        return self.may("deactivate")

    def reactivate(self) -> str:
        return self.fire("reactivate")

    def may_reactivate(self) -> bool:
        return self.may("reactivate")

    def discharge(self) -> str:
        return self.fire("discharge")

    def may_discharge(self) -> bool:
        return self.may("discharge")


class CreditTransactionLifecycle(_Lifecycle):
    """pending → completed | failed | cancelled; a completed transaction never changes."""

    machine = CREDIT_TRANSACTION

    def __init__(self, transaction: CreditTransaction) -> None:
        super().__init__(transaction)

    def complete(self, *, now: dt.datetime | None = None) -> str:
        """Stamps `processed_at`."""
        return self.fire("complete", now=now)

    def may_complete(self, *, now: dt.datetime | None = None) -> bool:
        return self.may("complete", now=now)

    def fail(self) -> str:
        return self.fire("fail")

    def may_fail(self) -> bool:
        return self.may("fail")

    def cancel(self) -> str:
        return self.fire("cancel")

    def may_cancel(self) -> bool:
        return self.may("cancel")


LIFECYCLES: tuple[type[_Lifecycle], ...] = (
    AppointmentLifecycle,
    StudentLifecycle,
    CreditTransactionLifecycle,
)

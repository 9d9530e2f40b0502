"""A tenant's default data: the organization row, its roles, and (profile `demo`) sample data.

`seed_organization` is what `raycesctl seed` and the operator's seed Job run. Its options mirror
the `Organization` resource's spec (`crds/organizations.rayces.io.yaml`): slug, display name,
time zone, suspended, roles, initial credits and days of slots. It is idempotent: every row is
found by a natural key before it is created (users by e-mail, roles by name, appointments by a
`metadata.seed` key, purchases by their payment reference), so a second run with the same
options changes nothing and reports zero rows created.

Ownership: with `owner` (the operator passes its `Organization` resource's uid), the row records
its owner in `organizations.settings` under `OWNER_SETTING` (a jsonb key, so no schema revision),
and a seed for another owner changes nothing: the row is locked (`SELECT ... FOR UPDATE`) and
checked before anything is written, in the seed's one transaction, so two seeds racing for the
same subdomain cannot both claim it. A row with no owner is taken over only with `adopt`.
Without `owner` (a person at the command line) the seed brings any row in line, as before.

Profiles:

- `minimal`: the organization and its roles;
- `demo`: also two professionals (weekday availability 09:00-13:00 and slots for `slot_days`),
  two guardians each with a student, one appointment in each state, and credit balances with
  their purchase transactions (`initial_credits` each).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from rayces.domain.errors import (
    DuplicatePaymentError,
    InvalidInputError,
    OwnershipConflictError,
)
from rayces.domain.ledger import add_credits
from rayces.domain.lifecycle import AppointmentLifecycle
from rayces.domain.scheduling import generate_time_slots, time_zone
from rayces.domain.tenants import check_subdomain
from rayces.schema import (
    Appointment,
    AvailabilityRule,
    Organization,
    Professional,
    Role,
    Student,
    User,
)
from rayces.schema.states import AppointmentState, OrganizationStatus, UserRole
from rayces.tenancy import tenant_scope

Profile = Literal["minimal", "demo"]
PROFILES: tuple[Profile, ...] = ("minimal", "demo")
DEFAULT_ROLES = ("admin", "staff", "professional", "client")
MAX_SLOT_DAYS = 366
#: The key of `organizations.settings` that holds the id of the resource that owns the row.
OWNER_SETTING = "rayces.io/owner"


@dataclass(frozen=True)
class SeedOptions:
    """What to seed; the fields are the `Organization` spec's."""

    subdomain: str
    name: str | None = None
    time_zone: str = "UTC"
    suspended: bool = False
    roles: tuple[str, ...] = DEFAULT_ROLES
    initial_credits: int = 0
    slot_days: int = 14
    profile: Profile = "minimal"
    #: who claims the row (an Organization resource's uid); None: no ownership check
    owner: str | None = None
    #: take over a row that has no owner yet
    adopt: bool = False

    def validated(self) -> SeedOptions:
        """These options, or `InvalidInputError` naming the first one that is wrong."""
        check_subdomain(self.subdomain)
        time_zone(self.time_zone)
        if self.name is not None and not self.name.strip():
            raise InvalidInputError("--name must not be blank")
        if self.initial_credits < 0:
            raise InvalidInputError(
                f"--initial-credits must be 0 or more, not {self.initial_credits}"
            )
        if not 0 <= self.slot_days <= MAX_SLOT_DAYS:
            raise InvalidInputError(
                f"--slot-days must be between 0 and {MAX_SLOT_DAYS}, not {self.slot_days}"
            )
        if self.profile not in PROFILES:
            raise InvalidInputError(f"--profile must be one of {', '.join(PROFILES)}")
        if any(not role.strip() for role in self.roles):
            raise InvalidInputError("--roles must not contain an empty name")
        if self.owner is not None and not self.owner.strip():
            raise InvalidInputError("--owner must not be blank")
        if self.adopt and self.owner is None:
            raise InvalidInputError("--adopt needs --owner: the owner that takes the row over")
        return self


@dataclass
class SeedReport:
    """What a seed run did: the organization, its changed fields, and rows created per table."""

    organization_id: int
    organization_created: bool
    changed_fields: dict[str, Any] = field(default_factory=dict)
    rows_created: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return (
            self.organization_created
            or bool(self.changed_fields)
            or any(self.rows_created.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "organization_created": self.organization_created,
            "changed_fields": self.changed_fields,
            "rows_created": {t: n for t, n in sorted(self.rows_created.items()) if n},
        }


def _organization(session: Session, options: SeedOptions) -> tuple[Organization, SeedReport]:
    organization = session.scalars(
        select(Organization).where(Organization.subdomain == options.subdomain).with_for_update()
    ).one_or_none()
    status = OrganizationStatus.SUSPENDED if options.suspended else OrganizationStatus.ACTIVE
    if organization is None:
        organization = Organization(
            subdomain=options.subdomain,
            name=options.name or options.subdomain,
            time_zone=options.time_zone,
            status=status.value,
            settings={OWNER_SETTING: options.owner} if options.owner is not None else {},
        )
        session.add(organization)
        session.flush()
        report = SeedReport(organization.id, organization_created=True)
        report.rows_created["organizations"] += 1
        return organization, report
    adopted = _claim(organization, options)
    report = SeedReport(organization.id, organization_created=False)
    if adopted:
        report.changed_fields["owner"] = {"from": None, "to": options.owner}
    wanted: dict[str, Any] = {"time_zone": options.time_zone}
    if options.name is not None:
        wanted["name"] = options.name
    # An archived tenant stays archived: archiving is the deletion policy's, not the seed's.
    if organization.status != OrganizationStatus.ARCHIVED:
        wanted["status"] = status.value
    for column, value in wanted.items():
        if getattr(organization, column) != value:
            report.changed_fields[column] = {"from": getattr(organization, column), "to": value}
            setattr(organization, column, value)
    session.flush()
    return organization, report


def owner_of(organization: Organization) -> str | None:
    """The id of the resource that owns the row, or None."""
    owner = (organization.settings or {}).get(OWNER_SETTING)
    return str(owner) if owner else None


def _claim(organization: Organization, options: SeedOptions) -> bool:
    """Refuse, before anything is written, a seed whose owner does not hold the (locked) row;
    record the owner when it adopts a row that had none (then True)."""
    if options.owner is None:
        return False
    owner = owner_of(organization)
    if owner == options.owner:
        return False
    if owner is None and options.adopt:
        organization.settings = {**(organization.settings or {}), OWNER_SETTING: options.owner}
        return True
    held_by = f"Organization resource {owner}" if owner else "no Organization resource"
    raise OwnershipConflictError(
        f"organization {options.subdomain} (id {organization.id}) already exists and is owned "
        f"by {held_by}, not {options.owner}; nothing was changed",
        owner=owner,
    )


def _user(session: Session, report: SeedReport, email: str, name: str, role: UserRole) -> User:
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        first, _, last = name.partition(" ")
        user = User(email=email, name=name, first_name=first, last_name=last, role=role.value)
        session.add(user)
        session.flush()
        report.rows_created["users"] += 1
    return user


def _seed_roles(session: Session, report: SeedReport, roles: tuple[str, ...]) -> None:
    existing = set(session.scalars(select(Role.name)))
    for name in dict.fromkeys(roles):
        if name not in existing:
            session.add(Role(name=name, description=f"{name} (seeded)"))
            report.rows_created["roles"] += 1
    session.flush()


def _seed_professional(
    session: Session, report: SeedReport, user: User, specialization: str
) -> Professional:
    professional = session.scalars(
        select(Professional).where(Professional.user_id == user.id)
    ).one_or_none()
    if professional is None:
        professional = Professional(
            user_id=user.id, title="Lic.", specialization=specialization, session_price_cents=0
        )
        session.add(professional)
        session.flush()
        report.rows_created["professionals"] += 1
    existing = {
        (rule.day_of_week, rule.start_time)
        for rule in session.scalars(
            select(AvailabilityRule).where(AvailabilityRule.professional_id == professional.id)
        )
    }
    for day in range(1, 6):  # Monday to Friday
        if (day, dt.time(9)) not in existing:
            session.add(
                AvailabilityRule(
                    professional_id=professional.id,
                    day_of_week=day,
                    start_time=dt.time(9),
                    end_time=dt.time(13),
                )
            )
            report.rows_created["availability_rules"] += 1
    session.flush()
    return professional


def _seed_student(session: Session, report: SeedReport, guardian: User, first: str) -> Student:
    student = session.scalars(
        select(Student).where(Student.guardian_id == guardian.id, Student.first_name == first)
    ).one_or_none()
    if student is None:
        student = Student(guardian_id=guardian.id, first_name=first, last_name="Demo")
        session.add(student)
        session.flush()
        report.rows_created["students"] += 1
    return student


def _seed_credits(session: Session, report: SeedReport, user: User, credits: int) -> None:
    if credits == 0:
        result = session.execute(
            text(
                "INSERT INTO credit_balances (organization_id, user_id) "
                "VALUES (:organization_id, :user_id) ON CONFLICT DO NOTHING"
            ),
            {"organization_id": user.organization_id, "user_id": user.id},
        )
        report.rows_created["credit_balances"] += int(result.rowcount)  # type: ignore[attr-defined]
        return
    had_balance = session.execute(
        text("SELECT 1 FROM credit_balances WHERE organization_id = :o AND user_id = :u"),
        {"o": user.organization_id, "u": user.id},
    ).first()
    try:
        add_credits(
            session,
            user.id,
            credits,
            "purchase",
            {"seed": "initial-credits"},
            payment_reference=f"seed:initial-credits:{user.id}",
            payment_method="seed",
        )
    except DuplicatePaymentError:
        return
    report.rows_created["credit_transactions"] += 1
    if had_balance is None:
        report.rows_created["credit_balances"] += 1


# (seed key, events fired from draft, days from today; each starts at 18:00 UTC)
_DEMO_APPOINTMENTS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("demo-draft", (), 3),
    ("demo-pre-confirmed", ("pre_confirm",), 4),
    ("demo-confirmed", ("pre_confirm", "confirm"), 5),
    ("demo-executed", ("pre_confirm", "confirm", "execute"), -2),
    ("demo-cancelled", ("cancel",), 6),
)


def _seed_appointments(
    session: Session,
    report: SeedReport,
    professional: Professional,
    client: User,
    student: Student,
    *,
    now: dt.datetime,
) -> None:
    existing = set(
        session.scalars(
            select(Appointment.metadata_["seed"].astext).where(
                Appointment.metadata_["seed"].astext.is_not(None)
            )
        )
    )
    for key, events, days in _DEMO_APPOINTMENTS:
        if key in existing:
            continue
        starts_at = (now + dt.timedelta(days=days)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        appointment = Appointment(
            professional_id=professional.id,
            client_id=client.id,
            student_id=student.id,
            starts_at=starts_at,
            ends_at=starts_at + dt.timedelta(hours=1),
            metadata_={"seed": key},
            state=AppointmentState.DRAFT.value,
        )
        lifecycle = AppointmentLifecycle(appointment)
        for event in events:
            if event == "cancel":
                lifecycle.cancel("demo cancellation", now=now)
            else:
                lifecycle.fire(event, now=max(now, starts_at) if event == "execute" else now)
        session.add(appointment)
        report.rows_created["appointments"] += 1
    session.flush()


def seed_organization(
    session: Session, options: SeedOptions, *, now: dt.datetime | None = None
) -> SeedReport:
    """Create or update the organization and seed its data, in the session's transaction.

    Run it as the migrating role: it creates the organization, which the application role
    cannot. The caller commits.
    """
    options = options.validated()
    now = now or dt.datetime.now(dt.UTC)
    organization, report = _organization(session, options)
    with tenant_scope(organization.id):
        _seed_roles(session, report, options.roles)
        if options.profile == "demo":
            _seed_demo(session, report, options, now)
    return report


def _seed_demo(
    session: Session, report: SeedReport, options: SeedOptions, now: dt.datetime
) -> None:
    slug = options.subdomain
    professionals = [
        _seed_professional(
            session,
            report,
            _user(
                session,
                report,
                f"pro{n}@{slug}.example",
                f"Professional {n}",
                UserRole.PROFESSIONAL,
            ),
            specialization,
        )
        for n, specialization in ((1, "speech therapy"), (2, "psychopedagogy"))
    ]
    guardians = [
        _user(session, report, f"guardian{n}@{slug}.example", f"Guardian {n}", UserRole.CLIENT)
        for n in (1, 2)
    ]
    students = [
        _seed_student(session, report, guardian, first)
        for guardian, first in zip(guardians, ("Lucia", "Mateo"), strict=True)
    ]
    for guardian in guardians:
        _seed_credits(session, report, guardian, options.initial_credits)
    _seed_appointments(session, report, professionals[0], guardians[0], students[0], now=now)
    if options.slot_days:
        local_today = now.astimezone(time_zone(options.time_zone)).date()
        last_day = local_today + dt.timedelta(days=options.slot_days - 1)
        for professional in professionals:
            report.rows_created["time_slots"] += generate_time_slots(
                session, professional.id, local_today, last_day
            )

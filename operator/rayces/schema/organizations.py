"""The tenant table: every other row in the schema belongs to one organization."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rayces.schema.base import Base, CreatedUpdatedAt, IdentityKey
from rayces.schema.states import OrganizationStatus, check_in

if TYPE_CHECKING:
    from rayces.schema.access import Role, RoleAssignment
    from rayces.schema.appointments import Appointment
    from rayces.schema.availability import AvailabilityRule, TimeSlot
    from rayces.schema.credits import CreditBalance, CreditTransaction
    from rayces.schema.myhub import Like, Post, User
    from rayces.schema.people import Professional, Student

# The collections below never cascade: deleting a tenant is an explicit operation of the domain
# layer, and `passive_deletes="all"` leaves the children to the database's foreign keys (which
# refuse) instead of having the ORM null out `organization_id` on whatever it has loaded.
_TENANT_CHILDREN: dict[str, Any] = {"back_populates": "organization", "passive_deletes": "all"}


class Organization(IdentityKey, CreatedUpdatedAt, Base):
    """A tenant. `subdomain` is also the slug of the operator's `Organization` resource."""

    __tablename__ = "organizations"
    __table_args__ = (
        Index("index_organizations_on_subdomain", "subdomain", unique=True),
        CheckConstraint(check_in("status", OrganizationStatus), name="status"),
        # A DNS label: lower-case letters, digits and inner hyphens, at most 63 characters.
        CheckConstraint(
            "subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'", name="subdomain_format"
        ),
        CheckConstraint("length(btrim(name)) > 0", name="name_present"),
    )

    name: Mapped[str]
    subdomain: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=OrganizationStatus.ACTIVE.value)
    time_zone: Mapped[str] = mapped_column(server_default="UTC")
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    users: Mapped[list[User]] = relationship(**_TENANT_CHILDREN)
    posts: Mapped[list[Post]] = relationship(**_TENANT_CHILDREN)
    likes: Mapped[list[Like]] = relationship(**_TENANT_CHILDREN)
    students: Mapped[list[Student]] = relationship(**_TENANT_CHILDREN)
    professionals: Mapped[list[Professional]] = relationship(**_TENANT_CHILDREN)
    appointments: Mapped[list[Appointment]] = relationship(**_TENANT_CHILDREN)
    roles: Mapped[list[Role]] = relationship(**_TENANT_CHILDREN)
    role_assignments: Mapped[list[RoleAssignment]] = relationship(**_TENANT_CHILDREN)
    credit_balances: Mapped[list[CreditBalance]] = relationship(**_TENANT_CHILDREN)
    credit_transactions: Mapped[list[CreditTransaction]] = relationship(**_TENANT_CHILDREN)
    availability_rules: Mapped[list[AvailabilityRule]] = relationship(**_TENANT_CHILDREN)
    time_slots: Mapped[list[TimeSlot]] = relationship(**_TENANT_CHILDREN)

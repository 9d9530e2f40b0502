"""Typed SQLAlchemy models for every table of the booking schema, and the state vocabularies."""

from rayces.schema.access import Role, RoleAssignment
from rayces.schema.appointments import Appointment
from rayces.schema.availability import AvailabilityRule, TimeSlot
from rayces.schema.base import Base
from rayces.schema.credits import CreditBalance, CreditTransaction
from rayces.schema.myhub import Like, Post, User
from rayces.schema.organizations import Organization
from rayces.schema.people import Professional, Student
from rayces.schema.states import (
    AppointmentState,
    CreditTransactionStatus,
    CreditTransactionType,
    OrganizationStatus,
    StudentState,
    UserRole,
)

__all__ = [
    "Appointment",
    "AppointmentState",
    "AvailabilityRule",
    "Base",
    "CreditBalance",
    "CreditTransaction",
    "CreditTransactionStatus",
    "CreditTransactionType",
    "Like",
    "Organization",
    "OrganizationStatus",
    "Post",
    "Professional",
    "Role",
    "RoleAssignment",
    "Student",
    "StudentState",
    "TimeSlot",
    "User",
    "UserRole",
]

"""The errors of the booking rules, each one line saying what is wrong and what to do.

The command line maps each class to an error kind and exit code: bad input is a usage error,
a rule the current data does not allow (an overdraft, a taken slot) a failed precondition.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the booking rules' errors; `message` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(DomainError):
    """An argument is not acceptable as given: a negative credit amount, a bad time zone."""


class NotFoundError(DomainError):
    """A row the caller named does not exist in the current tenant (an unknown slug, a user)."""


class InsufficientCreditsError(DomainError):
    """A debit would take a balance below zero; nothing was changed."""


class DuplicatePaymentError(DomainError):
    """The payment reference is already recorded in this organization; nothing was changed."""


class SlotUnavailableError(DomainError):
    """The time slot is booked, blocked or gone."""


class OwnershipConflictError(DomainError):
    """The organization row belongs to another owner (or to none, and adopting was not asked
    for); nothing was changed.

    :param owner: the current owner's id, or None when the row has none.
    """

    def __init__(self, message: str, *, owner: str | None) -> None:
        super().__init__(message)
        self.owner = owner

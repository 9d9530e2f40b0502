"""Booking rules: state machines, the credit ledger, availability and tenant seeds."""

"""Typed SQLAlchemy models for every table of the booking schema, and the state vocabularies."""

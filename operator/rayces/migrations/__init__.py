"""Programmatic Alembic: upgrade, downgrade, status, offline plans, locking and results."""

"""Benchmarks of the migration engine; run with `python -m bench`. Never timed asserts in tests."""

"""Rayces tenant database operator: schema, migrations, tenant seeds and the Kubernetes controller.

The package is layered; see ARCHITECTURE.md. Importing it is cheap on purpose: every Job the
operator runs starts a fresh interpreter, so heavy modules are imported where they are used.
"""

__version__ = "0.1.0"

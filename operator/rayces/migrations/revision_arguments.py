"""The values a run hands the revisions (`-x` arguments), checked before any revision runs.

Revisions read their inputs through `context.get_x_argument(as_dictionary=True)`, never from the
environment; `rayces.migrations.settings` turns the environment into `-x` values once. A bad value
is found here, before the first revision starts, rather than by the revision that needs it after
earlier ones were applied, or by a database CHECK constraint with a message no one can act on.
The rules themselves live beside the revisions that use them (`online_operations`), so there is
one definition of a valid default organization.
"""

from __future__ import annotations

from collections.abc import Mapping


def validate_revision_arguments(values: Mapping[str, str]) -> None:
    """Refuse `-x` values the revisions would refuse later (or, worse, accept wrongly).

    :param values: the `-x` arguments of a run.
    :raises UsageError: an empty or malformed default organization name or subdomain.
    """
    from rayces.migrations.online_operations import parse_default_organization

    parse_default_organization(values)

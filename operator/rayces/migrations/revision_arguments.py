"""The values a run hands the revisions (`-x` arguments), checked before any revision runs.

Revisions read their inputs through `context.get_x_argument(as_dictionary=True)`, never from the
environment; `rayces.migrations.settings` turns the environment into `-x` values once. A bad value
is found here, before the first revision starts, rather than by the revision that needs it after
earlier ones were applied, or by a database CHECK constraint with a message no one can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rayces.migrations.errors import UsageError

#: A DNS label: what an organization's subdomain must be (the database checks it too).
SUBDOMAIN_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def validate_revision_arguments(values: Mapping[str, str]) -> None:
    """Refuse `-x` values the revisions would refuse later (or, worse, accept wrongly).

    :param values: the `-x` arguments of a run.
    :raises UsageError: an empty or malformed default organization name or subdomain.
    """
    name = values.get("default_organization_name")
    if name is not None and (not name.strip() or _CONTROL_CHARACTERS.search(name)):
        raise UsageError(
            f"invalid default organization name {name!r}",
            hint="give a non-blank name on one line (--default-organization-name or "
            "RAYCES_DEFAULT_ORGANIZATION_NAME), or leave it out for 'Default Organization'",
        )
    subdomain = values.get("default_organization_subdomain")
    if subdomain is not None and not SUBDOMAIN_PATTERN.fullmatch(subdomain):
        raise UsageError(
            f"invalid default organization subdomain {subdomain!r}",
            hint="use 1 to 63 lower-case letters, digits and hyphens, not starting or ending "
            "with a hyphen (--default-organization-subdomain or "
            "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN), or leave it out for 'default'",
        )

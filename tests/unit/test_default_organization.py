"""The default organization's options are checked strictly and early, as usage errors."""

from __future__ import annotations

import pytest

from rayces.migrations.errors import UsageError
from rayces.migrations.online_operations import (
    DEFAULT_ORGANIZATION,
    DefaultOrganization,
    parse_default_organization,
)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({}, DEFAULT_ORGANIZATION, id="absent-means-the-default"),
        pytest.param(
            {"default_organization_name": "Acme Clinic", "default_organization_subdomain": "acme"},
            DefaultOrganization("Acme Clinic", "acme"),
            id="both-given",
        ),
        pytest.param(
            {"default_organization_subdomain": "a" * 63},
            DefaultOrganization(DEFAULT_ORGANIZATION.name, "a" * 63),
            id="longest-label",
        ),
        pytest.param(
            {"default_organization_name": "O'Brien & Co: 100%"},
            DefaultOrganization("O'Brien & Co: 100%", DEFAULT_ORGANIZATION.subdomain),
            id="name-with-quotes",
        ),
    ],
)
def test_valid(arguments: dict[str, str], expected: DefaultOrganization) -> None:
    assert parse_default_organization(arguments) == expected


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        pytest.param({"default_organization_subdomain": "acme\n"}, "subdomain", id="newline"),
        pytest.param({"default_organization_subdomain": ""}, "subdomain", id="empty-subdomain"),
        pytest.param({"default_organization_subdomain": "-acme"}, "subdomain", id="hyphen"),
        pytest.param({"default_organization_subdomain": "Acme"}, "subdomain", id="upper-case"),
        pytest.param({"default_organization_subdomain": "a" * 64}, "subdomain", id="too-long"),
        pytest.param({"default_organization_name": ""}, "name", id="empty-name"),
        pytest.param({"default_organization_name": "  "}, "name", id="blank-name"),
        pytest.param({"default_organization_name": "Acme\n"}, "name", id="name-with-newline"),
    ],
)
def test_invalid_is_a_usage_error_naming_the_value(arguments: dict[str, str], names: str) -> None:
    with pytest.raises(UsageError, match=f"default organization {names}") as raised:
        parse_default_organization(arguments)
    assert raised.value.hint
    assert int(raised.value.kind.exit_code) == 2

"""A SchemaMigration's spec as frozen values, with the checks its CRD schema cannot make.

The apiserver already refuses what the OpenAPI schema can express (types, patterns, ranges,
required fields, defaults). What is left is checked here, once, so every other module works on a
`SchemaMigrationSpec` that is known to be well formed: names that must be valid Kubernetes names,
and combinations of fields. A problem is a `SpecError` naming the field and what to do, which the
reconciler turns into a Stalled condition, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: A Secret's name: a DNS subdomain (RFC 1123).
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: A key inside a Secret's data.
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_REVISION = re.compile(r"^(head|base|[A-Za-z0-9_]{1,32})$")
_DURATION = re.compile(r"^[0-9]+(ms|s|min|h)$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


class SpecError(ValueError):
    """The spec cannot be acted on: which field, what is wrong, what to do."""

    def __init__(self, field: str, problem: str, hint: str) -> None:
        super().__init__(f"spec.{field}: {problem}; {hint}")
        self.field = field
        self.problem = problem
        self.hint = hint


@dataclass(frozen=True)
class SecretKeyRef:
    """The Secret key that holds the database URL. Only its name travels, never its value."""

    name: str
    key: str


@dataclass(frozen=True)
class JobSettings:
    """What the spec says about the Jobs that run `raycesctl`."""

    image: str | None
    backoff_limit: int
    active_deadline_seconds: int
    service_account_name: str | None


@dataclass(frozen=True)
class SchemaMigrationSpec:
    """Everything the operator acts on, from one generation of a SchemaMigration."""

    database: SecretKeyRef
    target_revision: str
    rollback_on_failure: bool = False
    allow_data_loss: bool = False
    dry_run: bool = False
    suspend: bool = False
    default_organization_name: str | None = None
    default_organization_subdomain: str | None = None
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    lock_wait_timeout_seconds: int = 60
    job: JobSettings = JobSettings(
        image=None, backoff_limit=0, active_deadline_seconds=3600, service_account_name=None
    )


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(field, f"is a {type(value).__name__}, not an object", "give an object")
    return value


def _string(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise SpecError(field, "is missing", "set it")
        return None
    if not isinstance(value, str):
        raise SpecError(field, f"is {value!r}, not a string", "give a string")
    return value


def _boolean(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError(field, f"is {value!r}, not true or false", "give true or false")
    return value


def _integer(value: Any, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(field, f"is {value!r}", f"give a whole number from {low} to {high}")
    return value


def duration_seconds(text: str) -> float:
    """Seconds in a PostgreSQL-style duration such as `5s`, `500ms`, `30min`, `1h`."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 5s, 500ms, 30min or 1h")
    unit = match.group(1)
    return int(text[: -len(unit)]) * _DURATION_SECONDS[unit]


def _duration(value: Any, field: str) -> str | None:
    text = _string(value, field)
    if text is not None and _DURATION.match(text) is None:
        raise SpecError(field, f"is {text!r}", "give a duration such as 5s, 500ms, 30min or 1h")
    return text


def parse_schema_migration_spec(spec: Any) -> SchemaMigrationSpec:
    """The spec of a SchemaMigration as a `SchemaMigrationSpec`.

    :param spec: the resource's `spec` as the apiserver returned it (defaults applied).
    :raises SpecError: a field is missing, malformed, or contradicts another.
    """
    spec = _mapping(spec, "")
    database = _mapping(spec.get("database"), "database")
    reference = _mapping(database.get("urlSecretRef"), "database.urlSecretRef")
    secret_name = _string(reference.get("name"), "database.urlSecretRef.name", required=True)
    assert secret_name is not None
    if len(secret_name) > 253 or _DNS_SUBDOMAIN.match(secret_name) is None:
        raise SpecError(
            "database.urlSecretRef.name",
            f"{secret_name!r} is not a valid Secret name",
            "use lower-case letters, digits, '-' and '.', starting and ending with a letter "
            "or digit",
        )
    secret_key = _string(reference.get("key"), "database.urlSecretRef.key") or "DATABASE_URL"
    if _SECRET_KEY.match(secret_key) is None:
        raise SpecError(
            "database.urlSecretRef.key",
            f"{secret_key!r} is not a valid Secret key",
            "use letters, digits, '-', '_' and '.'",
        )
    target = _string(spec.get("targetRevision"), "targetRevision", required=True)
    assert target is not None
    if _REVISION.match(target) is None:
        raise SpecError(
            "targetRevision", f"{target!r} is not a revision", "give head, base or a revision id"
        )
    organization = _mapping(spec.get("defaultOrganization"), "defaultOrganization")
    timeouts = _mapping(spec.get("timeouts"), "timeouts")
    job = _mapping(spec.get("job"), "job")
    job_settings = JobSettings(
        image=_string(job.get("image"), "job.image"),
        backoff_limit=_integer(job.get("backoffLimit"), "job.backoffLimit", 0, 0, 10),
        active_deadline_seconds=_integer(
            job.get("activeDeadlineSeconds"), "job.activeDeadlineSeconds", 3600, 1, 7 * 86400
        ),
        service_account_name=_string(job.get("serviceAccountName"), "job.serviceAccountName"),
    )
    lock_wait = _integer(
        timeouts.get("lockWaitTimeoutSeconds"), "timeouts.lockWaitTimeoutSeconds", 60, 0, 86400
    )
    if lock_wait >= job_settings.active_deadline_seconds:
        raise SpecError(
            "timeouts.lockWaitTimeoutSeconds",
            f"{lock_wait}s is not shorter than job.activeDeadlineSeconds "
            f"({job_settings.active_deadline_seconds}s), so the Job would be killed while "
            "still waiting for the migration lock",
            "lower it or raise job.activeDeadlineSeconds",
        )
    statement_timeout = _duration(timeouts.get("statementTimeout"), "timeouts.statementTimeout")
    if (
        statement_timeout is not None
        and duration_seconds(statement_timeout) > job_settings.active_deadline_seconds
    ):
        raise SpecError(
            "timeouts.statementTimeout",
            f"{statement_timeout} is longer than job.activeDeadlineSeconds "
            f"({job_settings.active_deadline_seconds}s), so a statement could outlive its Job",
            "lower it or raise job.activeDeadlineSeconds",
        )
    return SchemaMigrationSpec(
        database=SecretKeyRef(name=secret_name, key=secret_key),
        target_revision=target,
        rollback_on_failure=_boolean(spec.get("rollbackOnFailure"), "rollbackOnFailure"),
        allow_data_loss=_boolean(spec.get("allowDataLoss"), "allowDataLoss"),
        dry_run=_boolean(spec.get("dryRun"), "dryRun"),
        suspend=_boolean(spec.get("suspend"), "suspend"),
        default_organization_name=_string(organization.get("name"), "defaultOrganization.name"),
        default_organization_subdomain=_string(
            organization.get("subdomain"), "defaultOrganization.subdomain"
        ),
        lock_timeout=_duration(timeouts.get("lockTimeout"), "timeouts.lockTimeout"),
        statement_timeout=statement_timeout,
        lock_wait_timeout_seconds=lock_wait,
        job=job_settings,
    )


#: What deleting an Organization does to its rows.
DELETION_POLICIES = ("Retain", "Archive", "Delete")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ROLE = re.compile(r"^[^,\s][^,]*$")


@dataclass(frozen=True)
class OrganizationSpec:
    """Everything the operator acts on, from one generation of an Organization."""

    subdomain: str
    display_name: str
    schema_migration: str
    time_zone: str = "UTC"
    suspended: bool = False
    roles: tuple[str, ...] = ()
    initial_credits: int = 0
    slot_days: int = 14
    deletion_policy: str = "Retain"
    force_delete_with_balances: bool = False


def _time_zone(value: Any) -> str:
    """An IANA zone this operator's tz database knows (the Jobs' image carries the same)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    zone = _string(value, "timeZone") or "UTC"
    try:
        if zone != zone.strip() or zone.startswith(("/", ".")) or ".." in zone:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SpecError(
            "timeZone",
            f"{zone!r} is not an IANA time zone",
            "give a name such as UTC, Europe/Madrid or America/Argentina/Buenos_Aires",
        ) from None
    return zone


def parse_organization_spec(spec: Any) -> OrganizationSpec:
    """The spec of an Organization as an `OrganizationSpec`.

    :raises SpecError: a field is missing or malformed, or the time zone is unknown.
    """
    spec = _mapping(spec, "")
    subdomain = _string(spec.get("subdomain"), "subdomain", required=True)
    assert subdomain is not None
    if _SUBDOMAIN.match(subdomain) is None:
        raise SpecError(
            "subdomain", f"{subdomain!r} is not a DNS label", "use a-z, 0-9 and '-' (≤ 63)"
        )
    name = _string(spec.get("displayName"), "displayName", required=True)
    assert name is not None
    if not name.strip():
        raise SpecError("displayName", "is blank", "give the name people see")
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise SpecError("displayName", "holds control characters", "give printable text")
    reference = _mapping(spec.get("schemaMigrationRef"), "schemaMigrationRef")
    migration = _string(reference.get("name"), "schemaMigrationRef.name", required=True)
    assert migration is not None
    seed = _mapping(spec.get("seed"), "seed")
    roles_value = seed.get("roles")
    roles: tuple[str, ...] = ()
    if roles_value is not None:
        if not isinstance(roles_value, list) or not all(
            isinstance(role, str)
            and _ROLE.match(role)
            and role == role.strip()
            and not any(ord(character) < 32 or ord(character) == 127 for character in role)
            for role in roles_value
        ):
            raise SpecError(
                "seed.roles",
                f"{roles_value!r} is not a list of role names",
                "give names without commas or surrounding spaces",
            )
        roles = tuple(roles_value)
    policy = _string(spec.get("deletionPolicy"), "deletionPolicy") or "Retain"
    if policy not in DELETION_POLICIES:
        raise SpecError("deletionPolicy", f"is {policy!r}", "give Retain, Archive or Delete")
    return OrganizationSpec(
        subdomain=subdomain,
        display_name=name,
        schema_migration=migration,
        time_zone=_time_zone(spec.get("timeZone")),
        suspended=_boolean(spec.get("suspended"), "suspended"),
        roles=roles,
        initial_credits=_integer(
            seed.get("initialCredits"), "seed.initialCredits", 0, 0, 2**31 - 1
        ),
        slot_days=_integer(seed.get("slotDays"), "seed.slotDays", 14, 0, 366),
        deletion_policy=policy,
        force_delete_with_balances=_boolean(
            spec.get("forceDeleteWithBalances"), "forceDeleteWithBalances"
        ),
    )

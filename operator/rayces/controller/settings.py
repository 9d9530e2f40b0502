"""The operator's settings, read from the environment once at start-up and passed down.

Nothing else in the controller reads the environment. Every value has a default that suits a
cluster; tests shorten the retry delays through the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: Annotation whose new value makes a Stalled resource try again.
RETRY_ANNOTATION = "rayces.io/retry"
#: Prefix of kopf's own bookkeeping annotations, and of our labels.
PERSISTENCE_PREFIX = "rayces.io"
#: The value of app.kubernetes.io/managed-by on every object the operator creates.
MANAGER = "rayces-operator"
DEFAULT_IMAGE = "ghcr.io/rayces/rayces-operator:0.1.0"


@dataclass(frozen=True)
class OperatorSettings:
    """Knobs of the reconciler and of the Jobs it builds."""

    #: image of the Jobs when the spec does not name one (the operator's own image)
    job_image: str = DEFAULT_IMAGE
    #: how long a finished Job is kept; long enough for a restarted operator to read its result
    job_ttl_seconds: int = 7 * 86400
    #: first retry delay after a transient failure; doubles each time up to `retry_cap_seconds`
    retry_base_seconds: float = 10.0
    retry_cap_seconds: float = 300.0
    #: transient failures in a row before the resource is Stalled
    max_attempts: int = 6
    #: how often every resource is looked at without an event (a Secret that appears, a due retry)
    resync_seconds: float = 10.0
    #: bytes of SQL a dry run stores in its ConfigMap (the API's limit is 1 MiB for the object)
    dry_run_max_bytes: int = 900_000
    #: seed Jobs of Organizations running at once on one database; the rest wait in line
    seed_jobs_per_database: int = 4


def _number(environment: Mapping[str, str], name: str, default: float) -> float:
    text = environment.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name}={text!r} must be greater than 0")
    return value


def settings_from_environment(environment: Mapping[str, str] | None = None) -> OperatorSettings:
    """Read `RAYCES_*` variables once.

    :raises ValueError: a variable is set to something that is not a positive number.
    """
    env = os.environ if environment is None else environment
    defaults = OperatorSettings()
    return OperatorSettings(
        job_image=env.get("RAYCES_JOB_IMAGE") or defaults.job_image,
        job_ttl_seconds=int(_number(env, "RAYCES_JOB_TTL_SECONDS", defaults.job_ttl_seconds)),
        retry_base_seconds=_number(env, "RAYCES_RETRY_BASE_SECONDS", defaults.retry_base_seconds),
        retry_cap_seconds=_number(env, "RAYCES_RETRY_CAP_SECONDS", defaults.retry_cap_seconds),
        max_attempts=int(_number(env, "RAYCES_MAX_ATTEMPTS", defaults.max_attempts)),
        resync_seconds=_number(env, "RAYCES_RESYNC_SECONDS", defaults.resync_seconds),
        dry_run_max_bytes=int(_number(env, "RAYCES_DRY_RUN_MAX_BYTES", defaults.dry_run_max_bytes)),
        seed_jobs_per_database=int(
            _number(env, "RAYCES_SEED_JOBS_PER_DATABASE", defaults.seed_jobs_per_database)
        ),
    )

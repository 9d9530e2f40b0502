"""What a Job's pod says happened, as a typed outcome, a condition reason and a retry decision.

The Job's container writes raycesctl's JSON result to its termination message
(`rayces.migrations.results`, a versioned contract). This module reads it back together with the
exit code and the Job's own conditions, and decides:

- the outcome's kind (`ErrorKind`), even when there is no JSON (a pod killed at its deadline,
  a missing Secret key, an image that does not start);
- the condition reason a person reads (`MigrationFailed`, `DataLossRefused`, ...);
- whether another attempt may help, and after how long (exponential, capped).

All of it is pure: the Kubernetes objects come in as plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayces.migrations.results import ErrorInfo, ErrorKind, ExitCode, MigrationResult

#: Waiting reasons of a container that will not start until someone changes something.
_CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError")
_IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")

REASON_OF_KIND: Mapping[ErrorKind, str] = {
    ErrorKind.USAGE: "InvalidInvocation",
    ErrorKind.CONNECTION: "DatabaseUnreachable",
    ErrorKind.LOCK_TIMEOUT: "LockTimeout",
    ErrorKind.MIGRATION_FAILED: "MigrationFailed",
    ErrorKind.DATA_LOSS_REFUSED: "DataLossRefused",
    ErrorKind.PERMISSION_DENIED: "PermissionDenied",
    ErrorKind.VERIFICATION_FAILED: "VerificationFailed",
    ErrorKind.PRECONDITION_FAILED: "PreconditionFailed",
    ErrorKind.ADOPTION_REFUSED: "AdoptionRefused",
    ErrorKind.INTERRUPTED: "Interrupted",
    ErrorKind.SCHEMA_DUMP: "JobFailed",
    ErrorKind.PLAN: "JobFailed",
    ErrorKind.INTERNAL: "JobFailed",
}

_KIND_OF_EXIT_CODE: Mapping[int, ErrorKind] = {
    int(ExitCode.FAILED): ErrorKind.MIGRATION_FAILED,
    int(ExitCode.USAGE): ErrorKind.USAGE,
    int(ExitCode.CONNECTION): ErrorKind.CONNECTION,
    int(ExitCode.LOCK_TIMEOUT): ErrorKind.LOCK_TIMEOUT,
    int(ExitCode.DATA_LOSS_REFUSED): ErrorKind.DATA_LOSS_REFUSED,
    int(ExitCode.PERMISSION_DENIED): ErrorKind.PERMISSION_DENIED,
    int(ExitCode.VERIFICATION_FAILED): ErrorKind.VERIFICATION_FAILED,
    int(ExitCode.PRECONDITION_FAILED): ErrorKind.PRECONDITION_FAILED,
    int(ExitCode.INTERRUPTED): ErrorKind.INTERRUPTED,
    int(ExitCode.TERMINATED): ErrorKind.INTERRUPTED,
    137: ErrorKind.INTERRUPTED,  # SIGKILL after the grace period
}


@dataclass(frozen=True)
class PodState:
    """The one container of a Job's pod, as its status reports it."""

    name: str
    phase: str
    waiting_reason: str | None = None
    waiting_message: str | None = None
    exit_code: int | None = None
    termination_message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True)
class JobState:
    """A Job as far as the reconciler cares: is it done, and how did it end."""

    name: str
    active: bool
    succeeded: bool
    failed: bool
    failure_reason: str | None = None
    failure_message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.succeeded or self.failed


@dataclass(frozen=True)
class RunOutcome:
    """One finished Job, read: the result if raycesctl wrote one, else what can be inferred."""

    job_name: str
    succeeded: bool
    exit_code: int | None
    result: MigrationResult | None
    error: ErrorInfo | None
    started_at: str | None
    finished_at: str | None

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable

    @property
    def reason(self) -> str:
        """The condition reason for this outcome (`Succeeded` when it succeeded)."""
        if self.error is None:
            return "Succeeded"
        return REASON_OF_KIND[self.error.kind]


def job_state(job: Mapping[str, Any]) -> JobState:
    """Read a Job's status: finished (Complete/Failed conditions) or still active."""
    status = job.get("status") or {}
    conditions = {
        str(condition.get("type")): condition
        for condition in status.get("conditions") or []
        if str(condition.get("status")) == "True"
    }
    failed = conditions.get("Failed")
    return JobState(
        name=str((job.get("metadata") or {}).get("name")),
        active="Complete" not in conditions and failed is None,
        succeeded="Complete" in conditions,
        failed=failed is not None,
        failure_reason=str(failed.get("reason")) if failed and failed.get("reason") else None,
        failure_message=str(failed.get("message")) if failed and failed.get("message") else None,
        start_time=status.get("startTime"),
        # completionTime is set only when a Job succeeds; a failed one ended when it was marked.
        completion_time=status.get("completionTime")
        or (failed.get("lastTransitionTime") if failed else None),
    )


def pod_state(pod: Mapping[str, Any]) -> PodState:
    """Read the first container's state from a Pod's status."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    state = (containers[0].get("state") or {}) if containers else {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    return PodState(
        name=str((pod.get("metadata") or {}).get("name")),
        phase=str(status.get("phase") or "Pending"),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        exit_code=terminated.get("exitCode"),
        termination_message=terminated.get("message"),
        started_at=terminated.get("startedAt"),
        finished_at=terminated.get("finishedAt"),
    )


def blocked_reason(pods: Sequence[PodState]) -> tuple[str, str] | None:
    """(reason, message) when a running Job's pod cannot start until someone fixes something."""
    for pod in pods:
        if pod.waiting_reason in _CONFIG_ERRORS:
            return (
                "SecretNotFound",
                f"pod {pod.name} cannot start: {pod.waiting_message or pod.waiting_reason}; "
                "create the Secret and key named in spec.database.urlSecretRef",
            )
        if pod.waiting_reason in _IMAGE_ERRORS:
            return (
                "ImagePullFailed",
                f"pod {pod.name} cannot pull its image: {pod.waiting_message or ''}".rstrip(": ")
                + "; check spec.job.image",
            )
    return None


def _last_terminated(pods: Sequence[PodState]) -> PodState | None:
    finished = [pod for pod in pods if pod.exit_code is not None]
    if not finished:
        return None
    return max(finished, key=lambda pod: (pod.finished_at or "", pod.name))


def read_outcome(job: JobState, pods: Sequence[PodState]) -> RunOutcome:
    """The outcome of a finished Job from its last pod's exit code and termination message."""
    pod = _last_terminated(pods)
    exit_code = pod.exit_code if pod else None
    result: MigrationResult | None = None
    if pod is not None and pod.termination_message:
        try:
            result = MigrationResult.from_termination_message(pod.termination_message)
        except ValueError:
            result = None
    error: ErrorInfo | None
    if job.succeeded:
        error = None
    elif result is not None and result.error is not None:
        error = result.error
    else:
        error = _inferred_error(job, exit_code, pod)
    return RunOutcome(
        job_name=job.name,
        succeeded=job.succeeded,
        exit_code=exit_code,
        result=result,
        error=error,
        started_at=(pod.started_at if pod else None) or job.start_time,
        finished_at=(pod.finished_at if pod else None) or job.completion_time,
    )


def _inferred_error(job: JobState, exit_code: int | None, pod: PodState | None) -> ErrorInfo:
    if job.failure_reason == "DeadlineExceeded":
        return ErrorInfo(
            kind=ErrorKind.INTERRUPTED,
            message=f"Job {job.name} ran past job.activeDeadlineSeconds and was stopped",
            hint="raise spec.job.activeDeadlineSeconds if the migration needs longer",
        )
    if exit_code is None:
        return ErrorInfo(
            kind=ErrorKind.INTERRUPTED,
            message=f"Job {job.name} failed before its container ran"
            + (f": {job.failure_message}" if job.failure_message else ""),
            hint="see `kubectl describe job` for why",
        )
    kind = _KIND_OF_EXIT_CODE.get(exit_code, ErrorKind.INTERNAL)
    tail = (pod.termination_message or "").strip().splitlines() if pod else []
    detail = f": {tail[-1][:500]}" if tail else ""
    return ErrorInfo(
        kind=kind,
        message=f"raycesctl exited {exit_code} without a JSON result{detail}",
        hint="see the pod's log",
    )


def retry_delay(attempt: int, *, base_seconds: float, cap_seconds: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): base·2^(n-1), capped."""
    exponent = max(attempt - 1, 0)
    if exponent > 32:
        return cap_seconds
    return float(min(base_seconds * 2**exponent, cap_seconds))

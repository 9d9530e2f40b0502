"""The Pod status a kubelet would write, as strategic-merge patches.

The Job controller decides Complete or Failed from what it reads in Pod status: the phase,
and for pod failure policies the container's exit code and reason. The emulated node writes
these patches at the same moments a kubelet does (container waiting, running, restarted,
terminated), so the real controller sees the fields it looks at. Builders are pure: one
function per state, all returning plain dicts for `patch_namespaced_pod_status`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

NODE_IP = "127.0.0.1"
"""Every emulated Pod 'runs' on this machine, so its IP and the node's are loopback."""


def now() -> str:
    """An RFC 3339 timestamp in UTC, with seconds as Kubernetes serialises metav1.Time."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """An RFC 3339 timestamp with microseconds, as metav1.MicroTime (Lease renewTime)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Termination:
    """How one run of the container ended."""

    exit_code: int
    message: str
    started_at: str
    finished_at: str
    process_id: int
    signal: int | None = None

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"

    def as_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": container_id(self.process_id),
        }
        if self.message:
            state["message"] = self.message
        if self.signal is not None:
            state["signal"] = self.signal
        return {"terminated": state}


def container_id(process_id: int) -> str:
    """Names the local process in the runtime://id form container IDs take."""
    return f"emulated://{process_id}"


def _condition(kind: str, status: bool, reason: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "lastTransitionTime": now(),
    }
    if reason:
        condition["reason"] = reason
    return condition


def _container_status(
    name: str,
    image: str,
    state: dict[str, Any],
    *,
    ready: bool,
    restart_count: int = 0,
    last_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restart_count,
        "state": state,
        "lastState": last_state or {},
    }


def _ips() -> dict[str, Any]:
    return {
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": NODE_IP,
        "podIPs": [{"ip": NODE_IP}],
    }


def waiting_patch(name: str, image: str, reason: str, message: str) -> dict[str, Any]:
    """The container cannot start yet (for example a Secret it needs does not exist)."""
    state = {"waiting": {"reason": reason, "message": message}}
    return {
        "status": {
            "phase": "Pending",
            "conditions": [_condition("Initialized", True), _condition("Ready", False)],
            "containerStatuses": [_container_status(name, image, state, ready=False)],
            **_ips(),
        }
    }


def running_patch(
    name: str,
    image: str,
    *,
    process_id: int,
    started_at: str,
    restart_count: int = 0,
    last_termination: Termination | None = None,
) -> dict[str, Any]:
    """The container's process is running; the Pod is Ready."""
    state = {"running": {"startedAt": started_at}}
    last_state = last_termination.as_state() if last_termination else None
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [
            _condition("PodReadyToStartContainers", True),
            _condition("Initialized", True),
            _condition("ContainersReady", True),
            _condition("Ready", True),
        ],
        "containerStatuses": [
            _container_status(
                name, image, state, ready=True, restart_count=restart_count, last_state=last_state
            )
            | {"containerID": container_id(process_id)}
        ],
        **_ips(),
    }
    if restart_count == 0:
        status["startTime"] = started_at
    return {"status": status}


def terminated_patch(
    name: str, image: str, termination: Termination, restart_count: int = 0
) -> dict[str, Any]:
    """The container exited and will not be restarted: the Pod reaches a terminal phase."""
    succeeded = termination.exit_code == 0
    reason = "PodCompleted" if succeeded else "PodFailed"
    status: dict[str, Any] = {
        "phase": "Succeeded" if succeeded else "Failed",
        "conditions": [
            _condition("PodReadyToStartContainers", False),
            _condition("ContainersReady", False, reason),
            _condition("Ready", False, reason),
        ],
        "containerStatuses": [
            _container_status(
                name, image, termination.as_state(), ready=False, restart_count=restart_count
            )
            | {"containerID": container_id(termination.process_id)}
        ],
        **_ips(),
    }
    if not succeeded and termination.message:
        status["message"] = termination.message
    return {"status": status}


def refused_patch(name: str, image: str, message: str) -> dict[str, Any]:
    """The Pod asks for something the emulated node cannot do: fail it, saying what."""
    termination = Termination(
        exit_code=128, message=message, started_at=now(), finished_at=now(), process_id=0
    )
    patch = terminated_patch(name, image, termination)
    patch["status"]["reason"] = "NotEmulated"
    patch["status"]["message"] = message
    return patch


def unschedulable_patch(message: str) -> dict[str, Any]:
    """No emulated node matches the Pod, as the scheduler reports it."""
    condition = _condition("PodScheduled", False, "Unschedulable") | {"message": message}
    return {"status": {"conditions": [condition]}}

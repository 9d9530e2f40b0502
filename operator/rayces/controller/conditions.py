"""Ready, Reconciling and Stalled conditions as kstatus, `kubectl wait` and Argo CD read them.

kstatus' rules: `Reconciling=True` is InProgress, `Stalled=True` is Failed, neither with
`Ready=True` is Current, and a status whose `observedGeneration` lags `metadata.generation` is
InProgress whatever it says. So the three conditions always come together from one `Verdict`,
each carries the generation it describes, and `lastTransitionTime` moves only when a condition's
status flips, never for a new message (which would also make every reconcile a write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, RECONCILING, STALLED)

Phase = Literal["ready", "reconciling", "stalled", "idle"]


@dataclass(frozen=True)
class Verdict:
    """Where a resource stands, in one word, with the reason and message a person reads.

    - `ready`: at the target; Ready=True, the other two False.
    - `reconciling`: a Job runs or is about to; Reconciling=True, Ready=False.
    - `stalled`: the operator has given up until something changes; Stalled=True, Ready=False.
    - `idle`: nothing to do and not at the target either (suspended); all three False.
    """

    phase: Phase
    reason: str
    message: str


def _status(flag: bool) -> str:
    return "True" if flag else "False"


def build_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    verdict: Verdict,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The full list of conditions for `verdict` (a merge patch replaces the list whole).

    :param previous: the conditions now in status, to keep `lastTransitionTime`.
    :param generation: the `metadata.generation` the verdict was reached for.
    :param now: RFC 3339 time used for a condition whose status changes.
    """
    earlier = {str(item.get("type")): item for item in previous or ()}
    wanted = {
        READY: verdict.phase == "ready",
        RECONCILING: verdict.phase == "reconciling",
        STALLED: verdict.phase == "stalled",
    }
    conditions = []
    for kind in CONDITION_TYPES:
        flag = wanted[kind]
        if flag or kind == READY:
            reason, message = verdict.reason, verdict.message
        else:
            reason, message = _quiet_reason(kind), ""
        before = earlier.get(kind)
        unchanged = before is not None and before.get("status") == _status(flag)
        conditions.append(
            {
                "type": kind,
                "status": _status(flag),
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": (
                    str(before.get("lastTransitionTime") or now)
                    if unchanged and before is not None
                    else now
                ),
            }
        )
    return conditions


def _quiet_reason(kind: str) -> str:
    return {RECONCILING: "Idle", STALLED: "NotStalled"}.get(kind, "Unknown")


def condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any]:
    """The condition of type `kind`, or an empty mapping."""
    for item in conditions or ():
        if item.get("type") == kind:
            return item
    return {}

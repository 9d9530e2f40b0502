"""Offline SQL plans and the revision chain, from `raycesctl plan` run beside the operator.

The operator must not load SQLAlchemy or Alembic (layer contract), and must never connect to a
tenant database. Both facts it needs from the revision scripts come from the same image's
`raycesctl plan --from ... --to ... --output json`, run as a child process without a database:
Alembic's offline mode renders SQL and touches nothing. That gives

- the revision chain (oldest first), to resolve `head` and tell an upgrade from a downgrade;
- a dry run's SQL, from the revision a read-only Job found to the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

_TIMEOUT_SECONDS = 120


class PlanError(RuntimeError):
    """`raycesctl plan` failed; the message is its one-line error."""


@dataclass(frozen=True)
class RenderedPlan:
    sql: str
    revisions: tuple[str, ...]


def _plan_document(from_revision: str, to_revision: str) -> dict[str, object]:
    command = [
        sys.executable,
        "-m",
        "rayces.cli.main",
        "plan",
        "--from",
        from_revision,
        "--to",
        to_revision,
        "--output",
        "json",
        "--quiet",
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
    )
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlanError(f"raycesctl plan exited {completed.returncode}: {last}")
    document = json.loads(completed.stdout)
    if not isinstance(document, dict):
        raise PlanError("raycesctl plan did not print a JSON object")
    return document


def render_plan(from_revision: str, to_revision: str) -> RenderedPlan:
    """The SQL that going from `from_revision` to `to_revision` would run; nothing is run.

    :raises PlanError: the plan could not be rendered.
    """
    document = _plan_document(from_revision, to_revision)
    revisions = document.get("revisions")
    return RenderedPlan(
        sql=str(document.get("sql") or ""),
        revisions=tuple(str(item) for item in revisions) if isinstance(revisions, list) else (),
    )


def revision_chain() -> tuple[str, ...]:
    """Every revision of the scripts, oldest first.

    :raises PlanError: the scripts could not be read.
    """
    return render_plan("base", "head").revisions


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` bytes of UTF-8, at a line end when one is near."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    cut = encoded[:max_bytes].decode(errors="ignore")
    line_end = cut.rfind("\n")
    return cut[: line_end + 1] if line_end > len(cut) // 2 else cut

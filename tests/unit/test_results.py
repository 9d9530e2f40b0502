"""The JSON a migration run produces, and its cut to Kubernetes' termination-message limit."""

from __future__ import annotations

import json

import pytest

from rayces.migrations.results import (
    TERMINATION_MESSAGE_LIMIT,
    ErrorInfo,
    MigrationResult,
    MigrationStep,
    termination_message,
)


def _result(steps: int = 2, error: ErrorInfo | None = None) -> MigrationResult:
    return MigrationResult(
        command="upgrade",
        from_revision=None,
        to_revision=f"2025071300000{steps}" if steps else None,
        target_revision="20250718000016",
        steps=tuple(
            MigrationStep(f"2025071300{index:04d}", f"Revision {index}", "upgrade", 0.0123456789)
            for index in range(1, steps + 1)
        ),
        error=error,
        duration_seconds=1.5,
    )


def test_json_shape() -> None:
    document = json.loads(_result().to_json())
    assert document == {
        "command": "upgrade",
        "status": "succeeded",
        "from_revision": None,
        "to_revision": "20250713000002",
        "target_revision": "20250718000016",
        "steps": [
            {
                "revision": "20250713000001",
                "name": "Revision 1",
                "direction": "upgrade",
                "duration_seconds": 0.012346,
            },
            {
                "revision": "20250713000002",
                "name": "Revision 2",
                "direction": "upgrade",
                "duration_seconds": 0.012346,
            },
        ],
        "duration_seconds": 1.5,
        "error": None,
    }


def test_failed_result_names_the_revision() -> None:
    error = ErrorInfo("migration_failed", "revision 20250713000003 failed: boom", "fix it", "3")
    document = _result(error=error).to_dict()
    assert document["status"] == "failed"
    assert document["error"] == {
        "kind": "migration_failed",
        "message": "revision 20250713000003 failed: boom",
        "hint": "fix it",
        "revision": "3",
    }


def test_small_message_is_unchanged() -> None:
    document = _result().to_dict()
    assert json.loads(termination_message(document)) == document


@pytest.mark.parametrize(
    ("steps", "message_length"),
    [
        pytest.param(400, 10, id="many-steps"),
        pytest.param(2, 20_000, id="huge-error"),
        pytest.param(400, 20_000, id="both"),
        pytest.param(2, 5_000, id="escaped-error"),
    ],
)
def test_truncation_keeps_from_to_and_error(steps: int, message_length: int) -> None:
    text = "x" * message_length if message_length != 5_000 else '"\n' * 2_500
    error = ErrorInfo("migration_failed", text, "hint " * 500, "20250713000003")
    document = _result(steps=steps, error=error).to_dict()
    message = termination_message(document)
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = json.loads(message)
    for key in ("command", "status", "from_revision", "to_revision", "target_revision"):
        assert parsed[key] == document[key]
    assert parsed["error"]["kind"] == "migration_failed"
    assert parsed["error"]["revision"] == "20250713000003"
    assert parsed["error"]["message"]
    if steps > 100:
        assert parsed["steps_omitted"] + len(parsed["steps"]) == steps
        assert parsed["steps"][-1] == document["steps"][-1]  # the newest steps are kept


def test_non_ascii_counts_bytes() -> None:
    error = ErrorInfo("migration_failed", "é" * 5_000)
    message = termination_message(_result(error=error).to_dict())
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(message)["error"]["message"].endswith("...")

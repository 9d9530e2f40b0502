"""The JSON a migration run produces, and its cut to Kubernetes' termination-message limit."""

from __future__ import annotations

import json

import pytest

from rayces.migrations.results import (
    RESULT_SCHEMA_VERSION,
    TERMINATION_MESSAGE_LIMIT,
    ErrorInfo,
    ErrorKind,
    ExitCode,
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
        "schema_version": RESULT_SCHEMA_VERSION,
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
    error = ErrorInfo(
        ErrorKind.MIGRATION_FAILED, "revision 20250713000003 failed: boom", "fix it", "3"
    )
    document = _result(error=error).to_dict()
    assert document["status"] == "failed"
    assert document["error"] == {
        "kind": "migration_failed",
        "retryable": False,
        "message": "revision 20250713000003 failed: boom",
        "hint": "fix it",
        "revision": "3",
        "data_loss": [],
        "step": None,
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
    error = ErrorInfo(ErrorKind.MIGRATION_FAILED, text, "hint " * 500, "20250713000003")
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
    error = ErrorInfo(ErrorKind.MIGRATION_FAILED, "é" * 5_000)
    message = termination_message(_result(error=error).to_dict())
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(message)["error"]["message"].endswith("...")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(None, id="succeeded"),
        pytest.param(
            ErrorInfo(ErrorKind.INTERRUPTED, "interrupted", "run again", "20250713000002", "3/7"),
            id="interrupted-with-step",
        ),
    ],
)
def test_termination_message_reads_back(error: ErrorInfo | None) -> None:
    document = _result(error=error).to_dict()
    read_back = MigrationResult.from_termination_message(termination_message(document))
    assert read_back.to_dict() == document


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"status": "failed"}', id="no-command"),
        pytest.param('{"schema_version": 99, "command": "upgrade"}', id="newer-version"),
    ],
)
def test_unreadable_termination_message_is_refused(message: str) -> None:
    with pytest.raises(ValueError):
        MigrationResult.from_termination_message(message)


def test_unknown_error_kind_from_a_newer_writer_reads_as_internal() -> None:
    document = _result(error=ErrorInfo(ErrorKind.USAGE, "bad")).to_dict()
    document["error"]["kind"] = "something_new"
    assert MigrationResult.from_dict(document).error == ErrorInfo(ErrorKind.INTERNAL, "bad")


@pytest.mark.parametrize(
    ("kind", "exit_code", "retryable"),
    [
        pytest.param(ErrorKind.MIGRATION_FAILED, ExitCode.FAILED, False, id="migration-failed"),
        pytest.param(ErrorKind.USAGE, ExitCode.USAGE, False, id="usage"),
        pytest.param(ErrorKind.CONNECTION, ExitCode.CONNECTION, True, id="connection"),
        pytest.param(ErrorKind.LOCK_TIMEOUT, ExitCode.LOCK_TIMEOUT, True, id="lock-timeout"),
        pytest.param(ErrorKind.INTERRUPTED, ExitCode.INTERRUPTED, True, id="interrupted"),
    ],
)
def test_error_kind_exit_codes(kind: ErrorKind, exit_code: ExitCode, retryable: bool) -> None:
    assert (kind.exit_code, kind.retryable) == (exit_code, retryable)


def test_every_error_kind_has_an_exit_code() -> None:
    assert all(kind.exit_code for kind in ErrorKind)

"""The seed/tenant/verify result is the same versioned contract, and fits a termination message."""

from __future__ import annotations

import json

import pytest

from rayces.migrations.results import (
    RESULT_SCHEMA_VERSION,
    TERMINATION_MESSAGE_LIMIT,
    ErrorInfo,
    ErrorKind,
    TenantResult,
)


def test_a_seed_result_reads_back() -> None:
    result = TenantResult(
        command="seed",
        organization="acme",
        organization_id=3,
        changed=True,
        organization_created=True,
        changed_fields={},
        rows_created={"roles": 4},
        duration_seconds=0.5,
    )
    document = json.loads(result.to_json())
    assert document["schema_version"] == RESULT_SCHEMA_VERSION
    assert document["status"] == "succeeded"
    assert TenantResult.from_termination_message(result.termination_message()) == result


def test_many_violations_are_cut_to_fit_and_counted() -> None:
    violations = tuple(
        {"check": "ledger", "table": "credit_balances", "id": n, "message": "x" * 80}
        for n in range(200)
    )
    result = TenantResult(
        command="verify",
        violations=violations,
        error=ErrorInfo(ErrorKind.VERIFICATION_FAILED, "200 violations"),
    )
    message = result.termination_message()
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    document = json.loads(message)
    kept = len(document["violations"])
    assert 0 < kept < 200
    assert document["violations_omitted"] == 200 - kept
    read = TenantResult.from_termination_message(message)
    assert read.error is not None and read.error.kind is ErrorKind.VERIFICATION_FAILED


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"schema_version": RESULT_SCHEMA_VERSION + 1, "command": "seed"}, id="newer"),
        pytest.param({"schema_version": 1}, id="no-command"),
    ],
)
def test_unreadable_documents_are_refused(document: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TenantResult.from_dict(document)

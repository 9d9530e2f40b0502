"""`raycesctl seed`, `tenant archive|purge` and `verify` as the operator's Jobs run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from tests.db.alembic_helpers import connect

from rayces.cli.main import main
from rayces.migrations.results import TenantResult


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([*argv, "--output", "json", "--quiet"] if argv[0] != "migrate" else list(argv))
    captured = capsys.readouterr()
    document = json.loads(captured.out) if captured.out.strip().startswith("{") else {}
    return code, document, captured.err


@pytest.fixture
def database(database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["migrate", "--database-url", database_url, "--quiet"]) == 0
    capsys.readouterr()
    return database_url


def test_seed_twice_then_verify(
    database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    message = tmp_path / "termination-log"
    seed = ["seed", "--database-url", database, "--org", "acme", "--name", "Acme",
            "--time-zone", "Europe/Madrid", "--profile", "demo", "--initial-credits", "5",
            "--slot-days", "3", "--termination-message-path", str(message)]  # fmt: skip
    code, first, _ = run(capsys, *seed)
    assert code == 0
    assert first["status"] == "succeeded"
    assert first["changed"] is True
    assert first["organization_created"] is True
    assert first["rows_created"]["roles"] == 4
    result = TenantResult.from_termination_message(message.read_text())
    assert result.organization_id == first["organization_id"]
    assert result.rows_created == first["rows_created"]

    code, second, _ = run(capsys, *seed)
    assert (code, second["changed"], second["rows_created"]) == (0, False, {})

    code, verified, _ = run(capsys, "verify", "--database-url", database, "--org", "acme")
    assert code == 0, verified
    assert verified["violations"] == []
    assert verified["checks"] == ["revision", "models", "rls", "ledger", "states", "bookings"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["seed", "--org", "acme", "--time-zone", "Nowhere/City"], (2, "usage",
                     "'Nowhere/City' is not an IANA time zone"), id="bad-time-zone"),
        pytest.param(["seed", "--org", "acme", "--initial-credits", "-4"], (2, "usage",
                     "--initial-credits must be 0 or more, not -4"), id="negative-credits"),
        pytest.param(["seed", "--org", "Not A Slug"], (2, "usage",
                     "is not a valid organization slug"), id="bad-slug"),
        pytest.param(["tenant", "archive", "--org", "ghost"], (8, "precondition_failed",
                     "no organization has the slug 'ghost'"), id="archive-unknown"),
        pytest.param(["tenant", "purge", "--org", "ghost", "--yes"], (8, "precondition_failed",
                     "no organization has the slug 'ghost'"), id="purge-unknown"),
        pytest.param(["tenant", "purge", "--org", "ghost"], (2, "usage",
                     "cannot be undone; nothing was done"), id="purge-without-yes"),
        pytest.param(["verify", "--org", "ghost"], (8, "precondition_failed",
                     "no organization has the slug 'ghost'"), id="verify-unknown"),
    ],
)  # fmt: skip
def test_bad_requests_fail_in_one_line(
    database: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: tuple[int, str, str],
) -> None:
    code, kind, message = expected
    exit_code, document, stderr = run(capsys, *argv, "--database-url", database)
    assert exit_code == code
    assert document["error"]["kind"] == kind
    assert message in document["error"]["message"]
    # a failure is a tenant result too, naming the command and the organization asked for
    assert document["command"] == " ".join(argv[: argv.index("--org")])
    assert document["organization"] == argv[argv.index("--org") + 1]
    assert document["status"] == "failed"
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_archive_then_purge(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "seed", "--database-url", database, "--org", "gone", "--profile", "demo")
    code, archived, _ = run(
        capsys, "tenant", "archive", "--database-url", database, "--org", "gone"
    )
    assert (code, archived["previous_status"], archived["changed"]) == (0, "active", True)
    code, purged, _ = run(
        capsys, "tenant", "purge", "--database-url", database, "--org", "gone", "--yes"
    )
    assert code == 0
    assert purged["rows_removed"]["organizations"] == 1
    assert purged["rows_removed"]["roles"] == 4
    with connect(database) as connection:
        assert connection.scalar(text("SELECT count(*) FROM users")) == 0


TAMPERING = {
    "tampered-balance": (
        "UPDATE credit_balances SET balance = balance + 7 WHERE id = (SELECT min(id) FROM "
        "credit_balances)",
        "ledger",
        "credit_balances",
    ),
    "state-without-timestamp": (
        "ALTER TABLE appointments DISABLE TRIGGER trg_appointments_state_machine; "
        "UPDATE appointments SET confirmed_at = NULL WHERE state = 'confirmed'; "
        "ALTER TABLE appointments ENABLE TRIGGER trg_appointments_state_machine",
        "state",
        "appointments",
    ),
    "rls-off": ("ALTER TABLE students DISABLE ROW LEVEL SECURITY", "rls", "students"),
}


@pytest.mark.parametrize(
    "tampering", [pytest.param(value, id=key) for key, value in TAMPERING.items()]
)
def test_verify_names_each_violation(
    database: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tampering: tuple[str, str, str],
) -> None:
    sql, check, table = tampering
    run(capsys, "seed", "--database-url", database, "--org", "tamper", "--profile", "demo",
        "--initial-credits", "3", "--slot-days", "1")  # fmt: skip
    with connect(database) as connection:
        for statement in sql.split("; "):
            connection.execute(text(statement))
        connection.commit()
    message = tmp_path / "termination-log"
    code, document, stderr = run(
        capsys, "verify", "--database-url", database, "--termination-message-path", str(message)
    )
    assert code == 7
    assert document["error"]["kind"] == "verification_failed"
    (violation,) = document["violations"]
    assert (violation["check"], violation["table"]) == (check, table)
    assert "violation" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert TenantResult.from_termination_message(message.read_text()).violations == (violation,)


def test_verify_reports_a_database_behind_head(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database-url", database_url, "--to", "20250718000016", "-q"]) == 0
    capsys.readouterr()
    code, document, _ = run(capsys, "verify", "--database-url", database_url)
    assert code == 7
    assert document["violations"][0]["check"] == "revision"
    assert "20250718000016" in document["violations"][0]["message"]


def test_text_output_for_people(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--database-url", database, "--org", "plain", "-q"]) == 0
    seeded = capsys.readouterr()
    assert seeded.out.startswith("created plain (organization ")
    assert "roles 4" in seeded.out
    assert main(["verify", "--database-url", database, "--org", "plain", "-q"]) == 0
    assert capsys.readouterr().out == (
        "verify: plain: no violations (revision, models, rls, ledger, states, bookings)\n"
    )
    with connect(database) as connection:
        connection.execute(text("ALTER TABLE students DISABLE ROW LEVEL SECURITY"))
        connection.commit()
    assert main(["verify", "--database-url", database, "-q"]) == 7
    failed = capsys.readouterr()
    assert failed.out.startswith("rls: students: ")
    assert failed.err.startswith("raycesctl: error: 1 violation, first: rls: students: ")
    assert len(failed.err.strip().splitlines()) == 1


def organization_row(database: str, slug: str) -> tuple[Any, ...]:
    with connect(database) as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT id, name, subdomain, status, time_zone, settings::text, updated_at "
                    "FROM organizations WHERE subdomain = :slug"
                ),
                {"slug": slug},
            ).one()
        )


def seed_as(database: str, *extra: str) -> list[str]:
    return ["seed", "--database-url", database, "--org", "acme", "--name", "Acme Renamed",
            "--time-zone", "Europe/Madrid", "--suspended", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("held_by", "claimant", "named"),
    [
        pytest.param(None, "uid-x", "owned by no Organization resource", id="unowned"),
        pytest.param("uid-y", "uid-x", "owned by Organization resource uid-y", id="owned-by-y"),
    ],
)
def test_seed_for_an_owner_refuses_a_row_held_by_another_and_changes_nothing(
    database: str,
    capsys: pytest.CaptureFixture[str],
    held_by: str | None,
    claimant: str,
    named: str,
) -> None:
    owner = ["--owner", held_by] if held_by else []
    created = ["seed", "--database-url", database, "--org", "acme", *owner]
    assert run(capsys, *created)[0] == 0
    before = organization_row(database, "acme")
    code, document, stderr = run(capsys, *seed_as(database, "--owner", claimant))
    assert code == 8
    assert document["error"]["kind"] == "precondition_failed"
    assert named in document["error"]["message"]
    assert "nothing was changed" in document["error"]["message"]
    assert 'rayces.io/adopt-existing: "true"' in document["error"]["hint"]
    assert len(stderr.strip().splitlines()) == 1
    assert organization_row(database, "acme") == before


@pytest.mark.parametrize(
    ("held_by", "extra", "owner_after"),
    [
        pytest.param(None, ["--owner", "uid-x", "--adopt"], "uid-x", id="adopt-unowned"),
        pytest.param("uid-x", ["--owner", "uid-x"], "uid-x", id="same-owner"),
        pytest.param("uid-x", [], "uid-x", id="no-owner-given-as-before"),
        pytest.param(None, [], None, id="unowned-without-owner-as-before"),
    ],
)
def test_seed_updates_a_row_it_may_claim(
    database: str,
    capsys: pytest.CaptureFixture[str],
    held_by: str | None,
    extra: list[str],
    owner_after: str | None,
) -> None:
    owner = ["--owner", held_by] if held_by else []
    assert run(capsys, "seed", "--database-url", database, "--org", "acme", *owner)[0] == 0
    code, document, _ = run(capsys, *seed_as(database, *extra))
    assert code == 0, document
    assert document["changed_fields"]["name"] == {"from": "acme", "to": "Acme Renamed"}
    assert ("owner" in document["changed_fields"]) is (held_by is None and owner_after is not None)
    _, name, _, status, zone, settings, _ = organization_row(database, "acme")
    assert (name, status, zone) == ("Acme Renamed", "suspended", "Europe/Madrid")
    assert json.loads(settings).get("rayces.io/owner") == owner_after


def test_adopted_row_is_then_refused_to_a_second_owner(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "seed", "--database-url", database, "--org", "acme")[0] == 0
    assert run(capsys, *seed_as(database, "--owner", "uid-x", "--adopt"))[0] == 0
    code, document, _ = run(capsys, *seed_as(database, "--owner", "uid-y", "--adopt"))
    assert code == 8
    assert "owned by Organization resource uid-x" in document["error"]["message"]


def test_adopt_without_owner_is_a_usage_error(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, _ = run(capsys, *seed_as(database, "--adopt"))
    assert (code, document["error"]["kind"]) == (2, "usage")
    assert "--adopt needs --owner" in document["error"]["message"]

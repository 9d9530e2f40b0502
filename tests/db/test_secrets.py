"""No password leaves `raycesctl`: not on stdout or stderr, in the JSON, the termination
message, a traceback under RAYCES_DEBUG, nor on `pg_dump`'s command line.

A sentinel password goes through every command and every way of writing a URL, including
unencoded special characters, a query-string password and URLs that do not parse. The test
server trusts local connections, so the password is carried everywhere without being needed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rayces.cli.main import main
from rayces.migrations import commands
from rayces.migrations.settings import Settings

SENTINEL = "Sentinel-Pw-7f3a"


def _url_kinds(database_url: str) -> dict[str, str]:
    parts = psycopg.conninfo.conninfo_to_dict(database_url)
    host, dbname, user = parts["host"], parts["dbname"], parts["user"]
    port = parts.get("port") or "5432"
    socket = f"host={host}&port={port}"
    return {
        "userinfo": f"postgresql://{user}:{SENTINEL}@/{dbname}?{socket}",
        "unencoded-hash-slash-at": f"postgresql://{user}:{SENTINEL}#/@?x@/{dbname}?{socket}",
        "query-password": f"postgresql://{user}@/{dbname}?{socket}&password={SENTINEL}",
        "keywords": f"host={host} port={port} user={user} dbname={dbname} password={SENTINEL}",
        "no-scheme": f"{user}:{SENTINEL}@localhost/{dbname}",
        "malformed-port": f"postgresql://{user}:{SENTINEL}@localhost:port/{dbname}",
        "no-user": f"postgresql://:{SENTINEL}@localhost/{dbname}",
        "unreachable": f"postgresql://{user}:{SENTINEL}@127.0.0.1:9/{dbname}",
    }


COMMANDS = [
    pytest.param(["migrate", "--to", "20250713000002"], id="migrate"),
    pytest.param(["status"], id="status"),
    pytest.param(["plan", "--to", "head"], id="plan"),
    pytest.param(["rollback", "--to", "base"], id="rollback"),
    pytest.param(["stamp", "20250713000002"], id="stamp"),
    pytest.param(["schema", "dump"], id="schema-dump"),
]


def _assert_no_sentinel(*texts: str) -> None:
    for text in texts:
        assert SENTINEL not in text
        assert SENTINEL.lower() not in text.lower()


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("argv", COMMANDS)
def test_no_output_holds_the_password(
    database_url: str,
    argv: list[str],
    output: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = tmp_path / "termination-log"
    for kind, url in _url_kinds(database_url).items():
        for by_environment in (False, True):
            settings = Settings(
                database_url=url if by_environment else None,
                debug=True,
                termination_message_path=str(message),
            )
            given = [] if by_environment else ["--database-url", url]
            code = main([*argv, *given, "--output", output], settings=settings)
            captured = capsys.readouterr()
            written = message.read_text() if message.exists() else ""
            _assert_no_sentinel(captured.out, captured.err, written)
            assert code in {0, 2, 3}, (kind, captured.err)
            if output == "json":
                assert captured.out.strip(), (kind, argv)  # a JSON result, success or not
            message.unlink(missing_ok=True)


def test_an_unexpected_error_under_debug_shows_no_password(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url_kinds(database_url)["unencoded-hash-slash-at"]

    def explode(database: str, **_: Any) -> None:
        raise RuntimeError(f"boom while using {database} and {url}")

    monkeypatch.setattr(commands, "status", explode)
    code = main(["status", "--database-url", url, "-o", "json"], settings=Settings(debug=True))
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" in captured.err  # RAYCES_DEBUG shows it...
    _assert_no_sentinel(captured.out, captured.err)  # ...without the password
    assert '"kind": "internal"' in captured.out


def test_pg_dump_gets_no_password_on_its_command_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url_kinds(database_url)["userinfo"]
    real_run = subprocess.run
    calls: list[list[str]] = []

    def recording_run(command: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append([str(part) for part in command])
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    assert main(["migrate", "--database-url", url, "-q"], settings=Settings()) == 0
    assert main(["schema", "dump", "--database-url", url], settings=Settings()) == 0
    assert "CREATE TABLE public.users" in capsys.readouterr().out
    [pg_dump] = [call for call in calls if "pg_dump" in call[0]]
    _assert_no_sentinel(" ".join(pg_dump))
    assert any("passfile=" in part for part in pg_dump)

"""`raycesctl`'s command line: what parses, and the one-line errors for what does not."""

from __future__ import annotations

import pytest

from rayces.cli.main import build_parser, main
from rayces.migrations.results import ExitCode

EXIT_OK, EXIT_USAGE = ExitCode.OK, ExitCode.USAGE


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["migrate"], {"to": "head", "lock_wait_timeout": 60.0}, id="migrate-default"),
        pytest.param(["migrate", "--to", "20250713000001"], {"to": "20250713000001"}, id="to"),
        pytest.param(["rollback"], {"steps": None, "to": None}, id="rollback-default"),
        pytest.param(["rollback", "--steps", "3"], {"steps": 3}, id="rollback-steps"),
        pytest.param(["rollback", "--to", "base"], {"to": "base"}, id="rollback-to-base"),
        pytest.param(
            ["migrate", "--lock-timeout", "5s", "--statement-timeout", "10min"],
            {"lock_timeout": "5s", "statement_timeout": "10min"},
            id="timeouts",
        ),
        pytest.param(["migrate", "--lock-timeout", "500"], {"lock_timeout": "500"}, id="bare-ms"),
        pytest.param(
            ["migrate", "--lock-wait-timeout", "1.5"], {"lock_wait_timeout": 1.5}, id="wait"
        ),
        pytest.param(
            ["migrate", "--default-organization-subdomain", "acme", "-x", "k=v=w"],
            {"default_organization_subdomain": "acme", "x_arguments": [("k", "v=w")]},
            id="revision-values",
        ),
        pytest.param(["migrate", "-o", "json"], {"output": "json"}, id="json"),
        pytest.param(
            ["plan", "--to", "head", "--from", "base"], {"from_revision": "base"}, id="plan"
        ),
        pytest.param(
            ["schema", "dump", "--output-file", "x.sql"], {"output_file": "x.sql"}, id="dump"
        ),
        pytest.param(["embedded", "stop"], {"embedded_command": "stop"}, id="embedded-stop"),
    ],
)
def test_parses(argv: list[str], expected: dict[str, object]) -> None:
    args = build_parser().parse_args(argv)
    for key, value in expected.items():
        assert getattr(args, key) == value


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
        pytest.param(["migrate", "--bogus"], "unrecognized arguments: --bogus", id="unknown"),
        pytest.param(["rollback", "--steps", "0"], "0 is not 1 or more", id="steps-zero"),
        pytest.param(["rollback", "--steps", "-2"], "-2 is not 1 or more", id="steps-negative"),
        pytest.param(["rollback", "--steps", "two"], "'two' is not a whole number", id="steps-nan"),
        pytest.param(
            ["rollback", "--steps", "1", "--to", "base"], "not allowed with", id="steps-and-to"
        ),
        pytest.param(["migrate", "--lock-timeout", "5 parsecs"], "invalid duration", id="unit"),
        pytest.param(["migrate", "--statement-timeout=-1s"], "invalid duration", id="negative"),
        pytest.param(["migrate", "--lock-wait-timeout", "-1"], "is not 0 or more", id="wait"),
        pytest.param(["migrate", "-x", "novalue"], "is not KEY=VALUE", id="x-argument"),
        pytest.param(["plan"], "required: --to", id="plan-needs-to"),
        pytest.param(["migrate", "-o", "yaml"], "invalid choice: 'yaml'", id="output-format"),
        pytest.param(["seed", "--org", "a", "--roles", ","], "role names", id="seed-roles"),
        pytest.param(["seed", "--org", "a", "--slot-days", "x"], "whole number", id="seed-days"),
        pytest.param(["tenant", "purge"], "required: --org", id="purge-needs-org"),
        pytest.param(["tenant"], "required: COMMAND", id="tenant-needs-command"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("raycesctl: error: ")
    assert message in lines[0]
    assert "hint: see `raycesctl" in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="main"),
        pytest.param(["migrate", "--help"], id="migrate"),
        pytest.param(["rollback", "--help"], id="rollback"),
        pytest.param(["status", "--help"], id="status"),
        pytest.param(["plan", "--help"], id="plan"),
        pytest.param(["schema", "dump", "--help"], id="schema-dump"),
        pytest.param(["embedded", "start", "--help"], id="embedded"),
        pytest.param(["seed", "--help"], id="seed"),
        pytest.param(["tenant", "purge", "--help"], id="tenant-purge"),
        pytest.param(["verify", "--help"], id="verify"),
    ],
)
def test_help_is_complete(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("usage: raycesctl")
    # argparse prints an option's help next to it; none may be missing
    assert "==SUPPRESS==" not in out
    if argv[0] != "embedded":
        assert "exit codes:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from rayces import __version__

    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"raycesctl {__version__}"


def test_every_option_has_help() -> None:
    import argparse

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found.extend(parsers(sub))
        return found

    for parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog} {action.option_strings} has no help"


def test_help_imports_neither_sqlalchemy_nor_alembic() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from rayces.cli.main import main; main(['--help']); "
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'psycopg') if m in sys.modules]; "
        "sys.stderr.write(repr(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from rayces.migrations.results import EXIT_CODE_MEANINGS

    assert main(["migrate", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)
    for code in ExitCode:
        assert f"  {int(code):<4} " in out


def test_a_usage_error_is_a_json_result_too(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from pathlib import Path

    from rayces.migrations.settings import Settings

    message = Path(str(tmp_path)) / "termination-log"
    argv = ["migrate", "--bogus", "-o", "json", "--termination-message-path", str(message)]
    assert main(argv, settings=Settings()) == EXIT_USAGE
    result = json.loads(capsys.readouterr().out)
    assert result["command"] == "migrate"
    assert result["error"]["kind"] == "usage"
    assert result["schema_version"] == 1
    assert json.loads(message.read_text()) == result


def test_a_command_group_is_one_module_with_add_parsers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What another group (`operator`, `seed`, ...) does to join: add_parsers, one line."""
    import types

    from rayces.cli import main as cli_main
    from rayces.cli.dispatch import run
    from rayces.cli.invocation import Invocation
    from rayces.cli.parser import SharedOptions, Subcommands, add_command, build_parser
    from rayces.migrations.errors import UsageError
    from rayces.migrations.settings import Settings

    def hello(invocation: Invocation) -> int:
        if invocation.args.name == "nobody":
            raise UsageError("nobody to greet", hint="give a name")
        invocation.output.result({"command": "hello", "name": invocation.args.name})
        if not invocation.output.json:
            invocation.output.line(f"hello {invocation.args.name}")
        return ExitCode.OK

    def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
        parser = add_command(commands, "hello", "say hello", "", [options.output], handler=hello)
        parser.add_argument("name")
        parser.set_defaults(result_command="hello world")

    group = types.SimpleNamespace(add_parsers=add_parsers)
    parser = build_parser((*cli_main.COMMAND_GROUPS, group))
    assert run(parser, ["hello", "ana"], Settings()) == EXIT_OK
    assert capsys.readouterr().out == "hello ana\n"
    assert run(parser, ["hello", "ana", "-o", "json"], Settings()) == EXIT_OK
    assert '"name": "ana"' in capsys.readouterr().out
    assert run(parser, ["hello", "nobody", "-o", "json"], Settings()) == EXIT_USAGE
    failure = capsys.readouterr()
    assert '"command": "hello world"' in failure.out
    assert failure.err == "raycesctl: error: nobody to greet (hint: give a name)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["migrate", "--lock-timeout", "400us"], "below 1ms", id="sub-millisecond"),
        pytest.param(["migrate", "--statement-timeout", "25d"], "longer than", id="too-long"),
        pytest.param(["migrate", "--connect-timeout", "-1"], "0 or more", id="connect-timeout"),
    ],
)
def test_timeouts_out_of_range_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["seed", "--org", "Not A Slug"], "not a valid organization slug", id="slug"),
        pytest.param(["seed", "--org", "a", "--time-zone", "Mars/Olympus"], "IANA", id="zone"),
        pytest.param(["tenant", "purge", "--org", "acme"], "cannot be undone", id="purge-no-yes"),
        pytest.param(["verify", "--org", "Acme"], "not a valid organization slug", id="verify"),
    ],
)
def test_tenant_commands_refuse_bad_input_as_a_tenant_result(
    argv: list[str],
    message: str,
    tmp_path: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused before any database is reached (none answers at this URL), in the tenant result's
    shape, on stdout and in the termination message alike."""
    import json
    from pathlib import Path

    from rayces.migrations.results import TenantResult
    from rayces.migrations.settings import Settings

    path = Path(str(tmp_path)) / "termination-log"
    unreachable = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    options = ["--database-url", unreachable, "-o", "json", "--termination-message-path", str(path)]
    assert main([*argv, *options], settings=Settings()) == EXIT_USAGE
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["error"]["kind"] == "usage"
    assert message in document["error"]["message"]
    assert document["organization"] == argv[argv.index("--org") + 1]
    assert json.loads(path.read_text()) == document
    assert TenantResult.from_termination_message(path.read_text()).error is not None
    assert len(captured.err.strip().splitlines()) == 1


def _readme_exit_codes() -> str:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("**Exit codes.**")
    return " ".join(readme[start : readme.index("\n\n", start)].split())


@pytest.mark.parametrize(
    ("code", "words"),
    [
        pytest.param(ExitCode.DATA_LOSS_REFUSED, "5 rollback refused", id="5-data-loss"),
        pytest.param(ExitCode.PERMISSION_DENIED, "6 permission denied", id="6-permission"),
        pytest.param(ExitCode.VERIFICATION_FAILED, "7 verification failed", id="7-verification"),
        pytest.param(ExitCode.PRECONDITION_FAILED, "8 precondition failed", id="8-precondition"),
        pytest.param(ExitCode.TERMINATED, "143 SIGTERM", id="143-sigterm"),
    ],
)
def test_readme_and_help_list_the_newer_exit_codes(
    code: ExitCode, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rayces.migrations.results import EXIT_CODE_MEANINGS

    assert words in _readme_exit_codes()
    assert main(["rollback", "--help"]) == EXIT_OK
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"{int(code)} {' '.join(EXIT_CODE_MEANINGS[code].split())}" in help_text

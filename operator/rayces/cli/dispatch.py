"""Run one parsed command, and turn whatever stops it into a reported result and an exit code.

Every failure, foreseen or not, ends the same way: one line on stderr (no traceback, no
multi-line driver message, unless RAYCES_DEBUG is set), the JSON result on stdout with
`--output json`, the same result in the termination message, and the exit code of its
`ErrorKind` (128 + the signal's number for SIGINT and SIGTERM). The controller reads exactly
this, so nothing may escape it.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Sequence

from rayces.cli.invocation import Invocation
from rayces.cli.output import Output
from rayces.cli.parser import PROG, ArgumentParser, CommandLineError, FailureResult, Handler
from rayces.migrations.connection_url import secrets_in
from rayces.migrations.errors import MigrationsError, RunInterruptedError, UsageError
from rayces.migrations.faults import result_writing
from rayces.migrations.results import (
    CommandResult,
    ErrorInfo,
    ErrorKind,
    ExitCode,
    MigrationResult,
)
from rayces.migrations.settings import Settings
from rayces.migrations.signals import Interrupted, checkpoint, interruptible


def run(parser: ArgumentParser, argv: Sequence[str], settings: Settings) -> int:
    """Parse `argv` with `parser`, run the command's handler, report; return the exit code."""
    output = Output(termination_message_path=settings.termination_message_path)
    output.add_secrets(_secrets_of(argv, settings))
    try:
        args = parser.parse_args(argv)
    except CommandLineError as error:
        return _usage_error(output, error, argv)
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE
    output.format = getattr(args, "output", "text")
    output.quiet = getattr(args, "quiet", False)
    output.termination_message_path = (
        getattr(args, "termination_message_path", None) or settings.termination_message_path
    )
    output.configure_logging()
    invocation = Invocation(args=args, settings=settings, output=output)
    handler: Handler = args.handler
    command = command_name(args)
    started = time.monotonic()
    with interruptible() as guard:
        output.before_result = guard.hold
        try:
            checkpoint()  # a signal noted while the process started
            return handler(invocation)
        except (Exception, Interrupted) as error:
            guard.stop_raising()  # a signal now only changes what is reported
            result_writing()
            # From here on a signal is only noted: the failure below is what gets reported.
            failure = _failure(error, guard.hold(), settings, output)
        return _report_failure(invocation, command, failure, time.monotonic() - started)


def command_name(args: argparse.Namespace) -> str:
    """The command's name in results: `upgrade`, `downgrade`, `stamp`, `schema dump`, ...
    (a command group may set its own with `set_defaults(result_command=...)`)."""
    if getattr(args, "result_command", None):
        return str(args.result_command)
    name = {"migrate": "upgrade", "rollback": "downgrade"}.get(args.command, args.command)
    sub = getattr(args, "schema_command", None) or getattr(args, "embedded_command", None)
    return f"{name} {sub}" if sub else str(name)


def _secrets_of(argv: Sequence[str], settings: Settings) -> set[str]:
    found = set(secrets_in(settings.database_url or ""))
    for argument in argv:
        found.update(secrets_in(argument))
    return found


def _report_failure(
    invocation: Invocation, command: str, error: MigrationsError, seconds: float
) -> int:
    from rayces.migrations.database import first_line

    result = _failure_result(invocation, command, error, seconds)
    info = result.error or error.error_info()
    output = invocation.output
    cause = error.__cause__ or error.__context__
    if invocation.settings.debug and cause is not None:
        output.stderr("".join(traceback.format_exception(cause)).rstrip())
    output.error(first_line(info.message) if info.message else error.message, info.hint)
    output.result(result.to_dict())
    if isinstance(error, RunInterruptedError):
        return 128 + error.signal_number
    return int(info.kind.exit_code)


def _failure_result(
    invocation: Invocation, command: str, error: MigrationsError, seconds: float
) -> CommandResult:
    """The run's own result if the error carries one, else the command's `failure_result`
    (a group's own result shape), else the error's plain result."""
    if error.result is not None:
        return error.result
    build: FailureResult | None = getattr(invocation.args, "failure_result", None)
    if build is None:
        return error.to_result(command, duration_seconds=seconds)
    return build(invocation, command, error.error_info(), seconds)


def _failure(
    error: BaseException, signal_number: int | None, settings: Settings, output: Output
) -> MigrationsError:
    """What a command that raised `error` reports. A signal received before (`signal_number`)
    makes it interrupted, whatever exception the stop surfaced as: a cancelled statement, a
    `StopRequested`, or a cleanup that failed on the way out."""
    if signal_number is not None:
        if isinstance(error, RunInterruptedError):
            return error
        result = error.result if isinstance(error, MigrationsError) else None
        return RunInterruptedError.replacing(result, signal_number, hint=_RUN_AGAIN)
    if isinstance(error, MigrationsError):
        return error
    if isinstance(error, Exception):
        return _unexpected(error, settings, output)
    raise error  # an Interrupted is always noted by the guard first; nothing else gets here


_RUN_AGAIN = "nothing was left half done; run the same command again"


def _unexpected(error: Exception, settings: Settings, output: Output) -> MigrationsError:
    """What an error nobody foresaw is reported as: its database meaning if it has one, else
    `internal`, in one line (the traceback only with RAYCES_DEBUG)."""
    from rayces.migrations.database import database_error, first_line

    if settings.debug:
        output.stderr("".join(traceback.format_exception(error)).rstrip())
    found = database_error(error, doing="running the command")
    if found is not None:
        return found
    unexpected = MigrationsError(
        f"unexpected {type(error).__name__}: {first_line(error)}",
        hint="set RAYCES_DEBUG=1 to see the traceback, and report it",
    )
    return unexpected


def _usage_error(output: Output, error: CommandLineError, argv: Sequence[str]) -> int:
    """A command line that does not parse, reported like every other failure."""
    requested = _requested_output(argv)
    output.format = requested.output or "text"
    output.termination_message_path = (
        requested.termination_message_path or output.termination_message_path
    )
    output.error(error.message, f"see `{error.prog} --help`")
    usage = UsageError(error.message, hint=f"see `{error.prog} --help`")
    command = requested.command or PROG
    result = MigrationResult(
        command=command,
        from_revision=None,
        to_revision=None,
        target_revision=None,
        error=ErrorInfo(kind=ErrorKind.USAGE, message=usage.message, hint=usage.hint),
        revisions_known=False,
    )
    output.result(result.to_dict())
    return ExitCode.USAGE


def _requested_output(argv: Sequence[str]) -> argparse.Namespace:
    """--output and --termination-message-path, read leniently from a command line that does
    not parse as a whole."""
    lenient = ArgumentParser(add_help=False)
    lenient.add_argument("command", nargs="?")
    lenient.add_argument("--output", "-o", choices=("text", "json"))
    lenient.add_argument("--termination-message-path")
    try:
        found, _ = lenient.parse_known_args(list(argv))
    except CommandLineError:
        found = argparse.Namespace(command=None, output=None, termination_message_path=None)
    if found.command and found.command.startswith("-"):
        found.command = None
    return found

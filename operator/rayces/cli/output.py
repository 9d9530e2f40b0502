"""Everything `raycesctl` writes: results on stdout (text or JSON), progress and errors on stderr,
and the JSON result in the Kubernetes termination message file.

Every byte passes through `Output`, which replaces the passwords the run was given (and any
password-bearing URL or `password=` setting) with `***` first. A driver message, a `pg_dump`
error, a traceback under RAYCES_DEBUG or a log line cannot carry a password out of the process.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayces.migrations import faults
from rayces.migrations.connection_url import scrub
from rayces.migrations.results import ErrorKind, termination_message
from rayces.migrations.signals import Interrupted

PROG = "raycesctl"


@dataclass
class Output:
    """Where and how one run writes.

    :param format: "text" for people, "json" for one JSON document on stdout.
    :param quiet: no progress messages.
    :param termination_message_path: where the JSON result also goes (cut to 4096 bytes).
    """

    format: str = "text"
    quiet: bool = False
    termination_message_path: str | None = None
    secrets: set[str] = field(default_factory=set)
    #: called before a result is written: signals must not cut it short from then on; it
    #: returns the signal received before, if any (the result must then say so)
    before_result: Callable[[], int | None] = lambda: None

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.secrets.update(secret for secret in secrets if secret)

    def clean(self, text: str) -> str:
        return scrub(text, self.secrets)

    @property
    def json(self) -> bool:
        return self.format == "json"

    # stdout and stderr are looked up at each write (tests capture them).

    def line(self, text: str = "", end: str = "\n") -> None:
        """Results, for people or programs: stdout."""
        sys.stdout.write(self.clean(text) + end)
        sys.stdout.flush()

    def raw(self, text: str) -> None:
        """Data (SQL) on stdout, as it is apart from passwords."""
        sys.stdout.write(self.clean(text))
        sys.stdout.flush()

    def progress(self, message: str) -> None:
        if not self.quiet:
            self.stderr(message)

    def warning(self, message: str) -> None:
        self.stderr(f"{PROG}: warning: {message}")

    def stderr(self, text: str) -> None:
        sys.stderr.write(self.clean(text) + "\n")
        sys.stderr.flush()

    def error(self, message: str, hint: str = "") -> None:
        """The one line a failure gets on stderr."""
        self.before_result()
        one_line = " ".join(message.split())
        suffix = f" (hint: {' '.join(hint.split())})" if hint else ""
        self.stderr(f"{PROG}: error: {one_line}{suffix}")

    def document(self, document: dict[str, Any]) -> None:
        """A JSON document on stdout."""
        self.line(json.dumps(document, indent=2, ensure_ascii=False))

    def termination_message(self, document: dict[str, Any]) -> None:
        if not self.termination_message_path:
            return
        path = self.termination_message_path
        try:
            Path(path).write_text(self.clean(termination_message(document)), encoding="utf-8")
        except OSError as error:
            self.warning(f"cannot write {path}: {error.strerror or error}")

    def result(self, document: dict[str, Any]) -> None:
        """A command's result: the termination message, and JSON on stdout if asked for.
        Text output is the command's own business.

        :raises Interrupted: a signal arrived before the result was written and the result does
            not say so; nothing was written, and the caller reports the interruption instead.
        """
        faults.result_writing()
        signal_number = self.before_result()
        if signal_number is not None and not _reports_interruption(document):
            raise Interrupted(signal_number)
        self.termination_message(document)
        if self.json:
            self.document(document)

    def configure_logging(self) -> None:
        """Send Alembic's "Running upgrade A -> B" and rayces' own log lines to stderr."""
        if self.quiet:
            return
        handler = _RaycesLogHandler(sys.stderr)
        handler.setFormatter(_ScrubbingFormatter(self))
        handler.addFilter(
            lambda record: (
                record.getMessage().startswith("Running ") or record.name.startswith("rayces")
            )
        )
        for name in ("alembic.runtime.migration", "rayces"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO)
            for old in [h for h in logger.handlers if isinstance(h, _RaycesLogHandler)]:
                logger.removeHandler(old)  # from an earlier run in the same process
            logger.addHandler(handler)
            logger.propagate = False


class _RaycesLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (and replaces on the next run)."""


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, output: Output) -> None:
        super().__init__("%(message)s")
        self._output = output

    def format(self, record: logging.LogRecord) -> str:
        return self._output.clean(super().format(record))


def _reports_interruption(document: dict[str, Any]) -> bool:
    error = document.get("error")
    return isinstance(error, dict) and error.get("kind") == ErrorKind.INTERRUPTED.value


def revision_label(revision: str | None) -> str:
    return revision or "base"

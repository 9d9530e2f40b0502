"""Child processes of the test session that always go away, even when tests fail.

Each control-plane component and each emulated container runs in its own process group with
its output in a log file. Stopping sends SIGTERM to the whole group, then SIGKILL after a
grace period, so nothing a component forked survives the session. On Linux the components
are started through `setpriv --pdeathsig KILL` where it exists, so a test runner killed
outright does not leave them behind. (setpriv rather than a preexec_fn: forking a threaded
Python and running Python code in the child can deadlock.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """`argv` run so the kernel kills it when the thread that started it goes away.

    setpriv sets the signal and then execs `argv` in place, so the process keeps its pid and
    its parent. Without setpriv (not Linux) the process is started as it is.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its combined output in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the process wrote, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_seconds: float = 10.0) -> int:
        """Terminate the process group, kill it after `grace_seconds`; returns the exit code."""
        if self.running():
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
        code = self.process.wait()
        # Anything the leader forked and left in its group goes too.
        self._signal_group(signal.SIGKILL)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> ManagedProcess:
    """Start `argv` in a new session, stdout and stderr appended to `log_path`.

    With `die_with_parent`, the process is killed when the starting thread exits: start it
    from a thread that outlives it (the main thread, or the thread that waits for it).
    """
    command = _with_parent_death_signal(argv) if die_with_parent else list(argv)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return ManagedProcess(name, process, log_path)

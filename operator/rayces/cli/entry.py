"""The `raycesctl` console script: SIGINT and SIGTERM are noted from its first line on.

Python ends a process on SIGTERM by default, with no result written and nothing cleaned up. The
command line imports a few modules before `rayces.cli.dispatch` installs its handlers; a signal
in that window (the kubelet deleting a Pod the moment it starts) is noted here instead, and the
run then reports it like any other interruption: exit 128 + the signal's number and an
`interrupted` result. Once the result is written, signals are ignored until the process exits.
"""

from __future__ import annotations

from rayces.migrations import signals

signals.note_early_signals()


def main() -> int:
    """Run `raycesctl` on the process's arguments; see `rayces.cli.main.main`."""
    from rayces.cli.main import main as run_main

    try:
        return run_main()
    finally:
        # The result is written: a signal from now on must not end the process by its default
        # action (which Python restores for its own handlers as it shuts down), or the exit
        # code would contradict the result.
        signals.ignore_from_now_on()

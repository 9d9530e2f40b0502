"""The `raycesctl` console script: SIGINT and SIGTERM are noted from its first line on.

Python ends a process on SIGTERM by default, with no result written and nothing cleaned up. The
command line imports a few modules before `rayces.cli.dispatch` installs its handlers; a signal
in that window (the kubelet deleting a Pod the moment it starts) is noted here instead, and the
run then reports it like any other interruption: exit 128 + the signal's number and an
`interrupted` result.
"""

from __future__ import annotations

from rayces.migrations import signals

signals.note_early_signals()


def main() -> int:
    """Run `raycesctl` on the process's arguments; see `rayces.cli.main.main`."""
    from rayces.cli.main import main as run_main

    return run_main()

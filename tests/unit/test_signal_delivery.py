"""Where a signal is delivered: at once with nothing in flight, at the next checkpoint (after
cancelling the running statement) with a connection open, never twice, and never once the result
is held. Real signals, sent to this process, in the main thread.
"""

from __future__ import annotations

import os
import signal
import sys
import weakref

import pytest

from rayces.migrations import signals
from rayces.migrations.faults import (
    SignalFault,
    StepFault,
    parse_signal_faults,
    parse_step_fault,
)


def _send(number: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), number)


def test_with_nothing_in_flight_a_signal_interrupts_at_once() -> None:
    with signals.interruptible() as guard, pytest.raises(signals.Interrupted) as raised:
        _send()
        pytest.fail("the signal did not interrupt")
    assert raised.value.signal_number == signal.SIGTERM
    assert raised.value.exit_status == 143
    assert guard.received == [signal.SIGTERM]


def test_with_a_connection_open_the_statement_is_cancelled_and_the_next_does_not_start() -> None:
    cancelled = []
    with signals.interruptible() as guard:
        signals.connection_opened(1, lambda: True, lambda: cancelled.append("statement"))
        _send(signal.SIGINT)  # no exception here: the main thread may be inside the driver
        assert cancelled == ["statement"]
        with pytest.raises(signals.StopRequested) as raised:
            signals.checkpoint()
        assert raised.value.signal_number == signal.SIGINT
        signals.checkpoint()  # delivered once only
        assert signals.take_signal() == signal.SIGINT
        assert guard.hold() == signal.SIGINT


def test_a_closed_connection_is_not_cancelled_and_does_not_defer() -> None:
    cancelled = []
    with signals.interruptible(), pytest.raises(signals.Interrupted):
        signals.connection_opened(1, lambda: False, lambda: cancelled.append("x"))
        _send()
    assert cancelled == []


def test_a_connection_closed_again_no_longer_defers() -> None:
    with signals.interruptible(), pytest.raises(signals.Interrupted):
        signals.connection_opened(7, lambda: True, lambda: None)
        signals.connection_closed(7)
        _send()


def test_a_sleep_is_interrupted_at_once_even_with_a_connection_open() -> None:
    with signals.interruptible(), pytest.raises(signals.Interrupted):
        signals.connection_opened(1, lambda: True, lambda: None)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        previous = signal.signal(signal.SIGALRM, lambda *_: _send())
        try:
            signals.sleep(30)
        finally:
            signal.signal(signal.SIGALRM, previous)


def test_a_second_signal_is_noted_and_ignored() -> None:
    with signals.interruptible() as guard:
        signals.connection_opened(1, lambda: True, lambda: None)
        _send(signal.SIGTERM)
        _send(signal.SIGINT)
        _send(signal.SIGINT)
        assert guard.received == [signal.SIGTERM, signal.SIGINT, signal.SIGINT]
        with pytest.raises(signals.StopRequested) as raised:
            signals.checkpoint()
        assert raised.value.signal_number == signal.SIGTERM


def test_once_the_result_is_held_a_signal_changes_nothing() -> None:
    with signals.interruptible() as guard:
        assert guard.hold() is None
        _send()
        assert guard.hold() is None  # the result decided before it stands
        signals.checkpoint()
    assert guard.received == [signal.SIGTERM]


def test_after_stop_raising_a_signal_still_changes_the_result() -> None:
    with signals.interruptible() as guard:
        guard.stop_raising()
        _send(signal.SIGINT)
        assert guard.hold() == signal.SIGINT


def test_signals_before_the_handlers_are_installed_are_delivered_at_the_first_checkpoint() -> None:
    previous = {number: signal.getsignal(number) for number in signals.HANDLED_SIGNALS}
    try:
        signals.note_early_signals()
        _send()
        with signals.interruptible() as guard:
            assert guard.received == [signal.SIGTERM]
            with pytest.raises(signals.StopRequested):
                signals.checkpoint()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_a_signal_python_cannot_raise_is_delivered_at_the_next_checkpoint_quietly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An import's module-lock callback is a weakref callback: an exception raised in it (here,
    by the handler) is printed by `sys.unraisablehook` and dropped. The guard takes it back."""

    class Target:
        pass

    def callback(reference: object) -> None:
        _send()  # the handler runs inside this callback and raises here
        sum(range(1000))  # a few bytecodes, so the handler runs before the callback returns

    target = Target()
    reference = weakref.ref(target, callback)
    with signals.interruptible() as guard:
        del target  # runs the callback; its exception cannot propagate
        assert reference() is None
        assert guard.received == [signal.SIGTERM]
        with pytest.raises(signals.StopRequested) as raised:
            signals.checkpoint()
        assert raised.value.signal_number == signal.SIGTERM
        signals.checkpoint()  # delivered once only
    assert capsys.readouterr().err == ""


def test_an_unraisable_exception_that_is_not_ours_still_reaches_the_previous_hook() -> None:
    seen: list[BaseException | None] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_value)
    try:

        class Noisy:
            def __del__(self) -> None:
                raise ValueError("not a signal")

        with signals.interruptible():
            Noisy()
    finally:
        sys.unraisablehook = previous
    assert [type(item) for item in seen] == [ValueError]


def test_outside_interruptible_the_functions_do_nothing() -> None:
    signals.checkpoint()
    assert signals.take_signal() is None
    signals.connection_opened(1, lambda: True, lambda: None)
    signals.sleep(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", None, id="unset"),
        pytest.param(
            "20250713000004:upgrade:3", StepFault("20250713000004", "upgrade", 3), id="kill"
        ),
        pytest.param(
            "20250713000004:downgrade:1:TERM",
            StepFault("20250713000004", "downgrade", 1, signal.SIGTERM),
            id="term",
        ),
        pytest.param(
            "20250713000004:upgrade:2:SIGINT",
            StepFault("20250713000004", "upgrade", 2, signal.SIGINT),
            id="sigint",
        ),
    ],
)
def test_step_fault(value: str, expected: StepFault | None) -> None:
    assert parse_step_fault(value) == expected


@pytest.mark.parametrize(
    "value",
    ["20250713000004:sideways:1", "20250713000004:upgrade:one", "a:upgrade:1:HUP", "a:upgrade"],
)
def test_step_fault_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"REVISION|signal"):
        parse_step_fault(value)


def test_signal_faults() -> None:
    assert parse_signal_faults("TERM@statement:12, INT@commit:3,STOP@before-statement:4") == (
        SignalFault(signal.SIGTERM, "statement", "12"),
        SignalFault(signal.SIGINT, "commit", "3"),
        SignalFault(signal.SIGSTOP, "before-statement", "4"),
    )
    assert parse_signal_faults("INT@applied:20250713000004,TERM@result") == (
        SignalFault(signal.SIGINT, "applied", "20250713000004"),
        SignalFault(signal.SIGTERM, "result", ""),
    )
    assert parse_signal_faults("") == ()


@pytest.mark.parametrize(
    "value", ["TERM@statement", "TERM@statement:x", "TERM@lunch", "HUP@result"]
)
def test_signal_faults_refuse(value: str) -> None:
    with pytest.raises(ValueError):
        parse_signal_faults(value)

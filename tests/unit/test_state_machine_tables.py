"""The state machines are one table each, and revision 20250718000017 holds their rendering.

The revision keeps the trigger SQL as literals so that it never changes meaning; this checks
that the literals are exactly what the tables in `rayces.domain.state_machines` render.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from rayces.domain.state_machines import (
    MACHINES,
    StateMachine,
    render_trigger_sql,
    trigger_function_name,
    trigger_name,
)

REVISION = (
    Path(__file__).resolve().parents[2]
    / "alembic"
    / "versions"
    / "20250718000017_row_level_security_and_state_machines.py"
)


def _revision() -> ModuleType:
    spec = importlib.util.spec_from_file_location("revision_0017", REVISION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MACHINE_PARAMS = [pytest.param(machine, id=machine.table) for machine in MACHINES]


@pytest.mark.parametrize("machine", MACHINE_PARAMS)
def test_the_revision_holds_what_the_table_renders(machine: StateMachine) -> None:
    rendered = {entry[0]: entry for entry in _revision().STATE_MACHINE_TRIGGERS}
    function, trigger = render_trigger_sql(machine)
    assert rendered[machine.table] == (
        machine.table,
        trigger_name(machine),
        trigger_function_name(machine),
        function,
        trigger,
    )


@pytest.mark.parametrize("machine", MACHINE_PARAMS)
def test_every_state_is_reachable_and_known(machine: StateMachine) -> None:
    states = {str(state) for state in machine.states}
    reached = {machine.initial}
    for transition in machine.transitions:
        assert set(transition.sources) <= states
        assert transition.target in states
        assert transition.target not in transition.sources  # no self-loops
        reached.add(transition.target)
    assert reached == states
    assert set(machine.required) <= states
    for columns in (*machine.required.values(), *machine.allowed.values()):
        assert set(columns) <= set(machine.stamp_columns)

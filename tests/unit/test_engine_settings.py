"""The settings read once from the environment, the signal handling of a run, and the hints a
missing privilege gets."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from rayces.migrations.database import permission_hint
from rayces.migrations.settings import ENVIRONMENT_VARIABLES, Settings
from rayces.migrations.signals import Interrupted, interruptible


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        pytest.param({}, Settings(hostname="box"), id="nothing-set"),
        pytest.param(
            {
                "DATABASE_URL": "postgresql://u@h/db",
                "RAYCES_DATA_DIR": "/data",
                "RAYCES_TERMINATION_MESSAGE_PATH": "/dev/termination-log",
                "RAYCES_DEFAULT_ORGANIZATION_NAME": "Acme",
                "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN": "acme",
                "RAYCES_DEBUG": "1",
            },
            Settings(
                database_url="postgresql://u@h/db",
                data_dir=Path("/data"),
                termination_message_path="/dev/termination-log",
                default_organization_name="Acme",
                default_organization_subdomain="acme",
                debug=True,
                hostname="box",
            ),
            id="everything-set",
        ),
        pytest.param(
            {"DATABASE_URL": "", "RAYCES_DEBUG": "0", "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN": ""},
            Settings(default_organization_subdomain="", hostname="box"),
            id="empty-values",
        ),
    ],
)
def test_settings_from_environment(environment: dict[str, str], expected: Settings) -> None:
    settings = Settings.from_environment({**environment, "HOSTNAME": "box"})
    assert settings == Settings(**{**expected.__dict__, "running_as_root": os.geteuid() == 0})


def test_every_documented_variable_is_read() -> None:
    import re

    from rayces.migrations import settings as module

    text = Path(module.__file__).read_text()
    read = set(re.findall(r'(?:value|path|env\.get)\("([A-Z_]+)"\)', text))
    assert set(ENVIRONMENT_VARIABLES) <= read


def test_an_empty_subdomain_reaches_the_revision_arguments_to_be_refused() -> None:
    settings = Settings(default_organization_subdomain="")
    assert settings.revision_arguments() == {"default_organization_subdomain": ""}


@pytest.mark.parametrize(
    ("signal_number", "exit_status"),
    [
        pytest.param(signal.SIGTERM, 143, id="sigterm"),
        pytest.param(signal.SIGINT, 130, id="sigint"),
    ],
)
def test_the_first_signal_interrupts_the_next_are_ignored(
    signal_number: int, exit_status: int
) -> None:
    before = signal.getsignal(signal_number)
    with pytest.raises(Interrupted) as raised, interruptible():
        os.kill(os.getpid(), signal_number)
        time.sleep(5)
    assert raised.value.signal_number == signal_number
    assert raised.value.exit_status == exit_status
    assert isinstance(raised.value, KeyboardInterrupt)  # psycopg cancels the query on it
    assert signal.getsignal(signal_number) == before

    with interruptible():
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal_number)
            time.sleep(5)
        os.kill(os.getpid(), signal_number)  # during cleanup: ignored
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("permission denied for schema public", "GRANT CREATE, USAGE ON SCHEMA public"),
        pytest.param("permission denied for table users", "ON users"),
        pytest.param("must be owner of table users", "must own users"),
        pytest.param("permission denied for database rayces", "CREATE ON DATABASE rayces"),
        pytest.param(
            'permission denied to create extension "btree_gist"', "CREATE EXTENSION btree_gist"
        ),
        pytest.param("permission denied for something new", "lacks a privilege"),
    ],
)
def test_permission_hints_name_the_privilege(message: str, expected: str) -> None:
    assert expected in permission_hint(message)


def test_once_the_result_is_being_written_a_signal_is_only_noted() -> None:
    with interruptible() as guard:
        guard.hold()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert guard.received == [signal.SIGTERM]

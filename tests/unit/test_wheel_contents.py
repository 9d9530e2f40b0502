"""The wheel carries the Alembic revision scripts, so an installed `raycesctl` can migrate.

`pyproject.toml` force-includes `alembic/` as `rayces/migrations/revision_scripts/`; a source
checkout finds `alembic/` itself, so only a built wheel shows whether the packaging is right.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_every_revision_script(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(REPOSITORY_ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("rayces_operator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = "rayces/migrations/revision_scripts/"
    assert f"{packaged}env.py" in names
    assert f"{packaged}script.py.mako" in names
    revisions = sorted(
        path.name for path in (REPOSITORY_ROOT / "alembic" / "versions").glob("*.py")
    )
    assert revisions, "no revisions in alembic/versions"
    assert (
        sorted(
            name.removeprefix(f"{packaged}versions/")
            for name in names
            if name.startswith(f"{packaged}versions/") and name.endswith(".py")
        )
        == revisions
    )
    assert "rayces/cli/main.py" in names
    assert not any("__pycache__" in name for name in names)

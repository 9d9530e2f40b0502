"""The wheel carries the Alembic revision scripts, so an installed `raycesctl` can migrate.

`pyproject.toml` force-includes `alembic/` as `rayces/migrations/revision_scripts/`; a source
checkout finds `alembic/` itself, so only a built wheel shows whether the packaging is right:
these tests build one, look inside, then install it apart from the checkout and migrate with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from the checkout without its dependencies."""
    directory = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(directory),
            str(REPOSITORY_ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = directory.glob("rayces_operator-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_every_revision_script(wheel: Path) -> None:
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


@pytest.mark.slow
def test_installed_wheel_migrates_without_the_checkout(
    wheel: Path, tmp_path: Path, database_url: str
) -> None:
    """Installed apart from the source tree (as in the container image), `raycesctl` finds its
    packaged revision scripts and brings a database to head."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", target, wheel],
        check=True,
        timeout=300,
    )
    program = (
        "import sys, rayces\n"
        "from rayces.migrations.scripts import script_location\n"
        "print(rayces.__file__, script_location(), sep='\\n', file=sys.stderr)\n"
        "from rayces.cli.main import main\n"
        "sys.exit(main())\n"
    )
    # PYTHONPATH puts the installed copy ahead of the editable checkout on sys.path; the
    # dependencies still come from this environment's site-packages.
    environment = {**os.environ, "PYTHONPATH": str(target)}
    environment.pop("DATABASE_URL", None)
    completed = subprocess.run(
        [sys.executable, "-c", program, "migrate", "--database-url", database_url, "-o", "json"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    package_file, scripts = completed.stderr.splitlines()[:2]
    assert Path(package_file).is_relative_to(target)
    assert Path(scripts) == target / "rayces" / "migrations" / "revision_scripts"
    result = json.loads(completed.stdout)
    assert result["status"] == "succeeded"
    assert (
        result["to_revision"]
        == sorted(
            path.name.split("_", 1)[0]
            for path in (REPOSITORY_ROOT / "alembic" / "versions").glob("*.py")
        )[-1]
    )

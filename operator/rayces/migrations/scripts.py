"""Where the Alembic revision scripts are, and the Alembic configuration built around them.

An installed wheel carries the repository's `alembic/` directory as the package data
`rayces/migrations/revision_scripts/` (see `[tool.hatch.build.targets.wheel.force-include]` in
pyproject.toml); a source checkout or editable install uses the repository's `alembic/` directly.
`alembic.ini` is for the plain `alembic` command only: `raycesctl` builds the same configuration
in code, so a Job needs no file besides the package.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rayces.migrations.errors import RevisionNotFoundError, UsageError
from rayces.migrations.results import Direction

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

_PACKAGE_DIR = Path(__file__).resolve().parent


def script_location() -> Path:
    """The directory holding `env.py` and `versions/`: packaged copy first, then the checkout."""
    for candidate in (_PACKAGE_DIR / "revision_scripts", _PACKAGE_DIR.parents[2] / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"no Alembic revision scripts in {_PACKAGE_DIR / 'revision_scripts'} "
        f"or {_PACKAGE_DIR.parents[2] / 'alembic'}"
    )


def build_config(
    *,
    location: Path | None = None,
    x_arguments: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    output_buffer: TextIO | None = None,
) -> Config:
    """An Alembic `Config` for the revision scripts, without reading `alembic.ini`.

    :param location: the script directory; `script_location()` when omitted (tests pass a
        directory of their own revisions).
    :param x_arguments: values the revisions read with `context.get_x_argument(as_dictionary=True)`,
        as `alembic -x key=value` would pass them.
    :param attributes: `config.attributes` for env.py: `connection`, `on_version_apply`, ...
    :param output_buffer: where offline (SQL-rendering) runs write their SQL.
    """
    from alembic.config import Config

    x = [f"{key}={value}" for key, value in (x_arguments or {}).items()]
    config = Config(
        cmd_opts=argparse.Namespace(x=x),
        output_buffer=output_buffer,
        attributes=dict(attributes or {}),
    )
    config.set_main_option("script_location", str(location or script_location()))
    return config


def load_scripts(config: Config) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config)


def revision_chain(scripts: ScriptDirectory) -> list[Script]:
    """Every revision, oldest first. Rayces keeps one linear history (no branches)."""
    return list(reversed(list(scripts.walk_revisions("base", "heads"))))


def revision_name(script: Script) -> str:
    """The first line of a revision's docstring: `Create organizations`."""
    return (script.doc or "").strip().splitlines()[0] if script.doc else ""


def resolve_revision(scripts: ScriptDirectory, revision: str) -> str | None:
    """The full revision id that `revision` names (`head`, `base`, an id or a unique id prefix);
    `None` for base.

    :param scripts: the script directory to look in.
    :param revision: what a person typed.
    """
    from alembic.util import CommandError

    if revision == "base":
        return None
    if not revision.strip():
        raise RevisionNotFoundError(
            "empty revision", hint="give head, base or a revision id (see `raycesctl status`)"
        )
    try:
        if revision in {"head", "heads"}:
            heads = scripts.get_heads()
            if len(heads) != 1:
                raise UsageError(
                    f"the revision scripts have {len(heads)} heads",
                    hint="merge the branches with `alembic merge`",
                )
            return heads[0]
        script = scripts.get_revision(revision)
    except CommandError as error:
        raise RevisionNotFoundError(
            f"unknown revision {revision!r}: {error}",
            hint="run `raycesctl status` to list the revisions",
        ) from None
    if script is None:
        raise RevisionNotFoundError(
            f"unknown revision {revision!r}", hint="run `raycesctl status` to list the revisions"
        )
    return script.revision


def applied_count(chain: list[Script], current: str | None) -> int:
    """How many revisions of `chain` are applied when the database is at `current` (None: base).

    :raises RevisionNotFoundError: `current` is not in the chain (another version migrated it).
    """
    if current is None:
        return 0
    ids = [script.revision for script in chain]
    if current not in ids:
        raise RevisionNotFoundError(
            f"the database is at revision {current!r}, which is not in the revision scripts",
            hint="the database was migrated by another version of rayces; use that one",
        )
    return ids.index(current) + 1


def revisions_between(
    chain: list[Script], start: str | None, end: str | None
) -> tuple[Direction, list[str]]:
    """Direction and revisions to run to go from `start` to `end` (`None` = base) on `chain`.

    Upgrades list the revisions to apply, oldest first; downgrades the ones to revert, newest
    first. Same revision: ("upgrade", []).
    """
    ids = [script.revision for script in chain]
    # Positions in the chain (-1 for base); `end` was resolved from these scripts already.
    here = applied_count(chain, start) - 1
    there = applied_count(chain, end) - 1
    if there >= here:
        return "upgrade", ids[here + 1 : there + 1]
    return "downgrade", list(reversed(ids[there + 1 : here + 1]))

"""``build`` alone: every migratable app's venv in one journal session, nothing rewritten.

The venvs are renamed into place through the transaction, so ``rollback`` removes them;
if any app fails, the session rolls back every venv this command built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from migrate.build.app import BuildOptions, BuiltVenv, build_apps, builder_refused
from migrate.journal import home_lock, session
from migrate.layout import venv_dir
from migrate.paths import home_relative
from migrate.privilege import owner_of
from migrate.resolve.plan import Plan


class BuildRefused(Exception):
    """``build`` will not start (nothing was written); one problem per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class BuildResult:
    transaction: str | None
    """None when there was nothing to build (no transaction began)."""
    built: tuple[BuiltVenv, ...]
    skipped: tuple[str, ...]
    """Apps that run Python of an unknown version: ``--python X.Y=PATH`` names it."""


def build_venvs(plan: Plan, options: BuildOptions, *, description: str) -> BuildResult:
    """Build the venv of every app of ``plan`` that can migrate, as one transaction.

    Refuses, before a transaction begins, where a venv path is taken already (an earlier
    migration's venv is rolled back, not overwritten). A failure raises the journal's
    :class:`~migrate.journal.SessionAborted` after the rollback.
    """
    home = plan.home
    buildable = [app for app in plan.apps if app.migratable]
    skipped = tuple(app.name for app in plan.apps if app.runs_python and not app.migratable)
    if not buildable:
        return BuildResult(None, (), skipped)
    with home_lock(home):
        taken = [venv_dir(home, a.name) for a in buildable]
        problems = [
            f"{home_relative(venv, home)} exists already: move it away (or roll back the "
            "migration that made it) before building"
            for venv in taken
            if os.path.lexists(venv)
        ]
        refused = builder_refused(owner_of(home))
        problems += [refused] if refused else []
        if problems:
            raise BuildRefused(problems)
        with session(home, description) as transaction:
            built = build_apps(home, buildable, transaction, options)
    return BuildResult(transaction.id, tuple(built), skipped)

"""Create a venv with the app's own interpreter: virtualenv's Python API, or the legacy helper."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from migrate.build.venv.legacy import legacy_helper, needs_legacy
from migrate.build.venv.relocate import venv_python
from migrate.build.venv.tools import VenvError, clean_env, run_tool
from migrate.discover.interpreters import Interpreter


@dataclass(frozen=True)
class Tool:
    """How a venv gets made: the installed virtualenv (in process) or the legacy helper."""

    legacy: bool
    helper: Path | None = None
    """The helper environment's python (legacy only)."""


def create_venv(
    dest: Path,
    interpreter: Interpreter,
    *,
    helpers: Path,
    prompt: str | None = None,
    seed: bool = True,
    offline: bool = False,
) -> Path:
    """Make a venv at ``dest`` (which must not exist) for ``interpreter``; returns its python.

    ``offline``: never ask a package index (the legacy helper then fails if not yet built).

    ``seed=False`` leaves pip out (the store path: the tool's own pip checks the venv),
    which makes a venv in about 0.07 s instead of about 0.5 s; legacy targets are always
    seeded.

    ``helpers`` holds virtualenv's app-data cache and the legacy helper: the tool's own
    state inside the home, so nothing is written elsewhere.
    """
    if os.path.lexists(dest):
        raise VenvError(f"{dest} exists already")
    helpers.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = [
        "--no-download",
        "--no-setuptools",
        "--no-periodic-update",
        "--no-vcs-ignore",
        "--prompt",
        prompt or dest.name,
    ]
    if needs_legacy(interpreter.version):
        helper = legacy_helper(helpers, offline=offline)
        command = [
            str(helper), "-m", "virtualenv", str(dest), "--python", str(interpreter.executable),
            "--no-wheel", "--app-data", str(helpers / "app-data-legacy"), *options,
        ]  # fmt: skip
        run_tool(command, f"virtualenv (legacy helper) for Python {interpreter.version}")
    else:
        import virtualenv

        args = [
            str(dest), "--python", str(interpreter.executable),
            "--app-data", str(helpers / "app-data"), "--quiet", *options,
        ]  # fmt: skip
        if not seed:
            args.append("--no-seed")
        try:
            virtualenv.cli_run(args, setup_logging=False, env=clean_env())
        except (Exception, SystemExit) as exc:  # virtualenv exits on bad input
            raise VenvError(
                f"virtualenv could not create {dest} for {interpreter.executable}: {exc}"
            ) from None
    python = venv_python(dest)
    if not python.exists():
        raise VenvError(f"virtualenv made {dest} without {python}")
    return python

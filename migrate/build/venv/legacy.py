"""Targets older than the installed virtualenv seeds for (2.7, 3.6): ``virtualenv<20.22`` from
a helper environment built once under ``HOME/.concentric-migrate/helpers`` (the only step
that needs an index).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from migrate.build.venv.relocate import relocate, venv_python
from migrate.build.venv.tools import TIMEOUT, HelperUnavailable, clean_env, release, tail
from migrate.discover.interpreters import find_interpreter

LEGACY_VIRTUALENV = "virtualenv<20.22"
"""The last virtualenv releases that can still create (and seed pip into) 2.7 / 3.6 venvs."""


LEGACY_HELPER = "virtualenv-legacy"


_HELPER_PYTHONS = ("3.11", "3.10", "3.9", "3.8")
"""Interpreters ``virtualenv<20.22`` runs on, newest first, when this one is too new for it."""


def needs_legacy(python: str) -> bool:
    """True when the installed virtualenv carries no pip for Python ``X.Y``."""
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    return release(python) < min(release(v) for v in BUNDLE_SUPPORT)


def legacy_helper(helpers: Path, *, offline: bool = False) -> Path:
    """The helper environment's python with ``virtualenv<20.22``, built once and cached.

    Built beside its place and renamed in, so an interrupted build is never mistaken for
    a finished one. Needs an index (``PIP_INDEX_URL`` is honoured; pip config files are not).
    """
    home = helpers / LEGACY_HELPER
    python = venv_python(home)
    if python.exists() and _helper_works(python):
        return python
    if os.path.lexists(home):
        shutil.rmtree(home)
    runner = _helper_runner()
    building = helpers / f".{LEGACY_HELPER}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        import virtualenv

        try:
            virtualenv.cli_run(
                [str(building), "--python", str(runner), "--no-download", "--no-setuptools",
                 "--no-periodic-update", "--no-vcs-ignore", "--quiet",
                 "--app-data", str(helpers / "app-data")],
                setup_logging=False, env=clean_env(),
            )  # fmt: skip
        except (Exception, SystemExit) as exc:
            raise HelperUnavailable(f"cannot create the helper environment: {exc}") from None
        # pip (and what it runs, such as a rustup proxy asked for its version) may write
        # caches and settings under HOME: give it a home of its own, not the account's.
        private = building / "home"
        private.mkdir()
        env = {**clean_env(keep_pip=True), "HOME": str(private), "XDG_CACHE_HOME": str(private)}
        if offline:
            env["PIP_NO_INDEX"] = "1"
        done = subprocess.run(
            [str(venv_python(building)), "-m", "pip", "--disable-pip-version-check",
             "install", "--quiet", LEGACY_VIRTUALENV],
            capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False,
        )  # fmt: skip
        shutil.rmtree(private, ignore_errors=True)
        if done.returncode != 0:
            raise HelperUnavailable(
                f"Python 2.7/3.6-era targets need {LEGACY_VIRTUALENV!r}, which could not be "
                f"installed into {home} (an index is needed once; set PIP_INDEX_URL for a "
                f"mirror): {tail(done.stderr or done.stdout)}"
            )
        relocate(building, home)
        os.rename(building, home)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not _helper_works(python):
        raise HelperUnavailable(f"{home} was built but its virtualenv does not run")
    return python


def _helper_works(python: Path) -> bool:
    done = subprocess.run(
        [str(python), "-c", "import virtualenv; print(virtualenv.__version__)"],
        capture_output=True, text=True, timeout=TIMEOUT, env=clean_env(), check=False,
    )  # fmt: skip
    version = done.stdout.strip()
    return done.returncode == 0 and bool(version) and release(version)[:2] < (20, 22)


@functools.cache
def _helper_runner() -> Path:
    """A python ``virtualenv<20.22`` runs on: this one if old enough, else one found."""
    if sys.version_info < (3, 12):
        return Path(sys.executable)
    for version in _HELPER_PYTHONS:
        found = find_interpreter(version)
        if found is not None:
            return found.executable
    raise HelperUnavailable(
        f"{LEGACY_VIRTUALENV} needs Python {' or '.join(_HELPER_PYTHONS)} to run on; none found"
    )

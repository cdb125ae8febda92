"""Build, fill, check and relocate one virtualenv, offline — one module per role.

``create`` (virtualenv's Python API, or ``legacy`` for old targets), ``seed`` (the venv's
pip installs wheels, then ``pip check``), ``link`` (the shared store hardlinked in instead of
pip), ``relocate`` (from the staging folder to its place) and ``tools`` (running them).

A venv is made with the app's own interpreter by virtualenv's Python API, seeded with pip
from virtualenv's embedded wheels (``--no-download``; no setuptools, no wheel: installing
wheels needs neither). Targets older than the installed virtualenv still seeds for (2.7 and
3.6 included) are made by ``virtualenv<20.22`` — the last releases that carry pip for
them — from an isolated helper environment this module builds once under
``HOME/.concentric-migrate/helpers`` (the only step that needs an index).

Packages go in with the venv's own pip, ``--no-index --no-deps`` from exactly the wheel
files given: the lock is already closed, and the wheelhouse may hold two different copies
of one name and version, so a name lookup in a folder could pick the wrong one.

A venv names its own absolute path in its activate scripts and in the shebangs of the
scripts pip writes, and in the ``.pyc`` files it compiles. It is built in a staging folder
and renamed into place, so :func:`relocate` rewrites those paths to the destination first
and compiles bytecode for the destination's paths; nothing in it names the staging folder.
"""

from __future__ import annotations

from migrate.build.venv.create import Tool, create_venv
from migrate.build.venv.legacy import LEGACY_HELPER, LEGACY_VIRTUALENV, legacy_helper, needs_legacy
from migrate.build.venv.link import (
    INSTALLER,
    LinkResult,
    StoreFill,
    can_link,
    fill_store,
    install_linked,
    stat_mode,
    unpack_to_store,
)
from migrate.build.venv.relocate import relocate, venv_python
from migrate.build.venv.seed import check, embedded_pip, install, tool_pip_runner
from migrate.build.venv.tools import HelperUnavailable, VenvError, clean_env

__all__ = [
    "INSTALLER",
    "LEGACY_HELPER",
    "LEGACY_VIRTUALENV",
    "HelperUnavailable",
    "LinkResult",
    "StoreFill",
    "Tool",
    "VenvError",
    "can_link",
    "check",
    "clean_env",
    "create_venv",
    "embedded_pip",
    "fill_store",
    "install",
    "install_linked",
    "legacy_helper",
    "needs_legacy",
    "relocate",
    "stat_mode",
    "tool_pip_runner",
    "unpack_to_store",
    "venv_python",
]

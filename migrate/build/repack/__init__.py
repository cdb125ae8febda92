"""Repack installed distributions into wheels, offline, from the files installed today.

One module per install kind says what belongs to a distribution (``distinfo``,
``egginfo``, ``egg``, ``develop``, plus ``libfiles`` for what lay beside the lib dir);
``metadata`` and ``tags`` make its ``.dist-info`` and tag; ``store`` writes the wheel.

Fidelity (DESIGN rule 3): a venv built from these wheels gets the bytes that run now —
local patches included, and packages no index serves any more. Nothing is built and
nothing is fetched: each install kind's own file list (RECORD, installed-files.txt, the
egg, the develop tree) says what belongs to a distribution, and the metadata it left is
converted into the wheel's ``.dist-info``. ``.pyc`` files are not packed (pip compiles)
unless a module exists only as bytecode.

The wheelhouse ``HOME/.concentric-migrate/wheels`` is the tool's own state, written
directly (temp file + rename), not through the journal. Wheels sit there under their
normal names so the folder works as ``--find-links``; ``index/KEY.json`` maps the sha256
over every member a wheel holds (names, modes, bytes) to that wheel, so an unchanged
distribution is found and not packed again; ``index/quick/KEY.json`` maps the installed
files' inodes, sizes, mtimes and ctimes to it too, so that finding it again reads no file
(hashing every installed file each run cost more than the rest of a warm build). Output
is deterministic (sorted members, fixed timestamps), so the same files always give the
same wheel sha256. A second, different copy of the same name and version (a patched one
beside a pristine one) is kept apart, in ``variants/KEY/``.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

from packaging.version import InvalidVersion, Version

from migrate.build.repack.develop import from_source_tree
from migrate.build.repack.distinfo import from_dist_info
from migrate.build.repack.egg import from_egg
from migrate.build.repack.egginfo import from_egg_info
from migrate.build.repack.libfiles import lib_files
from migrate.build.repack.members import Contents, Names, RepackError, drop_bytecode
from migrate.build.repack.metadata import dist_info_members, synthesized_metadata
from migrate.build.repack.store import RepackedWheel, store_wheel
from migrate.build.repack.tags import wheel_tag
from migrate.inventory.model import Distribution
from migrate.lock import LOCAL_VERSION

_PYTHON = re.compile(r"^(\d)\.(\d+)$")

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)

__all__ = ["RepackError", "RepackedWheel", "repack", "wheel_version"]


def wheel_version(dist: Distribution) -> str:
    """The version the wheel carries: the installed one, normalised, else ``0+local``.

    The same rule as the lock's pins, so ``name==version`` in requirements.txt matches.
    """
    if not dist.version:
        return LOCAL_VERSION
    try:
        return str(Version(dist.version))
    except InvalidVersion:
        return LOCAL_VERSION


def repack(dist: Distribution, wheelhouse: Path, *, python: str) -> RepackedWheel:
    """Make (or find) the wheel of ``dist`` for Python ``python`` (``X.Y``) in ``wheelhouse``.

    Raises :class:`RepackError` for a distribution that cannot be packed; OSError only for
    a wheelhouse that cannot be written.
    """
    target = _PYTHON.match(python)
    if target is None:
        raise ValueError(f"python must be X.Y, not {python!r}")
    if not _NAME.match(dist.name):
        raise RepackError(
            f"{dist.display_name} ({dist.path}): {dist.name!r} is not a valid project name, "
            "so no wheel can carry it; rename its metadata or install it from source"
        )
    names = Names(dist.name.replace("-", "_"), wheel_version(dist))
    with ExitStack() as stack:
        contents = _collect(dist, names, stack)
        payload = drop_bytecode(contents.files)
        if not payload and contents.required:
            raise RepackError(
                f"{dist.display_name} {names.version} ({dist.path}): none of the files its "
                "metadata lists exists any more; reinstall it, or remove it if unused"
            )
        tag, purelib = wheel_tag(payload, contents, (int(target[1]), int(target[2])), dist)
        members = dist_info_members(names, contents, payload, tag, purelib, dist)
        return store_wheel(dist, wheelhouse, names, tag, (*payload, *members))


def _collect(dist: Distribution, names: Names, stack: ExitStack) -> Contents:
    if dist.kind == "egg-link" or (dist.kind == "dist-info" and dist.editable and dist.target):
        return from_source_tree(dist, names)
    if dist.kind == "dist-info":
        return from_dist_info(dist, names)
    if dist.kind == "egg-info":
        return from_egg_info(dist, names)
    if dist.kind == "egg":
        return from_egg(dist, names, stack)
    if dist.kind == "bare":
        files = lib_files(dist, dist.files or (), names, frozenset())
        return Contents(files, synthesized_metadata(dist, names), required=True)
    raise RepackError(f"{dist.path}: unknown install kind {dist.kind!r}")

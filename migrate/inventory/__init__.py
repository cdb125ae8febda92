"""Inventory: every distribution in every lib dir, one reader per install kind.

Nothing from the account is imported or executed; unreadable or corrupt input becomes
a :class:`Finding` and the rest of the lib dir is still read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from migrate import report
from migrate.discover.account import Account, LibDir
from migrate.inventory.bare import is_package_dir, module_name, read_bare
from migrate.inventory.distinfo import read_dist_info
from migrate.inventory.egg import read_egg
from migrate.inventory.egginfo import read_egg_info
from migrate.inventory.egglink import read_egg_link
from migrate.inventory.metadata import canonical
from migrate.inventory.model import (
    Distribution,
    Finding,
    Inventory,
    LibDirInventory,
    PthFile,
)
from migrate.inventory.pth import is_setuptools_site_py, read_pth
from migrate.paths import is_inside

__all__ = ["Distribution", "Finding", "Inventory", "LibDirInventory", "PthFile", "take_inventory"]

Reader = Callable[[Path, Path], tuple[Distribution, tuple[Finding, ...]]]
_READERS: tuple[tuple[str, Reader], ...] = (
    (".dist-info", read_dist_info),
    (".egg-info", read_egg_info),
    (".egg", read_egg),
    (".egg-link", read_egg_link),
)


PARALLEL_MIN_LIB_DIRS = 16
"""Below this many lib dirs, starting worker processes costs more than it saves."""


def take_inventory(
    account: Account,
    jobs: int | None = None,
) -> Inventory:
    """Read every lib dir of the account, reporting each read (:func:`migrate.report.lib_dir_read`).

    Lib dirs are independent, so large accounts are read by ``jobs`` worker processes
    (default: one per CPU); the result is the same, in the same order.
    """
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    libs = account.lib_dirs
    results: list[LibDirInventory] = []
    if workers > 1 and len(libs) >= PARALLEL_MIN_LIB_DIRS and _can_fork():
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        context = get_context("fork")
        chunk = max(1, len(libs) // (workers * 4))
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            homes = [account.home] * len(libs)
            for lib, result in zip(
                libs, pool.map(inventory_lib_dir, libs, homes, chunksize=chunk), strict=True
            ):
                results.append(result)
                report.lib_dir_read(lib)
    else:
        for lib in libs:
            results.append(inventory_lib_dir(lib, account.home))
            report.lib_dir_read(lib)
    return Inventory(account.home, tuple(results), account.apps, account.findings)


def _can_fork() -> bool:
    """Worker processes can be forked here. multiprocessing and concurrent.futures are
    imported only when an account is large enough to use them: not at start-up."""
    from multiprocessing import get_all_start_methods

    return "fork" in get_all_start_methods()


def inventory_lib_dir(lib: LibDir, home: Path | None, *, verify: bool = True) -> LibDirInventory:
    """Read one lib dir; with ``home`` given, a dir that resolves outside it is refused.

    ``verify=False`` skips the RECORD integrity check (for dirs that are not the account's).
    """
    empty = LibDirInventory(lib.path, lib.python, lib.scope, lib.app)
    real = os.path.realpath(lib.path)
    if home is not None and not is_inside(real, os.path.realpath(home)):
        message = f"lib dir resolves to {real}, outside the home; not inventoried"
        return replace(empty, findings=(Finding(lib.path, "error", message),))
    try:
        entries = sorted(os.scandir(lib.path), key=lambda entry: entry.name)
    except OSError as exc:
        message = f"cannot list lib dir: {exc.strerror}"
        return replace(empty, findings=(Finding(lib.path, "error", message),))
    try:  # dist-info files are opened and stat'ed relative to it (shorter walks)
        lib_fd: int | None = os.open(lib.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        lib_fd = None
    try:
        return _inventory_entries(lib, empty, entries, lib_fd, verify=verify)
    finally:
        if lib_fd is not None:
            os.close(lib_fd)


def _inventory_entries(
    lib: LibDir,
    empty: LibDirInventory,
    entries: list[os.DirEntry[str]],
    lib_fd: int | None,
    *,
    verify: bool,
) -> LibDirInventory:

    findings: list[Finding] = []
    dists: list[Distribution] = []
    pths: list[PthFile] = []
    site_py: Path | None = None
    # Entries that may be bare packages or modules. Whether a directory is a package (a
    # listing) is asked only for names no distribution owns: most of a lib dir is owned.
    maybe: list[_Candidate] = []
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir()
            reader = _reader_for(name)
            if reader is not None:
                path = lib.path / name  # cheaper than parsing entry.path whole
                if reader is read_dist_info:
                    dist, found = read_dist_info(path, lib.path, verify=verify, lib_fd=lib_fd)
                else:
                    dist, found = reader(path, lib.path)
                dists.append(dist)
                findings.extend(found)
            elif name.endswith(".pth") and not is_dir:
                pth, found = read_pth(lib.path / name, lib.path)
                findings.extend(found)
                if pth is not None:
                    pths.append(pth)
            elif name in _SITE_FILES and is_setuptools_site_py(lib.path / "site.py"):
                # site.pyc/.pyo beside it are the same boot script compiled by Python 2.
                site_py = lib.path / "site.py"
            elif is_dir:
                if name.isidentifier() and name != "__pycache__":
                    maybe.append(_Candidate(name, entry.path, True, 0))
            elif (module := module_name(name)) is not None:
                rank = 2 if name.endswith(".py") else 3 if name.endswith(".pyc") else 1
                maybe.append(_Candidate(module, entry.path, False, rank))
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            findings.append(Finding(Path(entry.path), "error", f"cannot read: {reason}"))

    if any(_unclaimed_single_file(dist) for dist in dists):
        candidates = [Path(c.path) for c in maybe if not c.is_dir or is_package_dir(Path(c.path))]
        dists = _claim_single_file_egg_info(dists, candidates)
    owned = _owned_names(dists)
    for path in _importable(maybe, owned):
        dist, found = read_bare(path, lib.path)
        dists.append(dist)
        findings.extend(found)
    return replace(
        empty,
        distributions=tuple(dists),
        pth=tuple(pths),
        setuptools_site_py=site_py,
        findings=tuple(findings),
    )


_SITE_FILES = ("site.py", "site.pyc", "site.pyo")


class _Candidate(NamedTuple):
    """A lib dir entry that may be a bare package or module (not yet checked for dirs)."""

    name: str
    """The import name it would provide."""
    path: str
    is_dir: bool
    rank: int
    """FileFinder's order for one name: package dir, extension, ``.py``, ``.pyc``."""


def _reader_for(name: str) -> Reader | None:
    for suffix, reader in _READERS:
        if name.endswith(suffix):
            return reader
    return None


def _owned_names(dists: Iterable[Distribution]) -> set[str]:
    """Top-level names that some distribution in the lib dir already accounts for."""
    owned: set[str] = set()
    firsts: set[str] = set()
    for dist in dists:
        if dist.kind not in ("dist-info", "egg-info"):
            continue
        owned.update(dist.top_level)
        if dist.files:
            firsts.update([rel.split("/", 1)[0] for rel in dist.files])
    owned |= firsts
    owned.update(stem for first in firsts if (stem := module_name(first)) is not None)
    return owned


def _unclaimed_single_file(dist: Distribution) -> bool:
    return dist.kind == "egg-info" and not dist.top_level and dist.files is None


def _claim_single_file_egg_info(
    dists: list[Distribution], candidates: list[Path]
) -> list[Distribution]:
    """distutils' ``foo-1.0.egg-info`` file names no modules; claim the one named like it."""
    by_name = {canonical(module_name(p.name) or p.name): p for p in candidates}
    out = []
    for dist in dists:
        if _unclaimed_single_file(dist):
            match = by_name.get(dist.name) or by_name.get(canonical(dist.name.replace("-", "_")))
            if match is not None:
                dist = replace(dist, top_level=(module_name(match.name) or match.name,))
        out.append(dist)
    return out


def _importable(maybe: list[_Candidate], owned: set[str]) -> list[Path]:
    """One path per import name no distribution owns, as FileFinder picks: package,
    extension, ``.py``, ``.pyc``; a directory counts only if it is a package."""
    by_name: dict[str, list[_Candidate]] = {}
    for candidate in maybe:
        if candidate.name not in owned:
            by_name.setdefault(candidate.name, []).append(candidate)
    chosen = []
    for name in sorted(by_name):
        for candidate in sorted(by_name[name], key=lambda c: c.rank):
            path = Path(candidate.path)
            if not candidate.is_dir or is_package_dir(path):
                chosen.append(path)
                break
    return chosen

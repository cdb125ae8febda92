"""Inventory: every distribution in every lib dir, one reader per install kind.

Nothing from the account is imported or executed; unreadable or corrupt input becomes
a :class:`Finding` and the rest of the lib dir is still read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

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
    if workers > 1 and len(libs) >= PARALLEL_MIN_LIB_DIRS and "fork" in get_all_start_methods():
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

    findings: list[Finding] = []
    dists: list[Distribution] = []
    pths: list[PthFile] = []
    site_py: Path | None = None
    candidates: list[Path] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()
            reader = _reader_for(entry.name)
            if reader is read_dist_info and not verify:
                dist, found = read_dist_info(path, lib.path, verify=False)
                dists.append(dist)
                findings.extend(found)
            elif reader is not None:
                dist, found = reader(path, lib.path)
                dists.append(dist)
                findings.extend(found)
            elif entry.name.endswith(".pth") and not is_dir:
                pth, found = read_pth(path, lib.path)
                findings.extend(found)
                if pth is not None:
                    pths.append(pth)
            elif entry.name in _SITE_FILES and is_setuptools_site_py(lib.path / "site.py"):
                # site.pyc/.pyo beside it are the same boot script compiled by Python 2.
                site_py = lib.path / "site.py"
            elif (is_dir and is_package_dir(path)) or (not is_dir and module_name(entry.name)):
                candidates.append(path)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            findings.append(Finding(path, "error", f"cannot read: {reason}"))

    dists = _claim_single_file_egg_info(dists, candidates)
    owned = _owned_names(dists)
    for name, path in _importable(candidates).items():
        if name in owned:
            continue
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


def _reader_for(name: str) -> Reader | None:
    for suffix, reader in _READERS:
        if name.endswith(suffix):
            return reader
    return None


def _owned_names(dists: Iterable[Distribution]) -> set[str]:
    """Top-level names that some distribution in the lib dir already accounts for."""
    owned: set[str] = set()
    for dist in dists:
        if dist.kind not in ("dist-info", "egg-info"):
            continue
        owned.update(dist.top_level)
        for rel in dist.files or ():
            first = rel.split("/", 1)[0]
            owned.add(first)
            if (stem := module_name(first)) is not None:
                owned.add(stem)
    return owned


def _claim_single_file_egg_info(
    dists: list[Distribution], candidates: list[Path]
) -> list[Distribution]:
    """distutils' ``foo-1.0.egg-info`` file names no modules; claim the one named like it."""
    by_name = {canonical(module_name(p.name) or p.name): p for p in candidates}
    out = []
    for dist in dists:
        if dist.kind == "egg-info" and not dist.top_level and dist.files is None:
            match = by_name.get(dist.name) or by_name.get(canonical(dist.name.replace("-", "_")))
            if match is not None:
                dist = replace(dist, top_level=(module_name(match.name) or match.name,))
        out.append(dist)
    return out


def _importable(candidates: list[Path]) -> dict[str, Path]:
    """One path per import name, as FileFinder picks: package, extension, .py, .pyc."""

    def rank(path: Path) -> int:
        if path.is_dir():
            return 0
        return {".py": 2, ".pyc": 3}.get(path.suffix, 1)

    chosen: dict[str, Path] = {}
    for path in sorted(candidates, key=rank):
        name = path.name if path.is_dir() else module_name(path.name)
        if name is not None:
            chosen.setdefault(name, path)
    return dict(sorted(chosen.items()))

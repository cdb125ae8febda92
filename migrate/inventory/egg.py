"""Reader for ``.egg`` directories and zipped ``.egg`` files (easy_install), never unpacked."""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from migrate.inventory._files import (
    MAX_METADATA_BYTES,
    relative_to,
    top_level_from_files,
)
from migrate.inventory.egginfo import EggInfoFiles, egg_metadata
from migrate.inventory.model import Distribution, Finding

_OPTIONAL = ("requires.txt", "top_level.txt", "SOURCES.txt")


def read_egg(path: Path, lib_dir: Path) -> tuple[Distribution, tuple[Finding, ...]]:
    if path.is_dir():
        files, listing, findings = _from_dir(path)
        zipped = False
    else:
        files, listing, findings = _from_zip(path)
        zipped = True
    pkg_info_path = path / "EGG-INFO" / "PKG-INFO"
    dist, meta_findings = egg_metadata(
        path,
        lib_dir,
        pkg_info_path if files.pkg_info is not None or not zipped else None,
        files,
        kind="egg",
        zipped=zipped,
    )
    if listing is not None:
        top_level = dist.top_level or top_level_from_files(
            [name for name in listing if not name.startswith("EGG-INFO/")]
        )
        dist = replace(dist, files=listing, top_level=top_level)
    return dist, findings + meta_findings


def _from_dir(path: Path) -> tuple[EggInfoFiles, tuple[str, ...] | None, tuple[Finding, ...]]:
    findings: list[Finding] = []
    listing: list[str] = []

    def on_error(exc: OSError) -> None:
        findings.append(
            Finding(Path(exc.filename or path), "warning", f"cannot list: {exc.strerror}")
        )

    base = str(path)
    for root, dirs, names in os.walk(base, onerror=on_error):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel_root = relative_to(root, base)
        for name in names:
            listing.append(name if rel_root == "." else f"{rel_root}/{name}")
    egg_files = EggInfoFiles.from_dir(path / "EGG-INFO", installed_files=False)
    return egg_files, tuple(sorted(listing)), (*findings, *egg_files.findings)


def _from_zip(path: Path) -> tuple[EggInfoFiles, tuple[str, ...] | None, tuple[Finding, ...]]:
    """Read EGG-INFO members straight from the archive; a broken archive becomes a finding."""
    oversized: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            present = set(names)

            def member(name: str) -> bytes | None:
                """The member, decompressed up to the cap on-disk metadata has: a small
                archive can hold gigabytes of a repeated line."""
                key = f"EGG-INFO/{name}"
                if key not in present:
                    return None
                with archive.open(key) as handle:
                    data = handle.read(MAX_METADATA_BYTES + 1)
                if len(data) > MAX_METADATA_BYTES:
                    oversized.append(key)
                    return None
                return data

            pkg_info = member("PKG-INFO")
            # SOURCES.txt is not kept, but it is decompressed all the same: a broken member
            # makes the archive unreadable, and that is reported as it always was.
            requires, top_level, _sources = (member(name) for name in _OPTIONAL)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = f"zipped egg cannot be read ({reason}); name and version taken from the file name"
        return EggInfoFiles(), None, (Finding(path, "error", message),)
    findings = tuple(
        Finding(path, "error", f"{key} decompresses to over {MAX_METADATA_BYTES} bytes: not read")
        for key in oversized
    )
    if pkg_info is None and "EGG-INFO/PKG-INFO" not in oversized:
        findings += (Finding(path, "error", "zipped egg has no EGG-INFO/PKG-INFO"),)
    egg_files = EggInfoFiles(pkg_info=pkg_info, requires=requires, top_level=top_level)
    listing = tuple(n for n in names if not n.endswith("/") and "__pycache__/" not in n)
    return egg_files, listing, findings

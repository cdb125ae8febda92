"""Reader for ``*.egg-info``: setuptools directories and the single-file distutils form."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from migrate.inventory._files import (
    Unreadable,
    check_readable,
    read_bytes,
    read_if_exists,
    relative_to,
    top_level_from_files,
)
from migrate.inventory.metadata import (
    canonical,
    decode_text,
    name_from_filename,
    parse_core_metadata,
    requires_txt_to_pep508,
    text_lines,
    valid_requirements,
)
from migrate.inventory.model import Distribution, Finding


def read_egg_info(path: Path, lib_dir: Path) -> tuple[Distribution, tuple[Finding, ...]]:
    """Read an egg-info directory, or a file that is itself a PKG-INFO (distutils)."""
    if path.is_dir():
        pkg_info_path = path / "PKG-INFO"
        files = EggInfoFiles.from_dir(path)
    else:
        pkg_info_path = path
        files = EggInfoFiles()
    dist, findings = egg_metadata(path, lib_dir, pkg_info_path, files, kind="egg-info")
    if files.installed_files is not None:
        rel = _relative_to_lib(files.installed_files, path, lib_dir)
        top_level = dist.top_level or top_level_from_files(rel)
        dist = replace(dist, files=rel, top_level=top_level)
    return dist, findings + files.findings


@dataclass(frozen=True)
class EggInfoFiles:
    """The optional text files of an egg-info / EGG-INFO directory, read defensively."""

    pkg_info: bytes | None = None
    requires: bytes | None = None
    top_level: bytes | None = None
    installed_files: tuple[str, ...] | None = None
    findings: tuple[Finding, ...] = ()

    @classmethod
    def from_dir(cls, path: Path, *, installed_files: bool = True) -> EggInfoFiles:
        """Read what the record needs; SOURCES.txt (often the longest, and read by the
        steps that need it) is only checked, so a broken one is still reported here."""
        findings: list[Finding] = []
        present = _listing(path)

        def optional(name: str) -> bytes | None:
            if present is not None and name not in present:
                return None  # listed first: no failing open per absent file
            try:
                return read_if_exists(path / name)
            except Unreadable as exc:
                findings.append(Finding(path / name, "warning", f"cannot read: {exc}"))
                return None

        installed = optional("installed-files.txt") if installed_files else None
        if present is None or "SOURCES.txt" in present:
            try:
                check_readable(path / "SOURCES.txt")
            except Unreadable as exc:
                if os.path.lexists(path / "SOURCES.txt"):
                    findings.append(Finding(path / "SOURCES.txt", "warning", f"cannot read: {exc}"))
        return cls(
            pkg_info=None,
            requires=optional("requires.txt"),
            top_level=optional("top_level.txt"),
            installed_files=text_lines(installed) if installed is not None else None,
            findings=tuple(findings),
        )


def _listing(path: Path) -> frozenset[str] | None:
    """The folder's names, or None when it cannot be listed (its files may still open)."""
    try:
        return frozenset(os.listdir(path))
    except OSError:
        return None


def egg_metadata(
    path: Path,
    lib_dir: Path,
    pkg_info_path: Path | None,
    files: EggInfoFiles,
    *,
    kind: str,
    python: str | None = None,
    zipped: bool = False,
) -> tuple[Distribution, tuple[Finding, ...]]:
    """Build a record from PKG-INFO + requires.txt + top_level.txt (egg-info and eggs alike).

    PKG-INFO comes from ``files.pkg_info`` when the caller already has it, else from
    ``pkg_info_path``; with neither, the caller has reported why and the file name rules.
    """
    findings: list[Finding] = []
    from_name = name_from_filename(path.name)
    name = from_name.name if from_name else path.stem
    version = from_name.version if from_name else None
    python = python or (from_name.python if from_name else None)

    data = files.pkg_info
    if data is None and pkg_info_path is not None:
        try:
            data = read_bytes(pkg_info_path)
        except Unreadable as exc:
            findings.append(Finding(pkg_info_path, "error", f"cannot read PKG-INFO: {exc}"))
    if data is not None:
        meta = parse_core_metadata(data)
        for problem in meta.problems:
            severity = "error" if meta.name is None else "warning"
            findings.append(Finding(pkg_info_path or path, severity, problem))  # type: ignore[arg-type]
        name = meta.name or name
        version = meta.version or version

    requires: tuple[str, ...] = ()
    if files.requires is not None:
        text, _ = decode_text(files.requires)
        requires, bad = valid_requirements(requires_txt_to_pep508(text))
        for line in bad:
            findings.append(Finding(path, "warning", f"invalid line in requires.txt: {line!r}"))

    top_level = text_lines(files.top_level) if files.top_level is not None else ()
    dist = Distribution(
        name=canonical(name),
        display_name=name,
        version=version,
        kind=kind,  # type: ignore[arg-type]
        path=path,
        lib_dir=lib_dir,
        top_level=top_level,
        requires=requires,
        installer=None,
        python=python,
        zipped=zipped,
    )
    return dist, tuple(findings)


def _relative_to_lib(entries: tuple[str, ...], egg_info: Path, lib_dir: Path) -> tuple[str, ...]:
    """installed-files.txt lists paths relative to the egg-info dir; make them lib-dir relative."""
    base, start = str(egg_info), str(lib_dir)
    return tuple(relative_to(os.path.normpath(os.path.join(base, e)), start) for e in entries)

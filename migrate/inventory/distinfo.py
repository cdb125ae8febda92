"""Reader for ``*.dist-info`` directories (pip, wheels): METADATA, RECORD and friends."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from migrate.inventory._files import Unreadable, read_if_exists, record_hash, top_level_from_files
from migrate.inventory.metadata import (
    canonical,
    decode_text,
    name_from_filename,
    parse_core_metadata,
    text_lines,
)
from migrate.inventory.model import Distribution, Finding


def read_dist_info(path: Path, lib_dir: Path) -> tuple[Distribution, tuple[Finding, ...]]:
    findings: list[Finding] = []

    def warn(message: str, where: Path = path, severity: str = "warning") -> None:
        findings.append(Finding(where, severity, message))  # type: ignore[arg-type]

    from_name = name_from_filename(path.name)
    name = from_name.name if from_name else path.name.removesuffix(".dist-info")
    version = from_name.version if from_name else None
    requires: tuple[str, ...] = ()

    metadata_path = path / "METADATA"
    try:
        data = read_if_exists(metadata_path)
    except Unreadable as exc:
        data = None
        warn(f"cannot read METADATA: {exc}", metadata_path, "error")
    if data is None and not findings:
        warn("no METADATA file; name and version taken from the directory name", path, "error")
    elif data is not None:
        meta = parse_core_metadata(data)
        for problem in meta.problems:
            warn(problem, metadata_path, "error" if meta.name is None else "warning")
        name = meta.name or name
        version = meta.version or version
        requires = meta.requires

    files: tuple[str, ...] | None = None
    modified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    record = _optional_text(path / "RECORD", findings)
    if record is not None:
        rows = _record_rows(record)
        files = tuple(row[0] for row in rows)
        modified, missing = check_record(rows, lib_dir, _mtime_ns(path / "RECORD"))
        if modified:
            warn(f"{len(modified)} installed file(s) differ from RECORD (locally modified)")
        if missing:
            warn(f"{len(missing)} file(s) listed in RECORD are missing")

    top_level_data = _optional_text(path / "top_level.txt", findings)
    if top_level_data is not None:
        top_level = text_lines(top_level_data.encode())
    else:
        top_level = top_level_from_files(files or ())

    installer_text = _optional_text(path / "INSTALLER", findings)
    installer = installer_text.strip() or None if installer_text is not None else None

    target, editable = _direct_url(path, findings)
    return (
        Distribution(
            name=canonical(name),
            display_name=name,
            version=version,
            kind="dist-info",
            path=path,
            lib_dir=lib_dir,
            top_level=top_level,
            requires=requires,
            installer=installer,
            files=files,
            modified=modified,
            missing=missing,
            target=target,
            target_exists=target.exists() if target else None,
            editable=editable,
        ),
        tuple(findings),
    )


def _optional_text(path: Path, findings: list[Finding]) -> str | None:
    try:
        data = read_if_exists(path)
    except Unreadable as exc:
        findings.append(Finding(path, "warning", f"cannot read: {exc}"))
        return None
    return None if data is None else decode_text(data)[0]


def _record_rows(text: str) -> list[list[str]]:
    try:
        return [row for row in csv.reader(io.StringIO(text)) if row and row[0]]
    except csv.Error:
        return []


def check_record(
    rows: list[list[str]], lib_dir: Path, record_mtime_ns: int | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modified, missing) files among RECORD rows that carry a hash.

    Like git's index, a file is only hashed when its size differs from RECORD's or its
    mtime is not older than RECORD's (pip writes RECORD last, so an edit made after the
    install is newer); ``record_mtime_ns=None`` hashes every file. Paths that leave the
    lib dir (``../../bin/x`` scripts) are not judged: installers relocate them.
    """
    modified: list[str] = []
    missing: list[str] = []
    root = os.path.normpath(lib_dir)
    prefix = root + os.sep
    for row in rows:
        if len(row) < 2 or "=" not in row[1]:
            continue
        rel = row[0]
        full = os.path.normpath(os.path.join(root, rel))
        if not full.startswith(prefix):
            continue
        try:
            stat = os.stat(full)
        except FileNotFoundError:
            missing.append(rel)
            continue
        except OSError:
            continue
        size = row[2] if len(row) > 2 else ""
        if size.isdigit() and int(size) != stat.st_size:
            modified.append(rel)
            continue
        if record_mtime_ns is not None and stat.st_mtime_ns < record_mtime_ns:
            continue
        try:
            actual = record_hash(Path(full), row[1].split("=", 1)[0])
        except (OSError, ValueError):
            continue
        if actual != row[1]:
            modified.append(rel)
    return tuple(modified), tuple(missing)


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _direct_url(path: Path, findings: list[Finding]) -> tuple[Path | None, bool]:
    """The local directory of a PEP 610 ``direct_url.json`` (file:// URLs only)."""
    text = _optional_text(path / "direct_url.json", findings)
    if text is None:
        return None, False
    try:
        data = json.loads(text)
        url = urlparse(data["url"])
        editable = bool(data.get("dir_info", {}).get("editable", False))
    except (ValueError, KeyError, TypeError, AttributeError):
        findings.append(
            Finding(path / "direct_url.json", "warning", "direct_url.json is not valid")
        )
        return None, False
    if url.scheme != "file":
        return None, editable
    return Path(unquote(url.path)), editable

"""Reader for ``*.dist-info`` directories (pip, wheels): METADATA, RECORD and friends."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from migrate.inventory._files import Unreadable, read_bytes, record_hash, top_level_from_files
from migrate.inventory.metadata import (
    canonical,
    decode_text,
    name_from_filename,
    parse_core_metadata,
    text_lines,
)
from migrate.inventory.model import Distribution, Finding


def read_dist_info(
    path: Path, lib_dir: Path, *, verify: bool = True
) -> tuple[Distribution, tuple[Finding, ...]]:
    """``verify`` checks installed files against RECORD (modified / missing)."""
    findings: list[Finding] = []

    def warn(message: str, where: Path = path, severity: str = "warning") -> None:
        findings.append(Finding(where, severity, message))  # type: ignore[arg-type]

    from_name = name_from_filename(path.name)
    name = from_name.name if from_name else path.name.removesuffix(".dist-info")
    version = from_name.version if from_name else None
    requires: tuple[str, ...] = ()
    try:
        present = frozenset(os.listdir(path))
    except OSError as exc:
        warn(f"cannot list: {exc.strerror}", path, "error")
        present = frozenset()

    base = str(path)

    def optional(member: str, severity: str = "warning") -> bytes | None:
        """One metadata file, read only if the listing has it (no failing opens)."""
        if member not in present:
            return None
        try:
            return read_bytes(os.path.join(base, member))
        except Unreadable as exc:
            warn(f"cannot read: {exc}", path / member, severity)
            return None

    data = optional("METADATA", "error")
    if data is None and "METADATA" not in present:
        warn("no METADATA file; name and version taken from the directory name", path, "error")
    elif data is not None:
        meta = parse_core_metadata(data)
        for problem in meta.problems:
            warn(problem, path / "METADATA", "error" if meta.name is None else "warning")
        name = meta.name or name
        version = meta.version or version
        requires = meta.requires

    files: tuple[str, ...] | None = None
    modified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    record = optional("RECORD")
    if record is not None:
        rows = _record_rows(decode_text(record)[0])
        files = tuple(row[0] for row in rows)
        if verify:
            record_mtime = _mtime_ns(os.path.join(base, "RECORD"))
            modified, missing = check_record(rows, lib_dir, record_mtime)
        if modified:
            warn(f"{len(modified)} installed file(s) differ from RECORD (locally modified)")
        if missing:
            warn(f"{len(missing)} file(s) listed in RECORD are missing")

    top_level_data = optional("top_level.txt")
    top_level = (
        text_lines(top_level_data)
        if top_level_data is not None
        else top_level_from_files(files or ())
    )
    installer_data = optional("INSTALLER")
    installer = decode_text(installer_data)[0].strip() or None if installer_data else None
    direct_url = optional("direct_url.json")
    target, editable = _direct_url(path, direct_url, findings)
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
        if rel.startswith("/") or ".." in rel or "/." in rel or "//" in rel:
            full = os.path.normpath(os.path.join(root, rel))
            if not full.startswith(prefix):
                continue
        else:
            full = prefix + rel
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
            actual = record_hash(full, row[1].split("=", 1)[0])
        except (OSError, ValueError):
            continue
        if actual != row[1]:
            modified.append(rel)
    return tuple(modified), tuple(missing)


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _direct_url(path: Path, raw: bytes | None, findings: list[Finding]) -> tuple[Path | None, bool]:
    """The local project directory of a PEP 610 ``direct_url.json`` (``dir_info``, file://).

    Archive installs (a wheel or sdist file) name no tree that still matters: no target.
    """
    if raw is None or b'"dir_info"' not in raw:
        return None, False
    try:
        data = json.loads(raw)
        url = urlparse(data["url"])
        editable = bool(data["dir_info"].get("editable", False))
    except (ValueError, KeyError, TypeError, AttributeError):
        findings.append(
            Finding(path / "direct_url.json", "warning", "direct_url.json is not valid")
        )
        return None, False
    if url.scheme != "file":
        return None, editable
    return Path(unquote(url.path)), editable

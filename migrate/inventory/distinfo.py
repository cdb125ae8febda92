"""Reader for ``*.dist-info`` directories (pip, wheels): METADATA, RECORD and friends."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from migrate.inventory._files import Unreadable, read_with_stat, record_hash, top_level_from_files
from migrate.inventory.metadata import (
    canonical,
    decode_text,
    name_from_filename,
    parse_core_metadata,
    text_lines,
)
from migrate.inventory.model import Distribution, Finding

_MEMBERS = ("METADATA", "RECORD", "top_level.txt", "INSTALLER", "direct_url.json")
"""The files an inventory reads, each only when the listing has it (no failing opens)."""


def read_dist_info(
    path: Path, lib_dir: Path, *, verify: bool = True, lib_fd: int | None = None
) -> tuple[Distribution, tuple[Finding, ...]]:
    """``verify`` checks installed files against RECORD (modified / missing).

    Plain strings and one read per member file: thousands of these make an inventory.
    ``lib_fd``, a descriptor on ``lib_dir``, makes every open and stat relative to it.
    """
    findings: list[Finding] = []

    def warn(message: str, where: Path = path, severity: str = "warning") -> None:
        findings.append(Finding(where, severity, message))  # type: ignore[arg-type]

    from_name = name_from_filename(path.name)
    name = from_name.name if from_name else path.name.removesuffix(".dist-info")
    version = from_name.version if from_name else None
    requires: tuple[str, ...] = ()
    base = str(path)
    try:
        present = frozenset(os.listdir(base))
    except OSError as exc:
        warn(f"cannot list: {exc.strerror}", path, "error")
        present = frozenset()

    # Read every member first: their fstat serves the RECORD check, so it need not stat
    # them again. Findings keep the order the members are reported in.
    contents: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    stats: dict[str, os.stat_result] = {}
    inside = f"{path.name}{os.sep}"  # relative to lib_fd
    for member in _MEMBERS:
        if member not in present:
            continue
        full = base + os.sep + member
        try:
            if lib_fd is None:
                contents[member], stats[full] = read_with_stat(full)
            else:
                contents[member], stats[full] = read_with_stat(inside + member, dir_fd=lib_fd)
        except Unreadable as exc:
            unreadable[member] = str(exc)

    def optional(member: str, severity: str = "warning") -> bytes | None:
        if member in unreadable:
            warn(f"cannot read: {unreadable[member]}", path / member, severity)
        return contents.get(member)

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
            record_stat = stats.get(base + os.sep + "RECORD")
            record_mtime = record_stat.st_mtime_ns if record_stat is not None else None
            modified, missing = check_record(rows, lib_dir, record_mtime, stats, lib_fd)
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
    """RECORD's rows with a path. Where csv would read each line as its comma-split fields
    (no quotes, NULs or carriage returns but before a newline: what installers write), split
    it so, at a fraction of the cost; anything else goes through csv, errors and all."""
    if '"' not in text and "\x00" not in text and len(text) < _FIELD_LIMIT:
        lines = text.replace("\r\n", "\n")
        if "\r" not in lines:
            return [row for line in lines.split("\n") if (row := line.split(","))[0]]
    try:
        return [row for row in csv.reader(io.StringIO(text)) if row and row[0]]
    except csv.Error:
        return []


_FIELD_LIMIT = csv.field_size_limit()
"""No field of a shorter text can hit csv's limit (which would make the rows unreadable)."""


def check_record(
    rows: list[list[str]],
    lib_dir: Path,
    record_mtime_ns: int | None = None,
    known: Mapping[str, os.stat_result] | None = None,
    lib_fd: int | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modified, missing) files among RECORD rows that carry a hash.

    Like git's index, a file is only hashed when its size differs from RECORD's or its
    mtime is not older than RECORD's (pip writes RECORD last, so an edit made after the
    install is newer); ``record_mtime_ns=None`` hashes every file. Paths that leave the
    lib dir (``../../bin/x`` scripts) are not judged: installers relocate them. ``known``
    holds the stat of files just read (by full path), which are not stat'ed again;
    ``lib_fd``, a descriptor on ``lib_dir``, is what the others are stat'ed relative to.
    """
    known = known or {}
    modified: list[str] = []
    missing: list[str] = []
    root = os.path.normpath(lib_dir)
    prefix = root + os.sep
    stat_of = os.stat
    for row in rows:
        if len(row) < 2:
            continue
        rel, recorded = row[0], row[1]
        if "=" not in recorded:
            continue
        relative: str | None = None
        if rel.startswith("/") or ".." in rel or "/." in rel or "//" in rel:
            full = os.path.normpath(os.path.join(root, rel))
            if not full.startswith(prefix):
                continue
        else:
            full = prefix + rel
            relative = rel if lib_fd is not None else None
        stat = known.get(full)
        if stat is None:
            try:
                stat = stat_of(full) if relative is None else stat_of(relative, dir_fd=lib_fd)
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
            actual = record_hash(full, recorded.split("=", 1)[0])
        except (OSError, ValueError):
            continue
        if actual != recorded:
            modified.append(rel)
    return tuple(modified), tuple(missing)


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

"""Small, defensive file access shared by the readers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from migrate.build.wheelfile import record_form
from migrate.paths import open_regular

MAX_METADATA_BYTES = 16 * 1024 * 1024
"""Larger metadata files are refused: nothing legitimate comes close."""


class Unreadable(Exception):
    """A file the inventory could not read; the message says why."""


def read_bytes(path: str | Path, limit: int = MAX_METADATA_BYTES) -> bytes:
    try:
        with open_regular(path) as handle:
            if os.fstat(handle.fileno()).st_size > limit:
                raise Unreadable(f"larger than {limit} bytes")
            data = handle.read()
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    return data


def read_if_exists(path: Path) -> bytes | None:
    """Bytes of an optional metadata file, ``None`` when it is absent."""
    try:
        return read_bytes(path)
    except Unreadable:
        if not os.path.lexists(path):
            return None
        raise


def record_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """The ``<algorithm>=<urlsafe b64, no padding>`` form RECORD uses."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return record_form(digest.digest(), algorithm)


_MODULE_SUFFIXES = (".py", ".pyc", ".pyo", ".so", ".pyd")


def top_level_from_files(files: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Importable top-level names among lib-dir-relative paths (what top_level.txt would say)."""
    names: set[str] = set()
    for rel in files:
        parts = rel.replace("\\", "/").split("/")
        first = parts[0]
        if first in ("", ".", "..", "__pycache__") or first.endswith(
            (".dist-info", ".egg-info", ".data")
        ):
            continue
        if len(parts) > 1:
            if first.isidentifier():
                names.add(first)
        elif first.endswith(_MODULE_SUFFIXES):
            stem = first.split(".", 1)[0]
            if stem.isidentifier():
                names.add(stem)
    return tuple(sorted(names))

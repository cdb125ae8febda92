"""Small, defensive file access shared by the readers."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from migrate.paths import read_to_end

MAX_METADATA_BYTES = 16 * 1024 * 1024
"""Larger metadata files are refused: nothing legitimate comes close."""

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
"""Non-blocking, so a FIFO where a file should be never hangs the inventory."""


class Unreadable(Exception):
    """A file the inventory could not read; the message says why."""


def read_bytes(path: str | Path, limit: int = MAX_METADATA_BYTES) -> bytes:
    """A regular file's bytes; one larger than ``limit`` is refused (:func:`read_with_stat`)."""
    return read_with_stat(path, limit)[0]


def read_with_stat(
    path: str | Path, limit: int = MAX_METADATA_BYTES, *, dir_fd: int | None = None
) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its ``fstat``: open, fstat, read, close, and no file object.

    An inventory reads about five small files per distribution, so the calls count: a file
    object costs three more ``fstat``, an ``ioctl`` and an ``lseek``. The ``fstat`` is
    returned so that the RECORD check need not ``stat`` the file again. With ``dir_fd``,
    ``path`` is relative to that folder (the kernel walks two names, not the whole path).
    """
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("not a regular file")
        size = info.st_size
        if size > limit:
            raise Unreadable(f"larger than {limit} bytes")
        data = read_to_end(fd, size, limit)
        if len(data) > limit:  # it grew past the limit since its fstat (or /proc said 0)
            raise Unreadable(f"larger than {limit} bytes")
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    return data, info


def check_readable(path: str | Path, limit: int = MAX_METADATA_BYTES) -> None:
    """Raise :class:`Unreadable` where :func:`read_bytes` would, without reading the bytes.

    For optional files the inventory does not use but must still report when they are
    broken (an egg-info's SOURCES.txt): the same open, type and size checks, no read.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable("not a regular file")
    if info.st_size > limit:
        raise Unreadable(f"larger than {limit} bytes")


def relative_to(path: str, start: str) -> str:
    """``os.path.relpath(path, start)``, by slicing where both are normal absolute paths and
    ``path`` lies below ``start``: relpath makes both absolute and splits them every call."""
    if (
        path.startswith(start)
        and path[len(start) : len(start) + 1] == "/"
        and start.startswith("/")
        and os.path.normpath(path) == path
        and os.path.normpath(start) == start
    ):
        return path[len(start) + 1 :]
    return os.path.relpath(path, start)


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
    # Imported here: the build package is not needed to list an account, only to hash a
    # file whose size or mtime changed since RECORD was written.
    from migrate.build.wheelfile import record_form

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

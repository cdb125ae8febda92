"""Path predicates and formatting shared by every stage."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """``path`` is ``root`` or below it, lexically (resolve symlinks first where it matters)."""
    path_text = os.path.normcase(os.path.abspath(path))
    root_text = os.path.normcase(os.path.abspath(root))
    return path_text == root_text or path_text.startswith(root_text.rstrip(os.sep) + os.sep)


def home_relative(path: str | os.PathLike[str], home: Path) -> str:
    """``~/…`` for paths in the home, the absolute path otherwise: what messages show."""
    if is_inside(path, home) and os.path.abspath(path) != os.path.abspath(home):
        return "~/" + os.path.relpath(path, home)
    return str(path)


def home_relative_text(text: str, home: Path) -> str:
    """A message with every path in the home written ``~/…``, as :func:`home_relative` does."""
    return text.replace(str(home).rstrip(os.sep) + os.sep, "~" + os.sep)


class NotAFile(OSError):
    """A path that names a FIFO, socket, device or folder where a file's bytes are wanted."""


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most ``limit + 1`` when a limit is given); a FIFO,
    socket, device or folder is :class:`NotAFile`, found on the open descriptor (opened
    non-blocking: never a wait, no race).

    By descriptor, sized by ``fstat``: the plan reads thousands of small modules, and a
    file object costs three more system calls each, and ``read(limit + 1)`` a buffer of
    ``limit`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFile(errno.EINVAL, "not a regular file", os.fspath(path))
        return read_to_end(fd, info.st_size, limit)
    finally:
        os.close(fd)


def read_to_end(fd: int, size: int, limit: int | None = None) -> bytes:
    """An open file's bytes, read in one call where it still has the ``size`` its ``fstat``
    gave; at most ``limit + 1`` bytes when a limit is given (so a caller sees it was more)."""
    cap = None if limit is None else limit + 1
    first = size + 1 if cap is None else min(size + 1, cap)
    data = os.read(fd, first)
    if 0 < len(data) < min(size, first):  # a short read: on to ``first`` or the end, which
        while len(data) < first:  # tells a file that grew meanwhile as a whole read does
            more = os.read(fd, first - len(data))
            if not more:
                break
            data += more
    if len(data) > size and (cap is None or len(data) < cap):  # it grew meanwhile: to the end
        chunks, got = [data], len(data)
        while cap is None or got < cap:
            more = os.read(fd, 1 << 16 if cap is None else min(1 << 16, cap - got))
            if not more:
                break
            chunks.append(more)
            got += len(more)
        data = b"".join(chunks)
    return data

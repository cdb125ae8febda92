"""What a folder the journal installed held then, to tell at rollback what was added since.

A venv is installed whole (renamed in) and taken away whole by rollback; files the user
added to it afterwards — a ``pip install``, a note, a patched module — are hers, not the
journal's, and must be kept aside rather than deleted. The listing records each path's
kind, and for a file its size and mtime: cheap (at most one ``lstat`` each, no reading) and
enough to see an addition or an edit. Bytecode (``.pyc``, ``.pyo``) is not hers to keep:
the interpreter writes it as it pleases (Python 2 beside each module), so it is not listed.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

Entry = tuple[str, ...]
"""``("d",)`` a folder, ``("l", target)`` a symlink, ``("f", size, mtime_ns)`` a file
(numbers as text: one JSON shape for all), ``("o",)`` anything else."""


Known = Mapping[int, tuple[int, int]]
"""Files a caller vouches for by inode: ``(size, mtime_ns)`` (what it hardlinked there)."""


def listing(root: Path, known: Known | None = None) -> dict[str, Entry]:
    """Every path below ``root`` (relative, ``/``-separated) and its entry, top-down in name
    order; bytecode files are left out (rollback never keeps them, listed or not: half of
    a compiled venv's files).

    A file whose inode is in ``known`` is not stat'ed again: a venv linked from the store
    is thousands of links to files whose size and mtime the build already holds, and
    their inode comes with the folder's listing (``d_ino``) for free."""
    return dict(_walk(root, known=known, bytecode=False))


def dumps(entries: Mapping[str, Entry]) -> bytes:
    """The listing as JSON, in its own order (a listing's is fixed: top-down, by name)."""
    return json.dumps(entries, separators=(",", ":")).encode("utf-8")


def loads(data: bytes) -> dict[str, Entry]:
    """A listing back; ValueError when it is not one."""
    raw = json.loads(data)
    if not isinstance(raw, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in raw.values()
    ):
        raise ValueError("not a listing")
    return {str(k): tuple(v) for k, v in raw.items()}


def added_or_changed(root: Path, listed: Mapping[str, Entry], ours: set[Path]) -> list[Path]:
    """What under ``root`` is not as listed: added or changed since, topmost only (an added
    folder is one path), bytecode caches and ``ours`` (what the same transaction wrote
    there, undone on its own) left out. Removed paths are not listed: nothing to keep."""
    found: list[Path] = []

    def was_a_folder(rel: str) -> bool:  # what is new, or no longer a folder, is whole
        return listed.get(rel, ("",))[0] == "d"

    for rel, entry in _walk(root, was_a_folder):
        path = root / rel
        if path in ours or _is_cache(rel, entry):
            continue
        was = listed.get(rel)
        if was is None:
            if entry[0] != "d" or _holds_more_than_caches(root, rel, ours):
                found.append(path)
        elif was != entry and not (entry[0] == was[0] == "d"):
            found.append(path)
    return found


def _is_cache(rel: str, entry: Entry) -> bool:
    """Bytecode: in ``__pycache__``, or beside its source (Python 2)."""
    return entry[0] == "f" and rel.endswith(_BYTECODE)


def _holds_more_than_caches(root: Path, folder: str, ours: set[Path]) -> bool:
    """An added folder worth keeping: one with anything but bytecode caches in it."""
    for inner, entry in _walk(root / folder):
        rel = f"{folder}/{inner}"
        if entry[0] != "d" and root / rel not in ours and not _is_cache(rel, entry):
            return True
    return False


def _walk(
    root: Path,
    descend: Callable[[str], bool] = lambda rel: True,
    known: Known | None = None,
    *,
    bytecode: bool = True,
) -> Iterator[tuple[str, Entry]]:
    """(relative path, entry) of everything below ``root``, never through a symlink: each
    folder is opened from its parent's descriptor with ``O_NOFOLLOW``, so one swapped for
    a link while it is read leads nowhere. Only folders for which ``descend(rel)`` holds
    are entered (the others are reported whole); ``bytecode=False`` skips the files
    :func:`_is_cache` names. Kinds come from the folder's listing (``d_type``): a folder
    costs no ``stat`` where the file system says what each name is."""
    known = known or {}
    try:
        stack = [("", os.open(root, _FOLDER))]
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link or a file: nothing below
            return
        raise
    try:
        while stack:
            prefix, fd = stack.pop()
            inner: list[tuple[str, str]] = []
            try:
                with os.scandir(fd) as entries:
                    found = sorted(entries, key=lambda e: e.name)
                for item in found:
                    name = item.name
                    entry: Entry | None = None
                    if item.is_dir(follow_symlinks=False):
                        entry = _FOLDER_ENTRY
                    elif item.is_file(follow_symlinks=False):
                        if not bytecode and name.endswith(_BYTECODE):
                            continue
                        size_mtime = known.get(item.inode())
                        if size_mtime is not None:
                            entry = ("f", str(size_mtime[0]), str(size_mtime[1]))
                    if entry is None:
                        try:  # relative to fd; the lstat behind d_type, if one was made
                            info = item.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        entry = _entry(name, info, fd)
                    rel = prefix + name
                    yield rel, entry
                    if entry[0] == "d" and descend(rel):
                        inner.append((rel + "/", name))
                for rel, name in reversed(inner):  # top-down, in name order, as os.fwalk
                    try:
                        stack.append((rel, os.open(name, _FOLDER, dir_fd=fd)))
                    except OSError:  # gone, or swapped for a link since
                        continue
            finally:
                os.close(fd)
    finally:
        for _, fd in stack:
            os.close(fd)


_FOLDER_ENTRY: Entry = ("d",)
_BYTECODE = (".pyc", ".pyo")

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _entry(name: str, info: os.stat_result, folder: int) -> Entry:
    if stat.S_ISDIR(info.st_mode):
        return _FOLDER_ENTRY
    if stat.S_ISLNK(info.st_mode):
        return ("l", os.readlink(name, dir_fd=folder))
    if stat.S_ISREG(info.st_mode):
        return ("f", str(info.st_size), str(info.st_mtime_ns))
    return ("o",)

"""One unpacked wheel in the shared store: whether it is still what was unpacked, and where
each of its files goes in a venv — both worked out once per tree, not once per venv.

Linking is the store path's cost per venv (ten Django-sized apps: 116,000 links), so what
does not depend on the venv — the folders to make, which file is linked where, the RECORD
rows of the linked files, the launchers' text — is computed once per tree and process
(:func:`link_plan`), leaving per venv one ``mkdir`` per folder and one ``link`` per file,
as ``cp -al`` does.

A tree every venv shares must not pass on an edit made through one venv's hard link.
Hashing every file against RECORD once per process cost 0.47 s for 19 trees; instead
:func:`note_files` records each file's inode, size and mtime once it is known good
(``store/<sha>.files``) and :func:`unchanged` compares them, as git's index does: a write
in place changes the mtime (a new link does not), a swap changes the inode. Store files are
unpacked with an mtime in the past drawn from their own hash (:func:`store_mtime_ns`), so
even an edit in the same clock tick as the unpacking shows, and so does a same-size copy
that keeps another file's times. A tree without a note (an older store) is hashed once,
then noted. What it cannot see is a same-size edit whose mtime was then set back to the
file's own on purpose: the store is the user's, and she can change it in any way anyway.
"""

from __future__ import annotations

import configparser
import csv
import io
import json
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from migrate.build.venv.tools import VenvError
from migrate.privilege import give_like

_NOTE_FORMAT = 1


def note_path(tree: Path) -> Path:
    return tree.with_name(f"{tree.name}.files")


def _files(tree: Path) -> dict[str, list[int]] | None:
    """``relative name: [inode, size, mtime_ns]`` of every file outside ``__pycache__``;
    None when anything but a folder or a regular file is there (a symlink planted)."""
    found: dict[str, list[int]] = {}
    root = os.fspath(tree)
    for folder, dirs, files in os.walk(root):
        cache = os.path.basename(folder) == "__pycache__"
        prefix = folder[len(root) + 1 :] + "/" if folder != root else ""
        for name in dirs:
            if not stat.S_ISDIR(os.lstat(os.path.join(folder, name)).st_mode):
                return None  # a link to a folder: os.walk lists it among the folders
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if not stat.S_ISREG(info.st_mode):
                return None
            if not cache:
                found[prefix + name] = [info.st_ino, info.st_size, info.st_mtime_ns]
    return found


def note_files(tree: Path) -> None:
    """Record ``tree``'s files as they are now, known good (just unpacked, or hashed)."""
    files = _files(tree)
    if files is None:
        return
    note = note_path(tree)
    data = json.dumps({"format": _NOTE_FORMAT, "files": files}, separators=(",", ":"))
    fd, temp = tempfile.mkstemp(prefix=f".{note.name}.", dir=tree.parent)
    try:
        give_like(fd, tree.parent)
        os.fchmod(fd, 0o444)
        with os.fdopen(fd, "w") as out:
            out.write(data)
        os.replace(temp, note)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise


def store_mtime_ns(digest: bytes) -> int:
    """The mtime a store file is given: 1980-01-01 (the zip epoch) plus up to 194 days of
    seconds taken from its sha256, so always in the past. Any write through a venv's link
    sets the time of day, and a copy that keeps its source's times (``cp -p``) brings
    another file's mtime unless it brings the same bytes (1 chance in 16.7 million)."""
    return (_EPOCH + int.from_bytes(digest[:3], "big")) * 10**9


_EPOCH = 315_532_800


def unchanged(tree: Path) -> bool | None:
    """True when every file is the one noted (same inode, size and mtime) and no other
    file, and nothing but folders and regular files, is there; None without a note."""
    try:
        with open(note_path(tree), "rb") as handle:
            noted = json.loads(handle.read())
        if noted.get("format") != _NOTE_FORMAT or not isinstance(noted.get("files"), dict):
            return None
        return _files(tree) == noted["files"]
    except (OSError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class LinkPlan:
    """What linking one tree into a venv does, with every path relative to the venv."""

    dist_info: str
    folders: tuple[str, ...]
    """Parents first (a prefix sorts before its extensions)."""
    links: tuple[tuple[str, str], ...]
    """(file in the store, where it goes), bytecode included."""
    scripts: tuple[tuple[bytes, str, str], ...]
    """``#!python`` scripts: (their text after the first line, where, RECORD name)."""
    record: str
    """The RECORD rows of the linked files, as CSV."""
    launchers: tuple[tuple[str, bytes], ...]
    """``console_scripts`` and ``gui_scripts``: (name, the launcher after its shebang)."""
    known: dict[int, tuple[int, int]]
    """The linked files by inode: (size, mtime_ns), what the journal's listing of the venv
    would otherwise stat each link for."""


_PLANS: dict[tuple[str, int, str, str, bool], LinkPlan] = {}


def link_plan(tree: Path, site: str, python: str, compiled: bool) -> LinkPlan:
    """The plan for a venv whose site-packages is ``site`` (venv-relative), for a tree the
    caller checked; cached per tree, layout and whether it is ``compiled`` completely (its
    marker is there: only then is its bytecode linked)."""
    key = (os.fspath(tree), os.lstat(tree).st_ino, site, python, compiled)
    plan = _PLANS.get(key)
    if plan is None:
        dist_info = next(n for n in os.listdir(tree) if n.endswith(".dist-info"))
        record = read_own(tree / dist_info / "RECORD")
        plan = _PLANS[key] = _make_plan(tree, site, python, record, compiled)
    return plan


def read_own(path: Path) -> bytes:
    """A store file's bytes, never what a symlink put in its place points at."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VenvError(f"{path} is not a regular file: the store was changed")
        return handle.read()


def _make_plan(tree: Path, site: str, python: str, record_bytes: bytes, compiled: bool) -> LinkPlan:
    root = os.fspath(tree)
    dist_info = next(n for n in os.listdir(root) if n.endswith(".dist-info"))
    base = dist_info[: -len(".dist-info")]
    data_prefix = f"{base}.data/"
    record_name = f"{dist_info}/RECORD"
    places = {
        "purelib": site,
        "platlib": site,
        "scripts": "bin",
        "headers": f"include/site/python{python}/{base.rsplit('-', 1)[0]}",
        "data": "",
    }
    folders: set[str] = set()
    links: list[tuple[str, str]] = []
    scripts: list[tuple[bytes, str, str]] = []
    rows: list[tuple[str, str, str]] = []
    source_dirs: dict[str, str] = {}
    for row in csv.reader(io.StringIO(record_bytes.decode("utf-8"))):
        if not row or row[0] in (record_name, f"{dist_info}/INSTALLER"):
            continue
        name, digest, size = [*row, "", ""][:3]
        source = f"{root}/{name}"
        if name.startswith(data_prefix):
            scheme, rest = name[len(data_prefix) :].split("/", 1)
            target = posixpath.join(places[scheme], rest) if places[scheme] else rest
            relative = posixpath.relpath(target, site)
        else:
            scheme, target, relative = "", f"{site}/{name}", name
        folders.add(posixpath.dirname(target))
        if scheme == "scripts" and _python_shebang(source):
            scripts.append((_after_first_line(source), target, relative))
            continue
        links.append((source, target))
        rows.append((relative, digest, size))
        if not scheme and name.endswith(".py"):
            source_dirs[posixpath.dirname(name)] = posixpath.dirname(target)
    for directory, target_dir in sorted(source_dirs.items()) if compiled else ():
        cache = f"{root}/{directory}/__pycache__" if directory else f"{root}/__pycache__"
        try:
            pycs = sorted(os.listdir(cache))
        except FileNotFoundError:
            continue
        folders.add(f"{target_dir}/__pycache__")
        prefix = f"{directory}/__pycache__/" if directory else "__pycache__/"
        for pyc in pycs:
            links.append((f"{cache}/{pyc}", f"{target_dir}/__pycache__/{pyc}"))
            rows.append((prefix + pyc, "", ""))
    every = set()
    for folder in folders:
        while folder and folder not in every:
            every.add(folder)
            folder = posixpath.dirname(folder)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    launchers = _launchers(tree / dist_info / "entry_points.txt")
    known = {}
    for source, _ in links:
        info = os.lstat(source)
        known[info.st_ino] = (info.st_size, info.st_mtime_ns)
    return LinkPlan(
        dist_info, tuple(sorted(every)), tuple(links), tuple(scripts), out.getvalue(),
        launchers, known,
    )  # fmt: skip


def _python_shebang(path: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head.startswith(b"#!python") or head.startswith(b"#!pythonw")


def _after_first_line(path: str) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read()
    _first, sep, rest = data.partition(b"\n")
    return rest if sep else b""


_LAUNCHER = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def _launchers(path: Path) -> tuple[tuple[str, bytes], ...]:
    """Launchers for ``console_scripts`` and ``gui_scripts`` (pip's template), shebang aside."""
    if not path.is_file():
        return ()
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise VenvError(f"{path}: {exc}") from None
    launchers = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            reference = value.split("[", 1)[0].strip()
            module, _, call = reference.partition(":")
            if not module.strip() or not call.strip() or "/" in name:
                raise VenvError(f"{path}: entry point {name} = {value} is not module:attr")
            call = call.strip()
            body = _LAUNCHER.format(module=module.strip(), head=call.split(".")[0], call=call)
            launchers.append((name.strip(), body.encode()))
    return tuple(launchers)

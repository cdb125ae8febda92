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
unpacked with a fixed old mtime, so even an edit in the same clock tick as the unpacking
shows. A tree without a note (an older store) is hashed once, then noted. What it cannot
see is a same-size edit whose mtime was then set back on purpose: the store is the
user's own, and she can change it in any way anyway.
"""

from __future__ import annotations

import configparser
import csv
import io
import json
import os
import posixpath
import stat
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
        for name in dirs:
            if not stat.S_ISDIR(os.lstat(os.path.join(folder, name)).st_mode):
                return None  # a link to a folder: os.walk lists it among the folders
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if not stat.S_ISREG(info.st_mode):
                return None
            if not cache:
                relative = os.path.relpath(os.path.join(folder, name), root)
                found[relative] = [info.st_ino, info.st_size, info.st_mtime_ns]
    return found


def note_files(tree: Path) -> None:
    """Record ``tree``'s files as they are now, known good (just unpacked, or hashed)."""
    files = _files(tree)
    if files is None:
        return
    note = note_path(tree)
    temp = note.with_name(f".{note.name}.{os.getpid()}")
    data = json.dumps({"format": _NOTE_FORMAT, "files": files}, separators=(",", ":"))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    try:
        give_like(fd, tree.parent)
        with os.fdopen(fd, "w", closefd=False) as out:
            out.write(data)
    finally:
        os.close(fd)
    os.replace(temp, note)


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


_PLANS: dict[tuple[str, int, str, str], LinkPlan] = {}


def forget_plan(tree: Path) -> None:
    """The tree gained bytecode: plan its links again."""
    for key in [k for k in _PLANS if k[0] == os.fspath(tree)]:
        del _PLANS[key]


def link_plan(tree: Path, site: str, python: str, record: bytes, compiled: bool) -> LinkPlan:
    """The plan for a venv whose site-packages is ``site`` (venv-relative), from the tree's
    RECORD bytes (read by the caller, who checked the tree); cached per tree and layout.
    Bytecode is linked only from a tree ``compiled`` completely (its marker is there)."""
    key = (os.fspath(tree), os.lstat(tree).st_ino, site, python)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _make_plan(tree, site, python, record, compiled)
    return plan


def _make_plan(
    tree: Path, site: str, python: str, record_bytes: bytes, compiled: bool
) -> LinkPlan:
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
            compiled = sorted(os.listdir(cache))
        except FileNotFoundError:
            continue
        folders.add(f"{target_dir}/__pycache__")
        prefix = f"{directory}/__pycache__/" if directory else "__pycache__/"
        for pyc in compiled:
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

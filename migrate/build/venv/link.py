"""The shared store: each wheel unpacked (and byte-compiled) once under
``HOME/.concentric-migrate/store`` and hardlinked into every venv that pins it, with the
RECORD, launchers and shebangs a pip install would have written.

Hand-written on purpose, not ``installer.install`` with a linking destination: the loop
below runs once per file of every venv (116,000 files for ten Django-sized apps), and
installer's own bookkeeping per file — parsing the RECORD row, ``_determine_scheme``,
``_path_with_destdir``'s two ``abspath`` calls — measured 38 µs a file with no I/O at all
(installer 1.1, this machine), 4.4 s for those ten apps: more than all of today's linking.
Here the store's RECORD is read once per tree and each file costs one ``os.link``; the
launchers are pip's (and installer's) template, written per venv since they name its
Python. Wheels this path does not take (``_Unusual``) go to pip.
"""

from __future__ import annotations

import configparser
import csv
import errno
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.build.depcheck import unmet_requirements
from migrate.build.venv.legacy import needs_legacy
from migrate.build.venv.relocate import site_dirs, venv_python
from migrate.build.venv.seed import pip_command
from migrate.build.venv.tools import TIMEOUT, VenvError, clean_env, release, run_tool
from migrate.build.wheelfile import record_digest
from migrate.discover.interpreters import Interpreter
from migrate.paths import read_regular
from migrate.privilege import Owner, as_owner, give, give_like, give_tree

INSTALLER = "concentric-migrate"


_LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


_DATA_KEYS = frozenset({"purelib", "platlib", "scripts", "headers", "data"})


_MAX_SHEBANG = 127


MAX_RECORD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LinkResult:
    """What :func:`install_linked` did: files hardlinked from the store, files copied (the
    file system refused a link, ``copy_reason`` says why), wheels left to pip (and why)."""

    linked: int = 0
    copied: int = 0
    copy_reason: str | None = None
    by_pip: tuple[tuple[str, str], ...] = ()
    """(wheel file name, why it went to pip instead of the store)."""


def can_link(interpreter: Interpreter) -> bool:
    """The store path serves this target: a modern venv (legacy ones get a seeded pip)."""
    return not needs_legacy(interpreter.version)


def install_linked(
    venv: Path,
    wheels: Sequence[tuple[Path, str]],
    store: Path,
    *,
    python: str,
    bytecode: bool = True,
    owner: Owner | None = None,
) -> LinkResult:
    """Install ``(wheel, sha256)`` pairs into ``venv`` from the shared store, then check them.

    Each wheel is unpacked once into ``store/<sha256>/`` (read-only files, bytecode compiled
    there once per Python version) and its files are hardlinked into the venv; only what
    names the venv is written per venv: ``RECORD``, ``INSTALLER``, console-script launchers
    and ``#!python`` scripts. A wheel the store cannot take as it is goes to pip.
    Without ``bytecode`` nothing is compiled now (as uv does by default): the app's Python
    writes ``__pycache__`` in the venv on first import. ``owner``: root building for that
    user (:mod:`migrate.privilege`): the store's trees are hers, and the interpreter that
    compiles them (or installs what pip must) runs as her.
    """
    site = site_dirs(venv)
    if len(site) != 1:
        raise VenvError(f"{venv} has {len(site)} site-packages folders, expected one")
    counts = _Counts()
    by_pip: list[tuple[str, str]] = []
    trees = []
    for wheel, sha in wheels:
        try:
            trees.append(unpack_to_store(wheel, sha, store, owner))
        except _Unusual as exc:
            by_pip.append((wheel.name, str(exc)))
    if by_pip:  # first, while the venv holds nothing whose .pth lines could run
        pip_wheels = [str(w) for w, _ in wheels if w.name in {n for n, _ in by_pip}]
        run_tool(
            [*pip_command(venv), "install", "--quiet", "--no-index", "--no-deps",
             "--no-compile", "--no-warn-script-location", *pip_wheels],
            f"pip install into {venv}",
        )  # fmt: skip
    if bytecode:
        _compile_store(trees, store, venv, python, owner)
    for tree in trees:
        _link_wheel(tree, venv, site[0], python, counts)
    unmet = unmet_requirements(site[0], python)
    if unmet:
        raise VenvError(f"requirements not met in {venv}:\n" + "\n".join(map(str, unmet)))
    return LinkResult(counts.linked, counts.copied, counts.reason, tuple(by_pip))


class _Unusual(Exception):
    """A wheel the store path does not take; pip installs it."""


@dataclass
class _Counts:
    linked: int = 0
    copied: int = 0
    reason: str | None = None


def unpack_to_store(wheel: Path, sha: str, store: Path, owner: Owner | None = None) -> Path:
    """``store/<sha>``: the wheel's members as they are in it, each checked against RECORD,
    read-only. Unpacked aside and renamed in, so a present tree is a complete one.

    A tree already there is linked only once it is found intact against its RECORD
    (regular files with their hashes): an edit made in place through one venv's hard link
    — or a file swapped for a symlink — never reaches another venv; such a tree is
    replaced by a fresh one (the venvs that share the edited inode are what ``verify``
    reports)."""
    tree = store / sha
    if os.path.isdir(tree) and not os.path.islink(tree):
        if _intact(tree):
            return tree
        _discard(tree)
    if not os.path.isdir(store):
        store.mkdir(parents=True, exist_ok=True, mode=0o700)
        give(store, owner)
    temp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store))
    try:
        with zipfile.ZipFile(wheel) as archive:
            dist_info, record = _wheel_record(archive, wheel)
            _check_wheel_file(archive, dist_info, wheel)
            root, made = os.fspath(temp), {os.fspath(temp)}
            scripts = f"{dist_info[: -len('.dist-info')]}.data/scripts/"
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                target = f"{root}/{name}"
                parent = os.path.dirname(target)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                data = archive.read(info)
                if name != f"{dist_info}/RECORD":
                    expected = record.get(name)
                    if expected is None or expected[0] != record_digest(data):
                        raise _Unusual(f"{name} does not match the wheel's RECORD")
                # scripts are executable wherever they go (pip makes them so)
                executable = name.startswith(scripts) or (info.external_attr >> 16) & 0o111
                mode = 0o555 if executable else 0o444
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    os.fchmod(fd, mode)
        give_tree(temp, owner)
        try:
            os.rename(temp, tree)
        except OSError:
            if not tree.is_dir():  # not another build winning the race
                raise
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise _Unusual(f"unreadable wheel: {exc}") from None
    finally:
        if temp.exists():
            _remove_tree(temp)
    _INTACT.add((os.fspath(tree), os.lstat(tree).st_ino))
    return tree


_INTACT: set[tuple[str, int]] = set()
"""Trees this process unpacked or checked: one check per tree and run, not one per venv."""


def _intact(tree: Path) -> bool:
    """Every file its RECORD lists is a regular file with the recorded hash and size, and
    nothing else is there but bytecode and folders (no symlink anywhere)."""
    key = (os.fspath(tree), os.lstat(tree).st_ino)
    if key in _INTACT:
        return True
    try:
        dist_infos = [n for n in os.listdir(tree) if n.endswith(".dist-info")]
        if len(dist_infos) != 1:
            return False
        record_name = f"{dist_infos[0]}/RECORD"
        text = read_regular(tree / record_name, MAX_RECORD_BYTES).decode("utf-8")
        listed = {}
        for row in csv.reader(io.StringIO(text)):
            if row and row[0] != record_name:
                listed[row[0]] = (row + ["", ""])[1]
        root = os.fspath(tree)
        for folder, dirs, files in os.walk(root):
            for name in files + dirs:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                relative = os.path.relpath(path, root)
                if stat.S_ISDIR(info.st_mode):
                    continue
                if not stat.S_ISREG(info.st_mode):
                    return False
                if relative == record_name or "/__pycache__/" in f"/{relative}":
                    continue
                digest = listed.pop(relative, None)
                if digest is None or record_digest(read_regular(path)) != digest:
                    return False
        if listed:
            return False
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    _INTACT.add(key)
    return True


def _discard(tree: Path) -> None:
    """Set a damaged tree aside (renamed first, so no build links from it meanwhile) and
    remove it with its bytecode markers."""
    aside = tree.with_name(f".discard-{tree.name}-{os.getpid()}")
    os.rename(tree, aside)
    for marker in tree.parent.glob(f"{tree.name}.compiled-*"):
        marker.unlink()
    _remove_tree(aside)


def _wheel_record(archive: zipfile.ZipFile, wheel: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    infos = {n.split("/", 1)[0] for n in archive.namelist() if "/" in n}
    dist_infos = [d for d in infos if d.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise _Unusual(f"{len(dist_infos)} .dist-info folders")
    dist_info = dist_infos[0]
    rows = csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode("utf-8")))
    record: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not row:
            continue
        name, digest, size = [*row, "", ""][:3]
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name:
            raise _Unusual(f"{name!r} would leave the install folder")
        record[name] = (digest, size)
    for name in archive.namelist():
        if not name.endswith("/") and name not in record and name != f"{dist_info}/RECORD":
            raise _Unusual(f"{name} is not in RECORD")
    return dist_info, record


def _check_wheel_file(archive: zipfile.ZipFile, dist_info: str, wheel: Path) -> None:
    fields = dict(
        line.split(":", 1)
        for line in archive.read(f"{dist_info}/WHEEL").decode("utf-8").splitlines()
        if ":" in line
    )
    version = fields.get("Wheel-Version", "").strip()
    if release(version)[:1] != (1,):
        raise _Unusual(f"Wheel-Version {version!r}")
    data = dist_info[: -len(".dist-info")] + ".data/"
    for name in archive.namelist():
        if name.startswith(data):
            key = name[len(data) :].split("/", 1)[0]
            if key not in _DATA_KEYS:
                raise _Unusual(f"unknown .data folder {key!r}")
        elif "/" in name and name.split("/", 1)[0].endswith(".data"):
            raise _Unusual(f"{name}: a .data folder of another name")


def _compile_store(
    trees: Sequence[Path], store: Path, venv: Path, python: str, owner: Owner | None
) -> None:
    """Bytecode in the store, once per Python version, linked into every venv with the
    sources. Valid there: a ``.pyc`` records its source's mtime and size, and a hardlink
    is the same inode. The ``.data`` scripts, headers and data are not modules. Without
    ``site`` (no ``.pth`` line of a tree runs) and as the trees' owner."""
    markers = {tree: store / f"{tree.name}.compiled-{python}" for tree in trees}
    todo = [tree for tree, marker in markers.items() if not marker.exists()]
    if not todo:
        return
    data = re.escape(os.sep) + r"[^" + re.escape(os.sep) + r"]+\.data" + re.escape(os.sep)
    # One run for all the new trees; file names stored relative to the store.
    subprocess.run(
        [str(venv_python(venv)), "-I", "-S", "-m", "compileall", "-q", "-j", "0", "-s",
         str(store), "-x", data + "(scripts|headers|data)" + re.escape(os.sep),
         *map(str, todo)],
        capture_output=True, timeout=TIMEOUT, env=_compile_env(), check=False,
        **as_owner(owner),
    )  # fmt: skip
    for tree in todo:
        for cache in tree.rglob("__pycache__"):
            for pyc in cache.iterdir():
                _read_only(pyc)
        fd = os.open(markers[tree], os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o444)
        give_like(fd, store)
        os.close(fd)


def _read_own(path: Path) -> bytes:
    """A store file's bytes, never what a symlink put in its place points at."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VenvError(f"{path} is not a regular file: the store was changed")
        return handle.read()


def _read_only(path: Path) -> None:
    """chmod 0444 a regular file, never what a symlink put in its place points at."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o444)
    finally:
        os.close(fd)


def _compile_env() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _link_wheel(tree: Path, venv: Path, site: Path, python: str, counts: _Counts) -> None:
    dist_info = next(p.name for p in tree.iterdir() if p.name.endswith(".dist-info"))
    data_prefix = dist_info[: -len(".dist-info")] + ".data/"
    record_name = f"{dist_info}/RECORD"
    rows = csv.reader(io.StringIO(_read_own(tree / record_name).decode("utf-8")))
    dist_name = dist_info[: -len(".dist-info")].rsplit("-", 1)[0]
    # Plain strings and one os.link per file: this loop runs for every file of every venv.
    root, site_text = os.fspath(tree), os.fspath(site)
    bin_dir = venv / "bin"
    places = {
        "purelib": site,
        "platlib": site,
        "scripts": bin_dir,
        "headers": venv / "include" / "site" / f"python{python}" / dist_name,
        "data": venv,
    }
    record: list[tuple[str, str, str]] = []
    made_dirs: set[str] = {site_text}
    source_dirs: dict[str, str] = {}
    python_path = os.fsdecode(venv_python(venv))
    for row in rows:
        if not row or row[0] in (record_name, f"{dist_info}/INSTALLER"):
            continue
        name, digest, size = [*row, "", ""][:3]
        source = f"{root}/{name}"
        if name.startswith(data_prefix):
            key, rest = name[len(data_prefix) :].split("/", 1)
            target = os.fspath(places[key] / rest)
            relative = os.path.relpath(target, site_text)
        else:
            key, target, relative = "", f"{site_text}/{name}", name
        parent = os.path.dirname(target)
        if parent not in made_dirs:
            os.makedirs(parent, exist_ok=True)
            made_dirs.add(parent)
        if key == "scripts" and _python_shebang(Path(source)):
            body = _with_shebang(Path(source).read_bytes(), python_path)
            _write_new(Path(target), body, 0o755)
            digest, size = record_digest(body), str(len(body))
        else:
            _link(source, target, counts)
            if not key and name.endswith(".py"):
                source_dirs[os.path.dirname(name)] = parent
        record.append((relative, digest, size))
    for directory, target_dir in source_dirs.items():
        cache = f"{root}/{directory}/__pycache__" if directory else f"{root}/__pycache__"
        try:
            compiled = os.listdir(cache)
        except FileNotFoundError:
            continue
        os.makedirs(f"{target_dir}/__pycache__", exist_ok=True)
        prefix = f"{directory}/__pycache__/" if directory else "__pycache__/"
        for pyc in compiled:
            _link(f"{cache}/{pyc}", f"{target_dir}/__pycache__/{pyc}", counts)
            record.append((prefix + pyc, "", ""))
    for script, body in _entry_point_scripts(tree / dist_info, python_path):
        target_path = bin_dir / script
        _write_new(target_path, body, 0o755)
        record.append((os.path.relpath(target_path, site), record_digest(body), str(len(body))))
    installer = INSTALLER.encode() + b"\n"
    _write_new(site / dist_info / "INSTALLER", installer, 0o644)
    record.append((f"{dist_info}/INSTALLER", record_digest(installer), str(len(installer))))
    record.append((record_name, "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(record)
    _write_new(site / record_name, out.getvalue().encode(), 0o644)


def _link(source: str, target: str, counts: _Counts) -> None:
    """Hardlink ``source`` to ``target`` (replacing what a wheel before put there, as pip
    does), or copy it when the file system refuses the link."""
    if counts.reason is None:
        try:
            os.link(source, target, follow_symlinks=False)
            counts.linked += 1
            return
        except FileExistsError:
            os.unlink(target)
            os.link(source, target, follow_symlinks=False)
            counts.linked += 1
            return
        except OSError as exc:
            if exc.errno not in _LINK_REFUSED:
                raise
            counts.reason = f"hardlinks refused ({exc.strerror}): files are copied"
    if os.path.lexists(target):
        os.unlink(target)
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise VenvError(f"{source} is not a regular file: the store was changed")
    shutil.copyfile(source, target)
    os.chmod(target, stat_mode(Path(source)) | 0o200)
    counts.copied += 1


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


def _python_shebang(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head.startswith(b"#!python") or head.startswith(b"#!pythonw")


def _with_shebang(data: bytes, python: str) -> bytes:
    _first, sep, rest = data.partition(b"\n")
    return _shebang(python) + rest if sep else _shebang(python)


def _shebang(python: str) -> bytes:
    """``#!python`` for this venv, or pip's ``/bin/sh`` trampoline when a kernel would not
    take the line (too long, or spaces)."""
    if len(python) + 2 <= _MAX_SHEBANG and " " not in python:
        return f"#!{python}\n".encode()
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n".encode()


_LAUNCHER = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def _entry_point_scripts(dist_info: Path, python: str) -> list[tuple[str, bytes]]:
    """Launchers for ``console_scripts`` and ``gui_scripts`` (what pip writes)."""
    path = dist_info / "entry_points.txt"
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise VenvError(f"{path}: {exc}") from None
    scripts = []
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
            scripts.append((name.strip(), _shebang(python) + body.encode()))
    return scripts


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """A file of this venv alone: any link at ``path`` is replaced, never written through."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


def _remove_tree(path: Path) -> None:
    """rmtree for a tree of read-only files (their folders are writable)."""
    shutil.rmtree(path, ignore_errors=True)

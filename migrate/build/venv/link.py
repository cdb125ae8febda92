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

import contextlib
import csv
import errno
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from migrate.build.depcheck import unmet_requirements
from migrate.build.venv.bytecode import StoreCompiler, marker
from migrate.build.venv.legacy import needs_legacy
from migrate.build.venv.relocate import site_dirs, venv_python
from migrate.build.venv.seed import pip_command
from migrate.build.venv.storetree import (
    link_plan,
    note_files,
    note_path,
    store_mtime_ns,
    unchanged,
)
from migrate.build.venv.tools import VenvError, release, run_tool
from migrate.build.wheelfile import record_digest, record_form
from migrate.discover.interpreters import Interpreter
from migrate.paths import read_regular
from migrate.privilege import Owner, give, give_tree

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
    known: Mapping[int, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)
    """The store files linked, by inode: (size, mtime_ns), for the journal's listing."""


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
    filled = fill_store(
        wheels, store, interpreter=venv_python(venv), python=python, bytecode=bytecode,
        owner=owner,
    )  # fmt: skip
    refused = [(w, why) for (w, _), why in zip(wheels, filled, strict=True) if isinstance(why, str)]
    by_pip = [(wheel.name, why) for wheel, why in refused]
    if by_pip:  # while the venv holds nothing whose .pth lines could run
        run_tool(
            [*pip_command(venv), "install", "--quiet", "--no-index", "--no-deps",
             "--no-compile", "--no-warn-script-location", *(str(w) for w, _ in refused)],
            f"pip install into {venv}",
        )  # fmt: skip
    for tree in filled:
        if isinstance(tree, Path):
            _link_wheel(tree, venv, site[0], python, counts)
    unmet = unmet_requirements(site[0], python)
    if unmet:
        raise VenvError(f"requirements not met in {venv}:\n" + "\n".join(map(str, unmet)))
    return LinkResult(counts.linked, counts.copied, counts.reason, tuple(by_pip), counts.known)


def fill_store(
    wheels: Sequence[tuple[Path, str]],
    store: Path,
    *,
    interpreter: Path,
    python: str,
    bytecode: bool = True,
    owner: Owner | None = None,
) -> list[Path | str]:
    """Per ``(wheel, sha256)``: its tree in the store, unpacked and, with ``bytecode``,
    compiled by ``interpreter`` (Python ``python``) while the next unpack; or why the
    store does not take it (pip installs it then)."""
    with StoreFill(store, interpreter=interpreter, python=python, bytecode=bytecode,
                   owner=owner) as filling:  # fmt: skip
        for wheel, sha in wheels:
            filling.add(wheel, sha)
    return [filling.trees[sha] for _, sha in wheels]


class StoreFill:
    """Wheels unpacked into the store as they are :meth:`add`-ed (by one thread beside
    the caller's), each tree compiled as it lands; all done (or, on an error, stopped) as
    the block ends.

    A build feeds it each wheel as soon as that is repacked, so the store fills — and the
    compiler's processes run — while the next distributions are still being packed (the
    compiler is looked at on each :meth:`add`, and constantly once the block ends), and
    apps staged in parallel afterwards find every tree ready and compile none twice."""

    def __init__(
        self,
        store: Path,
        *,
        interpreter: Path,
        python: str,
        bytecode: bool = True,
        owner: Owner | None = None,
    ) -> None:
        self._store = store
        self._owner = owner
        self._compiler = (
            StoreCompiler(interpreter, store, python, owner, os.cpu_count() or 1)
            if bytecode
            else None
        )
        self._unpackers = ThreadPoolExecutor(max_workers=_UNPACKERS)
        self._pending: deque[tuple[str, Future[Path | _Unusual]]] = deque()
        self._submitted: set[str] = set()
        self.trees: dict[str, Path | str] = {}
        """Per sha256 of a wheel added: its tree, or why the store does not take it."""

    def __enter__(self) -> StoreFill:
        return self

    def add(self, wheel: Path, sha: str) -> None:
        """Unpack ``wheel`` (the same wheel twice, a seed pip say, is unpacked once)."""
        if sha not in self._submitted:
            self._submitted.add(sha)
            future = self._unpackers.submit(_unpacked, wheel, sha, self._store, self._owner)
            self._pending.append((sha, future))
        self._take(block=False)

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        """Wait for every unpack and compile; after an error, cancel and kill them."""
        try:
            if error is None:
                self._take(block=True)
                if self._compiler is not None:
                    self._compiler.finish()
        finally:  # the compiles first: a second Ctrl-C while an unpack ends leaves none
            if self._compiler is not None:
                self._compiler.kill()
            self._unpackers.shutdown(wait=True, cancel_futures=True)

    def _take(self, *, block: bool) -> None:
        """Hand unpacked trees to the compiler, in the order they were added; with
        ``block``, until every one is (the compiler kept busy meanwhile)."""
        while self._pending:
            sha, future = self._pending[0]
            if not future.done():
                if not block:
                    break
                wait([future], timeout=_POLL)
                if self._compiler is not None:
                    self._compiler.poll()
                continue
            self._pending.popleft()
            tree = future.result()
            self.trees[sha] = str(tree) if isinstance(tree, _Unusual) else tree
            if self._compiler is not None and isinstance(tree, Path):
                self._compiler.add(tree)
        if self._compiler is not None:
            self._compiler.poll()


class _Unusual(Exception):
    """A wheel the store path does not take; pip installs it."""


_POLL = 0.02
"""Seconds between looks at the compiler while an unpack is awaited."""

_UNPACKERS = 1
"""Wheels unpacked at once, beside the thread that adds them. One: more threads making
small files in one store made the kernel's share of the work grow faster than they shared
it (ten apps' 19 wheels, 6,000 files: 0.8 s with one thread, 0.95 s with two, 1.4 s with
four, on two CPUs)."""


def _unpacked(wheel: Path, sha: str, store: Path, owner: Owner | None) -> Path | _Unusual:
    try:
        return unpack_to_store(wheel, sha, store, owner)
    except _Unusual as exc:
        return exc


@dataclass
class _Counts:
    linked: int = 0
    copied: int = 0
    reason: str | None = None
    known: dict[int, tuple[int, int]] = field(default_factory=dict)


def unpack_to_store(wheel: Path, sha: str, store: Path, owner: Owner | None = None) -> Path:
    """``store/<sha>``: the wheel's members as they are in it, each checked against RECORD,
    read-only. Unpacked aside and renamed in, so a present tree is a complete one.

    A tree already there is linked only once it is found intact (:func:`_intact`: as its
    note of files says it was, or, without a note, against its RECORD hashes): an edit
    made in place through one venv's hard link — or a file swapped for a symlink — never
    reaches another venv; such a tree is replaced by a fresh one (the venvs that share the
    edited inode are what ``verify`` reports). Each file gets the mtime
    :func:`~migrate.build.venv.storetree.store_mtime_ns` draws from its hash."""
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
                digest = hashlib.sha256(data).digest()
                if name != f"{dist_info}/RECORD":
                    expected = record.get(name)
                    if expected is None or expected[0] != record_form(digest):
                        raise _Unusual(f"{name} does not match the wheel's RECORD")
                # scripts are executable wherever they go (pip makes them so)
                executable = name.startswith(scripts) or (info.external_attr >> 16) & 0o111
                mode = 0o555 if executable else 0o444
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fchmod(fd, mode)
                    mtime = store_mtime_ns(digest)
                    os.utime(fd, ns=(mtime, mtime))
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
    if not os.path.lexists(note_path(tree)):
        note_files(tree)
    _INTACT.add((os.fspath(tree), os.lstat(tree).st_ino))
    return tree


_INTACT: set[tuple[str, int]] = set()
"""Trees this process unpacked or checked: one check per tree and run, not one per venv."""


def _intact(tree: Path) -> bool:
    """Every file its RECORD lists is a regular file with the recorded hash and size, and
    nothing else is there but bytecode and folders (no symlink anywhere): by the note of
    its files (:mod:`~migrate.build.venv.storetree`), or, for a tree without one, by
    hashing it (then noting it)."""
    key = (os.fspath(tree), os.lstat(tree).st_ino)
    if key in _INTACT:
        return True
    noted = unchanged(tree)
    if noted is False or (noted is None and not _hashes_match(tree)):
        return False
    if noted is None:
        note_files(tree)
    _INTACT.add(key)
    return True


def _hashes_match(tree: Path) -> bool:
    try:
        dist_infos = [n for n in os.listdir(tree) if n.endswith(".dist-info")]
        if len(dist_infos) != 1:
            return False
        record_name = f"{dist_infos[0]}/RECORD"
        text = read_regular(tree / record_name, MAX_RECORD_BYTES).decode("utf-8")
        listed = {}
        for row in csv.reader(io.StringIO(text)):
            if row and row[0] != record_name:
                listed[row[0]] = [*row, ""][1]
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
        return not listed
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _discard(tree: Path) -> None:
    """Set a damaged tree aside (renamed first, so no build links from it meanwhile) and
    remove it with its bytecode markers."""
    aside = tree.with_name(f".discard-{tree.name}-{os.getpid()}")
    os.rename(tree, aside)
    for made in (*tree.parent.glob(f"{tree.name}.compiled-*"), note_path(tree)):
        if os.path.lexists(made):
            os.unlink(made)
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


def _link_wheel(tree: Path, venv: Path, site: Path, python: str, counts: _Counts) -> None:
    """One ``mkdir`` per folder and one ``link`` per file (the plan is the tree's, made
    once); what names this venv — ``#!python`` scripts, launchers, INSTALLER, RECORD — is
    written here."""
    site_rel = os.path.relpath(site, venv)
    plan = link_plan(tree, site_rel, python, marker(tree, python).exists())
    root = os.fspath(venv) + "/"
    for folder in plan.folders:
        with contextlib.suppress(FileExistsError):
            os.mkdir(root + folder)
    linked = 0
    for source, target in plan.links:
        if counts.reason is None:
            try:
                os.link(source, root + target, follow_symlinks=False)
                linked += 1
                continue
            except OSError:
                pass
        _link(source, root + target, counts)  # replaces, or copies where links are refused
    counts.linked += linked
    counts.known.update(plan.known)
    python_path = os.fsdecode(venv_python(venv))
    shebang = _shebang(python_path)
    rows = []
    for rest, target, relative in plan.scripts:
        body = shebang + rest
        _write_new(Path(root + target), body, 0o755)
        rows.append((relative, record_digest(body), str(len(body))))
    for name, launcher in plan.launchers:
        body = shebang + launcher
        target_path = venv / "bin" / name
        _write_new(target_path, body, 0o755)
        rows.append((os.path.relpath(target_path, site), record_digest(body), str(len(body))))
    installer = INSTALLER.encode() + b"\n"
    _write_new(site / plan.dist_info / "INSTALLER", installer, 0o644)
    rows.append((f"{plan.dist_info}/INSTALLER", record_digest(installer), str(len(installer))))
    rows.append((f"{plan.dist_info}/RECORD", "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    _write_new(site / plan.dist_info / "RECORD", (plan.record + out.getvalue()).encode(), 0o644)


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


def _shebang(python: str) -> bytes:
    """``#!python`` for this venv, or pip's ``/bin/sh`` trampoline when a kernel would not
    take the line (too long, or spaces)."""
    if len(python) + 2 <= _MAX_SHEBANG and " " not in python:
        return f"#!{python}\n".encode()
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n".encode()


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

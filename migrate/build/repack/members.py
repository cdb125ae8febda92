"""What a wheel is packed from: its members, read lazily from the installed files, and the
shared rules for them.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


class RepackError(Exception):
    """A distribution that cannot be made into a wheel; the message says why and what to do."""


EGG_META = ("entry_points.txt", "top_level.txt", "namespace_packages.txt")
"""What ``wheel convert`` keeps of an egg's metadata, besides PKG-INFO and requires.txt."""

CHUNK = 1 << 16


@dataclass(frozen=True)
class Names:
    project: str
    """The escaped project name (``acme_utils``) used in file and directory names."""
    version: str

    @property
    def base(self) -> str:
        return f"{self.project}-{self.version}"

    @property
    def dist_info(self) -> str:
        return f"{self.base}.dist-info"

    def data(self, scheme: str, rest: str) -> str:
        return f"{self.base}.data/{scheme}/{rest}"


@dataclass(frozen=True)
class Member:
    """One file of the wheel and where its bytes come from: a file, a zip member, or here."""

    name: str
    mode: int
    origin: str
    path: str | Path | None = None
    """The file it is read from (plain text where thousands are found: no ``Path`` each)."""
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False)
    identity: tuple[int, ...] | None = field(default=None, compare=False)
    """The file's device, inode, size, mtime and ctime when it was found: the wheelhouse's
    quick key (:mod:`~migrate.build.repack.store`) without a second ``stat``."""

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        try:
            with self._open() as handle:
                while block := handle.read(CHUNK):
                    yield block
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RepackError(f"cannot read {self.origin}: {reason}") from exc

    def _open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        assert self.path is not None
        return open(self.path, "rb")

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def head(self, size: int) -> bytes:
        if self.data is not None:
            return self.data[:size]
        try:
            with self._open() as handle:
                return handle.read(size)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RepackError(f"cannot read {self.origin}: {reason}") from exc


@dataclass(frozen=True)
class Contents:
    """What one install kind contributes before tagging: files and metadata pieces."""

    files: tuple[Member, ...]
    metadata: bytes
    """The METADATA file, Name and Version already those of the wheel."""
    meta_files: tuple[Member, ...] = ()
    """Other ``.dist-info`` files, named relative to it (entry_points.txt, licenses ...)."""
    wheel_tags: tuple[str, ...] = ()
    """Tags of the WHEEL file the distribution was installed from, when it was a wheel."""
    purelib: bool = True
    required: bool = False
    """True when the metadata listed payload files, so an empty payload means a broken install."""


def file_member(name: str, path: str | Path, st: os.stat_result | None = None) -> Member | None:
    """A regular file on disk (symlinks followed, as import does); ``None`` for anything else."""
    try:
        st = st or os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    name = _check_name(name, path)
    return Member(name, member_mode(st.st_mode), os.fspath(path), path=path, identity=identity(st))


def identity(st: os.stat_result) -> tuple[int, ...]:
    """What tells a file's bytes changed without reading them (as git's index): a write
    changes the mtime, and the ctime cannot be set back."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def member_mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def _check_name(name: str, where: object) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RepackError(
            f"{where}: the file name is not valid UTF-8, so no wheel can hold it; rename it"
        ) from exc
    return name


def drop_bytecode(members: Iterable[Member]) -> tuple[Member, ...]:
    """No ``__pycache__`` and no ``.pyc`` beside its source; a sourceless module is kept."""
    by_name = {m.name: m for m in members}
    out = []
    for name, member in sorted(by_name.items()):
        if "__pycache__/" in name or name.startswith("__pycache__"):
            continue
        if name.endswith((".pyc", ".pyo")) and name[:-1] in by_name:
            continue
        out.append(member)
    return tuple(out)


def walk_files(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Files under ``root`` (``/``-relative names), without ``__pycache__``; sorted."""
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = os.path.relpath(current, root)
        for name in sorted(files):
            path = Path(current, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            yield (name if base == "." else f"{base}/{name}").replace(os.sep, "/"), path, st


def tree_members(package: Path, name: str, only: frozenset[str] | None) -> list[Member]:
    """A package dir as members named from its parent; ``only`` limits a namespace's children."""
    out = []
    for rel, path, st in walk_files(package):
        if only is not None and rel.split("/", 1)[0] not in only:
            continue
        member = file_member(f"{name}/{rel}", path, st)
        if member is not None:
            out.append(member)
    return out


def read_small(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RepackError(f"cannot read {path}: {exc.strerror or exc}") from exc


def small_if_exists(path: Path) -> bytes | None:
    return read_small(path) if path.is_file() else None

"""Writing wheels deterministically into the wheelhouse, and finding one already packed from
the same members.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from migrate.build.repack.members import CHUNK, Member, Names, RepackError, identity
from migrate.build.wheelfile import record_form
from migrate.inventory.model import Distribution
from migrate.privilege import give_like, give_like_dir


@dataclass(frozen=True)
class RepackedWheel:
    dist: Distribution
    path: Path
    sha256: str
    """Hex sha256 of the wheel file (what ``--hash=sha256:`` wants)."""
    tag: str
    reused: bool
    """True when an identical wheel was already in the wheelhouse."""

    @property
    def filename(self) -> str:
        return self.path.name


_EPOCH = (1980, 1, 1, 0, 0, 0)

FORMAT = 1
"""Bumped whenever the same installed files would be packed into different bytes."""


@dataclass(frozen=True)
class _Digest:
    hexdigest: str
    record: str
    size: int


def _digest(member: Member) -> _Digest:
    hasher = hashlib.sha256()
    size = 0
    for block in member.chunks():
        hasher.update(block)
        size += len(block)
    return _Digest(hasher.hexdigest(), record_form(hasher.digest()), size)


def _order(name: str, dist_info: str) -> tuple[bool, str]:
    """Payload first, ``.dist-info`` last (what installers expect), each sorted."""
    return name.startswith(dist_info + "/"), name


def store_wheel(
    dist: Distribution, wheelhouse: Path, names: Names, tag: str, members: tuple[Member, ...]
) -> RepackedWheel:
    filename = f"{names.base}-{tag}.whl"
    dist_info = names.dist_info
    ordered = sorted(members, key=lambda m: _order(m.name, dist_info))
    quick = _quick_key(filename, ordered)
    found = _quick_cached(wheelhouse, quick, filename) if quick else None
    if found is not None:
        return RepackedWheel(dist, found[0], found[1], tag, True)
    digests = {m.name: _digest(m) for m in ordered}
    key = _source_key(filename, ordered, digests)
    entry_path = wheelhouse / "index" / f"{key}.json"
    cached = _cached(wheelhouse, entry_path, filename)
    if cached is not None:
        if quick:
            _note_quick(wheelhouse, quick, *cached)
        return RepackedWheel(dist, cached[0], cached[1], tag, True)
    _make_wheelhouse(wheelhouse)
    handle, temp_name = tempfile.mkstemp(prefix=".repack-", suffix=".whl", dir=wheelhouse)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            give_like(out.fileno(), wheelhouse.parent)
            _write_wheel(out, dist_info, ordered, digests)
            out.flush()
            os.fsync(out.fileno())
        sha = _file_sha256(temp)
        final, reused = _place(wheelhouse, key, filename, temp, sha)
    finally:
        if temp.exists():
            temp.unlink()
    entry = {
        "format": FORMAT, "wheel": final.relative_to(wheelhouse).as_posix(), "sha256": sha,
        "name": dist.name, "version": names.version, "tag": tag,
    }  # fmt: skip
    data = (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode()
    _write_atomic(entry_path, data, wheelhouse.parent)
    if quick:
        _note_quick(wheelhouse, quick, final, sha)
    return RepackedWheel(dist, final, sha, tag, reused)


def _quick_key(filename: str, ordered: list[Member]) -> str | None:
    """The members' identity without reading them: each installed file's inode, size,
    mtime and ctime (a write changes mtime; ctime cannot be set back), the bytes of the
    rest. None when a member is read from inside another file (a zipped egg's)."""
    hasher = hashlib.sha256(f"concentric-migrate quick {FORMAT}\n{filename}\n".encode())
    for member in ordered:
        if member.data is not None:
            stamp = hashlib.sha256(member.data).hexdigest()
        elif member.path is not None and member.opener is None:
            found = member.identity
            if found is None:
                try:
                    found = identity(os.stat(member.path))
                except OSError:
                    return None
            stamp = ":".join(map(str, found))
        else:
            return None
        hasher.update(f"{member.name}\t{member.mode:o}\t{stamp}\n".encode())
    return hasher.hexdigest()


def _quick_cached(wheelhouse: Path, quick: str, filename: str) -> tuple[Path, str] | None:
    """The wheel packed before from these very files, when it is unchanged since."""
    try:
        entry = json.loads((wheelhouse / "index" / "quick" / f"{quick}.json").read_bytes())
        path = wheelhouse / entry["wheel"]
        info = os.stat(path)
        same = [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns] == entry["stat"]
        if entry.get("format") != FORMAT or path.name != filename or not same:
            return None
        return path, str(entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _note_quick(wheelhouse: Path, quick: str, wheel: Path, sha: str) -> None:
    info = os.stat(wheel)
    entry = {
        "format": FORMAT, "wheel": wheel.relative_to(wheelhouse).as_posix(), "sha256": sha,
        "stat": [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns],
    }  # fmt: skip
    _make_dir(wheelhouse / "index" / "quick")
    data = json.dumps(entry, sort_keys=True).encode()
    _write_atomic(wheelhouse / "index" / "quick" / f"{quick}.json", data, wheelhouse.parent)


def _make_wheelhouse(wheelhouse: Path) -> None:
    """Private folders (0700, like the journal's, and its owner's); a symlink could lead out
    of the home."""
    for folder in (wheelhouse.parent, wheelhouse):
        if folder.is_symlink():
            raise OSError(f"{folder} is a symlink: refusing to write the wheelhouse through it")
    wheelhouse.parent.mkdir(0o700, parents=True, exist_ok=True)
    for folder in (wheelhouse, wheelhouse / "index", wheelhouse / "variants"):
        _make_dir(folder)


def _make_dir(folder: Path) -> None:
    """A folder of the wheelhouse, made for the state folder's owner."""
    try:
        folder.mkdir(0o700)
    except FileExistsError:
        return
    give_like_dir(folder)


def _source_key(filename: str, ordered: list[Member], digests: dict[str, _Digest]) -> str:
    hasher = hashlib.sha256(f"concentric-migrate wheelhouse {FORMAT}\n{filename}\n".encode())
    for member in ordered:
        digest = digests[member.name]
        hasher.update(f"{member.name}\t{member.mode:o}\t{digest.hexdigest}\n".encode())
    return hasher.hexdigest()


def _cached(wheelhouse: Path, entry_path: Path, filename: str) -> tuple[Path, str] | None:
    try:
        entry = json.loads(entry_path.read_bytes())
        path = wheelhouse / entry["wheel"]
        expected = entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if entry.get("format") != FORMAT or path.name != filename:
        return None
    try:
        actual = _file_sha256(path)
    except OSError:
        return None
    return (path, actual) if actual == expected else None


def _place(wheelhouse: Path, key: str, filename: str, temp: Path, sha: str) -> tuple[Path, bool]:
    """Under its normal name when free (or already these bytes), else in ``variants/KEY/``."""
    flat = wheelhouse / filename
    try:
        _create_exclusive(temp, flat)
        return flat, False
    except FileExistsError:
        pass
    if _file_sha256(flat) == sha:
        return flat, True
    variant = wheelhouse / "variants" / key / filename
    _make_dir(variant.parent)
    os.replace(temp, variant)
    return variant, False


def _create_exclusive(source: Path, destination: Path) -> None:
    """``destination`` made from ``source`` only if it does not exist yet (atomic with links)."""
    try:
        os.link(source, destination)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system
        with open(source, "rb") as src, open(destination, "xb") as dest:
            shutil.copyfileobj(src, dest)


def _write_wheel(
    out: BinaryIO, dist_info: str, ordered: list[Member], digests: dict[str, _Digest]
) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in ordered:
            expected = digests[member.name]
            info = _zip_info(member.name, member.mode, expected.size)
            hasher = hashlib.sha256()
            with archive.open(info, "w") as dest:
                for block in member.chunks():
                    hasher.update(block)
                    dest.write(block)
            if hasher.hexdigest() != expected.hexdigest:
                raise RepackError(
                    f"{member.origin} changed while it was being packed; run the command again"
                )
            writer.writerow([member.name, expected.record, str(expected.size)])
        record = f"{dist_info}/RECORD"
        writer.writerow([record, "", ""])
        data = rows.getvalue().encode()
        with archive.open(_zip_info(record, 0o644, len(data)), "w") as dest:
            dest.write(data)


def _zip_info(name: str, mode: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.file_size = size
    return info


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _write_atomic(path: Path, data: bytes, state: Path) -> None:
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            give_like(out.fileno(), state)
            out.write(data)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)

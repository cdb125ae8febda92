"""File primitives of the journal: exact reads, durable writes, metadata kept, the home's bounds.

Hand-written because no library does these with the guarantees rollback relies on: every
open is ``O_NOFOLLOW`` (a symlink swapped in cannot redirect a write), a replacement is
complete (bytes, owner, mode, xattrs and POSIX ACLs) and fsynced before it is renamed in,
and each path is resolved against the real home once, refusing anything that leads out.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from migrate.discover.crontab import INSTALLED as INSTALLED_CRONTAB
from migrate.journal.errors import JournalError, OutsideHome, OwnerNotKept
from migrate.layout import STATE_DIR
from migrate.paths import home_relative, is_inside
from migrate.privilege import NotPrivate, Owner, check_private, expected_uid, give, owner_of

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
NAME_KEEP = 150
"""How much of a file name goes into backup/temp names: room left for the prefixes."""
DIR, SYMLINK, OTHER = "<dir>", "<symlink>", "<other>"
"""What ``state_of`` says for non-files; never equal to a sha256."""
_ACL_XATTRS = frozenset({"system.posix_acl_access", "system.posix_acl_default"})
_SKIPPABLE_XATTR_ERRORS = (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP)


def real_home(home: Path) -> Path:
    real = Path(os.path.realpath(home))
    if not real.is_dir():
        raise JournalError(f"home {home} is not a directory")
    return real


def resolve(home_real: Path, path: Path, *, state_ok: bool = False) -> Path:
    """The real target of ``path``: existing ancestors and a symlinked target resolved."""
    joined = os.path.join(home_real, path)
    real = os.path.realpath(joined)
    if not is_inside(real, home_real):
        raise OutsideHome(f"{path} leads to {real}, outside the home {home_real}")
    if os.path.islink(real):
        raise JournalError(f"{path}: symlink loop")
    if not state_ok and is_inside(real, home_real / STATE_DIR):
        raise JournalError(f"{path} is inside {STATE_DIR}, which only the journal writes")
    return Path(real)


def nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder):
        folder = folder.parent
    return folder


def private_dir(home_real: Path, path: Path, *, create: bool) -> Path:
    """A 0700 folder of the journal's own in the home, made for the home's owner when
    missing; refused unless it is hers alone with no symlink on its way (it could lead out,
    or be someone else's to fill: see :mod:`migrate.privilege`)."""
    if create and not os.path.lexists(path):
        try:
            make_private_dir(path, owner_of(home_real))
            fsync_dir(path.parent)
        except FileExistsError:  # another process made it in between: check what it made
            pass
    try:
        check_private(home_real, path, expected_uid(home_real))
    except NotPrivate as exc:
        raise JournalError(str(exc)) from None
    return path


FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How the journal opens a folder it works in: never through a link."""


def open_folder(
    top: Path,
    rel: Path,
    *,
    create: bool = False,
    owner: Owner | None = None,
    mode: int = PRIVATE_DIR,
) -> int:
    """A descriptor on the folder ``top/rel``, reached one name at a time from ``top``
    without following a symlink: what is then done through it (``dir_fd=``) stays in the
    folder that was there, whatever is renamed or swapped for a link on the way meanwhile.
    ``create``: missing folders are made (``mode``), for ``owner``."""
    fd = os.open(top, FOLDER)
    try:
        for name in rel.parts:
            if create:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                    if owner is not None:
                        os.chown(name, owner.uid, owner.gid, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            try:
                inner = os.open(name, FOLDER, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise JournalError(
                        f"{top / rel}: {name} is not a folder (a symlink?)"
                    ) from None
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def folder_of(home_real: Path, path: Path) -> int:
    """A descriptor on ``path``'s folder: reached from the home name by name
    (:func:`open_folder`), or, for a crontab file outside it, its folder as it is."""
    if is_inside(path, home_real):
        return open_folder(home_real, path.parent.relative_to(home_real))
    return os.open(path.parent, FOLDER)


def free_name(folder: int, name: str) -> str:
    """``name``, or ``name.2``, ``name.3``…: the first that is not taken in ``folder``."""
    candidate, number = name, 1
    while True:
        try:
            os.lstat(candidate, dir_fd=folder)
        except FileNotFoundError:
            return candidate
        number += 1
        candidate = f"{name}.{number}"


def make_private_dir(path: Path, owner: Owner | None = None) -> None:
    os.mkdir(path, PRIVATE_DIR)
    give(path, owner)
    os.chmod(path, PRIVATE_DIR)


def temp_name(name: str, tag: str, n: int, kind: str) -> str:
    return f".{name[:NAME_KEEP]}.{tag}-{n}.{kind}"


def recorded(path: Path, home_real: Path) -> str:
    """How the journal names a path: relative to the home, absolute outside it (crontab files)."""
    return os.path.relpath(path, home_real) if is_inside(path, home_real) else str(path)


def shown(path: Path, home_real: Path) -> str:
    return str(path) if path == INSTALLED_CRONTAB else home_relative(path, home_real)


def read_existing(
    target: Path, folder: int | None = None
) -> tuple[bytes, os.stat_result, dict[str, bytes]] | None:
    """Bytes, stat and xattrs of a regular file, None when missing; anything else is refused.
    ``folder``: a descriptor on its folder (:func:`open_folder`), through which it is read."""
    try:
        fd = os.open(
            _name(target, folder),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=folder,
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JournalError(f"{target} became a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(f"{target} is not a regular file")
        return read_fd(fd), st, read_xattrs(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def create_private(path: Path, data: bytes, owner: Owner | None = None) -> None:
    """A new 0600 file of the journal's own (given to ``owner``), durable with its folder
    entry."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE
    )
    try:
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, PRIVATE_FILE)
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def write_temp(
    path: Path,
    data: bytes,
    *,
    owner: tuple[int, int] | None,
    xattrs: dict[str, bytes] | None,
    mode: int,
    strict_owner: bool,
    folder: int | None = None,
) -> None:
    """The complete replacement, metadata included, durable before it is renamed in.

    ``xattrs`` None keeps what the new file inherited (a new file); a dict makes the xattrs
    exactly that (a replaced or restored file). Owner first: chown clears setuid bits.
    ``folder``: a descriptor on its folder (:func:`open_folder`), where it is made.
    """
    fd = os.open(
        _name(path, folder),
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        PRIVATE_FILE,
        dir_fd=folder,
    )
    try:
        write_all(fd, data)
        if owner is not None:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid) != owner:
                try:
                    os.fchown(fd, *owner)
                except PermissionError:
                    if strict_owner:
                        raise OwnerNotKept(f"cannot give {path} uid/gid {owner}") from None
        if xattrs is not None:
            set_xattrs(fd, xattrs)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(_name(path, folder), dir_fd=folder)
        raise
    os.close(fd)


def _name(path: Path, folder: int | None) -> str | Path:
    """What names ``path`` to ``os`` calls: its last part within ``folder``, else itself."""
    return path if folder is None else path.name


def open_in_place(path: Path, seen: os.stat_result, folder: int | None = None) -> int:
    """A read-write descriptor on the very file ``seen`` was taken of (same device and
    inode, still a regular file, the name not a symlink): a file with other names (hard
    links) is written through it so that every name shows the new text."""
    try:
        fd = os.open(
            _name(path, folder), os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=folder,
        )  # fmt: skip
    except FileNotFoundError:
        raise JournalError(f"{path} was removed") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JournalError(f"{path} became a symlink") from None
        raise
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
        os.close(fd)
        raise JournalError(f"{path} was replaced by another file")
    return fd


def write_in_place(fd: int, data: bytes, mode: int | None) -> None:
    """The whole new text into an open file, then its length, then ``mode`` (None: kept);
    durable when it returns. Not atomic: the journal's intent says so (``in_place``)."""
    os.lseek(fd, 0, os.SEEK_SET)
    write_all(fd, data)
    os.ftruncate(fd, len(data))
    if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)
    os.fsync(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def state_of(path: Path) -> str | None:
    """sha256 of a regular file, a marker for anything else, None when missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return DIR
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK
    if not stat.S_ISREG(st.st_mode):
        return OTHER
    return sha256(read_file(path))


def meta_of(path: Path) -> tuple[int, tuple[int, int], dict[str, bytes]]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        return stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), read_xattrs(fd)
    finally:
        os.close(fd)


def read_xattrs(fd: int) -> dict[str, bytes]:
    """Every xattr this process can read (POSIX ACLs among them); none where unsupported."""
    if not hasattr(os, "listxattr"):
        return {}
    try:
        names = os.listxattr(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            return {}
        raise
    found = {}
    for name in names:
        try:
            found[name] = os.getxattr(fd, name)
        except OSError as exc:
            if name in _ACL_XATTRS or exc.errno not in (*_SKIPPABLE_XATTR_ERRORS, errno.ENODATA):
                raise
    return found


def set_xattrs(fd: int, wanted: dict[str, bytes]) -> None:
    """Make the xattrs exactly ``wanted``; only non-ACL ones this user may not set are skipped."""
    current = read_xattrs(fd)
    for name in sorted(current.keys() - wanted.keys()):
        _xattr_call(name, os.removexattr, fd, name)
    for name, value in wanted.items():
        if current.get(name) != value:
            _xattr_call(name, os.setxattr, fd, name, value)


def _xattr_call(name: str, call: Any, *args: Any) -> None:
    try:
        call(*args)
    except OSError as exc:
        if name in _ACL_XATTRS or exc.errno not in _SKIPPABLE_XATTR_ERRORS:
            raise


def can_own(uid: int, gid: int) -> bool:
    """Whether a file this process creates can be given that owner and group."""
    euid = os.geteuid()
    if euid == 0:
        return True
    return uid == euid and (gid == os.getegid() or gid in os.getgroups())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def octal(mode: int) -> str:
    return f"{mode:04o}"

"""One migration at a time per home: an flock that names its holder.

The kernel drops the lock when its holder dies, so a crash never leaves a stale lock; the
holder's pid, command line and start time are written into the lock file so a refused
second writer can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from migrate.journal.errors import JournalError, LockHeld
from migrate.journal.fs import PRIVATE_FILE, real_home
from migrate.journal.store import now, state_dir
from migrate.layout import (
    LOCK_FILE,
    STATE_DIR,
    helpers_dir,
    logs_dir,
    store_dir,
    wheelhouse_dir,
)
from migrate.privilege import NotPrivate, check_private, expected_uid, owner_of


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Exclusive, non-blocking flock on HOME/.concentric-migrate/lock; LockHeld at once if taken.

    Not reentrant: take it once per process.
    """
    home_real = real_home(home)
    lock = state_dir(home_real, create=True) / LOCK_FILE
    _check_state_folders(home_real)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JournalError(f"{lock} is not a regular file")
        owner = owner_of(home_real)
        if owner is not None and (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _lock_held(lock, _read_holder(fd)) from None
        holder = {"pid": os.getpid(), "argv": sys.argv, "since": now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        os.fsync(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _check_state_folders(home_real: Path) -> None:
    """The tool's other folders in the state dir (store, wheels, helpers, logs), where they
    exist, are the owner's with no symlink: root would otherwise write where a link leads."""
    uid = expected_uid(home_real)
    for folder in (store_dir, wheelhouse_dir, helpers_dir, logs_dir):
        path = folder(home_real)
        if os.path.lexists(path):
            try:
                check_private(home_real, path, uid, private=False)
            except NotPrivate as exc:
                raise JournalError(str(exc)) from None


def require_lock(home_real: Path) -> None:
    """Writers must run inside ``home_lock``: checked, because forgetting it is silent."""
    lock = home_real / STATE_DIR / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise JournalError(f"call this inside home_lock({home_real})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            if holder.get("pid") != os.getpid():
                raise _lock_held(lock, holder) from None
            return
        fcntl.flock(fd, fcntl.LOCK_UN)
        raise JournalError(f"call this inside home_lock({home_real})")
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _lock_held(lock: Path, holder: dict[str, Any]) -> LockHeld:
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return LockHeld(f"{lock} is held by another process (it has not said which yet)")
    argv = holder.get("argv")
    command = shlex.join(str(a) for a in argv) if isinstance(argv, list) else "?"
    return LockHeld(
        f"another migration holds {lock}: pid {pid} ({command}) since {holder.get('since', '?')}",
        pid,
    )

"""Write-ahead journal: the only code that writes the user's files and crontab, and the way back.

Under ``HOME/.concentric-migrate`` (0700) live ``lock`` (0600) and one folder per
transaction, ``journal/<id>/`` (0700), holding an append-only ``journal.jsonl`` (0600),
``backups/`` (0700, copies 0600) and, after a forced rollback, ``edited/``.

Every change is made in the same order, each part durable (fsynced) before the next one
starts: backup copy -> intent record -> temp file beside the target -> rename over the
target (+ fsync of its folder) -> done record. Whatever prefix of that a crash leaves,
the intent (or its absence) tells rollback enough to undo it: the hashes in the intent say
whether the rename happened, the temp name says what to clean up, and a backup without an
intent is never needed because nothing was changed yet.

The crontab is journaled the same way. Given as a file (``--crontab FILE``), it is written
as any file is; it is the one path that may lie outside the home, as the cron spool does,
and is recorded by its absolute path there. The installed crontab (``crontab -l`` /
``crontab -``) is backed up from ``crontab -l``, its intent holds the sha256 before and
after, and ``crontab -`` replaces it (cron writes it atomically); rollback compares
``crontab -l`` with those hashes just as it compares a file.

Fault injection. With ``CONCENTRIC_MIGRATE_CRASH_AT=N`` the process SIGKILLs itself just
*before* its Nth step, so step N and everything after it never happen. Steps are counted
per ``begin()`` (its transaction included) and per ``rollback()`` call, and are:

- ``begin``: writing the new transaction folder aside; renaming it into ``journal/``;
- ``write_file`` of an existing file: backup write, intent append, temp write, rename, done
  append (5); of a new file: the ``make_dir`` steps of missing parents, then intent, temp,
  rename, done (4);
- ``make_dir``: intent append, mkdir, done append (3); ``install_dir``: the ``make_dir``
  steps of missing parents, then intent append, rename, done append (3);
- ``set_crontab`` of a file: as ``write_file`` (5, or 4 plus the parents' for a new
  file); of the installed crontab: backup write (only when there is one), intent append,
  ``crontab -``, done append (4, or 3);
- ``commit``: the commit append (1);
- ``rollback``: repairing a torn last journal line (when there is one), the
  ``rollback-begin`` append, then per operation undone (newest first) each removal of a
  leftover temp, ``aside`` append and move of an edited file (force), temp write, rename,
  removal, for the installed crontab the ``aside`` append and write of its edited text
  (force) and ``crontab -`` (or ``crontab -r``), and the ``undone`` append; finally the
  ``rolled-back`` append.

Beyond the last step the variable does nothing.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from migrate.discover.crontab import INSTALLED as INSTALLED_CRONTAB
from migrate.layout import STATE_DIR
from migrate.paths import home_relative, is_inside

CRASH_ENV = "CONCENTRIC_MIGRATE_CRASH_AT"

State = Literal["open", "committed", "rolled-back"]

_LOCK = "lock"
_JOURNALS = "journal"
_JOURNAL = "journal.jsonl"
_BACKUPS = "backups"
_EDITED = "edited"
_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_ACL_XATTRS = frozenset({"system.posix_acl_access", "system.posix_acl_default"})
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
_NEW_FILE_MODE = 0o644
_NAME_KEEP = 150
"""How much of a file name goes into backup/temp names: room left for the prefixes."""
_SKIPPABLE_XATTR_ERRORS = (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP)
_DIR, _SYMLINK, _OTHER = "<dir>", "<symlink>", "<other>"
"""What ``_state_of`` says for non-files; never equal to a sha256."""
_FILE_OPS = frozenset({"write", "crontab-file"})
"""Operations that replace one file; ``crontab-file`` alone may name one outside the home."""
_CRONTAB_TIMEOUT = 60.0
"""Seconds a ``crontab`` command may take before it counts as failed."""
_NO_CRONTAB = re.compile(rb"^no crontab for ", re.MULTILINE)

Record = dict[str, Any]


class JournalError(Exception):
    """The journal refused or could not do something; nothing is half-done unless it says so."""


class LockHeld(JournalError):
    """Another process holds the home's lock: one migration at a time."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class OutsideHome(JournalError):
    """A path leaves the home once symlinks are resolved; nothing was written."""


class EditedSince(JournalError):
    """Rollback would clobber files edited after the transaction; it changed nothing."""

    def __init__(self, message: str, files: tuple[Path, ...]) -> None:
        super().__init__(message)
        self.files = files


class UnknownTransaction(JournalError):
    """No transaction with that id (or none at all) in the home."""


class TransactionOpen(JournalError):
    """A transaction is still open (crashed or failed): roll it back before beginning anew."""


class OwnerNotKept(JournalError):
    """Rewriting the file would change its owner or group, which this process cannot keep."""


@dataclass(frozen=True)
class TransactionInfo:
    id: str
    path: Path
    state: State
    """``open`` also covers a rollback that was interrupted: ``rollback`` finishes it."""
    created: str
    description: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class RollbackResult:
    id: str
    restored: tuple[Path, ...]
    removed: tuple[Path, ...]
    kept_aside: tuple[Path, ...]
    """Where edited files were kept (inside the transaction's ``edited/``), not where they were."""
    already: bool


@dataclass(frozen=True)
class _Loaded:
    info: TransactionInfo
    seq: int
    records: tuple[Record, ...]


class _Steps:
    """Counts durable steps and kills the process before the one named by CRASH_ENV."""

    def __init__(self) -> None:
        raw = os.environ.get(CRASH_ENV, "").strip()
        try:
            self._crash_at = int(raw) if raw else None
        except ValueError:
            raise JournalError(f"{CRASH_ENV}={raw!r} is not a step number") from None
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if self.count == self._crash_at:
            os.kill(os.getpid(), signal.SIGKILL)


# --- the lock -------------------------------------------------------------------------------


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Exclusive, non-blocking flock on HOME/.concentric-migrate/lock; LockHeld at once if taken.

    The holder (pid, command line, since when) is written into the lock file so a refused
    second writer can say who holds it. The kernel drops the lock when the holder dies, so a
    crash never leaves a stale lock. Not reentrant: take it once per process.
    """
    state = _state_dir(_home_real(home), create=True)
    lock = state / _LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JournalError(f"{lock} is not a regular file")
        os.fchmod(fd, _PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _lock_held(lock, _read_holder(fd)) from None
        holder = {"pid": os.getpid(), "argv": sys.argv, "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        os.fsync(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> Record:
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _lock_held(lock: Path, holder: Record) -> LockHeld:
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return LockHeld(f"{lock} is held by another process (it has not said which yet)")
    argv = holder.get("argv")
    command = shlex.join(str(a) for a in argv) if isinstance(argv, list) else "?"
    return LockHeld(
        f"another migration holds {lock}: pid {pid} ({command}) since {holder.get('since', '?')}",
        pid,
    )


def _require_lock(home_real: Path) -> None:
    """Writers must run inside ``home_lock``: checked, because forgetting it is silent."""
    lock = home_real / STATE_DIR / _LOCK
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


# --- transactions ----------------------------------------------------------------------------


class Transaction:
    """One journaled set of changes; made by ``begin`` inside ``home_lock``, ended by ``commit``.

    Paths may be absolute or relative to the home. After any operation fails midway the
    transaction refuses further work: roll it back.
    """

    def __init__(self, home: Path, txn_id: str, path: Path, steps: _Steps) -> None:
        self.id = txn_id
        self.path = path
        self.home = home
        self._steps = steps
        self._journal = path / _JOURNAL
        self._tag = txn_id.rsplit("-", 1)[1]
        self._n = 0
        self._ended: str | None = None

    def write_file(self, path: Path, data: bytes, mode: int | None = None) -> None:
        """Create or replace ``path`` with ``data``; missing parents come from ``make_dir``.

        A replaced file keeps its mode (unless ``mode`` is given), owner, group and xattrs
        (POSIX ACLs included) and does not pick up the folder's default ACL; a new file gets
        ``mode`` (default 0o644) and the folder's defaults. A symlink inside the home is
        written through (the link stays).
        """
        self._usable()
        target = _resolve(self.home, path)
        if mode is not None and not 0 <= mode <= 0o7777:
            raise JournalError(f"mode {mode:o} is not a file mode")
        self._replace(target, data, "write", _NEW_FILE_MODE if mode is None else mode, mode)

    def set_crontab(self, text: str, file: Path | None = None) -> None:
        """Replace the crontab: the file given with --crontab FILE, else the invoking user's
        (crontab -l / crontab -).

        The file is written as ``write_file`` writes (a new one gets 0o600, like the cron
        spool's), and it alone may lie outside the home: it stands for the user's crontab as
        the spool file does; a missing folder of it outside the home is refused, not made.
        The installed crontab is backed up from ``crontab -l`` and replaced by feeding
        ``crontab -`` the new text; rollback puts the old one back (or ``crontab -r``).
        ``text`` must end with a newline when not empty: cron refuses it otherwise.
        """
        self._usable()
        if text and not text.endswith("\n"):
            raise JournalError("a crontab must end with a newline: cron refuses it otherwise")
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise JournalError(f"the crontab text cannot be encoded: {exc}") from None
        if file is not None:
            self._replace(self._crontab_file(file), data, "crontab-file", _PRIVATE_FILE, None)
            return
        crontab = _Crontab()
        current = crontab.read()
        with self._guard():
            n = self._next()
            record: Record = {
                "rec": "intent",
                "n": n,
                "op": "crontab",
                "existed": current is not None,
                "after": _sha256(data),
                "uid": os.getuid(),
                "user": _user_name(),
            }
            if current is not None:
                backup = f"{n:04d}-crontab"
                record.update(before=_sha256(current), backup=backup)
                self._steps()
                _create_private(self.path / _BACKUPS / backup, current)
            self._steps()
            _append(self._journal, record)
            self._steps()
            crontab.install(data)
            if crontab.state() != record["after"]:
                raise JournalError(
                    f"{crontab.command} -l does not give back the crontab just installed"
                )
            self._done(n)

    def make_dir(self, path: Path, mode: int = 0o755) -> None:
        """Create a directory (and its missing parents, each journaled); an existing one is kept."""
        self._usable()
        target = _resolve(self.home, path)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                return
            raise JournalError(f"{target} exists and is not a directory")
        self._make_parents(target.parent)
        with self._guard():
            n = self._next()
            self._steps()
            _append(
                self._journal,
                {
                    "rec": "intent",
                    "n": n,
                    "op": "mkdir",
                    "path": self._rel(target),
                    "existed": False,
                    "new_mode": _octal(mode),
                },
            )
            self._steps()
            os.mkdir(target, mode)
            os.chmod(target, mode)  # not narrowed by the umask
            _fsync_dir(target.parent)
            self._done(n)

    def install_dir(self, staged: Path, dest: Path) -> None:
        """Rename a directory built aside (same file system, inside the home) to ``dest``.

        ``dest`` must not exist. Rollback removes it, or the staged folder when the crash
        came before the rename.
        """
        self._usable()
        source = _resolve(self.home, staged, state_ok=True)
        if os.path.islink(os.path.join(self.home, staged)) or not source.is_dir():
            raise JournalError(f"{staged} is not a directory")
        state = self.home / STATE_DIR
        if is_inside(state, source) or is_inside(source, state / _JOURNALS):
            raise JournalError(f"{source} holds the journal itself")
        target = _resolve(self.home, dest)
        if os.path.lexists(target):
            raise JournalError(f"{target} exists already")
        if is_inside(target, source) or is_inside(source, target):
            raise JournalError(f"{source} and {target} overlap")
        if os.stat(source).st_dev != os.stat(_nearest_existing(target.parent)).st_dev:
            raise JournalError(
                f"{source} and {target} are on different file systems: build it beside its "
                "destination"
            )
        self._make_parents(target.parent)
        with self._guard():
            n = self._next()
            self._steps()
            _append(
                self._journal,
                {
                    "rec": "intent",
                    "n": n,
                    "op": "install",
                    "path": self._rel(target),
                    "staged": self._rel(source),
                    "existed": False,
                },
            )
            self._steps()
            os.rename(source, target)
            _fsync_dir(target.parent)
            _fsync_dir(source.parent)
            self._done(n)

    def commit(self) -> None:
        """Mark the transaction complete; it accepts no more changes."""
        self._usable()
        with self._guard():
            self._steps()
            _append(self._journal, {"rec": "commit", "at": _now()})
        self._ended = "committed"

    def _replace(
        self, target: Path, data: bytes, op: str, new_file_mode: int, mode: int | None
    ) -> None:
        """``write_file`` of a resolved target: ``mode`` None keeps a replaced file's mode."""
        if target == self.home:
            raise JournalError(f"{target} is the home itself")
        existing = _read_existing(target)
        if existing is None:
            self._make_parents(target.parent)
        elif not _can_own(existing[1].st_uid, existing[1].st_gid):
            raise OwnerNotKept(
                f"{target} belongs to uid {existing[1].st_uid} gid {existing[1].st_gid}; "
                "rewriting it as this user would change that"
            )
        with self._guard():
            n = self._next()
            record: Record = {
                "rec": "intent",
                "n": n,
                "op": op,
                "path": self._rel(target),
                "existed": existing is not None,
                "after": _sha256(data),
                "temp": _temp_name(target.name, self._tag, n, "cm-tmp"),
            }
            owner: tuple[int, int] | None = None
            xattrs: dict[str, bytes] | None = None
            if existing is None:
                new_mode = new_file_mode
            else:
                old_data, old_stat, xattrs = existing
                old_mode = stat.S_IMODE(old_stat.st_mode)
                new_mode = old_mode if mode is None else mode
                owner = (old_stat.st_uid, old_stat.st_gid)
                backup = f"{n:04d}-{target.name[:_NAME_KEEP]}"
                record.update(
                    before=_sha256(old_data),
                    mode=_octal(old_mode),
                    uid=old_stat.st_uid,
                    gid=old_stat.st_gid,
                    xattrs={k: base64.b64encode(v).decode("ascii") for k, v in xattrs.items()},
                    backup=backup,
                )
                self._steps()
                _create_private(self.path / _BACKUPS / backup, old_data)
            record["new_mode"] = _octal(new_mode)
            self._steps()
            _append(self._journal, record)
            temp = target.parent / record["temp"]
            self._steps()
            _write_temp(temp, data, owner=owner, xattrs=xattrs, mode=new_mode, strict_owner=True)
            self._steps()
            os.rename(temp, target)
            _fsync_dir(target.parent)
            self._done(n)

    def _crontab_file(self, file: Path) -> Path:
        """The real target of --crontab FILE: inside the home the usual rules, else as it is."""
        real = os.path.realpath(os.path.join(self.home, file))
        if is_inside(real, self.home):
            return _resolve(self.home, Path(real))
        if os.path.islink(real):
            raise JournalError(f"{file}: symlink loop")
        return Path(real)

    def _make_parents(self, folder: Path) -> None:
        missing = []
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        if not folder.is_dir():
            raise JournalError(f"{folder} is not a directory")
        for each in reversed(missing):
            self.make_dir(each)

    def _next(self) -> int:
        self._n += 1
        return self._n

    def _done(self, n: int) -> None:
        self._steps()
        _append(self._journal, {"rec": "done", "n": n})

    def _rel(self, path: Path) -> str:
        return _recorded(path, self.home)

    def _usable(self) -> None:
        if self._ended is not None:
            raise JournalError(f"transaction {self.id} is {self._ended}")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """A failure after the first durable step leaves the transaction for rollback only."""
        try:
            yield
        except BaseException as exc:
            self._ended = f"failed ({exc}); roll it back"
            raise


def begin(home: Path, description: str) -> Transaction:
    """Start a transaction; the caller holds ``home_lock``. Refused while another is open.

    The folder is written aside and renamed into ``journal/``, so every transaction folder
    there has its begin record.
    """
    home_real = _home_real(home)
    _require_lock(home_real)
    steps = _Steps()
    journals = _make_journals_dir(home_real)
    loaded = _load_all(home_real)
    still_open = [t.info.id for t in loaded if t.info.state == "open"]
    if still_open:
        raise TransactionOpen(
            f"transaction {still_open[-1]} is still open (interrupted?): roll it back first"
        )
    for leftover in journals.glob(".*.tmp"):
        shutil.rmtree(leftover)  # a begin that crashed before its rename
    now = datetime.now(timezone.utc)
    while True:
        txn_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        final = journals / txn_id
        if not os.path.lexists(final):
            break
    record = {
        "rec": "begin",
        "id": txn_id,
        "seq": max((t.seq for t in loaded), default=0) + 1,
        "created": now.isoformat(timespec="microseconds"),
        "description": description,
        "home": str(home_real),
        "pid": os.getpid(),
        "argv": sys.argv,
    }
    aside = journals / f".{txn_id}.tmp"
    steps()
    _make_private_dir(aside)
    _make_private_dir(aside / _BACKUPS)
    _create_private(aside / _JOURNAL, _line(record))
    _fsync_dir(aside)
    steps()
    os.rename(aside, final)
    _fsync_dir(journals)
    return Transaction(home_real, txn_id, final, steps)


class SessionAborted(JournalError):
    """A session's block failed (``cause``; Ctrl-C included) and its transaction was rolled
    back (``rolled_back``), or the rollback stopped and ``rollback`` must finish it."""

    def __init__(self, cause: BaseException, transaction: str, rolled_back: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.transaction = transaction
        self.rolled_back = rolled_back


@contextlib.contextmanager
def session(
    home: Path,
    description: str,
    *,
    recover: Callable[[BaseException, bool], None] | None = None,
) -> Iterator[Transaction]:
    """The one way a command writes into a home: one transaction, committed when the block
    ends, rolled back whole when it raises (anything, Ctrl-C and SIGTERM's exit included).

    The caller holds ``home_lock`` (so it can look before it begins). On failure the
    transaction is rolled back with ``force`` — an edit made meanwhile is kept aside, not
    lost — then ``recover(cause, rolled_back)`` runs (``run`` restarts the apps it had restarted,
    on their old configuration: certbot's recovery routine), and :class:`SessionAborted`
    is raised from the cause.
    """
    transaction = begin(home, description)
    try:
        yield transaction
        transaction.commit()
    except BaseException as exc:
        try:
            rollback(home, transaction.id, force=True)
            rolled_back = True
        except JournalError:
            rolled_back = False
        if recover is not None:
            recover(exc, rolled_back)
        raise SessionAborted(exc, transaction.id, rolled_back) from exc


def transactions(home: Path) -> list[TransactionInfo]:
    """Every transaction of the home, oldest first."""
    return [t.info for t in _load_all(_home_real(home))]


# --- rollback -------------------------------------------------------------------------------


def rollback(home: Path, txn_id: str | None = None, *, force: bool = False) -> RollbackResult:
    """Undo a transaction (default: the newest not rolled back), newest change first.

    Refuses with EditedSince, changing nothing, when a file (or the installed crontab, named
    ``Path("crontab -l")``) it would restore or remove is neither as the transaction left it
    nor as it found it (a deleted one is simply restored); ``force`` moves each such file
    aside into the transaction's ``edited/`` first, and keeps such a crontab's text there.
    Idempotent: a rolled-back transaction is reported with ``already=True`` and not touched;
    with no id and nothing left to roll back, that is the newest one. Resumes a rollback
    that was interrupted. The caller holds ``home_lock`` (and, for the installed crontab, is
    the user whose crontab it replaced).
    """
    home_real = _home_real(home)
    _require_lock(home_real)
    loaded = _load_all(home_real)
    if txn_id is None:
        if not loaded:
            raise UnknownTransaction(f"no transaction in {home_real / STATE_DIR / _JOURNALS}")
        pending = [t for t in loaded if t.info.state != "rolled-back"]
        chosen = pending[-1] if pending else loaded[-1]
    else:
        found = [t for t in loaded if t.info.id == txn_id]
        if not found:
            raise UnknownTransaction(f"no transaction {txn_id!r} in {home_real}")
        chosen = found[0]
    if chosen.info.state == "rolled-back":
        return _result(home_real, chosen, already=True)
    _Undo(home_real, chosen, force).run()
    return _result(home_real, _load(home_real, chosen.info.path), already=False)


class _Undo:
    """One rollback run over one transaction."""

    def __init__(self, home: Path, txn: _Loaded, force: bool) -> None:
        self.home = home
        self.txn = txn
        self.force = force
        self.steps = _Steps()
        self.journal = txn.info.path / _JOURNAL
        self.tag = txn.info.id.rsplit("-", 1)[1]
        self._crontab_command: _Crontab | None = None
        records = txn.records
        undone = {r["n"] for r in records if r["rec"] == "undone"}
        self.done = {r["n"] for r in records if r["rec"] == "done"}
        intents = [r for r in records if r["rec"] == "intent"]
        self.pending = sorted(
            (r for r in intents if r["n"] not in undone), key=lambda r: r["n"], reverse=True
        )

    def run(self) -> None:
        edited = self._edited()
        if edited and not self.force:
            shown = ", ".join(_shown(p, self.home) for p in edited)
            raise EditedSince(
                f"rollback of {self.txn.info.id} changed nothing: edited since the transaction: "
                f"{shown} (force keeps each edit aside in {self.txn.info.path / _EDITED})",
                tuple(edited),
            )
        if _torn(self.journal):
            self.steps()
            _repair_tail(self.journal)
        self.steps()
        _append(self.journal, {"rec": "rollback-begin", "force": self.force, "at": _now()})
        undo = {
            "write": self._write,
            "crontab-file": self._write,
            "mkdir": self._mkdir,
            "install": self._install,
            "crontab": self._crontab,
        }
        for record in self.pending:
            outcome = undo[record["op"]](record)
            self.steps()
            _append(self.journal, {"rec": "undone", "n": record["n"], **outcome})
        self.steps()
        _append(self.journal, {"rec": "rolled-back", "at": _now()})

    # Checks first: nothing is changed unless every operation can be undone.

    def _edited(self) -> list[Path]:
        ours = self._ours()
        edited: list[Path] = []
        seen: set[str] = set()
        crontab_seen = False
        for record in self.pending:  # newest first: the newest operation on a path decides
            if record["op"] in _FILE_OPS | {"crontab"} and record["existed"]:
                self._backup(record)
            if record["op"] == "crontab":
                self._own_crontab(record)
                if not crontab_seen:
                    crontab_seen = True
                    state = self.crontab().state()
                    if state is not None and state not in (record.get("before"), record["after"]):
                        edited.append(INSTALLED_CRONTAB)
                continue
            path = self._path(record["path"], outside_ok=record["op"] == "crontab-file")
            if record["existed"] and not is_inside(path, self.home) and not path.parent.is_dir():
                raise JournalError(f"{path.parent} is gone: put it back to restore {path} in it")
            if record["op"] == "install":
                self._path(record["staged"], state_ok=True)
            if record["path"] in seen:
                continue
            seen.add(record["path"])
            current = _state_of(path)
            if record["op"] in _FILE_OPS:
                ok = current is None or current in (record.get("before"), record["after"])
            elif record["op"] == "mkdir":
                ok = current is None or (
                    current == _DIR and all(path / name in ours for name in os.listdir(path))
                )
            else:
                ok = current in (None, _DIR)
            if not ok:
                edited.append(path)
        return edited

    def _ours(self) -> set[Path]:
        """Everything rollback itself will take away: not a sign of an edit in a created dir."""
        ours: set[Path] = set()
        for record in self.pending:
            if record["op"] == "crontab":
                continue
            path = self.home / record["path"]
            ours.add(path)
            if record["op"] in _FILE_OPS:
                ours.add(path.parent / record["temp"])
                ours.add(path.parent / _temp_name(path.name, self.tag, record["n"], "cm-undo"))
            elif record["op"] == "install":
                ours.add(self.home / record["staged"])
                ours.add(path.parent / _temp_name(path.name, self.tag, record["n"], "cm-trash"))
        return ours

    def _path(self, rel: str, *, state_ok: bool = False, outside_ok: bool = False) -> Path:
        """A recorded path, refused if a folder on its way became a symlink since.

        ``outside_ok``: a crontab file, the one kind recorded by its absolute path when it
        lies outside the home.
        """
        if outside_ok and os.path.isabs(rel) and os.path.normpath(rel) == rel:
            path = Path(rel)
            parent = os.path.realpath(path.parent)
            if is_inside(parent, self.home):
                raise JournalError(f"{self.journal}: recorded path {rel!r} is in the home")
            if parent != str(path.parent):
                raise JournalError(f"{path}: {path.parent} became a symlink since the transaction")
            return path
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise JournalError(f"{self.journal}: recorded path {rel!r} is not inside the home")
        path = self.home / rel
        parent = os.path.realpath(path.parent)
        if not is_inside(parent, self.home):
            raise OutsideHome(f"{path}: {path.parent} now leads to {parent}, outside the home")
        if parent != str(path.parent):
            raise JournalError(f"{path}: {path.parent} became a symlink since the transaction")
        if not state_ok and is_inside(path, self.home / STATE_DIR):
            raise JournalError(f"{self.journal}: recorded path {rel!r} is the journal's own")
        return path

    def _backup(self, record: Record) -> bytes:
        backup = self.txn.info.path / _BACKUPS / record["backup"]
        try:
            data = _read_file(backup)
        except OSError as exc:
            raise JournalError(f"backup {backup} cannot be read: {exc.strerror}") from None
        if _sha256(data) != record["before"]:
            raise JournalError(f"backup {backup} does not match its sha256 in the journal")
        return data

    # Undo of one operation each; returns the fields of its ``undone`` record.

    def _write(self, record: Record) -> Record:
        path = self._path(record["path"], outside_ok=record["op"] == "crontab-file")
        n = record["n"]
        self._remove(path.parent / record["temp"])
        undo_temp = path.parent / _temp_name(path.name, self.tag, n, "cm-undo")
        self._remove(undo_temp)
        current = _state_of(path)
        expected = (None, record.get("before"), record["after"])
        aside = None if current in expected else self._aside(path, n)
        if not record["existed"]:
            if current is None or aside is not None:
                return self._outcome(path, "removed" if aside else "absent", aside)
            self.steps()
            os.unlink(path)
            _fsync_dir(path.parent)
            return self._outcome(path, "removed", None)
        xattrs = {k: base64.b64decode(v) for k, v in record["xattrs"].items()}
        mode = int(record["mode"], 8)
        owner = (record["uid"], record["gid"])
        if current == record["before"] and _meta_of(path) == (mode, owner, xattrs):
            return self._outcome(path, "unchanged", None)
        data = self._backup(record)
        path.parent.mkdir(parents=True, exist_ok=True)  # only when the user removed it
        self.steps()
        _write_temp(undo_temp, data, owner=owner, xattrs=xattrs, mode=mode, strict_owner=False)
        self.steps()
        os.rename(undo_temp, path)
        _fsync_dir(path.parent)
        return self._outcome(path, "restored", aside)

    def _crontab(self, record: Record) -> Record:
        crontab = self.crontab()
        current = crontab.read()
        state = None if current is None else _sha256(current)
        if state == record.get("before"):  # both None: there was none and there is none
            return self._crontab_outcome("unchanged" if record["existed"] else "absent", None)
        aside = None
        if current is not None and state != record["after"]:
            aside = self._crontab_aside(current, record["n"])
        if not record["existed"]:
            self.steps()
            crontab.remove()
            return self._crontab_outcome("removed", aside)
        data = self._backup(record)
        self.steps()
        crontab.install(data)
        return self._crontab_outcome("restored", aside)

    def _crontab_aside(self, data: bytes, n: int) -> Path:
        """Keep an edited crontab's text in ``edited/``, or refuse without ``force``."""
        if not self.force:
            raise EditedSince(
                "the installed crontab (crontab -l) was edited during the rollback",
                (INSTALLED_CRONTAB,),
            )
        edited = self.txn.info.path / _EDITED
        if not edited.is_dir():
            _make_private_dir(edited)
        kept = edited / f"{n:04d}-crontab"
        if os.path.lexists(kept):  # kept by a run cut short: the crontab still holds the edit
            os.unlink(kept)
        self.steps()
        _append(
            self.journal,
            {
                "rec": "aside",
                "n": n,
                "path": str(INSTALLED_CRONTAB),
                "crontab": True,
                "kept": os.path.relpath(kept, self.txn.info.path),
            },
        )
        self.steps()
        _create_private(kept, data)
        return kept

    def _crontab_outcome(self, action: str, aside: Path | None) -> Record:
        return {
            "action": action,
            "path": str(INSTALLED_CRONTAB),
            "crontab": True,
            "aside": None if aside is None else os.path.relpath(aside, self.txn.info.path),
        }

    def crontab(self) -> _Crontab:
        if self._crontab_command is None:
            self._crontab_command = _Crontab()
        return self._crontab_command

    def _own_crontab(self, record: Record) -> None:
        """Only its user can put a crontab back: ``crontab`` acts on the invoking user's."""
        if record["uid"] != os.getuid():
            raise JournalError(
                f"{self.journal}: operation {record['n']} replaced the crontab of "
                f"{record.get('user', '?')} (uid {record['uid']}): roll back as that user"
            )

    def _mkdir(self, record: Record) -> Record:
        path = self._path(record["path"])
        current = _state_of(path)
        if current is None:
            return self._outcome(path, "absent", None)
        if current == _DIR and not os.listdir(path):
            self.steps()
            os.rmdir(path)
            _fsync_dir(path.parent)
            return self._outcome(path, "removed", None)
        return self._outcome(path, "removed", self._aside(path, record["n"]))

    def _install(self, record: Record) -> Record:
        path = self._path(record["path"])
        staged = self._path(record["staged"], state_ok=True)
        trash = path.parent / _temp_name(path.name, self.tag, record["n"], "cm-trash")
        resumed = _state_of(trash) is not None  # renamed away before a crash: finish the job
        self._remove(trash)
        current = _state_of(path)
        if current == _DIR:
            self.steps()
            os.rename(path, trash)  # atomic; the slow removal can be resumed from the trash
            _fsync_dir(path.parent)
            self._remove(trash)
            return self._outcome(path, "removed", None)
        if current is not None:
            return self._outcome(path, "removed", self._aside(path, record["n"]))
        if record["n"] not in self.done and _state_of(staged) == _DIR:
            self._remove(staged)  # built for this transaction, never installed
            return self._outcome(staged, "removed", None)
        return self._outcome(path, "removed" if resumed else "absent", None)

    def _remove(self, path: Path) -> None:
        """Remove a leftover of the journal's own (temp, trash, staged dir) if there is one."""
        current = _state_of(path)
        if current is None:
            return
        self.steps()
        if current == _DIR:
            shutil.rmtree(path)
        else:
            os.unlink(path)
        _fsync_dir(path.parent)

    def _aside(self, path: Path, n: int) -> Path:
        """Move an edited file or folder into ``edited/``, or refuse without ``force``."""
        if not self.force:
            raise EditedSince(f"{path} was edited during the rollback", (path,))
        edited = self.txn.info.path / _EDITED
        if not edited.is_dir():
            _make_private_dir(edited)
        kept = edited / f"{n:04d}-{path.name[:_NAME_KEEP]}"
        if _state_of(kept) == _DIR:  # a copy cut short by a crash: the original is still there
            shutil.rmtree(kept)
        elif os.path.lexists(kept):
            os.unlink(kept)
        self.steps()
        _append(
            self.journal,
            {
                "rec": "aside",
                "n": n,
                "path": _recorded(path, self.home),
                "kept": os.path.relpath(kept, self.txn.info.path),
            },
        )
        self.steps()
        try:
            os.rename(path, kept)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            if _state_of(path) == _DIR:
                shutil.copytree(path, kept, symlinks=True)
                shutil.rmtree(path)
            else:
                shutil.copy2(path, kept, follow_symlinks=False)
                os.unlink(path)
        _fsync_dir(edited)
        _fsync_dir(path.parent)
        return kept

    def _outcome(self, path: Path, action: str, aside: Path | None) -> Record:
        return {
            "action": action,
            "path": _recorded(path, self.home),
            "aside": None if aside is None else os.path.relpath(aside, self.txn.info.path),
        }


def _result(home: Path, txn: _Loaded, *, already: bool) -> RollbackResult:
    restored: list[Path] = []
    removed: list[Path] = []
    aside: list[Path] = []
    for record in txn.records:
        if record["rec"] == "aside":
            kept = txn.info.path / record["kept"]
            if os.path.lexists(kept) and kept not in aside:  # a crash can come before the move
                aside.append(kept)
        if record["rec"] != "undone":
            continue
        path = INSTALLED_CRONTAB if record.get("crontab") else home / record["path"]
        if record["action"] == "restored" and path not in restored:
            restored.append(path)
        elif record["action"] == "removed" and path not in removed:
            removed.append(path)
    return RollbackResult(txn.info.id, tuple(restored), tuple(removed), tuple(aside), already)


# --- reading the journal ---------------------------------------------------------------------


def _load_all(home_real: Path) -> list[_Loaded]:
    journals = _journals_dir(home_real)
    if journals is None:
        return []
    loaded = [
        _load(home_real, entry)
        for entry in journals.iterdir()
        if _ID.match(entry.name) and not entry.is_symlink() and entry.is_dir()
    ]
    return sorted(loaded, key=lambda t: (t.seq, t.info.created, t.info.id))


def _load(home_real: Path, folder: Path) -> _Loaded:
    records = _read_records(folder / _JOURNAL)
    if not records or records[0]["rec"] != "begin" or records[0].get("id") != folder.name:
        raise JournalError(f"{folder / _JOURNAL} does not start with its begin record")
    kinds = {r["rec"] for r in records}
    state: State
    if "rolled-back" in kinds:
        state = "rolled-back"
    elif "commit" in kinds and "rollback-begin" not in kinds:
        state = "committed"
    else:
        state = "open"
    files: dict[Path, None] = {}
    for record in records:
        if record["rec"] == "intent":
            crontab = record["op"] == "crontab"
            files[INSTALLED_CRONTAB if crontab else home_real / record["path"]] = None
    begin_record = records[0]
    info = TransactionInfo(
        id=folder.name,
        path=folder,
        state=state,
        created=str(begin_record.get("created", "")),
        description=str(begin_record.get("description", "")),
        files=tuple(files),
    )
    return _Loaded(info, int(begin_record.get("seq", 0)), tuple(records))


def _read_records(journal: Path) -> list[Record]:
    """Every complete record; a torn last line (a crash mid-append) is not one."""
    try:
        data = _read_file(journal)
    except OSError as exc:
        raise JournalError(f"{journal} cannot be read: {exc.strerror}") from None
    records = []
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not _well_formed(record):
            raise JournalError(f"{journal}: line {number} is not a journal record")
        records.append(record)
    return records


_INTENT_KEYS = {
    "write": {"n", "path", "existed", "after", "temp", "new_mode"},
    "crontab-file": {"n", "path", "existed", "after", "temp", "new_mode"},
    "mkdir": {"n", "path", "existed", "new_mode"},
    "install": {"n", "path", "staged", "existed"},
    "crontab": {"n", "existed", "after", "uid"},
}
_REPLACE_KEYS = {"before", "mode", "uid", "gid", "xattrs", "backup"}
_CRONTAB_REPLACE_KEYS = {"before", "backup"}
_RECORD_KEYS = {"done": {"n"}, "undone": {"n", "action", "path"}, "aside": {"n", "path", "kept"}}


def _well_formed(record: object) -> bool:
    """Has the keys rollback reads, so a damaged journal fails here and not halfway through."""
    if not isinstance(record, dict) or not isinstance(record.get("rec"), str):
        return False
    if record["rec"] == "intent":
        op = record.get("op")
        needed = _INTENT_KEYS.get(op) if isinstance(op, str) else None
        if needed is None:
            return False
        if record.get("existed"):
            if record["op"] in _FILE_OPS:
                needed = needed | _REPLACE_KEYS
            elif record["op"] == "crontab":
                needed = needed | _CRONTAB_REPLACE_KEYS
    else:
        needed = _RECORD_KEYS.get(record["rec"], set())
    return needed <= record.keys() and all(
        isinstance(record[k], str) for k in needed & {"path", "staged", "temp", "backup", "kept"}
    )


def _torn(journal: Path) -> bool:
    data = _read_file(journal)
    return bool(data) and not data.endswith(b"\n")


def _repair_tail(journal: Path) -> None:
    """Cut a torn last line so the next append starts on a line of its own."""
    data = _read_file(journal)
    fd = os.open(journal, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, data.rfind(b"\n") + 1)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- paths ---------------------------------------------------------------------------------


def _home_real(home: Path) -> Path:
    real = Path(os.path.realpath(home))
    if not real.is_dir():
        raise JournalError(f"home {home} is not a directory")
    return real


def _resolve(home_real: Path, path: Path, *, state_ok: bool = False) -> Path:
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


def _nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder):
        folder = folder.parent
    return folder


def _state_dir(home_real: Path, *, create: bool) -> Path:
    return _private_dir(home_real / STATE_DIR, create=create)


def _journals_dir(home_real: Path) -> Path | None:
    """HOME/.concentric-migrate/journal when it exists (checked: a real folder)."""
    if not os.path.lexists(home_real / STATE_DIR):
        return None
    journals = _state_dir(home_real, create=False) / _JOURNALS
    return _private_dir(journals, create=False) if os.path.lexists(journals) else None


def _make_journals_dir(home_real: Path) -> Path:
    return _private_dir(_state_dir(home_real, create=True) / _JOURNALS, create=True)


def _private_dir(path: Path, *, create: bool) -> Path:
    """A 0700 folder of the journal's own; refused if it is a symlink (it could lead out)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise
        try:
            _make_private_dir(path)
        except FileExistsError:  # another process made it in between: check what it made
            return _private_dir(path, create=False)
        _fsync_dir(path.parent)
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise JournalError(f"{path} is not a directory (a symlink?): refusing to use it")
    return path


def _make_private_dir(path: Path) -> None:
    os.mkdir(path, _PRIVATE_DIR)
    os.chmod(path, _PRIVATE_DIR)


def _temp_name(name: str, tag: str, n: int, kind: str) -> str:
    return f".{name[:_NAME_KEEP]}.{tag}-{n}.{kind}"


def _recorded(path: Path, home_real: Path) -> str:
    """How the journal names a path: relative to the home, absolute outside it (crontab files)."""
    return os.path.relpath(path, home_real) if is_inside(path, home_real) else str(path)


def _shown(path: Path, home_real: Path) -> str:
    return str(path) if path == INSTALLED_CRONTAB else home_relative(path, home_real)


# --- the installed crontab -----------------------------------------------------------------


class _Crontab:
    """The invoking user's installed crontab, through the ``crontab`` command (never a shell)."""

    def __init__(self) -> None:
        command = shutil.which("crontab")
        if command is None:
            raise JournalError(
                "the crontab command is not installed (on Debian: package cron), so the "
                "installed crontab can be neither read nor replaced nor restored"
            )
        self.command = command

    def read(self) -> bytes | None:
        """``crontab -l``: the crontab's bytes, None when the user has none."""
        done = self._run("-l")
        if done.returncode == 0:
            return done.stdout
        if done.returncode == 1 and _NO_CRONTAB.search(done.stderr):
            return None
        raise self._failed("-l", done)

    def state(self) -> str | None:
        """sha256 of the crontab, None when there is none."""
        data = self.read()
        return None if data is None else _sha256(data)

    def install(self, data: bytes) -> None:
        """``crontab -`` fed ``data``: cron checks it and replaces the crontab atomically."""
        done = self._run("-", data)
        if done.returncode != 0:
            raise self._failed("-", done)

    def remove(self) -> None:
        """``crontab -r``; a crontab already gone is fine."""
        done = self._run("-r")
        if done.returncode != 0 and not _NO_CRONTAB.search(done.stderr):
            raise self._failed("-r", done)

    def _run(self, option: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [self.command, option],
                input=data,
                capture_output=True,
                timeout=_CRONTAB_TIMEOUT,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise JournalError(
                f"{self.command} {option} did not finish within {_CRONTAB_TIMEOUT:g} s"
            ) from None
        except OSError as exc:
            raise JournalError(f"{self.command} {option} cannot run: {exc.strerror}") from None

    def _failed(self, option: str, done: subprocess.CompletedProcess[bytes]) -> JournalError:
        said = done.stderr.decode("utf-8", "replace").strip() or "it said nothing"
        return JournalError(f"{self.command} {option} failed (exit {done.returncode}): {said}")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# --- files ---------------------------------------------------------------------------------


def _read_existing(target: Path) -> tuple[bytes, os.stat_result, dict[str, bytes]] | None:
    """Bytes, stat and xattrs of a regular file, None when missing; anything else is refused."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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
        return _read_fd(fd), st, _xattrs(fd)
    finally:
        os.close(fd)


def _read_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _create_private(path: Path, data: bytes) -> None:
    """A new 0600 file of the journal's own, durable with its folder entry."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE
    )
    try:
        os.fchmod(fd, _PRIVATE_FILE)
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _write_temp(
    path: Path,
    data: bytes,
    *,
    owner: tuple[int, int] | None,
    xattrs: dict[str, bytes] | None,
    mode: int,
    strict_owner: bool,
) -> None:
    """The complete replacement, metadata included, durable before it is renamed in.

    ``xattrs`` None keeps what the new file inherited (a new file); a dict makes the xattrs
    exactly that (a replaced or restored file). Owner first: chown clears setuid bits.
    """
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE
    )
    try:
        _write_all(fd, data)
        if owner is not None:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid) != owner:
                try:
                    os.fchown(fd, *owner)
                except PermissionError:
                    if strict_owner:
                        raise OwnerNotKept(f"cannot give {path} uid/gid {owner}") from None
        if xattrs is not None:
            _set_xattrs(fd, xattrs)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(journal: Path, record: Record) -> None:
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _write_all(fd, _line(record))
        os.fsync(fd)
    finally:
        os.close(fd)


def _line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n"


def _state_of(path: Path) -> str | None:
    """sha256 of a regular file, a marker for anything else, None when missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return _DIR
    if stat.S_ISLNK(st.st_mode):
        return _SYMLINK
    if not stat.S_ISREG(st.st_mode):
        return _OTHER
    return _sha256(_read_file(path))


def _meta_of(path: Path) -> tuple[int, tuple[int, int], dict[str, bytes]]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        return stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), _xattrs(fd)
    finally:
        os.close(fd)


def _xattrs(fd: int) -> dict[str, bytes]:
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


def _set_xattrs(fd: int, wanted: dict[str, bytes]) -> None:
    """Make the xattrs exactly ``wanted``; only non-ACL ones this user may not set are skipped."""
    current = _xattrs(fd)
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


def _can_own(uid: int, gid: int) -> bool:
    """Whether a file this process creates can be given that owner and group."""
    euid = os.geteuid()
    if euid == 0:
        return True
    return uid == euid and (gid == os.getegid() or gid in os.getgroups())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _octal(mode: int) -> str:
    return f"{mode:04o}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

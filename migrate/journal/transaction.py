"""Writing through the journal: a transaction records each change before it makes it.

Every change is made in the same order, each part durable (fsynced) before the next one
starts: backup copy -> intent record -> temp file beside the target -> rename over the
target (+ fsync of its folder) -> done record. Whatever prefix of that a crash leaves, the
intent (or its absence) tells rollback enough to undo it: the hashes in the intent say
whether the rename happened, the temp name says what to clean up, and a backup without an
intent is never needed because nothing was changed yet.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from migrate.journal import records as rec
from migrate.journal import tree
from migrate.journal.crontab import InstalledCrontab, Resource
from migrate.journal.errors import (
    JournalError,
    OwnerNotKept,
    SessionAborted,
    TargetChanged,
    TransactionOpen,
)
from migrate.journal.fs import (
    FOLDER,
    NAME_KEEP,
    PRIVATE_FILE,
    can_own,
    create_private,
    folder_of,
    fsync_dir,
    make_private_dir,
    nearest_existing,
    octal,
    open_in_place,
    read_existing,
    read_fd,
    real_home,
    recorded,
    resolve,
    sha256,
    temp_name,
    write_in_place,
    write_temp,
)
from migrate.journal.lock import require_lock
from migrate.journal.store import (
    BACKUPS,
    JOURNAL,
    Steps,
    TransactionInfo,
    append,
    load_all,
    make_journals_dir,
    now,
)
from migrate.journal.undo import rollback
from migrate.layout import JOURNALS_DIR, STATE_DIR
from migrate.paths import is_inside
from migrate.privilege import Owner, owner_of

NEW_FILE_MODE = 0o644


class Transaction:
    """One journaled set of changes; made by ``begin`` inside ``home_lock``, ended by ``commit``.

    Paths may be absolute or relative to the home. After any operation fails midway the
    transaction refuses further work: roll it back.
    """

    def __init__(
        self,
        home: Path,
        txn_id: str,
        path: Path,
        steps: Steps,
        crontab: Callable[[Owner | None], Resource] = InstalledCrontab,
    ) -> None:
        self.id = txn_id
        self.path = path
        self.home = home
        self._steps = steps
        self._crontab = crontab
        self._journal = path / JOURNAL
        self._tag = txn_id.rsplit("-", 1)[1]
        self._n = 0
        self._ended: str | None = None
        self._owner = owner_of(home)
        """Whom what it creates belongs to: the home's owner when root works on another
        user's home (None: this process's user, who owns the home)."""

    def write_file(
        self, path: Path, data: bytes, mode: int | None = None, *, expect_sha256: str | None = None
    ) -> None:
        """Create or replace ``path`` with ``data``; missing parents come from ``make_dir``.

        A replaced file keeps its mode (unless ``mode`` is given), owner, group and xattrs
        (POSIX ACLs included) and does not pick up the folder's default ACL; a new file gets
        ``mode`` (default 0o644) and the folder's defaults. A symlink inside the home is
        written through (the link stays). With ``expect_sha256`` the file must still hold the
        bytes the write was planned from (:class:`TargetChanged` otherwise, nothing written).
        """
        self._usable()
        target = resolve(self.home, path)
        if mode is not None and not 0 <= mode <= 0o7777:
            raise JournalError(f"mode {mode:o} is not a file mode")
        new_mode = NEW_FILE_MODE if mode is None else mode
        self._replace(target, data, "write", new_mode, mode, expect_sha256)

    def set_crontab(
        self, text: str, file: Path | None = None, *, expect_sha256: str | None = None
    ) -> None:
        """Replace the crontab: the file given with --crontab FILE, else the installed one
        of the home's user (crontab -l / crontab -; ``-u NAME`` for root on her home).

        The file is written as ``write_file`` writes (a new one gets 0o600, like the cron
        spool's), and it alone may lie outside the home: it stands for the user's crontab as
        the spool file does; a missing folder of it outside the home is refused, not made.
        The installed crontab is backed up from ``crontab -l`` and replaced by feeding
        ``crontab -`` the new text; rollback puts the old one back (or ``crontab -r``).
        ``text`` must end with a newline when not empty: cron refuses it otherwise. With
        ``expect_sha256`` the crontab must still be the one the text was planned from.
        """
        self._usable()
        if text and not text.endswith("\n"):
            raise JournalError("a crontab must end with a newline: cron refuses it otherwise")
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise JournalError(f"the crontab text cannot be encoded: {exc}") from None
        if file is not None:
            target = self._crontab_file(file)
            self._replace(target, data, "crontab-file", PRIVATE_FILE, None, expect_sha256)
            return
        crontab = self._crontab(self._owner)
        current = crontab.read()
        if expect_sha256 is not None and (current is None or sha256(current) != expect_sha256):
            raise TargetChanged(
                "the installed crontab changed after it was read (crontab -l): run again", None
            )
        with self._guard():
            n = self._next()
            backup = None if current is None else f"{n:04d}-crontab"
            record = rec.CrontabIntent(
                n,
                after=sha256(data),
                uid=crontab.uid,
                user=crontab.user,
                before=None if current is None else sha256(current),
                backup=backup,
            )
            if current is not None and backup is not None:
                self._steps()
                create_private(self.path / BACKUPS / backup, current, self._owner)
            self._steps()
            append(self._journal, record)
            self._steps()
            crontab.install(data)
            if crontab.state() != record.after:
                raise JournalError(
                    f"{crontab.command} -l does not give back the crontab just installed"
                )
            self._done(n)

    def make_dir(self, path: Path, mode: int = 0o755) -> None:
        """Create a directory (and its missing parents, each journaled); an existing one is kept."""
        self._usable()
        target = resolve(self.home, path)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                return
            raise JournalError(f"{target} exists and is not a directory")
        self._make_parents(target.parent)
        with self._guard():
            n = self._next()
            self._steps()
            append(self._journal, rec.MkdirIntent(n, self._rel(target), octal(mode)))
            self._steps()
            folder = folder_of(self.home, target)
            try:
                os.mkdir(target.name, mode, dir_fd=folder)
                if self._owner is not None:
                    os.chown(
                        target.name, self._owner.uid, self._owner.gid, dir_fd=folder,
                        follow_symlinks=False,
                    )  # fmt: skip
                made = os.open(target.name, FOLDER, dir_fd=folder)
                os.fchmod(made, mode)  # not narrowed by the umask
                os.close(made)
                os.fsync(folder)
            finally:
                os.close(folder)
            self._done(n)

    def install_dir(self, staged: Path, dest: Path, known: tree.Known | None = None) -> None:
        """Rename a directory built aside (same file system, inside the home) to ``dest``.

        ``dest`` must not exist. Rollback removes it, or the staged folder when the crash
        came before the rename; what was added to it or changed in it since (the listing
        kept in ``backups/`` tells) is the user's, kept aside like an edited file.
        ``known``: files the caller vouches for by inode, not stat'ed again for the
        listing (:func:`migrate.journal.tree.listing`).
        """
        self._usable()
        source = resolve(self.home, staged, state_ok=True)
        if os.path.islink(os.path.join(self.home, staged)) or not source.is_dir():
            raise JournalError(f"{staged} is not a directory")
        state = self.home / STATE_DIR
        if is_inside(state, source) or is_inside(source, state / JOURNALS_DIR):
            raise JournalError(f"{source} holds the journal itself")
        target = resolve(self.home, dest)
        if os.path.lexists(target):
            raise JournalError(f"{target} exists already")
        if is_inside(target, source) or is_inside(source, target):
            raise JournalError(f"{source} and {target} overlap")
        if os.stat(source).st_dev != os.stat(nearest_existing(target.parent)).st_dev:
            raise JournalError(
                f"{source} and {target} are on different file systems: build it beside its "
                "destination"
            )
        self._make_parents(target.parent)
        listed = tree.dumps(tree.listing(source, known))
        with self._guard():
            n = self._next()
            backup = f"{n:04d}-tree"
            self._steps()
            create_private(self.path / BACKUPS / backup, listed, self._owner)
            intent = rec.InstallIntent(
                n, self._rel(target), self._rel(source), backup, sha256(listed)
            )
            self._steps()
            append(self._journal, intent)
            self._steps()
            into, out_of = folder_of(self.home, target), folder_of(self.home, source)
            try:
                os.rename(source.name, target.name, src_dir_fd=out_of, dst_dir_fd=into)
                os.fsync(into)
                os.fsync(out_of)
            finally:
                os.close(into)
                os.close(out_of)
            self._done(n)

    def commit(self) -> None:
        """Mark the transaction complete; it accepts no more changes."""
        self._usable()
        with self._guard():
            self._steps()
            append(self._journal, rec.Commit(now()))
        self._ended = "committed"

    def _replace(
        self,
        target: Path,
        data: bytes,
        op: rec.FileOp,
        new_file_mode: int,
        mode: int | None,
        expect_sha256: str | None = None,
    ) -> None:
        """``write_file`` of a resolved target: ``mode`` None keeps a replaced file's mode."""
        if target == self.home:
            raise JournalError(f"{target} is the home itself")
        if os.path.isdir(target.parent):
            with self._folder(target) as folder:
                existing = read_existing(target, folder)
        else:
            existing = None
        if expect_sha256 is not None and (existing is None or sha256(existing[0]) != expect_sha256):
            raise TargetChanged(f"{target} changed after it was read: run again", target)
        if existing is None:
            self._make_parents(target.parent)
        elif not can_own(existing[1].st_uid, existing[1].st_gid):
            raise OwnerNotKept(
                f"{target} belongs to uid {existing[1].st_uid} gid {existing[1].st_gid}; "
                "rewriting it as this user would change that"
            )
        with (
            self._folder(target) as folder,
            self._in_place(target, existing, folder) as fd,
            self._guard(),
        ):
            n = self._next()
            owner: tuple[int, int] | None = None
            xattrs: dict[str, bytes] | None = None
            previous = None
            if existing is None:
                new_mode = new_file_mode
                owner = None if self._owner is None else (self._owner.uid, self._owner.gid)
            else:
                old_data, old_stat, xattrs = existing
                old_mode = stat.S_IMODE(old_stat.st_mode)
                new_mode = old_mode if mode is None else mode
                owner = (old_stat.st_uid, old_stat.st_gid)
                previous = rec.Previous(
                    before=sha256(old_data),
                    mode=octal(old_mode),
                    uid=old_stat.st_uid,
                    gid=old_stat.st_gid,
                    xattrs=rec.encode_xattrs(xattrs),
                    backup=f"{n:04d}-{target.name[:NAME_KEEP]}",
                )
                self._steps()
                create_private(self.path / BACKUPS / previous.backup, old_data, self._owner)
            record = rec.WriteIntent(
                n,
                op,
                self._rel(target),
                after=sha256(data),
                temp=temp_name(target.name, self._tag, n, "cm-tmp"),
                new_mode=octal(new_mode),
                previous=previous,
                in_place=fd is not None,
            )
            self._steps()
            append(self._journal, record)
            if fd is not None:
                self._steps()
                write_in_place(fd, data, mode)
                self._done(n)
                return
            temp = target.parent / record.temp
            self._steps()
            write_temp(
                temp, data, owner=owner, xattrs=xattrs, mode=new_mode, strict_owner=True,
                folder=folder,
            )  # fmt: skip
            self._steps()
            os.rename(record.temp, target.name, src_dir_fd=folder, dst_dir_fd=folder)
            os.fsync(folder)
            self._done(n)

    @contextlib.contextmanager
    def _folder(self, target: Path) -> Iterator[int]:
        """A descriptor on ``target``'s folder, reached without following a link: every
        file operation goes through it, so a folder on the way that she swaps for a link
        meanwhile never sends root's writes out of the home (see :mod:`migrate.privilege`)."""
        folder = folder_of(self.home, target)
        try:
            yield folder
        finally:
            os.close(folder)

    @contextlib.contextmanager
    def _in_place(
        self,
        target: Path,
        existing: tuple[bytes, os.stat_result, dict[str, bytes]] | None,
        folder: int,
    ) -> Iterator[int | None]:
        """A file of the home with other names (hard links) is written in place, so that
        each name shows the rewrite (a new file renamed in would leave them the old text):
        a descriptor on it, checked to be the file just read and the home owner's (as
        root, never a file of someone else's she linked in). None: write by rename."""
        if existing is None or existing[1].st_nlink < 2 or not is_inside(target, self.home):
            yield None
            return
        if self._owner is not None and existing[1].st_uid != self._owner.uid:
            yield None
            return
        try:
            fd = open_in_place(target, existing[1], folder)
        except PermissionError:  # read-only to this user: a rename still replaces it
            yield None
            return
        try:
            if sha256(read_fd(fd)) != sha256(existing[0]):
                raise TargetChanged(f"{target} changed while it was read: run again", target)
            yield fd
        finally:
            os.close(fd)

    def _crontab_file(self, file: Path) -> Path:
        """The real target of --crontab FILE: inside the home the usual rules, else as it is."""
        real = os.path.realpath(os.path.join(self.home, file))
        if is_inside(real, self.home):
            return resolve(self.home, Path(real))
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
        append(self._journal, rec.Done(n))

    def _rel(self, path: Path) -> str:
        return recorded(path, self.home)

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


def begin(
    home: Path, description: str, *, crontab: Callable[[Owner | None], Resource] = InstalledCrontab
) -> Transaction:
    """Start a transaction; the caller holds ``home_lock``. Refused while another is open.

    The folder is written aside and renamed into ``journal/``, so every transaction folder
    there has its begin record. ``crontab`` makes the resource that stands for the
    installed crontab (``crontab -l``/``crontab -`` by default).
    """
    home_real = real_home(home)
    require_lock(home_real)
    steps = Steps()
    journals = make_journals_dir(home_real)
    loaded = load_all(home_real)
    still_open = [t.info.id for t in loaded if t.info.state == "open"]
    if still_open:
        raise TransactionOpen(
            f"transaction {still_open[-1]} is still open (interrupted?): roll it back first"
        )
    for leftover in journals.glob(".*.tmp"):
        shutil.rmtree(leftover)  # a begin that crashed before its rename
    created = datetime.now(timezone.utc)
    while True:
        txn_id = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        final = journals / txn_id
        if not os.path.lexists(final):
            break
    record = rec.Begin(
        id=txn_id,
        seq=max((t.seq for t in loaded), default=0) + 1,
        created=created.isoformat(timespec="microseconds"),
        description=description,
        home=str(home_real),
        pid=os.getpid(),
        argv=tuple(sys.argv),
    )
    aside = journals / f".{txn_id}.tmp"
    steps()
    owner = owner_of(home_real)
    make_private_dir(aside, owner)
    make_private_dir(aside / BACKUPS, owner)
    create_private(aside / JOURNAL, rec.dumps(record), owner)
    fsync_dir(aside)
    steps()
    os.rename(aside, final)
    fsync_dir(journals)
    return Transaction(home_real, txn_id, final, steps, crontab)


@contextlib.contextmanager
def session(
    home: Path,
    description: str,
    *,
    recover: Callable[[BaseException, bool], None] | None = None,
    crontab: Callable[[Owner | None], Resource] = InstalledCrontab,
) -> Iterator[Transaction]:
    """The one way a command writes into a home: one transaction, committed when the block
    ends, rolled back whole when it raises (anything, Ctrl-C and SIGTERM's exit included).

    The caller holds ``home_lock`` (so it can look before it begins). On failure the
    transaction is rolled back with ``force`` — an edit made meanwhile is kept aside, not
    lost — then ``recover(cause, rolled_back)`` runs (``run`` restarts the apps it had
    restarted, on their old configuration: certbot's recovery routine), and
    :class:`SessionAborted` is raised from the cause.
    """
    transaction = begin(home, description, crontab=crontab)
    try:
        yield transaction
        transaction.commit()
    except BaseException as exc:
        kept: tuple[Path, ...] = ()
        try:
            kept = rollback(home, transaction.id, force=True, crontab=crontab).kept_aside
            rolled_back = True
        except JournalError:
            rolled_back = False
        if recover is not None:
            recover(exc, rolled_back)
        raise SessionAborted(exc, transaction.id, rolled_back, kept) from exc


def transactions(home: Path) -> list[TransactionInfo]:
    """Every transaction of the home, oldest first."""
    return [t.info for t in load_all(real_home(home))]

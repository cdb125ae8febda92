"""Rollback: undo a transaction's operations, newest first, from its records alone.

Nothing is changed unless every operation can be undone: files edited since the
transaction (neither as it found them nor as it left them) refuse the rollback, or with
``force`` are moved aside into the transaction's ``edited/`` first. Each undo is itself
journaled (``undone``, ``aside``), so an interrupted rollback resumes where it stopped.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.discover.crontab import INSTALLED as INSTALLED_CRONTAB
from migrate.journal import records as rec
from migrate.journal import tree
from migrate.journal.crontab import InstalledCrontab, Resource
from migrate.journal.errors import EditedSince, JournalError, OutsideHome, UnknownTransaction
from migrate.journal.fs import (
    DIR,
    NAME_KEEP,
    PRIVATE_FILE,
    create_private,
    folder_of,
    free_name,
    fsync_dir,
    meta_of,
    open_folder,
    open_in_place,
    private_dir,
    read_existing,
    read_file,
    real_home,
    recorded,
    sha256,
    shown,
    state_of,
    temp_name,
    write_all,
    write_in_place,
    write_temp,
)
from migrate.journal.lock import require_lock
from migrate.journal.store import (
    BACKUPS,
    EDITED,
    JOURNAL,
    Loaded,
    Steps,
    append,
    load,
    load_all,
    now,
    repair_tail,
    torn,
)
from migrate.layout import JOURNALS_DIR, STATE_DIR
from migrate.paths import is_inside
from migrate.privilege import Owner, grant_refused, owner_of

_FileIntent = rec.WriteIntent | rec.MkdirIntent | rec.InstallIntent


@dataclass(frozen=True)
class RollbackResult:
    id: str
    restored: tuple[Path, ...]
    removed: tuple[Path, ...]
    kept_aside: tuple[Path, ...]
    """Where edited files were kept (inside the transaction's ``edited/``), not where they were."""
    already: bool


def rollback(
    home: Path,
    txn_id: str | None = None,
    *,
    force: bool = False,
    crontab: Callable[[Owner | None], Resource] = InstalledCrontab,
) -> RollbackResult:
    """Undo a transaction (default: the newest not rolled back), newest change first.

    Refuses with EditedSince, changing nothing, when a file (or the installed crontab, named
    ``Path("crontab -l")``) it would restore or remove is neither as the transaction left it
    nor as it found it (a deleted one is simply restored); ``force`` moves each such file
    aside into the transaction's ``edited/`` first, and keeps such a crontab's text there.
    Idempotent: a rolled-back transaction is reported with ``already=True`` and not touched;
    with no id and nothing left to roll back, that is the newest one. Resumes a rollback
    that was interrupted. The caller holds ``home_lock`` (and, for the installed crontab, is
    the user whose crontab it replaced, or root on that user's home).
    """
    home_real = real_home(home)
    require_lock(home_real)
    loaded = load_all(home_real)
    if txn_id is None:
        if not loaded:
            raise UnknownTransaction(f"no transaction in {home_real / STATE_DIR / JOURNALS_DIR}")
        pending = [t for t in loaded if t.info.state != "rolled-back"]
        chosen = pending[-1] if pending else loaded[-1]
    else:
        found = [t for t in loaded if t.info.id == txn_id]
        if not found:
            raise UnknownTransaction(f"no transaction {txn_id!r} in {home_real}")
        chosen = found[0]
    if chosen.info.state == "rolled-back":
        return _result(home_real, chosen, already=True)
    newer = [t for t in loaded if t.seq > chosen.seq and t.info.state != "rolled-back"]
    try:
        _Undo(home_real, chosen, force, crontab).run(newer)
    except OSError as exc:  # a full disk, a read-only remount: stopped, resumable
        where = f" ({exc.filename})" if exc.filename else ""
        raise JournalError(
            f"rollback of {chosen.info.id} stopped: {exc.strerror or exc}{where}; what it "
            "undid so far is journaled: fix that and run rollback again to finish it"
        ) from exc
    return _result(home_real, load(home_real, chosen.info.path), already=False)


class _Undo:
    """One rollback run over one transaction."""

    def __init__(
        self, home: Path, txn: Loaded, force: bool, crontab: Callable[[Owner | None], Resource]
    ) -> None:
        self.home = home
        self.txn = txn
        self.force = force
        self.steps = Steps()
        self.journal = txn.info.path / JOURNAL
        self.tag = txn.info.id.rsplit("-", 1)[1]
        self._make_crontab = crontab
        self._crontab: Resource | None = None
        self.writer = owner_of(home)
        """Who else could have written this journal (see :mod:`migrate.privilege`)."""
        records = txn.records
        undone = {r.n for r in records if isinstance(r, rec.Undone)}
        self.done = {r.n for r in records if isinstance(r, rec.Done)}
        restoring = {r.n for r in records if isinstance(r, rec.Restoring)}
        self.half_written = {
            r.n
            for r in records
            if isinstance(r, rec.WriteIntent)
            and r.in_place
            and (r.n not in self.done or r.n in restoring)
        }
        """In-place writes (or in-place restores) cut short: what their file holds may be
        part ours, part the other text."""
        intents = [r for r in records if isinstance(r, rec.INTENTS)]
        self.pending: list[rec.Intent] = sorted(
            (r for r in intents if r.n not in undone), key=lambda r: r.n, reverse=True
        )
        self.ours = {p for r in intents for p in _OPERATIONS[type(r)].leftovers(self, r)}
        """What undoing the operations takes away or puts back (a resumed rollback's
        restores included): never an edit."""
        self._listings: dict[int, dict[str, tree.Entry]] = {}

    def run(self, newer: Sequence[Loaded] = ()) -> None:
        """Undo every pending operation, newest first; ``newer``: the transactions made
        after this one and not rolled back, whose changes it must not take away."""
        edited = self._edited()
        self._not_newer(edited, newer)
        if edited and not self.force:
            shown_files = ", ".join(shown(p, self.home) for p in edited)
            raise EditedSince(
                f"rollback of {self.txn.info.id} changed nothing: edited since the transaction: "
                f"{shown_files} (force keeps each edit aside in {self.txn.info.path / EDITED})",
                tuple(edited),
            )
        if torn(self.journal):
            self.steps()
            repair_tail(self.journal)
        self.steps()
        append(self.journal, rec.RollbackBegin(self.force, now()))
        for record in self.pending:
            outcome = _OPERATIONS[type(record)].undo(self, record)
            self.steps()
            append(self.journal, outcome)
        self.steps()
        append(self.journal, rec.RolledBack(now()))

    def _not_newer(self, edited: Sequence[Path], newer: Sequence[Loaded]) -> None:
        """Refuse, changing nothing, when an edit since is a newer transaction's change (or
        holds one: a folder this one made, where a newer one installed a venv): ``force``
        would move it aside and break what that transaction migrated."""
        for txn in newer:
            for record in txn.records:
                if not isinstance(record, rec.INTENTS):
                    continue
                if isinstance(record, rec.CrontabIntent):
                    theirs = INSTALLED_CRONTAB
                else:
                    theirs = (
                        Path(record.path) if os.path.isabs(record.path) else self.home / record.path
                    )
                for path in edited:
                    if theirs == path or is_inside(theirs, path):
                        raise JournalError(
                            f"rollback of {self.txn.info.id} changed nothing: "
                            f"{shown(path, self.home)} holds what the newer transaction "
                            f"{txn.info.id} changed ({shown(theirs, self.home)}): roll that "
                            "one back first"
                        )

    def _edited(self) -> list[Path]:
        """Checks first: nothing is changed unless every operation can be undone. What is
        not as the transaction found or left it (newest operation first: the newest on a
        target decides): a target, or what was added inside a folder it installed."""
        edited: list[Path] = []
        seen: set[Path] = set()
        for record in self.pending:
            operation = _OPERATIONS[type(record)]
            target = operation.target(self, record)
            if target in seen:
                continue
            seen.add(target)
            edited.extend(operation.edits(self, record, target))
        return edited

    def path_of(self, rel: str, *, state_ok: bool = False, outside_ok: bool = False) -> Path:
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
            if self.writer is not None and _owner_uid(path) != self.writer.uid:
                raise JournalError(
                    f"{self.journal}: recorded path {rel!r} is outside the home and not "
                    f"{self.writer.name}'s, who can write this journal: refusing it"
                )
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

    def backup(self, name: str, before: str) -> bytes:
        backup = self.txn.info.path / BACKUPS / name
        try:
            data = read_file(backup)
        except OSError as exc:
            raise JournalError(f"backup {backup} cannot be read: {exc.strerror}") from None
        if sha256(data) != before:
            raise JournalError(f"backup {backup} does not match its sha256 in the journal")
        return data

    def _write(self, record: rec.WriteIntent) -> rec.Undone:
        path = self.path_of(record.path, outside_ok=record.op == "crontab-file")
        if os.path.isdir(path.parent):
            folder = self._folder_of(path)
        elif record.previous is None:
            return self._outcome(record.n, path, "absent", None)
        else:  # the user removed its folder: made again, hers
            folder = open_folder(
                self.home, path.parent.relative_to(self.home), create=True, owner=self.writer,
                mode=0o755,
            )  # fmt: skip
        try:
            return self._write_in(record, path, folder)
        finally:
            os.close(folder)

    def _write_in(self, record: rec.WriteIntent, path: Path, folder: int) -> rec.Undone:
        """Undo a write, every file operation through ``folder``, a descriptor on its
        folder reached without following a link."""
        n = record.n
        self._remove_in(folder, record.temp)
        undo_temp = path.parent / temp_name(path.name, self.tag, n, "cm-undo")
        self._remove_in(folder, undo_temp.name)
        current = state_of(path)
        previous = record.previous
        expected = (None, None if previous is None else previous.before, record.after)
        aside = None
        if current not in expected:
            if n in self.half_written:  # ours, cut short; a copy, in case it is hers
                self._copy_aside(path, n)
            else:
                aside = self._aside(path, n)
        if previous is None:
            if current is None or aside is not None:
                return self._outcome(n, path, "removed" if aside else "absent", aside)
            self.steps()
            os.unlink(path.name, dir_fd=folder)
            os.fsync(folder)
            return self._outcome(n, path, "removed", None)
        xattrs = rec.decode_xattrs(previous.xattrs)
        mode = int(previous.mode, 8)
        owner = (previous.uid, previous.gid)
        if current == previous.before and meta_of(path) == (mode, owner, xattrs):
            return self._outcome(n, path, "unchanged", None)
        data = self.backup(previous.backup, previous.before)
        if (
            record.in_place
            and aside is None
            and self._restore_in_place(path, data, mode, n, folder)
        ):
            return self._outcome(n, path, "restored", None)
        self.steps()
        write_temp(
            undo_temp, data, owner=owner, xattrs=xattrs, mode=mode, strict_owner=False,
            folder=folder,
        )  # fmt: skip
        self.steps()
        os.rename(undo_temp.name, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
        return self._outcome(n, path, "restored", aside)

    def _remove_in(self, folder: int, name: str) -> None:
        """Remove a leftover of the journal's own (a temp, a venv's trash) from ``folder``."""
        info = _lstat_in(folder, name)
        if info is None:
            return
        self.steps()
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=folder)
        elif sys.version_info >= (3, 11):
            shutil.rmtree(name, dir_fd=folder)
        else:  # no dir_fd before 3.11: by the folder's name (what it is called now)
            shutil.rmtree(os.path.join(f"/proc/self/fd/{folder}", name))
        os.fsync(folder)

    def _restore_in_place(self, path: Path, data: bytes, mode: int, n: int, folder: int) -> bool:
        """Put the old text back into the file written in place, so its other names get it
        back too: only into a regular file of the journal's writer (as root, never one of
        someone else's); False when that is not what is there (restore by rename then)."""
        try:
            seen = os.lstat(path.name, dir_fd=folder)
        except FileNotFoundError:
            return False
        mine = os.geteuid() if self.writer is None else self.writer.uid
        if not stat.S_ISREG(seen.st_mode) or seen.st_nlink < 2 or seen.st_uid != mine:
            return False
        fd = open_in_place(path, seen, folder)
        try:
            self.steps()
            append(self.journal, rec.Restoring(n))
            self.steps()
            write_in_place(fd, data, mode)
        finally:
            os.close(fd)
        return True

    def _crontab_undo(self, record: rec.CrontabIntent) -> rec.Undone:
        crontab = self.crontab()
        current = crontab.read()
        state = None if current is None else sha256(current)
        if state == record.before:  # both None: there was none and there is none
            action = "unchanged" if record.existed else "absent"
            return self._crontab_outcome(record.n, action, None)
        aside = None
        if current is not None and state != record.after:
            aside = self._crontab_aside(current, record.n)
        if record.before is None or record.backup is None:
            self.steps()
            crontab.remove()
            return self._crontab_outcome(record.n, "removed", aside)
        data = self.backup(record.backup, record.before)
        self.steps()
        crontab.install(data)
        return self._crontab_outcome(record.n, "restored", aside)

    def _crontab_aside(self, data: bytes, n: int) -> Path:
        """Keep an edited crontab's text in ``edited/``, or refuse without ``force``."""
        if not self.force:
            raise EditedSince(
                "the installed crontab (crontab -l) was edited during the rollback",
                (INSTALLED_CRONTAB,),
            )
        edited = private_dir(self.home, self.txn.info.path / EDITED, create=True)
        kept = edited / f"{n:04d}-crontab"
        if os.path.lexists(kept):  # kept by a run cut short: the crontab still holds the edit
            os.unlink(kept)
        self.steps()
        append(
            self.journal,
            rec.Aside(
                n, str(INSTALLED_CRONTAB), os.path.relpath(kept, self.txn.info.path), crontab=True
            ),
        )
        self.steps()
        create_private(kept, data, self.writer)
        return kept

    def _crontab_outcome(self, n: int, action: rec.Action, aside: Path | None) -> rec.Undone:
        kept = None if aside is None else os.path.relpath(aside, self.txn.info.path)
        return rec.Undone(n, action, str(INSTALLED_CRONTAB), kept, crontab=True)

    def crontab(self) -> Resource:
        if self._crontab is None:
            self._crontab = self._make_crontab(self.writer)
        return self._crontab

    def own_crontab(self, record: rec.CrontabIntent) -> None:
        """The crontab put back is the home's user's (:meth:`crontab`), whatever the record
        says: one naming another user's is refused (the home's owner can write the journal,
        and root must not install her text as root's crontab)."""
        crontab = self.crontab()
        if record.uid != crontab.uid:
            raise JournalError(
                f"{self.journal}: operation {record.n} replaced the crontab of "
                f"{record.user} (uid {record.uid}), not {crontab.user}'s, whose home this is: "
                + ("roll back as that user" if self.writer is None else "refusing the rollback")
                + ", nothing changed"
            )

    def _mkdir(self, record: rec.MkdirIntent) -> rec.Undone:
        path = self.path_of(record.path)
        current = state_of(path)
        if current is None:
            return self._outcome(record.n, path, "absent", None)
        if current == DIR and not os.listdir(path):
            self.steps()
            folder = self._folder_of(path)
            try:
                os.rmdir(path.name, dir_fd=folder)
                os.fsync(folder)
            finally:
                os.close(folder)
            return self._outcome(record.n, path, "removed", None)
        return self._outcome(record.n, path, "removed", self._aside(path, record.n))

    def _install(self, record: rec.InstallIntent) -> rec.Undone:
        n = record.n
        path = self.path_of(record.path)
        staged = self.path_of(record.staged, state_ok=True)
        if os.path.isdir(path.parent):  # else the user removed its folder: nothing left there
            folder = self._folder_of(path)
            try:
                done = self._take_away(record, path, folder)
            finally:
                os.close(folder)
            if done is not None:
                return done
        if n not in self.done and state_of(staged) == DIR:
            self._remove(staged)  # built for this transaction, never installed
            return self._outcome(n, staged, "removed", None)
        return self._outcome(n, path, "absent", None)

    def _take_away(self, record: rec.InstallIntent, path: Path, folder: int) -> rec.Undone | None:
        """Take an installed folder away (what was added to it kept aside first): renamed to
        a trash name, then removed, so a crash in the slow removal is resumed from the
        trash. None when nothing of it is there."""
        n = record.n
        trash = temp_name(path.name, self.tag, n, "cm-trash")
        resumed = _lstat_in(folder, trash) is not None  # renamed away before a crash
        self._remove_in(folder, trash)
        current = state_of(path)
        if current == DIR:
            for added in self.added(record, path):
                self._aside(added, n, within=path)
            self.steps()
            os.rename(path.name, trash, src_dir_fd=folder, dst_dir_fd=folder)
            os.fsync(folder)
            self._remove_in(folder, trash)
            return self._outcome(n, path, "removed", None)
        if current is not None:
            return self._outcome(n, path, "removed", self._aside(path, n))
        return self._outcome(n, path, "removed", None) if resumed else None

    def _remove(self, path: Path) -> None:
        """Remove a leftover of the journal's own (temp, trash, staged dir) if there is one."""
        current = state_of(path)
        if current is None:
            return
        self.steps()
        if current == DIR:
            shutil.rmtree(path)
        else:
            os.unlink(path)
        fsync_dir(path.parent)

    def added(self, record: rec.InstallIntent, path: Path) -> list[Path]:
        """What was added to (or changed in) an installed folder since, per its listing;
        nothing for a journal written before listings were kept."""
        if record.tree is None or record.tree_sha256 is None:
            return []
        listed = self._listings.get(record.n)
        if listed is None:  # read once: the checks and the undo both ask
            try:
                listed = tree.loads(self.backup(record.tree, record.tree_sha256))
            except ValueError:
                raise JournalError(
                    f"backup {record.tree} of {self.journal} is not a listing"
                ) from None
            self._listings[record.n] = listed
        return tree.added_or_changed(path, listed, self.ours)

    def _aside(self, path: Path, n: int, *, within: Path | None = None) -> Path:
        """Move an edited file or folder into ``edited/``, or refuse without ``force``.
        ``within``: a folder being taken away, whose inner paths are kept by their place in
        it (``edited/NNNN-venv/lib/...``). Both folders are held by descriptors reached
        without following a link, so what she swaps meanwhile never redirects the move;
        a name already taken in ``edited/`` (an earlier edit) gets a number, never lost."""
        if not self.force:
            raise EditedSince(f"{path} was edited during the rollback", (path,))
        edited = private_dir(self.home, self.txn.info.path / EDITED, create=True)
        kept = edited / f"{n:04d}-{path.name[:NAME_KEEP]}"
        if within is not None:
            kept = edited / f"{n:04d}-{within.name[:NAME_KEEP]}" / path.relative_to(within)
        into = open_folder(
            self.home, kept.parent.relative_to(self.home), create=True, owner=self.writer
        )
        try:
            source = self._folder_of(path)
            try:
                kept = kept.with_name(free_name(into, kept.name))
                self.steps()
                append(
                    self.journal,
                    rec.Aside(
                        n, recorded(path, self.home), os.path.relpath(kept, self.txn.info.path)
                    ),
                )
                self.steps()
                try:
                    os.rename(path.name, kept.name, src_dir_fd=source, dst_dir_fd=into)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    raise JournalError(
                        f"{path} cannot be kept aside in {edited}: another file system"
                    ) from None
                os.fsync(into)
                os.fsync(source)
            finally:
                os.close(source)
        finally:
            os.close(into)
        return kept

    def _copy_aside(self, path: Path, n: int) -> Path:
        """Keep a copy of what ``path`` holds in ``edited/`` (the file stays: its other
        names share it), whatever ``force`` says: text that may be the user's, about to be
        overwritten."""
        edited = private_dir(self.home, self.txn.info.path / EDITED, create=True)
        into = open_folder(self.home, edited.relative_to(self.home))
        try:
            name = free_name(into, f"{n:04d}-{path.name[:NAME_KEEP]}")
            kept = edited / name
            source = self._folder_of(path)
            try:
                found = read_existing(path, source)
            finally:
                os.close(source)
            data = b"" if found is None else found[0]
            self.steps()
            append(
                self.journal,
                rec.Aside(n, recorded(path, self.home), os.path.relpath(kept, self.txn.info.path)),
            )
            self.steps()
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                PRIVATE_FILE, dir_fd=into,
            )  # fmt: skip
            try:
                write_all(fd, data)
                if self.writer is not None:
                    os.fchown(fd, self.writer.uid, self.writer.gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.fsync(into)
        finally:
            os.close(into)
        return kept

    def _folder_of(self, path: Path) -> int:
        return folder_of(self.home, path)

    def _outcome(self, n: int, path: Path, action: rec.Action, aside: Path | None) -> rec.Undone:
        kept = None if aside is None else os.path.relpath(aside, self.txn.info.path)
        return rec.Undone(n, action, recorded(path, self.home), kept)


def _lstat_in(folder: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return None


def _file_target(
    undo: _Undo, record: rec.WriteIntent | rec.MkdirIntent | rec.InstallIntent
) -> Path:
    """The recorded path, refused now if its backup is bad, a folder on its way became a
    symlink, or (outside the home) its folder is gone."""
    is_file = isinstance(record, rec.WriteIntent)
    if is_file and record.previous is not None:
        undo.backup(record.previous.backup, record.previous.before)
    path = undo.path_of(record.path, outside_ok=is_file and record.op == "crontab-file")
    if is_file and record.previous is not None:
        _check_grant(undo, record, path)
    if record.existed and not is_inside(path, undo.home) and not path.parent.is_dir():
        raise JournalError(f"{path.parent} is gone: put it back to restore {path} in it")
    if isinstance(record, rec.InstallIntent):
        undo.path_of(record.staged, state_ok=True)
    return path


def _owner_uid(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


def _check_grant(undo: _Undo, record: rec.WriteIntent, path: Path) -> None:
    """Refuse a restore that would give more than the journal's writer could set: the
    home's owner can write the journal, so a record naming root:root 4755 is a forgery."""
    previous = record.previous
    assert previous is not None
    try:
        current: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        current = None
    why = grant_refused(previous.uid, previous.gid, int(previous.mode, 8), current, undo.writer)
    if why is not None:
        raise JournalError(
            f"{undo.journal}: operation {record.n} would restore {path} with {why}, which "
            f"{undo.writer.name if undo.writer else 'its writer'} (who can write this "
            "journal) could not have set: refusing the rollback, nothing changed"
        )


def _crontab_target(undo: _Undo, record: rec.CrontabIntent) -> Path:
    if record.before is not None and record.backup is not None:
        undo.backup(record.backup, record.before)
    undo.own_crontab(record)
    return INSTALLED_CRONTAB


def _written_edits(undo: _Undo, record: rec.WriteIntent, path: Path) -> list[Path]:
    if record.n in undo.half_written:
        return []  # cut short mid-write: undone whatever it holds (a copy is kept)
    before = None if record.previous is None else record.previous.before
    return [] if state_of(path) in (None, before, record.after) else [path]


def _made_edits(undo: _Undo, record: rec.MkdirIntent, path: Path) -> list[Path]:
    current = state_of(path)
    if current is None or (
        current == DIR and all(path / name in undo.ours for name in os.listdir(path))
    ):
        return []
    return [path]


def _installed_edits(undo: _Undo, record: rec.InstallIntent, path: Path) -> list[Path]:
    current = state_of(path)
    if current is None:
        return []
    return undo.added(record, path) if current == DIR else [path]


def _crontab_edits(undo: _Undo, record: rec.CrontabIntent, path: Path) -> list[Path]:
    state = undo.crontab().state()
    return [] if state is None or state in (record.before, record.after) else [path]


def _written_leftovers(undo: _Undo, record: rec.WriteIntent) -> set[Path]:
    path = undo.home / record.path
    undo_temp = temp_name(path.name, undo.tag, record.n, "cm-undo")
    return {path, path.parent / record.temp, path.parent / undo_temp}


def _installed_leftovers(undo: _Undo, record: rec.InstallIntent) -> set[Path]:
    path = undo.home / record.path
    trash = temp_name(path.name, undo.tag, record.n, "cm-trash")
    return {path, undo.home / record.staged, path.parent / trash}


@dataclass(frozen=True)
class _Operation:
    """What rollback knows of one kind of journaled operation (the transaction's methods
    are the other half: each journals its intent, then acts)."""

    target: Callable[[_Undo, Any], Path]
    """What it changed, after the checks that refuse a rollback before anything moves."""
    edits: Callable[[_Undo, Any, Path], list[Path]]
    """What is not as the transaction found or left it (edited since): its target, or
    what was added inside it; none when all is."""
    leftovers: Callable[[_Undo, Any], set[Path]]
    """What undoing it takes away: not a sign of an edit inside a folder it made."""
    undo: Callable[[_Undo, Any], rec.Undone]


_OPERATIONS: dict[type[rec.Intent], _Operation] = {
    rec.WriteIntent: _Operation(_file_target, _written_edits, _written_leftovers, _Undo._write),
    rec.MkdirIntent: _Operation(
        _file_target, _made_edits, lambda u, r: {u.home / r.path}, _Undo._mkdir
    ),
    rec.InstallIntent: _Operation(
        _file_target, _installed_edits, _installed_leftovers, _Undo._install
    ),
    rec.CrontabIntent: _Operation(
        _crontab_target, _crontab_edits, lambda u, r: set(), _Undo._crontab_undo
    ),
}
"""The one table of operations rollback undoes, by record type."""


def _result(home: Path, txn: Loaded, *, already: bool) -> RollbackResult:
    restored: list[Path] = []
    removed: list[Path] = []
    aside: list[Path] = []
    for record in txn.records:
        if isinstance(record, rec.Aside):
            kept = txn.info.path / record.kept
            if os.path.lexists(kept) and kept not in aside:  # a crash can come before the move
                aside.append(kept)
        if not isinstance(record, rec.Undone):
            continue
        path = INSTALLED_CRONTAB if record.crontab else home / record.path
        if record.action == "restored" and path not in restored:
            restored.append(path)
        elif record.action == "removed" and path not in removed:
            removed.append(path)
    return RollbackResult(txn.info.id, tuple(restored), tuple(removed), tuple(aside), already)

"""The journal on disk: one private folder per transaction, its records, its state.

``HOME/.concentric-migrate/journal/<id>/`` (0700) holds an append-only ``journal.jsonl``
(0600), ``backups/`` (0700, copies 0600) and, after a forced rollback, ``edited/``. A
transaction's state is read from its records alone, so a crash at any point leaves a
folder that says what happened.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from migrate.discover.crontab import INSTALLED as INSTALLED_CRONTAB
from migrate.journal import records as rec
from migrate.journal.errors import JournalError
from migrate.journal.fs import private_dir, read_file, write_all
from migrate.layout import JOURNALS_DIR, STATE_DIR

CRASH_ENV = "CONCENTRIC_MIGRATE_CRASH_AT"
JOURNAL = "journal.jsonl"
BACKUPS = "backups"
EDITED = "edited"
TRANSACTION_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")

State = Literal["open", "committed", "rolled-back"]


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
class Loaded:
    """A transaction as read from its folder: what it says of itself, and every record."""

    info: TransactionInfo
    seq: int
    records: tuple[rec.Record, ...]


class Steps:
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


def state_dir(home_real: Path, *, create: bool) -> Path:
    return private_dir(home_real, home_real / STATE_DIR, create=create)


def journals_dir(home_real: Path) -> Path | None:
    """HOME/.concentric-migrate/journal when it exists (checked: a real folder)."""
    if not os.path.lexists(home_real / STATE_DIR):
        return None
    journals = state_dir(home_real, create=False) / JOURNALS_DIR
    return private_dir(home_real, journals, create=False) if os.path.lexists(journals) else None


def make_journals_dir(home_real: Path) -> Path:
    return private_dir(home_real, state_dir(home_real, create=True) / JOURNALS_DIR, create=True)


def load_all(home_real: Path) -> list[Loaded]:
    """Every transaction of the home, oldest first."""
    journals = journals_dir(home_real)
    if journals is None:
        return []
    loaded = [
        load(home_real, entry)
        for entry in journals.iterdir()
        if TRANSACTION_ID.match(entry.name) and not entry.is_symlink() and entry.is_dir()
    ]
    return sorted(loaded, key=lambda t: (t.seq, t.info.created, t.info.id))


def load(home_real: Path, folder: Path) -> Loaded:
    records = read_records(folder / JOURNAL)
    first = records[0] if records else None
    if not isinstance(first, rec.Begin) or first.id != folder.name:
        raise JournalError(f"{folder / JOURNAL} does not start with its begin record")
    kinds = {type(r) for r in records}
    state: State
    if rec.RolledBack in kinds:
        state = "rolled-back"
    elif rec.Commit in kinds and rec.RollbackBegin not in kinds:
        state = "committed"
    else:
        state = "open"
    files: dict[Path, None] = {}
    for record in records:
        if isinstance(record, rec.CrontabIntent):
            files[INSTALLED_CRONTAB] = None
        elif isinstance(record, rec.INTENTS):
            files[home_real / record.path] = None
    info = TransactionInfo(
        id=folder.name,
        path=folder,
        state=state,
        created=first.created,
        description=first.description,
        files=tuple(files),
    )
    return Loaded(info, first.seq, tuple(records))


def read_records(journal: Path) -> list[rec.Record]:
    """Every complete record; a torn last line (a crash mid-append) is not one."""
    try:
        data = read_file(journal)
    except OSError as exc:
        raise JournalError(f"{journal} cannot be read: {exc.strerror}") from None
    records = []
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            records.append(rec.loads(line))
        except ValueError:
            raise JournalError(f"{journal}: line {number} is not a journal record") from None
    return records


def append(journal: Path, record: rec.Record) -> None:
    """One record, durable before the next step starts."""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        write_all(fd, rec.dumps(record))
        os.fsync(fd)
    finally:
        os.close(fd)


def torn(journal: Path) -> bool:
    data = read_file(journal)
    return bool(data) and not data.endswith(b"\n")


def repair_tail(journal: Path) -> None:
    """Cut a torn last line so the next append starts on a line of its own."""
    data = read_file(journal)
    fd = os.open(journal, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, data.rfind(b"\n") + 1)
        os.fsync(fd)
    finally:
        os.close(fd)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

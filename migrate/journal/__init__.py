"""Write-ahead journal: the only code that writes the user's files and crontab, and the way back.

Hand-written: no library journals byte-exact edits with owners, modes, ACLs and a crontab,
resumable after a crash at any step. The parts, each a module: :mod:`.lock` (one writer per
home), :mod:`.records` (one frozen type per journal line), :mod:`.store` (the transaction
folders on disk), :mod:`.fs` (durable, symlink-safe file primitives), :mod:`.crontab` (the
installed crontab as a resource), :mod:`.tree` (what an installed folder held),
:mod:`.transaction` (``begin``, ``session``: changes
recorded before they are made) and :mod:`.undo` (``rollback``).

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
  append (5); of one with other names (hard links), written in place: backup write,
  intent append, the write, done append (4); of a new file: the ``make_dir`` steps of
  missing parents, then intent, temp, rename, done (4);
- ``make_dir``: intent append, mkdir, done append (3); ``install_dir``: the ``make_dir``
  steps of missing parents, then the listing's write, intent append, rename, done append
  (4);
- ``set_crontab`` of a file: as ``write_file`` (5, or 4 plus the parents' for a new
  file); of the installed crontab: backup write (only when there is one), intent append,
  ``crontab -``, done append (4, or 3);
- ``commit``: the commit append (1);
- ``rollback``: repairing a torn last journal line (when there is one), the
  ``rollback-begin`` append, then per operation undone (newest first) each removal of a
  leftover temp, ``aside`` append and move of an edited file (force) — for a venv, of
  each file added to it or changed in it —, temp write (or, for a file written in place,
  the ``restoring`` append and the write), rename, removal, for the
  installed crontab the ``aside`` append and write of its edited text (force) and
  ``crontab -`` (or ``crontab -r``), and the ``undone`` append; finally the
  ``rolled-back`` append.

Beyond the last step the variable does nothing.
"""

from migrate.journal.crontab import InstalledCrontab, Resource
from migrate.journal.errors import (
    EditedSince,
    JournalError,
    LockHeld,
    OutsideHome,
    OwnerNotKept,
    SessionAborted,
    TargetChanged,
    TransactionOpen,
    UnknownTransaction,
)
from migrate.journal.lock import home_lock
from migrate.journal.store import CRASH_ENV, State, TransactionInfo
from migrate.journal.transaction import Transaction, begin, session, transactions
from migrate.journal.undo import RollbackResult, rollback

__all__ = [
    "CRASH_ENV",
    "EditedSince",
    "InstalledCrontab",
    "JournalError",
    "LockHeld",
    "OutsideHome",
    "OwnerNotKept",
    "Resource",
    "RollbackResult",
    "SessionAborted",
    "State",
    "TargetChanged",
    "Transaction",
    "TransactionInfo",
    "TransactionOpen",
    "UnknownTransaction",
    "begin",
    "home_lock",
    "rollback",
    "session",
    "transactions",
]

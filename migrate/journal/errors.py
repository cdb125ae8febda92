"""What the journal refuses or cannot do, one exception per reason a caller acts on."""

from __future__ import annotations

from pathlib import Path


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


class TargetChanged(JournalError):
    """A write planned from bytes that are no longer there (compare-and-swap); nothing was
    written."""

    def __init__(self, message: str, target: Path | None) -> None:
        super().__init__(message)
        self.target = target
        """The file, or None for the installed crontab."""


class UnknownTransaction(JournalError):
    """No transaction with that id (or none at all) in the home."""


class TransactionOpen(JournalError):
    """A transaction is still open (crashed or failed): roll it back before beginning anew."""


class OwnerNotKept(JournalError):
    """Rewriting the file would change its owner or group, which this process cannot keep."""


class SessionAborted(JournalError):
    """A session's block failed (``cause``; Ctrl-C included) and its transaction was rolled
    back (``rolled_back``), or the rollback stopped and ``rollback`` must finish it.
    ``kept_aside``: where the rollback kept edits made meanwhile (in the transaction's
    ``edited/``), to be reported."""

    def __init__(
        self,
        cause: BaseException,
        transaction: str,
        rolled_back: bool,
        kept_aside: tuple[Path, ...] = (),
    ) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.transaction = transaction
        self.rolled_back = rolled_back
        self.kept_aside = kept_aside

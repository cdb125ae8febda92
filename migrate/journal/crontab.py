"""A user's installed crontab as a journal resource: read, replaced, restored.

Only through the ``crontab`` command, never a shell and never the spool file: cron checks
the text and replaces the crontab atomically. It acts on the invoking user's crontab, or,
for root working on another user's home, on that user's (``crontab -u NAME``): the one her
cron jobs run from. Whose it is comes from the home (:func:`migrate.privilege.owner_of`),
never from a journal record, which the home's owner can write.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from migrate.journal.errors import JournalError
from migrate.journal.fs import sha256
from migrate.privilege import Owner, owner_of

TIMEOUT = 60.0
"""Seconds a ``crontab`` command may take before it counts as failed."""
_NO_CRONTAB = re.compile(rb"^no crontab for ", re.MULTILINE)


class InstalledCrontab:
    """A user's installed crontab, through the ``crontab`` command (never a shell): the
    invoking user's, or ``owner``'s (``crontab -u``, which only root may use)."""

    def __init__(self, owner: Owner | None = None) -> None:
        command = shutil.which("crontab")
        if command is None:
            raise JournalError(
                "the crontab command is not installed (on Debian: package cron), so the "
                "installed crontab can be neither read nor replaced nor restored"
            )
        self.command = command
        self.uid = os.getuid() if owner is None else owner.uid
        self.user = user_name() if owner is None else owner.name
        self._for = () if owner is None else ("-u", owner.name)

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
        return None if data is None else sha256(data)

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
                [self.command, *self._for, option],
                input=data,
                capture_output=True,
                timeout=TIMEOUT,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise JournalError(
                f"{self.command} {option} did not finish within {TIMEOUT:g} s"
            ) from None
        except OSError as exc:
            raise JournalError(f"{self.command} {option} cannot run: {exc.strerror}") from None

    def _failed(self, option: str, done: subprocess.CompletedProcess[bytes]) -> JournalError:
        said = done.stderr.decode("utf-8", "replace").strip() or "it said nothing"
        return JournalError(f"{self.command} {option} failed (exit {done.returncode}): {said}")


def installed_crontab(home: Path) -> InstalledCrontab | None:
    """The installed crontab the home's cron jobs run from, when the caller may use it:
    root's on another user's home is that user's; anyone's own home (``~``) has hers; of
    another home, a user can read no crontab. None also when ``crontab`` is not installed."""
    if shutil.which("crontab") is None:
        return None
    owner = owner_of(home)
    if owner is not None:
        try:
            pwd.getpwuid(owner.uid)
        except KeyError:  # no such user: cron keeps no crontab for her
            return None
        return InstalledCrontab(owner)
    if os.path.realpath(home) != os.path.realpath(os.path.expanduser("~")):
        return None
    return InstalledCrontab()


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


class Resource(Protocol):
    """What the journal needs of a crontab it does not hold as a file (``crontab -l``)."""

    command: str
    uid: int
    user: str
    """Whose crontab it is."""

    def read(self) -> bytes | None: ...
    def state(self) -> str | None: ...
    def install(self, data: bytes) -> None: ...
    def remove(self) -> None: ...

"""The invoking user's installed crontab as a journal resource: read, replaced, restored.

Only through the ``crontab`` command, never a shell and never the spool file: cron checks
the text and replaces the crontab atomically, and it acts on the invoking user's alone.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from typing import Protocol

from migrate.journal.errors import JournalError
from migrate.journal.fs import sha256

TIMEOUT = 60.0
"""Seconds a ``crontab`` command may take before it counts as failed."""
_NO_CRONTAB = re.compile(rb"^no crontab for ", re.MULTILINE)


class InstalledCrontab:
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
                [self.command, option],
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


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


class Resource(Protocol):
    """What the journal needs of a crontab it does not hold as a file (``crontab -l``)."""

    command: str

    def read(self) -> bytes | None: ...
    def state(self) -> str | None: ...
    def install(self, data: bytes) -> None: ...
    def remove(self) -> None: ...

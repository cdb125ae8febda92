"""Progress of long commands, through the standard :mod:`logging`: one reporter for all.

The library never prints and takes no callbacks. A step of ``run`` or a rollback's restart
(``rewrite the crontab``) is an INFO record of the ``migrate`` logger; the progress of a
venv build is a DEBUG record carrying a :class:`BuildStep` (``record.build``), that of
the inventory one carrying the lib dir just read (``record.lib_dir``). Whoever drives the
library decides what is shown: the CLI attaches one handler for the length of a command
(progress bars and ``- step`` lines on a terminal; nothing under ``--json`` or ``-q``); a
program using the library gets ordinary log records, or nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrate.discover.account import LibDir

LOGGER = logging.getLogger("migrate")


@dataclass(frozen=True)
class BuildStep:
    """Progress: ``done`` of ``total`` units of ``stage`` (one per pin for ``repack``)."""

    app: str
    stage: str
    done: int
    total: int
    detail: str = ""


def step(message: str) -> None:
    """One step of a writing command, as the user should read it."""
    LOGGER.info(message, extra={"step": message})


def build(update: BuildStep) -> None:
    """A venv build moved on."""
    LOGGER.debug("%s: %s %s", update.app, update.stage, update.detail, extra={"build": update})


def lib_dir_read(lib: LibDir) -> None:
    """The inventory read one more lib dir."""
    LOGGER.debug("read %s", lib.path, extra={"lib_dir": lib})

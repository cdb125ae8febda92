"""What the CLI draws on stderr while a command works: the handler of :mod:`migrate.report`.

Progress bars (one per venv build, one for the inventory) only on a terminal; the steps of
``run`` and of a rollback's restarts as ``- step`` lines, in a pipe too. Nothing at all
under ``--json`` or ``-q``: the command then simply does not attach it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from migrate.report import LOGGER, BuildStep


class Terminal(logging.Handler):
    """Draws the library's report records; ignores those of worker processes (forked
    with this handler attached) and of other threads (apps staged at once), which report
    through this process's own thread instead."""

    def __init__(self, lib_dirs: int = 0) -> None:
        super().__init__(logging.DEBUG)
        self.pid = os.getpid()
        self.thread = threading.get_ident()
        self.tty = sys.stderr.isatty()
        self.lib_dirs = lib_dirs
        self._app: str | None = None
        self._bar: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        if os.getpid() != self.pid or threading.get_ident() != self.thread:
            return
        if (update := getattr(record, "build", None)) is not None:
            self._build(update)
        elif getattr(record, "lib_dir", None) is not None:
            self._lib_dir()
        elif (message := getattr(record, "step", None)) is not None:
            self.close_bar()
            click.echo(f"- {message}", err=True)

    def _build(self, update: BuildStep) -> None:
        """One bar per app; apps staged at once report as one, "apps", per app staged
        (their renames shown in its label)."""
        if not self.tty:
            return
        if update.app != self._app:
            if self._app == "apps" and update.stage == "rename":  # one of the apps staged
                self._bar.label = f"{update.app}: rename {update.detail}".rstrip()
                self._bar.render_progress()
                return
            self._open(update.app, 1, f"building {update.app}")
        if update.stage in ("staged", "repack"):  # repack: each distribution once a run
            self._bar.length = update.total
        elif update.stage == "venv":  # then per app: venv, install, relocate, rename
            self._bar.length = 4
        self._bar.label = f"{update.app}: {update.stage} {update.detail}".rstrip()
        self._bar.update(1)

    def _lib_dir(self) -> None:
        if not self.tty:
            return
        if self._app != "<inventory>":
            self._open("<inventory>", self.lib_dirs, "reading lib dirs")
        self._bar.update(1)

    def _open(self, key: str, length: int, label: str) -> None:
        self.close_bar()
        self._app = key
        self._bar = click.progressbar(length=length, label=label, file=sys.stderr)
        self._bar.__enter__()

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
            self._app = None

    def close(self) -> None:
        self.close_bar()
        super().close()


@contextlib.contextmanager
def reporting(show: bool, *, lib_dirs: int = 0) -> Iterator[None]:
    """Draw the library's reports for the length of the block (nothing unless ``show``)."""
    if not show:
        yield
        return
    handler = Terminal(lib_dirs)
    level = LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
        handler.close()

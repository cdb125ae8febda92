"""Pure rewriters, one per file kind: text in -> text out + what changed.

Each rewriter keeps every byte it does not mean to change (comments, order, whitespace,
line endings), never reads the file system and never writes: the ``run`` stage reads the
files, calls a rewriter, shows the diff and hands the new bytes to the journal.

What counts as *concentric* is decided here once, so every rewriter drops the same dirs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

_LIB_DIR = re.compile(r"^lib/python\d+(?:\.\d+)?(?:/.*)?$")
_APP_LIB_DIR = re.compile(r"^webapps/[^/]+/lib/python\d+(?:\.\d+)?(?:/.*)?$")
_SITE_PACKAGES = re.compile(r"(?:^|/)(?:site|dist)-packages(?:/.*)?$")
MARKER = "concentric-migrate:"
"""Prefix of every comment a rewriter adds, so a reader (and ``grep``) finds them."""


@dataclass(frozen=True)
class Change:
    line: int
    """1-based line of the input where the change starts."""
    before: str
    after: str
    why: str


@dataclass(frozen=True)
class Rewrite:
    text: str
    changes: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class CannotRewrite(ValueError):
    """The input cannot be rewritten safely (the message says why and what to do)."""


def expand_home(value: str, home: str) -> str:
    """``~``, ``~/x``, ``$HOME/x`` and ``${HOME}/x`` -> absolute under ``home``; else as is."""
    if value == "~" or value.startswith("~/"):
        return home.rstrip("/") + value[1:]
    for prefix in ("${HOME}", "$HOME"):
        if value == prefix or value.startswith(prefix + "/"):
            return home.rstrip("/") + value[len(prefix) :]
    return value


def is_concentric_dir(value: str, home: str) -> bool:
    """A path that puts concentric installs on ``sys.path``.

    That is ``HOME/lib/pythonX.Y`` and ``HOME/webapps/APP/lib/pythonX.Y`` (and anything
    below them, such as an egg inside), and any other environment's ``site-packages`` or
    ``dist-packages``. App code dirs, relative paths and unknown forms are not.
    """
    path = expand_home(value.strip(), home)
    if not path.startswith("/"):
        return False
    path = posixpath.normpath(path)
    if _SITE_PACKAGES.search(path):
        return True
    root = posixpath.normpath(home)
    if not path.startswith(root.rstrip("/") + "/"):
        return False
    relative = path[len(root.rstrip("/")) + 1 :]
    return bool(_LIB_DIR.match(relative) or _APP_LIB_DIR.match(relative))


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1


def splice(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, new)`` span replaced; spans sorted, not overlapping."""
    out = []
    position = 0
    for start, end, new in edits:
        out.append(text[position:start])
        out.append(new)
        position = end
    out.append(text[position:])
    return "".join(out)

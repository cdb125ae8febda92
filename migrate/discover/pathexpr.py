"""What a static path expression in Python source means: one table for reader and editor.

The plan reads ``sys.path`` edits with ``ast`` (:mod:`migrate.discover._scan_source`, which
may run under the account's old interpreter and so only names operations) and the
rewriter reads them from tokens (:mod:`migrate.rewrite._pyeval`). Both hand each operation
here, so the two can never disagree about what ``os.path.join(HOME, 'lib/python2.7')`` is:
the path the plan models is the path the rewrite judges concentric.

Evaluated as POSIX paths for the account's home, never with the host's ``os.path`` (which
would read the operator's working directory or ``$HOME``): ``abspath``/``realpath`` of a
relative path and ``~user`` are not static.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence

_PERCENT_S_ONLY = re.compile(r"(?:[^%]|%[s%])*")


class NotStatic(ValueError):
    """The expression's value depends on what only running the code would tell."""


def _one(args: Sequence[str]) -> str:
    if len(args) != 1:
        raise NotStatic(f"{len(args)} arguments")
    return args[0]


def _join(args: Sequence[str], home: str) -> str:
    if not args:
        raise NotStatic("join()")
    return posixpath.join(*args)


def _absolute(args: Sequence[str], home: str) -> str:
    path = _one(args)
    if not path.startswith("/"):
        raise NotStatic(f"{path} is relative to the working directory")
    return posixpath.normpath(path)


def _expanduser(args: Sequence[str], home: str) -> str:
    path = _one(args)
    if path == "~" or path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    if path.startswith("~"):
        raise NotStatic(path)
    return path


def _environ(args: Sequence[str], home: str) -> str:
    """``os.environ['HOME']``, ``os.environ.get('HOME'[, default])``, ``os.getenv(...)``."""
    if not args or args[0] != "HOME":
        raise NotStatic(f"environment variable {args[0]}")
    return home


def _percent(args: Sequence[str], home: str) -> str:
    if not args:
        raise NotStatic("%")
    template, *values = args
    if not _PERCENT_S_ONLY.fullmatch(template):
        raise NotStatic("%")
    try:
        return template % tuple(values)
    except (TypeError, ValueError) as exc:
        raise NotStatic("%") from exc


def _format(args: Sequence[str], home: str) -> str:
    if not args:
        raise NotStatic("format")
    template, *values = args
    try:
        return template.format(*values)
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise NotStatic("format") from exc


OPERATIONS: dict[str, Callable[[Sequence[str], str], str]] = {
    "concat": lambda args, home: "".join(args),
    "percent": _percent,
    "format": _format,
    "os.path.join": _join,
    "os.path.dirname": lambda args, home: posixpath.dirname(_one(args)),
    "os.path.normpath": lambda args, home: posixpath.normpath(_one(args)),
    "os.path.abspath": _absolute,
    "os.path.realpath": _absolute,
    "os.path.expanduser": _expanduser,
    "os.environ": _environ,
}
"""Each static operation on strings: ``concat`` (``+``, f-string parts), ``percent``
(``'%s' % x``), ``format`` (``'{}'.format(x)``), the ``os.path`` functions and
``os.environ`` (``os.environ['HOME']``, ``.get``, ``os.getenv``)."""

ALIASES = {
    "os.getenv": "os.environ",
    "os.environ.get": "os.environ",
    "os.environ.__getitem__": "os.environ",
}


def canonical(dotted: str) -> str:
    """``posixpath.join`` and ``path.join`` (after ``from os import path``) are
    ``os.path.join``; the environment's readers are ``os.environ``."""
    head, _, rest = dotted.partition(".")
    if head in ("posixpath", "path") and rest:
        dotted = "os.path." + rest
    return ALIASES.get(dotted, dotted)


def evaluate(operation: str, args: Sequence[str], home: str) -> str:
    """The value of ``operation`` applied to ``args`` for an account at ``home``."""
    function = OPERATIONS.get(canonical(operation))
    if function is None:
        raise NotStatic(operation)
    return function(args, home)

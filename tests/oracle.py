"""Comparing the static path model with what a real runtime reported (tests' helpers).

A runtime reports through :mod:`migrate.resolve._probe` (copied next to the account's scripts and
WSGI files as ``probe_lib.py``): its ``sys.path`` and, per name, the file it would load.
Both sides are normalised the same way — normalised path entries, real paths of files,
``built-in`` for built-in modules, None for a name nothing provides.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from migrate.discover.entrypoints import EntryPoint
from migrate.discover.imports import scan_sources
from migrate.discover.interpreters import interpreter_at
from migrate.resolve import _probe
from migrate.resolve.syspath import PathModel, build_path_model

PROBE = Path(_probe.__file__)
"""The probe the tool itself serves: the installed copy, wherever the tests run from."""

Seen = tuple[list[str], dict[str, str | None]]


def model_of(entry: EntryPoint, home: Path) -> PathModel:
    """The model of ``entry`` with the interpreter its runtime starts and its own edits."""
    interpreter = interpreter_at(entry.executable) if entry.executable else None
    assert interpreter is not None, entry.executable_reason
    edits = scan_sources([entry.path], home, interpreter)[entry.path].path_edits
    return build_path_model(entry, interpreter, edits, home)


def predicted(model: PathModel, names: Iterable[str]) -> Seen:
    origins: dict[str, str | None] = {}
    for name in names:
        winner = model.resolve(name).winner
        if winner is None:
            origins[name] = None
        elif winner.kind == "builtin":
            origins[name] = "built-in"
        else:
            origins[name] = os.path.realpath(winner.origin) if winner.origin else None
    return [os.path.normpath(e.path) for e in model.entries], origins


def observed(report: dict[str, object]) -> Seen:
    origins = report["origins"]
    sys_path = report["sys_path"]
    assert isinstance(origins, dict) and isinstance(sys_path, list)
    real = {n: (os.path.realpath(o) if o and o != "built-in" else o) for n, o in origins.items()}
    return [os.path.normpath(p) for p in sys_path], real

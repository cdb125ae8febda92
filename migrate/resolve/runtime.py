"""Which interpreter each entry point of an app runs on, and which one makes its venv.

Rule 5 of the design: the runtime decides — mod_wsgi's libpython, the program cron finds,
the file a shebang names; ``--python X.Y=PATH`` only fills in where the runtime names no
file. Each function returns what it found and the findings it makes, never raises: the
plan lists those findings, and ``run`` refuses on the ``interpreter`` ones.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from migrate.discover.account import Account
from migrate.discover.entrypoints import EntryPoint
from migrate.discover.interpreters import Interpreter, interpreter_at
from migrate.findings import AppFinding


def with_override(
    entry: EntryPoint, interpreters: Mapping[str, Path] | None
) -> tuple[EntryPoint, list[AppFinding]]:
    """``--python X.Y=PATH`` says what ``pythonX.Y`` is where the runtime does not: an
    X.Y entry point whose interpreter was looked up by name, assumed, or not found. One
    the runtime names (a path, mod_wsgi's libpython) stays; mod_wsgi's differing from
    ``--python`` is a finding (its venv cannot be made with another Python)."""
    given = (interpreters or {}).get(entry.python or "")
    if given is None:
        return entry, []
    if entry.executable_named and entry.executable is not None:
        same = os.path.realpath(given) == os.path.realpath(entry.executable)
        if not same and entry.mod_wsgi is not None:
            return entry, [
                AppFinding(
                    "interpreter",
                    "mod_wsgi",
                    f"{entry.executable_reason}, not --python {entry.python}={given}: its "
                    "venv must be made with that Python; drop that --python or migrate this "
                    "app separately with --app",
                )
            ]
        return entry, []
    why = f"--python {entry.python}={given}"
    return dataclasses.replace(entry, executable=Path(given), executable_reason=why), []


def interpreter_of(
    entry: EntryPoint, account: Account, app: str
) -> tuple[Interpreter | None, list[AppFinding]]:
    """The facts of the interpreter the entry point's runtime starts."""
    if entry.python is None:
        why = f"cannot tell which Python runs it ({entry.python_reason})"
        return None, [AppFinding("interpreter", str(entry.path), why)]
    if entry.executable is None:
        why = (
            f"{entry.path}: no interpreter to model it with ({entry.executable_reason}): "
            f"name it with --python {entry.python}=/path/to/python{entry.python}"
        )
        return None, [AppFinding("interpreter", f"python{entry.python}", why)]
    interpreter = interpreter_at(entry.executable)
    if interpreter is None or interpreter.version != entry.python:
        found = f"is Python {interpreter.version}" if interpreter else "does not run"
        why = (
            f"{entry.path} needs python{entry.python} ({entry.python_reason}), but "
            f"{entry.executable} {found} ({entry.executable_reason}): name the right one "
            f"with --python {entry.python}=/path/to/python{entry.python}"
        )
        return None, [AppFinding("interpreter", f"python{entry.python}", why)]
    lib_versions = {lib.python for lib in account.lib_dirs if lib.app == app}
    if (
        entry.kind == "wsgi"
        and entry.python_reason.startswith("mod_wsgi")
        and lib_versions - {entry.python}
    ):
        why = (
            f"{entry.python_reason}, but the app's lib dirs are for Python "
            f"{', '.join(sorted(lib_versions))}: its packages may not load under this mod_wsgi"
        )
        return interpreter, [AppFinding("interpreter", "mod_wsgi", why)]
    return interpreter, []


def venv_base(
    entry_points: Sequence[EntryPoint], python: str | None
) -> tuple[Path | None, list[AppFinding]]:
    """The interpreter the app's venv is made with: the one its runtime starts (rule 5).
    mod_wsgi's wins: a python-home must come from the installation it links."""
    entries = [e for e in entry_points if e.python == python and e.executable]
    served = [e for e in entries if e.kind == "wsgi" and e.source != "file"]
    chosen = (served or entries or [None])[0]
    if chosen is None:
        return None, []
    others = {
        str(e.executable)
        for e in entries
        if os.path.realpath(e.executable or "") != os.path.realpath(chosen.executable or "")
    }
    if others and not served:
        why = (
            f"its entry points run different Python {python} installations "
            f"({', '.join(sorted({str(chosen.executable), *others}))}); one venv serves "
            f"them all: name the one to use with --python {python}=PATH"
        )
        return chosen.executable, [AppFinding("interpreter", str(chosen.executable), why)]
    return chosen.executable, []

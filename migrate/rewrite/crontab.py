"""Rewrite a crontab so each migrated job runs its group's venv Python.

A job runs ``pythonX.Y script`` (or ``-m module``, or a script whose shebang names a
Python): the program word becomes ``VENV/bin/python``, where VENV belongs to the script's
group (its app, or ``~``), decided exactly as :mod:`migrate.discover.entrypoints` decides it.

A script whose shebang the migration points at the venv keeps its cron word, and counts as
migrated. ``PYTHONPATH`` would still put concentric dirs in front of the venv, so it loses them:
on an environment line when every Python job it reaches is migrated; otherwise that line
stays (the unmigrated jobs need it) and each migrated command gets its own cleaned
``PYTHONPATH=`` instead. Edits are spans of the original line: schedules, spacing,
``%`` escapes and the stdin part after ``%`` keep their bytes.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from migrate.discover.crontab import MAX_LINE, EnvLine, Job, cron_value, parse_crontab
from migrate.discover.entrypoints import ACCOUNT_GROUP, group_of, script_argument
from migrate.discover.interpreters import PYTHON_NAME
from migrate.discover.shell import expand_path
from migrate.rewrite import MARKER, CannotRewrite, Change, Rewrite
from migrate.rewrite.shell import (
    PYTHONPATH,
    Word,
    clean_path_list_dropping,
)

_APACHE_SCRIPT = re.compile(r"^webapps/(?P<app>[^/]+)/apache2/bin/[^/]+$")
_MENTIONS_PYTHON = re.compile(r"(?:^|[\s/;&|(`'\"])python(?:\d+(?:\.\d+)?)?(?=$|[\s;&|)`'\"])")


@dataclass(frozen=True)
class CronTargets:
    home: str
    venvs: Mapping[str, str]
    """Group (``APP`` or ``~``) -> that group's venv dir (absolute)."""
    shebang_scripts: frozenset[str] = frozenset()
    """Absolute paths of scripts run directly whose shebang names a Python (caller checked)
    and which the shebang rewriter does NOT rewrite: their cron commands get the venv python
    prefixed."""
    venv_shebangs: frozenset[str] = frozenset()
    """Absolute paths of scripts whose shebang the migration points at their group's venv
    python: their cron commands run the venv already (their ``PYTHONPATH`` is cleaned)."""


@dataclass(frozen=True)
class _Edit:
    line: int
    start: int
    end: int
    text: str
    why: str


@dataclass(frozen=True)
class _Setter:
    """Where a ``PYTHONPATH`` value is set: an environment line, a ``PYTHONPATH=`` or
    ``export PYTHONPATH=`` command inside a job, or an inline assignment word."""

    kind: Literal["env", "job", "inline"]
    line: int
    start: int
    end: int
    raw: str
    cleaned: str
    dropped: tuple[str, ...]
    word: Word | None = None
    outer: _Setter | None = None
    """For an inline or job word: the setter it overrides."""
    exported: bool = True
    """False for a job's bare ``PYTHONPATH=...;``: it reaches the commands after it only
    because cron's environment (an environment line) exported ``PYTHONPATH`` already."""


@dataclass(frozen=True)
class _Run:
    """One simple command of a job, as far as ``PYTHONPATH`` and the venv are concerned."""

    line: int
    start: int
    python: bool
    migrated: bool
    setters: tuple[_Setter, ...]
    """The ``PYTHONPATH`` settings it goes through, outermost first; the last one wins."""


def rewrite_crontab(text: str, targets: CronTargets) -> Rewrite:
    crontab = parse_crontab(text)
    for number, line in enumerate(crontab.lines, 1):
        if len(line) > MAX_LINE:
            raise CannotRewrite(
                f"crontab line {number} is longer than {MAX_LINE} characters; "
                "cron would not run it as written: shorten or remove it first"
            )
        if "\x00" in line:
            raise CannotRewrite(f"crontab line {number} contains a NUL byte; remove it first")
    lines = list(crontab.lines)
    scanner = _Scanner(targets)
    entries = sorted([*crontab.env, *crontab.jobs], key=lambda entry: entry.lineno)
    for entry in entries:
        if isinstance(entry, EnvLine):
            if entry.name == PYTHONPATH:
                line = lines[entry.lineno - 1]
                span = (entry.start, entry.end)
                scanner.env = scanner.setter("env", entry.lineno - 1, line, span=span)
        else:
            scanner.job(entry, lines[entry.lineno - 1])
    edits = scanner.edits + _pythonpath_edits(lines, scanner.setters, scanner.runs)
    return _apply(lines, edits)


class _Scanner:
    """Walks the parsed jobs once, collecting program edits, setters and who reads them."""

    def __init__(self, targets: CronTargets) -> None:
        self.home = targets.home.rstrip("/") or "/"
        self.venvs = {group: posixpath.normpath(venv) for group, venv in targets.venvs.items()}
        self.venv_bins = {posixpath.join(venv, "bin") for venv in self.venvs.values()}
        self.shebang_scripts = {posixpath.normpath(p) for p in targets.shebang_scripts}
        self.venv_shebangs = {posixpath.normpath(p) for p in targets.venv_shebangs}
        self.env: _Setter | None = None
        self.setters: list[_Setter] = []
        self.runs: list[_Run] = []
        self.edits: list[_Edit] = []

    def job(self, job: Job, line: str) -> None:
        index = job.lineno - 1
        if job.error is not None:
            python = bool(_MENTIONS_PYTHON.search(line[job.start : job.end]))
            self.runs.append(_Run(index, job.start, python, False, (self.env,) if self.env else ()))
            return
        cwd = Path(self.home)
        outer = self.env
        for command in job.commands:
            program = command.program
            if command.setting or command.exports:
                for word in command.setting:
                    if word.assigns == PYTHONPATH:
                        last = [outer] if outer else []
                        outer = self.setter("job", index, line, word, last, command.exports)
                continue
            assert program is not None
            if program.value == "cd":
                target = command.args[0].value if command.args else "~"
                cwd = expand_path(cron_value(target), Path(self.home), cwd)
                continue
            setters = [outer] if outer else []
            for word in command.assignments:
                if word.assigns == PYTHONPATH:
                    setters.append(self.setter("inline", index, line, word, setters[-1:]))
            python, migrated = self.program(index, program, command.args, cwd)
            self.runs.append(_Run(index, command.start, python, migrated, tuple(setters)))

    def program(
        self, index: int, program: Word, args: tuple[Word, ...], cwd: Path
    ) -> tuple[bool, bool]:
        """(runs Python, runs a venv Python after the rewrite), recording the edit."""
        home = Path(self.home)
        name = cron_value(program.value)
        if PYTHON_NAME.match(posixpath.basename(name)):
            if "/" in name and str(expand_path(name, home, cwd).parent) in self.venv_bins:
                return True, True
            script, module = script_argument(tuple(cron_value(a.value) for a in args))
            if script is None and module is None:
                return True, False
            group = group_of(expand_path(script, home, cwd) if script else cwd, home)
            venv = self.venvs.get(group)
            if venv is None:
                return True, False
            python = posixpath.join(venv, "bin", "python")
            why = f"runs the venv Python of {_label(group)} instead of {name}"
            new = _cron_word(python, program.raw)
            self.edits.append(_Edit(index, program.start, program.end, new, why))
            return True, True
        path = str(expand_path(name, home, cwd))
        server = _APACHE_SCRIPT.match(posixpath.relpath(path, self.home))
        if server is not None:
            # An app's Apache started by cron hands this PYTHONPATH to mod_wsgi's Python.
            return True, server["app"] in self.venvs
        if path in self.venv_shebangs:
            return True, True
        if path not in self.shebang_scripts:
            return False, False
        group = group_of(Path(path), home)
        venv = self.venvs.get(group)
        if venv is None:
            return True, False
        python = posixpath.join(venv, "bin", "python")
        why = f"runs {name} with the venv Python of {_label(group)}, not its shebang's"
        new = _cron_word(python) + " "
        self.edits.append(_Edit(index, program.start, program.start, new, why))
        return True, True

    def setter(
        self,
        kind: Literal["env", "job", "inline"],
        index: int,
        line: str,
        word: Word | None = None,
        outer: list[_Setter] | None = None,
        exported: bool = True,
        span: tuple[int, int] | None = None,
    ) -> _Setter:
        if word is not None:
            span = (word.start + len(PYTHONPATH) + 1, word.end)
        assert span is not None
        raw = line[span[0] : span[1]]
        cleaned, dropped = clean_path_list_dropping(raw, self.home, literal=kind == "env")
        last = outer[-1] if outer else None
        setter = _Setter(kind, index, span[0], span[1], raw, cleaned, dropped, word, last, exported)
        self.setters.append(setter)
        return setter


def _pythonpath_edits(lines: list[str], setters: list[_Setter], runs: list[_Run]) -> list[_Edit]:
    """Clean each setter whose readers all run a venv Python; otherwise keep it and hand
    each migrated reader a cleaned copy of its own."""
    edits = []
    for setter in setters:
        if not setter.dropped:
            continue
        why = f"PYTHONPATH no longer lists concentric {', '.join(setter.dropped)}"
        readers = [
            r
            for r in runs
            if (r.setters[-1:] == (setter,) and (r.python or setter.kind == "job"))
            or (setter.kind == "inline" and setter in r.setters)
        ]
        if setter.kind == "inline":
            if readers and all(r.migrated for r in readers):
                edits.append(_inline_edit(lines[setter.line], setter, why))
            continue
        if all(r.migrated for r in readers) and (readers or setter.kind == "env"):
            if setter.kind == "env" and not setter.cleaned:
                # Not ``PYTHONPATH=``: Python 2 reads an empty entry as the working dir.
                edits.append(_Edit(setter.line, 0, 0, f"# {MARKER} {why}: ", why))
                edits.extend(_keep_exported(setter, setters))
            else:
                edits.append(_Edit(setter.line, setter.start, setter.end, setter.cleaned, why))
            continue
        value = _env_word(setter.cleaned) if setter.kind == "env" else setter.cleaned
        why = f"{why} for this command (the PYTHONPATH set on line {setter.line + 1} stays)"
        edits.extend(
            _Edit(r.line, r.start, r.start, f"{PYTHONPATH}={value} ", why)
            for r in readers
            if r.migrated and r.python
        )
    return edits


def _keep_exported(env: _Setter, setters: list[_Setter]) -> list[_Edit]:
    """``export`` for each bare ``PYTHONPATH=...;`` in a job that the commented-out
    environment line made reach the job's commands: without it, its value would be lost."""
    edits = []
    for setter in setters:
        outer = setter
        while outer.kind == "job" and not outer.exported and outer.outer is not None:
            outer = outer.outer
        if setter.kind == "job" and not setter.exported and outer is env:
            assert setter.word is not None
            why = (
                f"export added: PYTHONPATH is no longer set on line {env.line + 1}, which "
                "exported it to this job"
            )
            edits.append(_Edit(setter.line, setter.word.start, setter.word.start, "export ", why))
    return edits


def _inline_edit(line: str, setter: _Setter, why: str) -> _Edit:
    """An inline assignment left empty goes, unless dropping it would let the command see
    a ``PYTHONPATH`` set further out."""
    if setter.cleaned or (setter.outer is not None and setter.outer.raw):
        return _Edit(setter.line, setter.start, setter.end, setter.cleaned, why)
    assert setter.word is not None
    end = setter.word.end
    while end < len(line) and line[end] in " \t":
        end += 1
    return _Edit(setter.line, setter.word.start, end, "", why)


def _apply(lines: list[str], edits: list[_Edit]) -> Rewrite:
    by_line: dict[int, list[_Edit]] = {}
    for edit in edits:
        by_line.setdefault(edit.line, []).append(edit)
    changes = []
    out = list(lines)
    for index, group in sorted(by_line.items()):
        line = lines[index]
        new = line
        for edit in sorted(group, key=lambda e: (e.start, e.end), reverse=True):
            new = new[: edit.start] + edit.text + new[edit.end :]
        if new != line:
            out[index] = new
            why = "; ".join(dict.fromkeys(e.why for e in sorted(group, key=lambda e: e.start)))
            changes.append(Change(index + 1, line, new, why))
    return Rewrite("\n".join(out), tuple(changes))


def _cron_word(path: str, like: str = "") -> str:
    """``path`` as a shell word in a cron command, quoted like ``like`` where it can be."""
    if like[:1] == '"' and not set(path) & set('"$`\\'):
        word = f'"{path}"'
    elif like[:1] == "'" and "'" not in path:
        word = f"'{path}'"
    else:
        word = shlex.quote(path)
    return word.replace("%", "\\%")


def _env_word(cleaned: str) -> str:
    """A cron environment value (literal, maybe in matching quotes) as a shell word."""
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "'\"":
        cleaned = cleaned[1:-1]
    return _cron_word(cleaned) if cleaned else ""


def _label(group: str) -> str:
    return "the account (~)" if group == ACCOUNT_GROUP else f"app {group}"

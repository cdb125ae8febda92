"""Python started by the account's own shell scripts: the "custom app listening on port".

WebFaction's custom apps are started by cron (``@reboot ~/webapps/APP/bin/start`` plus a
watchdog line) through an sh script that exports ``PYTHONPATH``, changes folder and runs
``nohup python3.11 app.py > log 2>&1 &`` with a pid file. :func:`launches` reads such a
script as sh would run it, top to bottom (branches and loops are read as if every command
ran once — a script's start and restart paths name the same interpreter), and yields each
command that runs Python, with the working folder and environment it gets. Commands that
run another shell script of the home are followed (:data:`MAX_DEPTH` deep).

The plan models each launch as an entry point; the rewrite edits the program word found
here, so both read the same parse (:mod:`migrate.discover.shell`). Nothing is executed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.interpreters import PYTHON_NAME
from migrate.discover.shell import (
    ShellScript,
    SimpleCommand,
    Word,
    assigned_value,
    command_parts,
    expand_path,
    expand_word,
    parse_shell,
)
from migrate.paths import is_inside, read_regular

WRAPPERS = frozenset({"nohup", "exec", "setsid", "nice", "time", "command", "chpst"})
"""Programs that run the rest of their arguments as a command (options skipped)."""
MAX_DEPTH = 3
MAX_SCRIPT_BYTES = 256 * 1024
_SHELLS = frozenset({"sh", "bash", "dash", "ksh", "zsh"})
_VARIABLE = re.compile(
    r"^\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))$"
)


@dataclass(frozen=True)
class Launch:
    """One command of a shell script that runs Python (or a program of the home)."""

    script: Path
    """The shell script it is in."""
    line: int
    program: Word
    """The program word, after wrappers (``nohup``, ``exec``, ``env VAR=…``): what the
    rewrite replaces by the venv's python."""
    argv: tuple[str, ...]
    """The program and its arguments, as sh passes them (``~``/``$HOME`` expanded)."""
    cwd: Path
    environment: Mapping[str, str]
    """What the program's environment holds of the variables the script set or inherited."""
    inline: Mapping[str, str]
    """``NAME=value`` words of this command alone."""
    via: tuple[Path, ...] = ()
    """The scripts that ran this one, outermost first."""


def is_shell_script(path: Path, data: bytes | None = None) -> bool:
    """An sh script: a ``#!`` naming a Bourne-style shell (directly or through ``env``)."""
    if data is None:
        try:
            data = read_regular(path, 256)
        except OSError:
            return False
    first = data.split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode("utf-8", "replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return bool(words) and os.path.basename(words[0]) in _SHELLS


def launches(
    path: Path,
    home: Path,
    environment: Mapping[str, str],
    exported: frozenset[str],
    cwd: Path,
    *,
    via: tuple[Path, ...] = (),
) -> Iterator[Launch]:
    """Each command of the sh script at ``path`` that runs Python or a program of the home
    (a console script such as ``bin/gunicorn``), as the script would start it.

    ``environment`` and ``exported``: what the caller hands the script (cron's exported
    variables). An unreadable or unparsable script yields nothing.
    """
    if len(via) >= MAX_DEPTH or path in via:
        return
    try:
        data = read_regular(path, MAX_SCRIPT_BYTES + 1)
        if len(data) > MAX_SCRIPT_BYTES:
            return
        text = data.decode("utf-8")
        script = parse_shell(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return
    yield from _walk(script, text, path, home, dict(environment), set(exported), cwd, via)


def _walk(
    script: ShellScript,
    text: str,
    path: Path,
    home: Path,
    values: dict[str, str],
    exported: set[str],
    cwd: Path,
    via: tuple[Path, ...],
) -> Iterator[Launch]:
    for command in script.commands:
        parts = command_parts(command)
        words = unwrapped(command)
        program = words[0] if words else None
        if program is None or program.value == "export" or parts.program is None:
            exporting = program is not None and program.value == "export"
            for word in words[1:] if exporting else parts.assignments:
                if word.assigns:
                    name, value = _assigned(word, home, values)
                    values[name] = value
                    if exporting:
                        exported.add(name)
                elif exporting:
                    exported.add(word.value)
            continue
        inline = dict(_assigned(w, home, values) for w in parts.assignments)
        name = program.value
        if name == "cd":
            target = words[1].value if len(words) > 1 else "~"
            cwd = expand_path(target, home, cwd)
            continue
        argv = tuple(expand_word(w.value, home) for w in words)
        environment = {k: v for k, v in values.items() if k in exported}
        environment.update(inline)
        line = text.count("\n", 0, command.start) + 1
        if PYTHON_NAME.match(os.path.basename(name)):
            yield Launch(path, line, program, argv, cwd, environment, inline, via)
            continue
        target = expand_path(name, home, cwd) if "/" in name or name.startswith("~") else None
        if name in _SHELLS and len(argv) > 1 and not argv[1].startswith("-"):
            target = expand_path(argv[1], home, cwd)
        if target is None or not is_inside(target, home) or not target.is_file():
            continue
        if is_shell_script(target) or name in _SHELLS:
            child_exported = frozenset(exported | set(inline))
            yield from launches(target, home, environment, child_exported, cwd, via=(*via, path))
        else:
            yield Launch(path, line, program, argv, cwd, environment, inline, via)


def unwrapped(command: SimpleCommand) -> tuple[Word, ...]:
    """The command's words from its real program on: ``NAME=value`` words, ``env`` and its
    assignments, and wrappers such as ``nohup`` or ``exec`` (with their options) dropped."""
    parts = command_parts(command)
    if parts.program is None:
        return ()
    words = (parts.program, *parts.args)
    while words and os.path.basename(words[0].value) in WRAPPERS:
        wrapper = os.path.basename(words[0].value)
        words = words[1:]
        while words and words[0].value.startswith("-"):
            takes_value = wrapper == "nice" and words[0].value in ("-n", "--adjustment")
            words = words[2:] if takes_value else words[1:]
        inner = command_parts(SimpleCommand(words, command.start, command.end)) if words else None
        if inner is not None and inner.program is not None:
            words = (inner.program, *inner.args)
    return words


def _assigned(word: Word, home: Path, values: Mapping[str, str]) -> tuple[str, str]:
    """(name, value) as sh assigns it: ``~``/``$HOME`` expanded, and an entry that is just
    ``$NAME`` replaced by what the script holds for NAME (dropped when it holds nothing)."""
    name, value = assigned_value(word, str(home))
    entries = []
    for entry in value.split(":"):
        match = _VARIABLE.match(entry)
        if match:
            known = values.get(match["braced"] or match["bare"] or "")
            if known is None or known == "":
                continue
            entries.append(known)
        else:
            entries.append(entry)
    return name, ":".join(entries)

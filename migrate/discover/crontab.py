"""Read a crontab as cron runs it: environment lines, jobs, and each job's simple commands.

The one reader of crontab text, for the plan and for :mod:`migrate.rewrite.crontab`: every
value and word keeps its span in its line, so the rewriter edits exactly what the plan
read. A job's command (up to the first unescaped ``%``; the rest is stdin) is read by the sh
reader of :mod:`migrate.discover.shell`, as ``/bin/sh -c`` gets it. What a job runs (a
Python interpreter, a script) is decided by :mod:`migrate.discover.entrypoints`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.shell import SimpleCommand, Word, assigned_value, command_parts, parse_shell
from migrate.paths import read_regular

ENV_LINE = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
SPECIAL = frozenset(
    {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_FIVE_FIELDS = re.compile(r"^\s*(?:\S+\s+){5}(?=\S)")
_SPECIAL_FIELD = re.compile(r"^\s*(?P<word>@\S+)\s+(?=\S)")
INSTALLED = Path("crontab -l")
MAX_LINE = 64 * 1024
"""cron itself rejects much shorter lines; anything longer is reported, not parsed."""


@dataclass(frozen=True)
class EnvLine:
    lineno: int
    name: str
    value: str
    """Surrounding matching quotes removed, as cron does."""
    start: int
    end: int
    """Span of the value as written in its line."""


@dataclass(frozen=True)
class Command:
    """One simple command of a job; word spans are offsets in the crontab line."""

    assignments: tuple[Word, ...]
    """Inline ``NAME=value`` words (an ``env`` program's included)."""
    program: Word | None
    args: tuple[Word, ...]
    start: int
    """Offset of its first word."""

    @property
    def setting(self) -> tuple[Word, ...]:
        """``NAME=value`` words of an assignment-only or ``export`` command: what it sets
        for the commands after it in the job (empty for any other command)."""
        if self.program is None:
            return self.assignments
        if self.program.value == "export":
            return tuple(word for word in self.args if word.assigns)
        return ()

    @property
    def exports(self) -> bool:
        """Its settings reach child processes whether or not they were exported before."""
        return self.program is not None and self.program.value == "export"

    @property
    def argv(self) -> tuple[str, ...]:
        words = (self.program, *self.args) if self.program is not None else ()
        return tuple(cron_value(word.value) for word in words)


@dataclass(frozen=True)
class Job:
    lineno: int
    schedule: str
    command: str
    """The command as cron hands it to ``/bin/sh -c``: up to the first unescaped ``%``, with
    ``\\%`` turned into ``%``."""
    commands: tuple[Command, ...]
    environment: tuple[tuple[str, str], ...]
    """Environment lines in force for this job (crontab ``NAME=value`` lines above it)."""
    start: int = 0
    end: int = 0
    """Span of the command in its line (before the stdin part)."""
    error: str | None = None
    """Why its command could not be split (unbalanced quoting); ``commands`` is empty."""


@dataclass(frozen=True)
class Crontab:
    lines: tuple[str, ...]
    """The text split at ``\n``, as cron splits it."""
    env: tuple[EnvLine, ...]
    jobs: tuple[Job, ...]
    problems: tuple[tuple[int, str], ...] = ()
    source: Path = INSTALLED
    """The file it was read from, or ``INSTALLED`` for ``crontab -l``."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def sha256(self) -> str:
        """Of the bytes read: what a rewrite of it must still find when it is installed."""
        return hashlib.sha256(self.text.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def file(self) -> Path | None:
        """``--crontab FILE``, or None for the installed crontab."""
        return None if self.source == INSTALLED else self.source


def parse_crontab(text: str, source: Path = INSTALLED) -> Crontab:
    lines = tuple(text.split("\n"))
    env: list[EnvLine] = []
    jobs: list[Job] = []
    problems: list[tuple[int, str]] = []
    current: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            problems.append((number, f"line longer than {MAX_LINE} characters; not parsed"))
            continue
        if "\x00" in line:
            problems.append((number, "line contains NUL bytes; not parsed"))
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        env_match = ENV_LINE.match(line)
        if env_match and not stripped.startswith(("@", "*")) and not stripped[0].isdigit():
            value = _unquote(env_match["value"])
            env.append(EnvLine(number, env_match["name"], value, *env_match.span("value")))
            current[env_match["name"]] = value
            continue
        start = _command_start(line)
        if start is None:
            problems.append((number, "not an environment line nor a job"))
            continue
        end = _command_end(line, start)
        schedule = " ".join(line[:start].split())
        command = cron_value(line[start:end])
        try:
            script = parse_shell(line[start:end])
        except ValueError as exc:
            problems.append((number, f"cannot split command: {exc}"))
            job = Job(number, schedule, command, (), tuple(current.items()), start, end, str(exc))
        else:
            commands = tuple(_command(c, start) for c in script.commands)
            job = Job(number, schedule, command, commands, tuple(current.items()), start, end)
        jobs.append(job)
    return Crontab(lines, tuple(env), tuple(jobs), tuple(problems), source)


def cron_value(value: str) -> str:
    """cron turns ``\\%`` into ``%`` before the shell sees the command."""
    return value.replace("\\%", "%")


def _command(command: SimpleCommand, offset: int) -> Command:
    parts = command_parts(command)

    def shifted(word: Word) -> Word:
        return Word(word.start + offset, word.end + offset, word.raw, word.value)

    program = shifted(parts.program) if parts.program is not None else None
    return Command(
        tuple(shifted(w) for w in parts.assignments),
        program,
        tuple(shifted(w) for w in parts.args),
        command.words[0].start + offset,
    )


def shell_assignment(word: Word, home: Path) -> tuple[str, str]:
    """(name, value) of a ``NAME=value`` word in a job, as cron's shell assigns it (``~``
    and ``$HOME`` expanded); an environment line's value, by contrast, is taken as written."""
    name, value = assigned_value(word, str(home))
    return name, cron_value(value)


def _command_start(line: str) -> int | None:
    special = _SPECIAL_FIELD.match(line)
    if special and special["word"] in SPECIAL:
        return special.end()
    if line.lstrip().startswith("@"):
        return None
    fields = _FIVE_FIELDS.match(line)
    return fields.end() if fields else None


def _command_end(line: str, start: int) -> int:
    """Where the stdin part begins: the first ``%`` not escaped by a backslash."""
    escaped = False
    for index in range(start, len(line)):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            return index
    return len(line)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def crontab_text(file: Path | None, installed: Callable[[], bytes | None] | None) -> str | None:
    """The crontab an account's commands read and ``run`` edits: ``--crontab FILE``, else
    the installed one (``installed`` reads it; None when there is none the caller may use,
    see :func:`migrate.journal.crontab.installed_crontab`)."""
    if file is not None:
        return read_regular(file).decode("utf-8", errors="surrogateescape")
    data = None if installed is None else installed()
    return None if data is None else data.decode("utf-8", errors="surrogateescape")

"""Read a crontab into environment lines and jobs, keeping every line's exact text.

Only parsing lives here; what a job runs (a Python interpreter, a script) is decided by
:mod:`migrate.discover.entrypoints`. Lines are kept verbatim so a later rewrite can be byte-exact.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from migrate.paths import read_regular

_ENV = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
_SPECIAL = (
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
)
_INLINE_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_REDIRECTION = re.compile(r"""(?<![\w'"])\d*(?:>>?|<)(?:&\d+|\s*[^\s;&|]+)""")
INSTALLED = Path("crontab -l")
MAX_LINE = 64 * 1024
"""cron itself rejects much shorter lines; anything longer is reported, not parsed."""


@dataclass(frozen=True)
class EnvLine:
    lineno: int
    name: str
    value: str


@dataclass(frozen=True)
class Command:
    """One simple command of a job: inline ``VAR=value`` assignments, then argv."""

    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    lineno: int
    schedule: str
    command: str
    """The command text up to the first unescaped ``%`` (the rest is stdin)."""
    commands: tuple[Command, ...]
    environment: tuple[tuple[str, str], ...]
    """Environment lines in force for this job (crontab ``NAME=value`` lines above it)."""


@dataclass(frozen=True)
class Crontab:
    lines: tuple[str, ...]
    env: tuple[EnvLine, ...]
    jobs: tuple[Job, ...]
    problems: tuple[tuple[int, str], ...] = ()
    source: Path = INSTALLED
    """The file it was read from, or ``INSTALLED`` for ``crontab -l``."""


def parse_crontab(text: str, source: Path = INSTALLED) -> Crontab:
    lines = tuple(text.splitlines())
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
        env_match = _ENV.match(line)
        if env_match and not stripped.startswith(("@", "*")) and not stripped[0].isdigit():
            value = _unquote(env_match["value"])
            env.append(EnvLine(number, env_match["name"], value))
            current[env_match["name"]] = value
            continue
        schedule, command = _split_schedule(stripped)
        if command is None:
            problems.append((number, "not an environment line nor a job"))
            continue
        command = _before_percent(command)
        try:
            commands = split_commands(command)
        except ValueError as exc:
            problems.append((number, f"cannot split command: {exc}"))
            commands = ()
        jobs.append(Job(number, schedule, command, commands, tuple(current.items())))
    return Crontab(lines, tuple(env), tuple(jobs), tuple(problems), source)


def split_commands(command: str) -> tuple[Command, ...]:
    """Split a shell command line into simple commands at ``&&``, ``||``, ``;``, ``|``."""
    lexer = shlex.shlex(_REDIRECTION.sub(" ", command), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    out: list[Command] = []
    words: list[str] = []
    for token in lexer:
        if token in _SEPARATORS or set(token) <= set(";&|"):
            if words:
                out.append(_command(words))
            words = []
            continue
        words.append(token)
    if words:
        out.append(_command(words))
    return tuple(out)


def _command(words: list[str]) -> Command:
    env = []
    index = 0
    while index < len(words) and _INLINE_ASSIGNMENT.match(words[index]):
        name, _, value = words[index].partition("=")
        env.append((name, value))
        index += 1
    if index < len(words) and words[index] in ("env", "/usr/bin/env"):
        index += 1
        while index < len(words) and _INLINE_ASSIGNMENT.match(words[index]):
            name, _, value = words[index].partition("=")
            env.append((name, value))
            index += 1
    return Command(tuple(env), tuple(words[index:]))


def _split_schedule(line: str) -> tuple[str, str | None]:
    first = line.split(None, 1)
    if first and first[0] in _SPECIAL:
        return first[0], first[1] if len(first) > 1 else None
    fields = line.split(None, 5)
    if len(fields) < 6:
        return line, None
    return " ".join(fields[:5]), fields[5]


def _before_percent(command: str) -> str:
    out = []
    escaped = False
    for char in command:
        if escaped:
            out.append(char if char == "%" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            break
        else:
            out.append(char)
    if escaped:
        out.append("\\")
    return "".join(out)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_installed_crontab() -> str | None:
    """The invoking user's crontab (``crontab -l``); ``None`` when there is none."""
    import shutil
    import subprocess

    binary = shutil.which("crontab")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "-l"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", errors="surrogateescape")


def crontab_text(file: Path | None, home: Path) -> str | None:
    """The crontab an account's commands read and ``run`` edits: ``--crontab FILE``, else
    the installed one when ``home`` is the invoking user's own (another user's crontab is
    neither ours to read as theirs nor to change)."""
    if file is not None:
        return read_regular(file).decode("utf-8", errors="surrogateescape")
    if os.path.realpath(home) != os.path.realpath(os.path.expanduser("~")):
        return None
    return read_installed_crontab()

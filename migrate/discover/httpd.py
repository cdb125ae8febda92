"""Apache configuration: the one reader, for the plan and for the rewriter alike.

:func:`parse` splits one file's text into physical lines (each with its line ending) and
statements — a directive, a section opening or a closing, one per logical line, where a
trailing ``\\`` joins the next physical line. Each directive keeps its words with their
spans (physical line, start and end column), so :mod:`migrate.rewrite.httpd` edits exactly
the bytes that the plan read here, and nothing else. :func:`read_config` follows
``Include`` and flattens a whole configuration into :class:`Directive` values for the plan.

Words are read as Apache and mod_wsgi read them, not as a shell does: a word is quoted when
it starts with ``"`` or ``'`` (``\\`` escapes the quote and itself inside), an option's
value may be quoted after ``key=``; a quote anywhere else is an ordinary character and an
unquoted ``\\`` is literal. A word never spans a continuation: a quote left open at the end
of a physical line makes the statement unreadable (a finding, and no rewrite of it).
Directive names are case-insensitive.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from migrate.findings import Finding
from migrate.paths import read_regular

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_INCLUDE_DEPTH = 16
QUOTES = "\"'"
BLANK = " \t\f\v\r"
"""What Apache counts as white space between words (ASCII only)."""


@dataclass(frozen=True)
class Line:
    text: str
    end: str
    """``"\\n"``, ``"\\r\\n"`` or ``""`` (last line without a newline)."""


@dataclass(frozen=True)
class Value:
    """A word split as ``prefix + value + suffix``, so a new value keeps the old quoting."""

    prefix: str
    value: str
    """As written: escapes still in (see :meth:`text`)."""
    suffix: str
    quote: str

    @property
    def text(self) -> str:
        """The value as Apache hands it over (escapes undone)."""
        return unescape(self.value, self.quote)

    def with_value(self, value: str) -> str:
        if not self.quote and any(c.isspace() for c in value):
            return f'{self.prefix}"{value}"'
        return self.prefix + value + self.suffix


@dataclass(frozen=True)
class Word:
    line: int
    """Index of the physical line in the file."""
    start: int
    end: int
    raw: str

    @property
    def key(self) -> str:
        """Lower-cased ``key`` of a ``key=value`` option word, else ``""``."""
        inner = self.raw[1:] if self.raw[:1] in QUOTES else self.raw
        key, eq, _ = inner.partition("=")
        return key.lower() if eq else ""

    def as_word(self) -> Value | None:
        """A whole word: ``"v"``, ``'v'`` or unquoted ``v``; None for any other quoting."""
        raw = self.raw
        if raw[0] in QUOTES and _quoted_end(raw, 0) == len(raw):
            return Value(raw[0], raw[1:-1], raw[0], raw[0])
        if not any(q in raw for q in QUOTES):
            return Value("", raw, "", "")
        return None

    def as_option(self) -> Value | None:
        """``key=v``, ``key="v"``, ``key='v'``, ``"key=v"`` or ``'key=v'`` (the value part)."""
        raw = self.raw
        if raw[0] in QUOTES:
            if _quoted_end(raw, 0) == len(raw):
                key, _, value = raw[1:-1].partition("=")
                return Value(f"{raw[0]}{key}=", value, raw[0], raw[0])
            return None
        key, _, value = raw.partition("=")
        if value[:1] and value[0] in QUOTES and _quoted_end(value, 0) == len(value):
            return Value(f"{key}={value[0]}", value[1:-1], value[0], value[0])
        if not any(q in value for q in QUOTES):
            return Value(f"{key}=", value, "", "")
        return None

    @property
    def text(self) -> str:
        """The argument as the server reads it: quotes removed, escapes undone."""
        value = self.as_option() if self.key else self.as_word()
        if value is None:
            return self.raw
        return value.prefix.replace(value.quote, "") + value.text if value.quote else self.raw


@dataclass(frozen=True)
class Statement:
    """One logical line that is not blank or a comment."""

    first: int
    last: int
    """Physical line indexes (0-based) of its first and last line."""
    kind: Literal["directive", "open", "close"]
    name: str
    """As spelled (``WSGIDaemonProcess``, ``VirtualHost``)."""
    words: tuple[Word, ...] = ()
    """A directive's words, its name first; empty when ``error`` is set."""
    error: str | None = None
    """Why the words cannot be read (an unbalanced quote)."""


@dataclass(frozen=True)
class ConfigText:
    lines: tuple[Line, ...]
    statements: tuple[Statement, ...]


def parse(text: str) -> ConfigText:
    """Lines and statements of one configuration file's text; never raises."""
    lines = split_lines(text)
    statements: list[Statement] = []
    for first, last in _logical_lines(lines):
        group = lines[first : last + 1]
        head = " ".join(_segment(line).strip(BLANK) for line in group).strip(BLANK)
        if not head or head.startswith("#"):
            continue
        if head.startswith("</"):
            statements.append(Statement(first, last, "close", head[2:].rstrip(">").strip(BLANK)))
        elif head.startswith("<"):
            statements.append(Statement(first, last, "open", _first_word(head[1:].rstrip(">"))))
        else:
            name = _first_word(head)
            try:
                words = _words(group, first)
            except ValueError as exc:
                statements.append(Statement(first, last, "directive", name, error=str(exc)))
            else:
                statements.append(Statement(first, last, "directive", name, words))
    return ConfigText(tuple(lines), tuple(statements))


def split_lines(text: str) -> list[Line]:
    """Physical lines as Apache reads them: split at ``\\n``, a ``\\r`` before it kept apart."""
    lines = []
    parts = text.split("\n")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if last and not part:
            break
        if not last and part.endswith("\r"):
            lines.append(Line(part[:-1], "\r\n"))
        else:
            lines.append(Line(part, "" if last else "\n"))
    return lines


def unescape(value: str, quote: str) -> str:
    """Undo Apache's ``\\\\`` and ``\\<quote>`` escapes inside a quoted value."""
    escaped = ("\\", quote) if quote else ("\\",)
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in escaped:
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


def _segment(line: Line) -> str:
    """A physical line's text without its continuation backslash."""
    stripped = line.text.rstrip()
    return stripped[:-1] if stripped.endswith("\\") else line.text


def _logical_lines(lines: list[Line]) -> list[tuple[int, int]]:
    """(first, last) line index of each ``\\``-continued logical line."""
    out = []
    start = 0
    for index, line in enumerate(lines):
        if not line.text.rstrip().endswith("\\"):
            out.append((start, index))
            start = index + 1
    if start < len(lines):
        out.append((start, len(lines) - 1))
    return out


def _first_word(text: str) -> str:
    return re.split(f"[{BLANK}]", text.strip(BLANK), maxsplit=1)[0]


def _quoted_end(text: str, start: int) -> int | None:
    """Index just past the quote closing the one at ``start``; ``None`` if unbalanced."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    return None


def _words(group: list[Line], first: int) -> tuple[Word, ...]:
    """Words as mod_wsgi reads them: quotes open a word or an option's value."""
    words: list[Word] = []
    for index, line in enumerate(group):
        text = _segment(line)
        i = 0
        while i < len(text):
            if text[i] in BLANK:
                i += 1
                continue
            start = i
            quoted_at = i if text[i] in QUOTES else -1
            seen_eq = False
            while i < len(text) and text[i] not in BLANK:
                if i == quoted_at:
                    end = _quoted_end(text, i)
                    if end is None:
                        raise ValueError(
                            f"line {first + index + 1}: unbalanced quote in "
                            f"{text.strip(BLANK)!r}; close it on the same line and run again"
                        )
                    i = end
                    continue
                if text[i] == "=" and not seen_eq and quoted_at < 0:
                    seen_eq = True
                    quoted_at = i + 1 if text[i + 1 : i + 2] in ("'", '"') else quoted_at
                i += 1
            words.append(Word(first + index, start, i, text[start:i]))
    return tuple(words)


@dataclass(frozen=True)
class Directive:
    name: str
    """Lower-cased directive name (``wsgidaemonprocess``)."""
    args: tuple[str, ...]
    """Its arguments as the server reads them (:attr:`Word.text`)."""
    file: Path
    line: int
    """First line (1-based); ``end_line`` differs when ``\\`` continuations join lines."""
    end_line: int
    sections: tuple[str, ...] = ()
    """Enclosing sections, outermost first, lower-cased (``virtualhost``)."""

    def option(self, key: str) -> str | None:
        """The value of a ``key=value`` argument (``python-path=...``), else ``None``."""
        prefix = key.lower() + "="
        for arg in self.args:
            if arg.lower().startswith(prefix):
                return arg[len(prefix) :]
        return None


@dataclass(frozen=True)
class Config:
    root: Path
    directives: tuple[Directive, ...]
    files: tuple[Path, ...]
    findings: tuple[Finding, ...] = ()
    data: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
    """The bytes of each of ``files``, as read: what a rewrite of them starts from."""

    def named(self, name: str) -> tuple[Directive, ...]:
        wanted = name.lower()
        return tuple(d for d in self.directives if d.name == wanted)

    @property
    def server_root(self) -> Path | None:
        roots = self.named("serverroot")
        return Path(roots[-1].args[0]) if roots and roots[-1].args else None


def read_config(path: Path, home: Path | None = None) -> Config:
    """Parse ``path`` and every file it Includes; problems become findings, never raise.

    ``${NAME}`` in an argument is expanded as Apache does when it reads the file: from a
    ``Define`` above it, else (``home`` given) ``${HOME}`` from the environment the
    account's Apache starts with; any other stays as written.
    """
    state = _State()
    if home is not None:
        state.defines["HOME"] = str(home)
    _read_file(Path(path), state, stack=(), sections=[])
    return Config(
        Path(path),
        tuple(state.directives),
        tuple(state.files),
        tuple(state.findings),
        tuple(state.data),
    )


class _State:
    def __init__(self) -> None:
        self.directives: list[Directive] = []
        self.files: list[Path] = []
        self.data: list[bytes] = []
        self.defines: dict[str, str] = {}
        self.findings: list[Finding] = []
        self.server_root: Path | None = None


def _read_file(path: Path, state: _State, stack: tuple[Path, ...], sections: list[str]) -> None:
    real = Path(os.path.realpath(path))
    if real in stack:
        chain = " -> ".join(str(p) for p in (*stack, real))
        state.findings.append(Finding(path, "error", f"Include loop: {chain}"))
        return
    if len(stack) >= MAX_INCLUDE_DEPTH:
        state.findings.append(Finding(path, "error", "Include nested too deeply"))
        return
    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        state.findings.append(Finding(path, "error", f"cannot read: {exc.strerror}"))
        return
    if len(data) > MAX_CONFIG_BYTES:
        state.findings.append(Finding(path, "error", f"larger than {MAX_CONFIG_BYTES} bytes"))
        return
    if b"\x00" in data:
        state.findings.append(Finding(path, "error", "binary file (contains NUL bytes)"))
        return
    state.files.append(path)
    state.data.append(data)
    depth_at_start = len(sections)
    for statement in parse(data.decode("utf-8", errors="surrogateescape")).statements:
        first = statement.first + 1
        name = statement.name.lower()
        if statement.kind == "close":
            if len(sections) <= depth_at_start or sections[-1] != name:
                where = f"line {first}: closing </{name}> without a matching opening section"
                state.findings.append(Finding(path, "error", where))
            else:
                sections.pop()
            continue
        if statement.kind == "open":
            sections.append(name)
            continue
        if statement.error is not None:
            state.findings.append(Finding(path, "error", statement.error))
            continue
        args = tuple(_expand(word.text, state.defines) for word in statement.words[1:])
        directive = Directive(name, args, path, first, statement.last + 1, tuple(sections))
        if directive.name == "define" and args:
            state.defines[args[0]] = args[1] if len(args) > 1 else ""
        state.directives.append(directive)
        if directive.name == "serverroot" and args:
            state.server_root = Path(args[0])
        if directive.name in ("include", "includeoptional") and args:
            for included in _expand_include(args[0], path, state, directive.name == "include"):
                _read_file(included, state, (*stack, real), sections)
    if len(sections) > depth_at_start:
        unclosed = ", ".join(f"<{s}>" for s in sections[depth_at_start:])
        state.findings.append(
            Finding(path, "error", f"unclosed section(s) at end of file: {unclosed}")
        )
        del sections[depth_at_start:]


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(text: str, defines: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: defines.get(m[1], m[0]), text)


def _expand_include(pattern: str, current: Path, state: _State, required: bool) -> list[Path]:
    base = state.server_root or current.parent
    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    if glob.has_magic(full):
        return [Path(p) for p in sorted(glob.glob(full)) if os.path.isfile(p)]
    if os.path.isdir(full):
        return [Path(full, name) for name in sorted(os.listdir(full))]
    if not os.path.exists(full):
        if required:
            state.findings.append(Finding(current, "warning", f"Include {full}: no such file"))
        return []
    return [Path(full)]

"""Point mod_wsgi in one Apache config file at the app's virtualenv.

``WSGIDaemonProcess`` gets ``python-home=VENV`` and loses the concentric entries of its
``python-path``; embedded mode gets ``WSGIPythonHome`` and a filtered ``WSGIPythonPath``.
Edits stay inside the physical lines a directive spans, so ``\\`` continuations, quoting,
indentation, tabs, comments and line endings are kept; every other line is copied as is.
Quoting follows mod_wsgi: a word or an option's value may be quoted with ``"`` or ``'``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from itertools import pairwise

from migrate.rewrite import (
    MARKER,
    CannotRewrite,
    Change,
    Rewrite,
    expand_home,
    is_concentric_dir,
)

_QUOTES = "\"'"
_BLANK = " \t\f\v\r"
"""What Apache counts as white space between words (ASCII only)."""
_MOUNTS = frozenset({"wsgiscriptalias", "wsgiscriptaliasmatch"})
_CONDITIONAL = frozenset(
    {"ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"}
)
"""Sections decided at startup: server-config directives stay valid inside them."""
_WSGI = frozenset({"wsgidaemonprocess", "wsgipythonhome", "wsgipythonpath"})


@dataclass(frozen=True)
class _Line:
    text: str
    end: str
    """``"\\n"``, ``"\\r\\n"`` or ``""`` (last line without a newline)."""


@dataclass(frozen=True)
class _Token:
    line: int
    """Index of the physical line within the directive."""
    start: int
    end: int
    raw: str


@dataclass(frozen=True)
class _Value:
    """A token split as ``prefix + value + suffix`` so a new value keeps the old quoting."""

    prefix: str
    value: str
    suffix: str
    quote: str

    def with_value(self, value: str) -> str:
        if not self.quote and any(c.isspace() for c in value):
            return f'{self.prefix}"{value}"'
        return self.prefix + value + self.suffix


@dataclass(frozen=True)
class _Directive:
    first: int
    lines: list[_Line]
    tokens: list[_Token]

    @property
    def number(self) -> int:
        return self.first + 1

    @property
    def spelled(self) -> str:
        return self.tokens[0].raw


def rewrite_httpd(text: str, *, venv: str, home: str) -> Rewrite:
    """Make every mod_wsgi interpreter in ``text`` use ``venv`` instead of concentric dirs.

    Raises :class:`CannotRewrite` when a value cannot be edited safely (``${VAR}`` in a
    path list, unbalanced or unusual quoting, a directive without its argument).
    """
    _check_venv(venv)
    lines = _split_lines(text)
    replaced: dict[int, tuple[int, list[_Line]]] = {}
    changes: list[Change] = []
    sections: list[tuple[str, int]] = []
    has_daemon = has_home = has_mount = False
    anchor: tuple[int, str] | None = None
    for first, last in _logical_lines(lines):
        group = lines[first : last + 1]
        head = " ".join(_segment(line).strip(_BLANK) for line in group).strip(_BLANK)
        if not head or head.startswith("#"):
            continue
        if head.startswith("</"):
            if sections:
                sections.pop()
            continue
        if head.startswith("<"):
            sections.append((_first_word(head[1:].rstrip(">")), first))
            continue
        name = _first_word(head).lower()
        if anchor is None and (name in _MOUNTS or name == "wsgipythonpath"):
            anchor = _anchor(first, sections)
        has_mount = has_mount or name in _MOUNTS
        if name not in _WSGI:
            continue
        directive = _Directive(first, group, _tokenize(group, first))
        if name == "wsgidaemonprocess":
            has_daemon = True
            result = _daemon(directive, venv, home)
        elif name == "wsgipythonhome":
            has_home = True
            result = _python_home(directive, venv, home)
        else:
            result = _python_path(directive, home)
        if result is not None:
            new, why = result
            replaced[first] = (last, new)
            changes.append(Change(first + 1, _joined(group), _joined(new), why))
    inserted: dict[int, _Line] = {}
    if has_mount and not has_daemon and not has_home and anchor is not None:
        at, section = anchor
        line = _home_line(lines, at, venv)
        inserted[at] = line
        why = "embedded mod_wsgi had no WSGIPythonHome: the app now runs in its virtualenv"
        if section:
            why += f" (placed before <{section}>: WSGIPythonHome is server-config only)"
        changes.append(Change(at + 1, "", line.text, why))
    if not changes:
        return Rewrite(text)
    ordered = sorted(changes, key=lambda c: (c.line, bool(c.before)))
    return Rewrite(_join(lines, replaced, inserted), tuple(ordered))


def _check_venv(venv: str) -> None:
    if not venv.startswith("/"):
        raise CannotRewrite(f"virtualenv path {venv!r} is not absolute; pass an absolute path")
    if any(c in venv for c in "\"'\\\r\n"):
        raise CannotRewrite(
            f"virtualenv path {venv!r} holds a quote, backslash or newline, which an Apache "
            "config cannot carry safely; build the virtualenv at a plainer path"
        )


def _daemon(d: _Directive, venv: str, home: str) -> tuple[list[_Line], str] | None:
    if len(d.tokens) < 2:
        raise CannotRewrite(
            f"line {d.number}: {d.spelled} has no process name; fix the directive and run again"
        )
    name = d.tokens[1]
    edits: list[tuple[int, int, int, str]] = []
    removed: set[int] = set()
    whys: list[str] = []
    homes = 0
    for index, token in enumerate(d.tokens[2:], 2):
        key = _option_key(token.raw)
        if key not in ("python-home", "python-path"):
            continue
        option = _option(token, d)
        if key == "python-home":
            homes += 1
            if not _same_path(option, venv, home):
                edits.append((token.line, token.start, token.end, option.with_value(venv)))
                whys.append(f"python-home {option.value} replaced by the virtualenv")
            continue
        kept, dropped = _filter_path(option, f"python-path of {d.spelled} {name.raw}", d, home)
        if not dropped:
            continue
        if kept:
            edits.append((token.line, token.start, token.end, option.with_value(kept)))
            whys.append(f"python-path no longer lists concentric dir(s) {dropped}")
        else:
            removed.add(index)
            whys.append(f"python-path removed: it listed only concentric dir(s) {dropped}")
    if not homes:
        value = f'"{venv}"' if any(c.isspace() for c in venv) else venv
        edits.append((name.line, name.end, name.end, f" python-home={value}"))
        whys.insert(0, "python-home added so the daemon runs in the app's virtualenv")
    if not edits and not removed:
        return None
    edits += _removals(d.tokens, removed)
    dropped_lines = {
        line
        for line in {d.tokens[i].line for i in removed}
        if all(i in removed for i, t in enumerate(d.tokens) if t.line == line)
    }
    return _apply(d.lines, edits, dropped_lines), "; ".join(whys)


def _python_home(d: _Directive, venv: str, home: str) -> tuple[list[_Line], str] | None:
    token = _single_argument(d)
    value = _word(token, d)
    if _same_path(value, venv, home):
        return None
    edit = (token.line, token.start, token.end, value.with_value(venv))
    why = f"{d.spelled} {value.value} replaced by the app's virtualenv"
    return _apply(d.lines, [edit], set()), why


def _python_path(d: _Directive, home: str) -> tuple[list[_Line], str] | None:
    token = _single_argument(d)
    value = _word(token, d)
    kept, dropped = _filter_path(value, d.spelled, d, home)
    if not dropped:
        return None
    if kept:
        edit = (token.line, token.start, token.end, value.with_value(kept))
        return _apply(d.lines, [edit], set()), f"concentric dir(s) {dropped} dropped"
    why = "only concentric dirs, the virtualenv replaces them"
    commented = []
    for i, line in enumerate(d.lines):
        body = line.text.lstrip()
        indent = line.text[: len(line.text) - len(body)]
        note = f"# {MARKER} {why}: " if i == 0 else "# "
        commented.append(_Line(indent + note + body, line.end))
    return commented, f"commented out: it listed {why} ({dropped})"


def _filter_path(value: _Value, what: str, d: _Directive, home: str) -> tuple[str, str]:
    """(kept entries joined, dropped entries joined); entries keep their escaping."""
    kept: list[str] = []
    dropped: list[str] = []
    for entry in value.value.split(":"):
        path = _unescape(entry, value.quote)
        if "${" in expand_home(path, home):
            raise CannotRewrite(
                f"line {d.number}: {what} uses {path}, a ${{VAR}} that a Define (or the "
                "environment) sets when Apache starts, so whether it names a concentric dir "
                "is unknown here; write the literal paths in its place and run again"
            )
        if is_concentric_dir(path, home):
            dropped.append(entry)
        elif entry:
            kept.append(entry)
    return ":".join(kept), ", ".join(dropped)


def _same_path(value: _Value, venv: str, home: str) -> bool:
    path = expand_home(_unescape(value.value, value.quote), home)
    return posixpath.normpath(path) == posixpath.normpath(venv)


def _single_argument(d: _Directive) -> _Token:
    if len(d.tokens) != 2:
        raise CannotRewrite(
            f"line {d.number}: {d.spelled} takes exactly one argument, found "
            f"{len(d.tokens) - 1}; quote a value that holds spaces and run again"
        )
    return d.tokens[1]


def _word(token: _Token, d: _Directive) -> _Value:
    raw = token.raw
    if raw[0] in _QUOTES and _quoted_end(raw, 0) == len(raw):
        return _Value(raw[0], raw[1:-1], raw[0], raw[0])
    if not any(q in raw for q in _QUOTES):
        return _Value("", raw, "", "")
    raise _unusual(token, d)


def _option_key(raw: str) -> str:
    inner = raw[1:] if raw[:1] in _QUOTES else raw
    key, eq, _ = inner.partition("=")
    return key.lower() if eq else ""


def _option(token: _Token, d: _Directive) -> _Value:
    """Split ``key=v``, ``key="v"``, ``key='v'``, ``"key=v"`` or ``'key=v'``."""
    raw = token.raw
    if raw[0] in _QUOTES:
        if _quoted_end(raw, 0) == len(raw):
            key, _, value = raw[1:-1].partition("=")
            return _Value(f"{raw[0]}{key}=", value, raw[0], raw[0])
        raise _unusual(token, d)
    key, _, value = raw.partition("=")
    if value[:1] and value[0] in _QUOTES and _quoted_end(value, 0) == len(value):
        return _Value(f"{key}={value[0]}", value[1:-1], value[0], value[0])
    if not any(q in value for q in _QUOTES):
        return _Value(f"{key}=", value, "", "")
    raise _unusual(token, d)


def _unusual(token: _Token, d: _Directive) -> CannotRewrite:
    return CannotRewrite(
        f"line {d.number + token.line}: unusual quoting in {token.raw} ({d.spelled}); "
        'quote the whole value (key="value") and run again'
    )


def _unescape(value: str, quote: str) -> str:
    """Undo Apache's ``\\\\`` and ``\\<quote>`` escapes."""
    escaped = ("\\", quote) if quote else ("\\",)
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in escaped:
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


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


def _tokenize(group: list[_Line], first: int) -> list[_Token]:
    """Words as mod_wsgi reads them: quotes open a word or an option's value."""
    tokens: list[_Token] = []
    for index, line in enumerate(group):
        text = _segment(line)
        i = 0
        while i < len(text):
            if text[i] in _BLANK:
                i += 1
                continue
            start = i
            quoted_at = i if text[i] in _QUOTES else -1
            seen_eq = False
            while i < len(text) and text[i] not in _BLANK:
                if i == quoted_at:
                    end = _quoted_end(text, i)
                    if end is None:
                        raise CannotRewrite(
                            f"line {first + index + 1}: unbalanced quote in "
                            f"{text.strip(_BLANK)!r}; close it on the same line and run again"
                        )
                    i = end
                    continue
                if text[i] == "=" and not seen_eq and quoted_at < 0:
                    seen_eq = True
                    quoted_at = i + 1 if text[i + 1 : i + 2] in ("'", '"') else quoted_at
                i += 1
            tokens.append(_Token(index, start, i, text[start:i]))
    return tokens


def _removals(tokens: list[_Token], removed: set[int]) -> list[tuple[int, int, int, str]]:
    """Spans that delete tokens with the blank before them (after them when first on a line)."""
    edits = []
    for line in sorted({tokens[i].line for i in removed}):
        on_line = [(i, t) for i, t in enumerate(tokens) if t.line == line]
        position = 0
        while position < len(on_line) and on_line[position][0] in removed:
            position += 1
        if position == len(on_line):
            continue
        if position:
            edits.append((line, on_line[0][1].start, on_line[position][1].start, ""))
        for (_, before), (index, token) in pairwise(on_line[position:]):
            if index in removed:
                edits.append((line, before.end, token.end, ""))
    return edits


def _apply(
    lines: list[_Line], edits: list[tuple[int, int, int, str]], dropped: set[int]
) -> list[_Line]:
    out: list[_Line] = []
    for index, line in enumerate(lines):
        if index in dropped:
            continue
        pieces: list[str] = []
        position = 0
        for _, start, end, text in sorted(e for e in edits if e[0] == index):
            pieces += [line.text[position:start], text]
            position = end
        out.append(_Line("".join(pieces) + line.text[position:], line.end))
    if len(lines) - 1 in dropped:
        last = out[-1].text.rstrip()
        out[-1] = _Line(last[:-1].rstrip() if last.endswith("\\") else last, lines[-1].end)
    return out


def _anchor(first: int, sections: list[tuple[str, int]]) -> tuple[int, str]:
    """Where a server-config directive may go: before the outermost context section."""
    for name, opened in sections:
        if name.lower() not in _CONDITIONAL:
            return opened, name
    return first, ""


def _home_line(lines: list[_Line], at: int, venv: str) -> _Line:
    text = lines[at].text
    indent = text[: len(text) - len(text.lstrip())]
    end = lines[at].end or next((line.end for line in lines if line.end), "\n")
    return _Line(f'{indent}WSGIPythonHome "{venv}"', end)


def _split_lines(text: str) -> list[_Line]:
    lines = []
    parts = text.split("\n")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if last and not part:
            break
        if not last and part.endswith("\r"):
            lines.append(_Line(part[:-1], "\r\n"))
        else:
            lines.append(_Line(part, "" if last else "\n"))
    return lines


def _logical_lines(lines: list[_Line]) -> list[tuple[int, int]]:
    """(first, last) line index of each ``\\``-continued directive, as apacheconf joins them."""
    out = []
    start = 0
    for index, line in enumerate(lines):
        if not line.text.rstrip().endswith("\\"):
            out.append((start, index))
            start = index + 1
    if start < len(lines):
        out.append((start, len(lines) - 1))
    return out


def _segment(line: _Line) -> str:
    """A physical line's text without its continuation backslash."""
    stripped = line.text.rstrip()
    return stripped[:-1] if stripped.endswith("\\") else line.text


def _first_word(text: str) -> str:
    return re.split(f"[{_BLANK}]", text.strip(_BLANK), maxsplit=1)[0]


def _joined(lines: list[_Line]) -> str:
    return "\n".join(line.text for line in lines)


def _join(
    lines: list[_Line], replaced: dict[int, tuple[int, list[_Line]]], inserted: dict[int, _Line]
) -> str:
    out: list[str] = []
    index = 0
    while index < len(lines):
        if index in inserted:
            out += [inserted[index].text, inserted[index].end]
        if index in replaced:
            last, new = replaced[index]
            out += [part for line in new for part in (line.text, line.end)]
            index = last + 1
            continue
        out += [lines[index].text, lines[index].end]
        index += 1
    return "".join(out)

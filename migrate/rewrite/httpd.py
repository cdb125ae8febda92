"""Point mod_wsgi in one Apache config file at the app's virtualenv.

``WSGIDaemonProcess`` gets ``python-home=VENV`` and loses the concentric entries of its
``python-path``; embedded mode gets ``WSGIPythonHome`` and a filtered ``WSGIPythonPath``.
Edits stay inside the physical lines a directive spans, so ``\\`` continuations, quoting,
indentation, tabs, comments and line endings are kept; every other line is copied as is.
The text is read by :func:`migrate.discover.httpd.parse`, the same reader the plan uses,
so the words edited here are the very words the plan modelled (quoting as mod_wsgi reads it).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from itertools import pairwise

from migrate.discover.httpd import Line, Statement, Value, Word, parse, unescape
from migrate.rewrite import (
    MARKER,
    CannotRewrite,
    Change,
    Rewrite,
    expand_home,
    is_concentric_dir,
)

_MOUNTS = frozenset({"wsgiscriptalias", "wsgiscriptaliasmatch"})
_CONDITIONAL = frozenset(
    {"ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"}
)
"""Sections decided at startup: server-config directives stay valid inside them."""
_WSGI = frozenset({"wsgidaemonprocess", "wsgipythonhome", "wsgipythonpath"})

_Edit = tuple[int, int, int, str]
"""(physical line index within the directive, start, end, new text)."""


@dataclass(frozen=True)
class _Directive:
    statement: Statement
    lines: list[Line]

    @property
    def number(self) -> int:
        return self.statement.first + 1

    @property
    def spelled(self) -> str:
        return self.statement.name

    @property
    def words(self) -> tuple[Word, ...]:
        return self.statement.words

    def span(self, word: Word, start: int, end: int, text: str) -> _Edit:
        return (word.line - self.statement.first, start, end, text)


def rewrite_httpd(text: str, *, venv: str, home: str) -> Rewrite:
    """Make every mod_wsgi interpreter in ``text`` use ``venv`` instead of concentric dirs.

    Raises :class:`CannotRewrite` when a value cannot be edited safely (``${VAR}`` in a
    path list, unbalanced or unusual quoting, a directive without its argument).
    """
    _check_venv(venv)
    parsed = parse(text)
    lines = list(parsed.lines)
    replaced: dict[int, tuple[int, list[Line]]] = {}
    changes: list[Change] = []
    sections: list[tuple[str, int]] = []
    has_daemon = has_home = has_mount = False
    anchor: tuple[int, str] | None = None
    for statement in parsed.statements:
        first, last = statement.first, statement.last
        if statement.kind == "close":
            if sections:
                sections.pop()
            continue
        if statement.kind == "open":
            sections.append((statement.name, first))
            continue
        name = statement.name.lower()
        if anchor is None and (name in _MOUNTS or name == "wsgipythonpath"):
            anchor = _anchor(first, sections)
        has_mount = has_mount or name in _MOUNTS
        if name not in _WSGI:
            continue
        if statement.error is not None:
            raise CannotRewrite(statement.error)
        group = lines[first : last + 1]
        directive = _Directive(statement, group)
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
    inserted: dict[int, Line] = {}
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


def _daemon(d: _Directive, venv: str, home: str) -> tuple[list[Line], str] | None:
    if len(d.words) < 2:
        raise CannotRewrite(
            f"line {d.number}: {d.spelled} has no process name; fix the directive and run again"
        )
    name = d.words[1]
    edits: list[_Edit] = []
    removed: set[int] = set()
    whys: list[str] = []
    homes = 0
    for index, word in enumerate(d.words[2:], 2):
        if word.key not in ("python-home", "python-path"):
            continue
        option = _checked(word.as_option(), word, d)
        if word.key == "python-home":
            homes += 1
            if not _same_path(option, venv):
                edits.append(d.span(word, word.start, word.end, option.with_value(venv)))
                whys.append(f"python-home {option.value} replaced by the virtualenv")
            continue
        kept, dropped = _filter_path(option, f"python-path of {d.spelled} {name.raw}", d, home)
        if not dropped:
            continue
        if kept:
            edits.append(d.span(word, word.start, word.end, option.with_value(kept)))
            whys.append(f"python-path no longer lists concentric dir(s) {dropped}")
        else:
            removed.add(index)
            whys.append(f"python-path removed: it listed only concentric dir(s) {dropped}")
    if not homes:
        value = f'"{venv}"' if any(c.isspace() for c in venv) else venv
        edits.append(d.span(name, name.end, name.end, f" python-home={value}"))
        whys.insert(0, "python-home added so the daemon runs in the app's virtualenv")
    if not edits and not removed:
        return None
    edits += _removals(d, removed)
    removed_lines = {d.words[i].line for i in removed}
    dropped_lines = {
        line - d.statement.first
        for line in removed_lines
        if all(i in removed for i, w in enumerate(d.words) if w.line == line)
    }
    return _apply(d.lines, edits, dropped_lines), "; ".join(whys)


def _python_home(d: _Directive, venv: str, home: str) -> tuple[list[Line], str] | None:
    word = _single_argument(d)
    value = _checked(word.as_word(), word, d)
    if _same_path(value, venv):
        return None
    edit = d.span(word, word.start, word.end, value.with_value(venv))
    why = f"{d.spelled} {value.value} replaced by the app's virtualenv"
    return _apply(d.lines, [edit], set()), why


def _python_path(d: _Directive, home: str) -> tuple[list[Line], str] | None:
    word = _single_argument(d)
    value = _checked(word.as_word(), word, d)
    kept, dropped = _filter_path(value, d.spelled, d, home)
    if not dropped:
        return None
    if kept:
        edit = d.span(word, word.start, word.end, value.with_value(kept))
        return _apply(d.lines, [edit], set()), f"concentric dir(s) {dropped} dropped"
    why = "only concentric dirs, the virtualenv replaces them"
    commented = []
    for i, line in enumerate(d.lines):
        body = line.text.lstrip()
        indent = line.text[: len(line.text) - len(body)]
        note = f"# {MARKER} {why}: " if i == 0 else "# "
        commented.append(Line(indent + note + body, line.end))
    return commented, f"commented out: it listed {why} ({dropped})"


def _filter_path(value: Value, what: str, d: _Directive, home: str) -> tuple[str, str]:
    """(kept entries joined, dropped entries joined); entries keep their escaping."""
    kept: list[str] = []
    dropped: list[str] = []
    for entry in value.value.split(":"):
        path = unescape(entry, value.quote)
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


def _same_path(value: Value, venv: str) -> bool:
    """Literally the venv: mod_wsgi expands no ``~`` or ``$HOME`` in a python-home, so such a
    value (which the plan reads as the relative path it is) gets the absolute venv path."""
    return posixpath.normpath(value.text) == posixpath.normpath(venv)


def _single_argument(d: _Directive) -> Word:
    if len(d.words) != 2:
        raise CannotRewrite(
            f"line {d.number}: {d.spelled} takes exactly one argument, found "
            f"{len(d.words) - 1}; quote a value that holds spaces and run again"
        )
    return d.words[1]


def _checked(value: Value | None, word: Word, d: _Directive) -> Value:
    if value is None:
        raise CannotRewrite(
            f"line {word.line + 1}: unusual quoting in {word.raw} ({d.spelled}); "
            'quote the whole value (key="value") and run again'
        )
    return value


def _removals(d: _Directive, removed: set[int]) -> list[_Edit]:
    """Spans that delete words with the blank before them (after them when first on a line)."""
    edits = []
    for line in sorted({d.words[i].line for i in removed}):
        on_line = [(i, w) for i, w in enumerate(d.words) if w.line == line]
        position = 0
        while position < len(on_line) and on_line[position][0] in removed:
            position += 1
        if position == len(on_line):
            continue
        first = on_line[0][1]
        if position:
            edits.append(d.span(first, first.start, on_line[position][1].start, ""))
        for (_, before), (index, word) in pairwise(on_line[position:]):
            if index in removed:
                edits.append(d.span(word, before.end, word.end, ""))
    return edits


def _apply(
    lines: list[Line], edits: list[tuple[int, int, int, str]], dropped: set[int]
) -> list[Line]:
    out: list[Line] = []
    for index, line in enumerate(lines):
        if index in dropped:
            continue
        pieces: list[str] = []
        position = 0
        for _, start, end, text in sorted(e for e in edits if e[0] == index):
            pieces += [line.text[position:start], text]
            position = end
        out.append(Line("".join(pieces) + line.text[position:], line.end))
    if len(lines) - 1 in dropped:
        last = out[-1].text.rstrip()
        out[-1] = Line(last[:-1].rstrip() if last.endswith("\\") else last, lines[-1].end)
    return out


def _anchor(first: int, sections: list[tuple[str, int]]) -> tuple[int, str]:
    """Where a server-config directive may go: before the outermost context section."""
    for name, opened in sections:
        if name.lower() not in _CONDITIONAL:
            return opened, name
    return first, ""


def _home_line(lines: list[Line], at: int, venv: str) -> Line:
    text = lines[at].text
    indent = text[: len(text) - len(text.lstrip())]
    end = lines[at].end or next((line.end for line in lines if line.end), "\n")
    return Line(f'{indent}WSGIPythonHome "{venv}"', end)


def _joined(lines: list[Line]) -> str:
    return "\n".join(line.text for line in lines)


def _join(
    lines: list[Line], replaced: dict[int, tuple[int, list[Line]]], inserted: dict[int, Line]
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

"""Rewrite Python shebangs and WebFaction Apache start scripts; sh word handling for both.

A script's shebang decides its interpreter, so a migrated script must name its venv's
``bin/python`` there. An app's ``apache2/bin/start`` may export a ``PYTHONPATH`` that puts
concentric dirs in front of the venv; those entries go, everything else stays as written.

Both edit the word spans of :mod:`migrate.discover.shell`, the reader the plan uses too,
and never re-serialise a command, so whatever they do not touch keeps its bytes.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

from migrate.discover.interpreters import PYTHON_NAME
from migrate.discover.processes import unwrapped
from migrate.discover.shell import (
    ASSIGNMENT,
    CommandParts,
    ShellScript,
    SimpleCommand,
    Word,
    command_parts,
    entry_value,
    parse_shell,
    path_entries,
    strict_unquote,
)
from migrate.rewrite import MARKER, CannotRewrite, Change, Rewrite, is_concentric_dir, splice

SHEBANG_MAX = 127
"""Older kernels read 128 bytes (BINPRM_BUF_SIZE) and need the newline within them."""
PYTHONPATH = "PYTHONPATH"

_BODY_OPENERS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "{", "("})
_BODY_CLOSERS = frozenset({"fi", "done", "elif", "else", "then", "do", "}", ")", ";;"})
_CONTINUATIONS = frozenset({"&&", "||", "|"})
_PIECES = re.compile(r"[\s:;'\"=`()|&<>]+")


# --------------------------------------------------------------------------- path lists


def clean_path_list(value: str, home: str) -> str:
    """A ``PYTHONPATH``-style value without its concentric entries, quoting kept.

    ``value`` is the text after ``NAME=`` as written (sh quoting, ``$VAR`` references,
    ``${X:-a:b}`` kept whole). When nothing is concentric it comes back unchanged; when
    nothing else remains the result is ``""``.
    """
    return clean_path_list_dropping(value, home)[0]


def clean_path_list_dropping(
    value: str, home: str, *, literal: bool = False
) -> tuple[str, tuple[str, ...]]:
    """:func:`clean_path_list` and the entries it dropped (quote-removed).

    Each entry is judged as it reaches Python (:func:`migrate.discover.shell.entry_value`):
    as sh assigns it, or with ``literal`` as written (a crontab's environment line: cron
    expands nothing, so ``~/…`` and ``$HOME/…`` are relative paths, never concentric).
    """
    try:
        entries, separators = path_entries(value)
    except (ValueError, RecursionError):
        return value, ()
    logical = ["".join(strict_unquote(q + text + q) for text, q in entry) for entry in entries]
    values = [entry_value(entry, home, literal=literal) for entry in entries]
    kept = [
        i
        for i, value in enumerate(values)
        if not (value.strip().startswith("/") and is_concentric_dir(value, home))
    ]
    if len(kept) == len(entries):
        return value, ()
    dropped = tuple(logical[i].strip() for i in range(len(entries)) if i not in kept)
    pieces: list[tuple[str, str]] = []
    for position, index in enumerate(kept):
        if position:
            pieces.append((":", separators[index - 1]))
        pieces.extend(entries[index])
    merged: list[tuple[str, str]] = []
    for text, quote in pieces:
        if merged and merged[-1][1] == quote:
            merged[-1] = (merged[-1][0] + text, quote)
        else:
            merged.append((text, quote))
    return "".join(q + text + q for text, q in merged), dropped


def mentions_concentric(text: str, home: str) -> bool:
    """Any word-like piece of ``text`` names a concentric dir (for text we cannot parse)."""
    return any(is_concentric_dir(piece, home) for piece in _PIECES.split(text) if piece)


# --------------------------------------------------------------------------- shebangs


def rewrite_shebang(text: str, *, venv: str) -> Rewrite:
    """Point a Python script's shebang at ``VENV/bin/python``, keeping its options.

    ``#!/usr/bin/env [-S] pythonX.Y`` loses ``env`` unless ``-S`` is still needed (more
    than one option word, or ``NAME=value`` assignments): the kernel passes everything
    after the interpreter as a single argument.
    """
    if not text.startswith("#!"):
        return Rewrite(text)
    newline = text.find("\n")
    line = text if newline < 0 else text[:newline]
    body = line.removesuffix("\r")
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"[^ \t]+", body[2:])]
    words = [(start + 2, end + 2, word) for start, end, word in words]
    if not words:
        return Rewrite(text)
    python = posixpath.join(venv.rstrip("/") or "/", "bin", "python")
    first = words[0]
    if posixpath.basename(first[2]) == "env":
        found = _env_python(words[1:], body)
        if found is None:
            return Rewrite(text)
        target, keep_env = found
        start = target[0] if keep_env else first[0]
    elif PYTHON_NAME.match(posixpath.basename(first[2])):
        target, start = first, first[0]
    else:
        return Rewrite(text)
    if target[2] == python:
        return Rewrite(text)
    if re.search(r"\s", python):
        raise CannotRewrite(
            f"the venv path {venv!r} contains whitespace, which a shebang line cannot hold; "
            "build the venv at a path without spaces"
        )
    new_line = line[:start] + python + line[target[1] :]
    size = len(new_line.encode("utf-8", "surrogateescape"))
    if size > SHEBANG_MAX:
        raise CannotRewrite(
            f"the new shebang {new_line.rstrip()!r} is {size} bytes; kernels before 5.1 "
            f"read only {SHEBANG_MAX} (BINPRM_BUF_SIZE 128 with the newline), so the venv "
            f"path {venv!r} is too long for a shebang: build the venv at a shorter path"
        )
    why = f"the script runs with the venv's Python ({python}) instead of {target[2]}"
    rest = "" if newline < 0 else text[newline:]
    return Rewrite(new_line + rest, (Change(1, line, new_line, why),))


def _env_python(
    words: list[tuple[int, int, str]], body: str
) -> tuple[tuple[int, int, str], bool] | None:
    """The Python word of ``env [-S] [NAME=value ...] python [options]`` and whether
    ``env -S`` must stay; ``None`` when env does not run Python."""
    split = bool(words) and words[0][2] == "-S"
    rest = words[1:] if split else words
    assignments = 0
    while assignments < len(rest) and ASSIGNMENT.match(rest[assignments][2]):
        assignments += 1
    rest = rest[assignments:]
    if not rest or not PYTHON_NAME.match(posixpath.basename(rest[0][2])):
        if any(PYTHON_NAME.match(posixpath.basename(w)) for _, _, w in words):
            raise CannotRewrite(
                f"the shebang {body!r} runs Python through env options this rewriter does "
                "not model; change it to the venv's bin/python by hand"
            )
        return None
    return rest[0], assignments > 0 or (split and len(rest) > 2)


# --------------------------------------------------------------------------- start scripts


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str
    why: str


def rewrite_start_script(text: str, *, home: str) -> Rewrite:
    """Drop concentric entries from every ``PYTHONPATH`` an sh start script sets.

    A standalone assignment or ``export`` left with nothing is commented out (the whole
    line, when that line does nothing else); an inline ``PYTHONPATH=... httpd`` word left
    with nothing is removed. ``$PYTHONPATH`` references and quoting are kept.
    """
    if PYTHONPATH not in text:
        return Rewrite(text)
    try:
        script = parse_shell(text)
    except ValueError as exc:
        if mentions_concentric(text, home):
            raise CannotRewrite(
                f"cannot read the start script as sh ({exc}); remove the concentric "
                "PYTHONPATH entries by hand"
            ) from exc
        return Rewrite(text)
    edits: list[_Edit] = []
    emptied: dict[int, list[_Edit]] = {}
    for index, command in enumerate(script.commands):
        parts = command_parts(command)
        exporting = parts.program is not None and parts.program.value == "export"
        inline = parts.program is not None and not exporting
        setters = [w for w in parts.assignments if w.assigns == PYTHONPATH]
        if exporting:
            setters += [w for w in parts.args if w.assigns == PYTHONPATH]
        cleaned = [
            (w, _clean_word(text, w, home, inline, parts if exporting else None)) for w in setters
        ]
        changed = [edit for _, edit in cleaned if edit is not None]
        sole = len(command.words) == len(setters) + exporting
        if changed and sole and all(e is not None and not e.text for _, e in cleaned):
            emptied[index] = changed
        else:
            edits.extend(changed)
    for line_start, line_end, indices in _emptied_lines(text, script, emptied):
        line = text[line_start:line_end]
        indent = line[: len(line) - len(line.lstrip())]
        why = "; ".join(e.why for i in indices for e in emptied.pop(i))
        note = f"{indent}# {MARKER} {why}: {line.lstrip()}"
        edits.append(_Edit(line_start, line_end, note, why))
    edits.extend(e for group in emptied.values() for e in group)
    return _apply(text, edits)


def _clean_word(
    text: str, word: Word, home: str, inline: bool, export: CommandParts | None
) -> _Edit | None:
    """The edit for one ``PYTHONPATH=`` word: a cleaned value, an empty value, or (inline,
    or one of several ``export`` arguments) no word at all."""
    value_start = word.start + len(PYTHONPATH) + 1
    value_end = value_start + len(text[value_start : word.end].rstrip("\r"))
    cleaned, dropped = clean_path_list_dropping(text[value_start:value_end], home)
    if not dropped:
        return None
    why = f"PYTHONPATH no longer lists concentric {', '.join(dropped)}"
    if cleaned:
        return _Edit(value_start, value_end, cleaned, why)
    if inline:
        end = word.end
        while end < len(text) and text[end] in " \t":
            end += 1
        return _Edit(word.start, end, "", why)
    if export is not None and any(PYTHONPATH not in (a.assigns, a.value) for a in export.args):
        start = word.start
        while start > 0 and text[start - 1] in " \t":
            start -= 1
        return _Edit(start, value_end, "", why)
    return _Edit(value_start, value_end, "", why)


def _emptied_lines(
    text: str, script: ShellScript, emptied: dict[int, list[_Edit]]
) -> list[tuple[int, int, list[int]]]:
    """Lines whose only commands set or export a ``PYTHONPATH`` now left empty, and
    which can be commented out without breaking the script around them."""
    out = []
    for line_start in sorted({_line_start(text, script.commands[i].start) for i in emptied}):
        line_end = _line_end(text, line_start)
        indices = _commentable(text, script, line_start, line_end, emptied)
        if indices is not None:
            out.append((line_start, line_end, [i for i in indices if i in emptied]))
    return out


def _commentable(
    text: str, script: ShellScript, line_start: int, line_end: int, emptied: dict[int, list[_Edit]]
) -> list[int] | None:
    """The commands of the line, when commenting it out keeps the script's structure: no
    other command, redirection or here-document on it, no continuation into or out of it,
    not the only command of an ``if``/``while`` body, not one side of ``&&``/``||``/``|``."""
    on_line = [
        (i, t)
        for i, t in enumerate(script.tokens)
        if t.start < line_end and t.end > line_start and t.kind != "comment"
    ]
    into = text[:line_start].rstrip("\r\n").endswith("\\")
    out_of = text[line_start:line_end].rstrip("\r").endswith("\\")
    if not on_line or into or out_of:
        return None
    if script.owners[on_line[0][0]] is None:
        return None
    indices = sorted({script.owners[i] for i, _ in on_line} - {None})
    for index in indices:
        command = script.commands[index]
        if index not in emptied and not _exports_only(command):
            return None
        if command.start < line_start or command.end > line_end:
            return None
    for i, token in on_line:
        if script.owners[i] is None and token.text not in (";", "&&"):
            return None
        if script.owners[i] is not None and token.kind != "word":
            return None
    before = _neighbour(script, range(on_line[0][0] - 1, -1, -1))
    after = _neighbour(script, range(on_line[-1][0] + 1, len(script.tokens)))
    if before in _CONTINUATIONS or (before in _BODY_OPENERS and after in _BODY_CLOSERS):
        return None
    return indices


def rewrite_launches(text: str, *, venv: str, lines: str) -> Rewrite:
    """Point each Python command on ``lines`` (comma-separated numbers: the commands the
    plan found, :mod:`migrate.discover.processes`) at ``VENV/bin/python``.

    Only the program word changes (``nohup``, ``exec``, ``env VAR=…`` and the arguments
    keep their bytes); a command already running that python is left alone.
    """
    wanted = {int(n) for n in lines.split(",") if n}
    try:
        script = parse_shell(text)
    except ValueError as exc:
        raise CannotRewrite(
            f"cannot read the script as sh ({exc}); point its Python commands at "
            f"{venv}/bin/python by hand"
        ) from exc
    python = posixpath.join(venv.rstrip("/") or "/", "bin", "python")
    edits = []
    for command in script.commands:
        if text.count("\n", 0, command.start) + 1 not in wanted:
            continue
        words = unwrapped(command)
        if not words or not PYTHON_NAME.match(posixpath.basename(words[0].value)):
            continue
        program = words[0]
        if program.value == python:
            continue
        why = f"runs the venv's Python ({python}) instead of {program.value}"
        edits.append(_Edit(program.start, program.end, shlex.quote(python), why))
    return _apply(text, edits)


def _exports_only(command: SimpleCommand) -> bool:
    return [w.value for w in command.words] == ["export", PYTHONPATH]


def _neighbour(script: ShellScript, indices: range) -> str | None:
    """The nearest token (past newlines and comments) as keyword or operator text."""
    for index in indices:
        token = script.tokens[index]
        if token.kind == "comment" or token.text == "\n":
            continue
        return token.text
    return None


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _apply(text: str, edits: list[_Edit]) -> Rewrite:
    if not edits:
        return Rewrite(text)
    edits = sorted(edits, key=lambda e: e.start)
    changes: list[Change] = []
    new = splice(text, ((e.start, e.end, e.text) for e in edits))
    by_line: dict[int, list[_Edit]] = {}
    for edit in edits:
        by_line.setdefault(_line_start(text, edit.start), []).append(edit)
    shift = 0
    for line_start, group in sorted(by_line.items()):
        line_end = max(_line_end(text, line_start), max(e.end for e in group))
        line_end = _line_end(text, line_end)
        delta = sum(len(e.text) - (e.end - e.start) for e in group)
        before = text[line_start:line_end]
        after = new[line_start + shift : line_end + shift + delta]
        whys = list(dict.fromkeys(e.why for e in group))
        changes.append(Change(text.count("\n", 0, line_start) + 1, before, after, "; ".join(whys)))
        shift += delta
    return Rewrite(new, tuple(changes))


def _line_end(text: str, offset: int) -> int:
    newline = text.find("\n", offset)
    return len(text) if newline < 0 else newline

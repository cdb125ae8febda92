"""sh as cron and start scripts run it: words with their exact spans, simple commands.

The one reader of shell text, for the plan (what a cron job or a start script runs, with
which ``PYTHONPATH``) and for the rewriters, which edit the spans found here and never
re-serialise a command. Hand-written because ``shlex`` keeps no spans and knows neither
``$(...)``, here-documents nor redirections; nothing is expanded or executed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_PROGRAMS = frozenset({"env", "/usr/bin/env", "/bin/env"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = (
    "<<-", "&&", "||", ";;", "<<", ">>", "<&", ">&", "<>", ">|", "&>",
    ";", "&", "|", "(", ")", "<", ">",
)  # fmt: skip
_WORD_END = frozenset(" \t\n;&|()<>")
_SEPARATORS = frozenset({";", "&&", "||", ";;", "&", "|", "(", ")", "\n"})
_RESERVED = frozenset(
    {"if", "then", "elif", "else", "fi", "do", "done", "while", "until", "!", "{", "}"}
)


@dataclass(frozen=True)
class Word:
    start: int
    end: int
    raw: str
    value: str
    """After quote removal; expansions (``$x``, ``$(...)``) stay as written."""

    @property
    def assigns(self) -> str | None:
        """The variable a ``NAME=value`` word assigns (the name must be unquoted)."""
        match = ASSIGNMENT.match(self.raw)
        return match.group(0)[:-1] if match else None


@dataclass(frozen=True)
class Token:
    kind: str
    """``word``, ``io`` (the 2 of ``2>``), ``op``, ``target`` (of a redirection),
    ``comment`` or ``heredoc`` (a here-document's body)."""
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SimpleCommand:
    words: tuple[Word, ...]
    """Its words without redirections."""
    start: int
    end: int


@dataclass(frozen=True)
class CommandParts:
    """``[NAME=value ...] [env [NAME=value ...]] program args...``"""

    assignments: tuple[Word, ...]
    program: Word | None
    args: tuple[Word, ...]


@dataclass(frozen=True)
class ShellScript:
    tokens: tuple[Token, ...]
    commands: tuple[SimpleCommand, ...]
    owners: tuple[int | None, ...]
    """For each token, the index of the simple command it belongs to."""


def parse_shell(text: str) -> ShellScript:
    """Simple commands of sh text with exact spans; ``ValueError`` on unbalanced quoting."""
    try:
        tokens = _tokens(text)
    except RecursionError as exc:
        raise ValueError("expansions nested too deeply") from exc
    commands: list[SimpleCommand] = []
    owners: list[int | None] = [None] * len(tokens)
    current: list[int] = []

    def flush() -> None:
        words = [tokens[i] for i in current if tokens[i].kind == "word"]
        if words:
            for i in current:
                owners[i] = len(commands)
            commands.append(
                SimpleCommand(
                    tuple(Word(t.start, t.end, t.text, unquote(t.text)) for t in words),
                    tokens[current[0]].start,
                    tokens[current[-1]].end,
                )
            )
        current.clear()

    for index, token in enumerate(tokens):
        if token.kind == "op" and token.text in _SEPARATORS:
            flush()
        elif token.kind in ("comment", "heredoc"):
            continue
        elif token.kind == "word" and token.text in _RESERVED and not _has_word(tokens, current):
            flush()
        else:
            current.append(index)
    flush()
    return ShellScript(tuple(tokens), tuple(commands), tuple(owners))


def command_parts(command: SimpleCommand) -> CommandParts:
    words = command.words
    index = 0
    while index < len(words) and words[index].assigns:
        index += 1
    assignments = list(words[:index])
    if index < len(words) and words[index].value in ENV_PROGRAMS:
        after = index + 1
        while after < len(words) and words[after].assigns:
            after += 1
        if after < len(words):
            assignments.extend(words[index + 1 : after])
            index = after
    program = words[index] if index < len(words) else None
    return CommandParts(tuple(assignments), program, words[index + 1 :])


def unquote(raw: str) -> str:
    """Quote removal of one sh word (no expansion); unbalanced input comes back as is."""
    try:
        return strict_unquote(raw)
    except (ValueError, IndexError, RecursionError):
        return raw


def _has_word(tokens: list[Token], indices: list[int]) -> bool:
    return any(tokens[i].kind == "word" for i in indices)


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    heredocs: list[tuple[str, bool]] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char in " \t":
            index += 1
        elif text.startswith("\\\n", index):
            index += 2
        elif char == "\n":
            tokens.append(Token("op", index, index + 1, "\n"))
            index += 1
            if heredocs:
                end = _heredoc_end(text, index, heredocs)
                tokens.append(Token("heredoc", index, end, text[index:end]))
                index, heredocs = end, []
        elif char == "#":
            end = text.find("\n", index)
            end = size if end < 0 else end
            tokens.append(Token("comment", index, end, text[index:end]))
            index = end
        elif op := next((o for o in _OPERATORS if text.startswith(o, index)), None):
            tokens.append(Token("op", index, index + len(op), op))
            index += len(op)
            if "<" in op or ">" in op:
                while index < size and text[index] in " \t":
                    index += 1
                if index < size and text[index] not in _WORD_END:
                    end = _word_end(text, index)
                    tokens.append(Token("target", index, end, text[index:end]))
                    if op in ("<<", "<<-"):
                        heredocs.append((unquote(text[index:end]), op == "<<-"))
                    index = end
        else:
            end = _word_end(text, index)
            word = text[index:end]
            io = word.isdigit() and end < size and text[end] in "<>"
            tokens.append(Token("io" if io else "word", index, end, word))
            index = end
    return tokens


def _heredoc_end(text: str, index: int, heredocs: list[tuple[str, bool]]) -> int:
    for delimiter, strip_tabs in heredocs:
        while index < len(text):
            newline = text.find("\n", index)
            end = len(text) if newline < 0 else newline + 1
            line = text[index:end].rstrip("\n")
            index = end
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
    return index


def _word_end(text: str, index: int) -> int:
    while index < len(text) and text[index] not in _WORD_END:
        index = unit_end(text, index)
    return index


def unit_end(text: str, index: int) -> int:
    """End of the quoted string, escape, expansion or plain character at ``index``."""
    char = text[index]
    if char == "\\":
        return min(index + 2, len(text))
    if char == "'":
        end = text.find("'", index + 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return end + 1
    if char == '"':
        return _double_quote_end(text, index + 1)
    if char == "`":
        return _backquote_end(text, index + 1)
    if text.startswith("$(", index):
        return _group_end(text, index + 2, "(", ")")
    if text.startswith("${", index):
        return _group_end(text, index + 2, "{", "}")
    return index + 1


def is_expansion(text: str, index: int) -> bool:
    return text[index] == "`" or text.startswith(("$(", "${"), index)


def _double_quote_end(text: str, index: int) -> int:
    while index < len(text):
        char = text[index]
        if char == '"':
            return index + 1
        if char == "\\":
            index += 2
        elif is_expansion(text, index):
            index = unit_end(text, index)
        else:
            index += 1
    raise ValueError("unterminated double quote")


def _backquote_end(text: str, index: int) -> int:
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text[index] == "`":
            return index + 1
        else:
            index += 1
    raise ValueError("unterminated backquote")


def _group_end(text: str, index: int, opening: str, closing: str) -> int:
    depth = 1
    while index < len(text):
        char = text[index]
        if char == closing:
            depth -= 1
            if depth == 0:
                return index + 1
            index += 1
        elif char == opening:
            depth += 1
            index += 1
        elif char in "\\'\"`$":
            index = unit_end(text, index)
        else:
            index += 1
    raise ValueError(f"unterminated ${opening}")


def strict_unquote(raw: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            if raw[index + 1 : index + 2] not in ("", "\n"):
                out.append(raw[index + 1])
            index += 2
        elif char == "'":
            end = unit_end(raw, index)
            out.append(raw[index + 1 : end - 1])
            index = end
        elif char == '"':
            end = _double_quote_end(raw, index + 1)
            out.append(_unescape_double(raw[index + 1 : end - 1]))
            index = end
        elif is_expansion(raw, index):
            end = unit_end(raw, index)
            out.append(raw[index:end])
            index = end
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _unescape_double(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        if body[index] == "\\" and body[index + 1 : index + 2] in ('"', "\\", "$", "`", "\n"):
            if body[index + 1] != "\n":
                out.append(body[index + 1])
            index += 2
        elif is_expansion(body, index):
            end = unit_end(body, index)
            out.append(body[index:end])
            index = end
        else:
            out.append(body[index])
            index += 1
    return "".join(out)


def path_entries(value: str) -> tuple[list[list[tuple[str, str]]], list[str]]:
    """Entries as (text, quote) pieces, split at every ``:`` outside expansions, and the
    quote each ``:`` stood in."""
    entries: list[list[tuple[str, str]]] = [[]]
    separators: list[str] = []
    buffer: list[str] = []
    quote = ""

    def push(force: bool = False) -> None:
        if buffer or force:
            entries[-1].append(("".join(buffer), quote))
            buffer.clear()

    index = 0
    while index < len(value):
        char = value[index]
        if char == ":":
            push()
            entries.append([])
            separators.append(quote)
            index += 1
        elif char == quote:
            push(force=True)
            quote = ""
            index += 1
        elif quote == "" and char in "'\"":
            push()
            quote = char
            index += 1
        elif quote != "'" and (char == "\\" or is_expansion(value, index)):
            end = min(index + 2, len(value)) if char == "\\" else unit_end(value, index)
            buffer.append(value[index:end])
            index = end
        else:
            buffer.append(char)
            index += 1
    if quote:
        raise ValueError("unterminated quote")
    push()
    return entries, separators


_HOME_VARIABLE = re.compile(r"\$\{HOME\}|\$HOME(?![A-Za-z0-9_])")


def entry_value(entry: list[tuple[str, str]], home: str, *, literal: bool = False) -> str:
    """One ``:``-separated entry of an assigned value as it reaches the program: sh expands
    ``~`` at its start when unquoted and ``$HOME``/``${HOME}`` outside single quotes; other
    expansions stay as written. ``literal``: nothing is expanded (a cron environment line)."""
    out = []
    for position, (text, quote) in enumerate(entry):
        value = unquote(quote + text + quote)
        if not literal and quote != "'":
            value = _HOME_VARIABLE.sub(lambda _m: home, value)
            if position == 0 and not quote and (text == "~" or text.startswith("~/")):
                value = home + value[1:]
        out.append(value)
    return "".join(out)


def assigned_value(word: Word, home: str) -> tuple[str, str]:
    """(name, value) a ``NAME=value`` word assigns, with the expansions sh applies that
    matter for paths (:func:`entry_value`, entry by entry)."""
    name, _, raw = word.raw.partition("=")
    try:
        entries, _separators = path_entries(raw)
    except (ValueError, RecursionError):
        return name, word.value.partition("=")[2]
    return name, ":".join(entry_value(entry, home) for entry in entries)


def expand_word(value: str, home: Path) -> str:
    """A word as sh hands it to a program, as far as paths go: ``~`` at its start and
    ``$HOME``/``${HOME}`` expanded; every other expansion stays as written."""
    value = value.replace("${HOME}", str(home)).replace("$HOME", str(home))
    if value == "~" or value.startswith("~/"):
        value = str(home) + value[1:]
    return value


def expand_path(value: str, home: Path, cwd: Path) -> Path:
    """A path as a shell in ``cwd`` would read it: :func:`expand_word`, then normalized."""
    path = Path(expand_word(value, home))
    return Path(os.path.normpath(path if path.is_absolute() else cwd / path))

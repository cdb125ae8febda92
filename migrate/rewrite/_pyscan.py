"""The tolerant scanner behind :mod:`migrate.rewrite.pyfile`: Python 2 or 3 source as
logical lines of tokens (strings with every prefix, triple quotes, f-string fields,
comments, brackets, backslash continuations), with the offsets the editor needs."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LEADING_SPACE = re.compile(r"[ \t\f]*")
_SPACE = re.compile(r"[ \t\f]+")
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\.?\d[\w.]*")
_OPERATOR = re.compile(
    r"\*\*=|//=|>>=|<<=|\.\.\.|->|:=|==|!=|<>|<=|>=|\*\*|//|<<|>>|[-+*/%&|^@]=|.", re.S
)
_STRING_PREFIXES = frozenset(
    {"", "r", "u", "b", "f", "t", "br", "rb", "ur", "ru", "fr", "rf", "tr", "rt"}
)
_MAX_FSTRING_NESTING = 8


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """``name``, ``string``, ``number`` or ``op``."""
    text: str
    start: int
    end: int


@dataclass(slots=True)
class _Logical:
    """One logical line: tokens ``[first, stop)`` of the file, physical lines ``[top, bottom]``."""

    first: int
    stop: int
    top: int
    bottom: int
    column: int
    """Indentation width (tabs to multiples of 8, as Python 2 counts them)."""


@dataclass(frozen=True)
class _Source:
    text: str
    tokens: list[_Token]
    closer: dict[int, int]
    """Index of each opening bracket token -> index of its closing bracket."""
    lines: list[_Logical]
    starts: list[int]
    """Offset where each physical line starts."""

    def physical(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def line_end(self, row: int) -> int:
        """Offset of the line break ending physical line ``row`` (or of the end of text)."""
        end = self.starts[row + 1] if row + 1 < len(self.starts) else len(self.text)
        while end > self.starts[row] and self.text[end - 1] in "\r\n":
            end -= 1
        return end

    def indent_end(self, row: int) -> int:
        start = self.starts[row]
        if row == 0 and self.text.startswith("\ufeff"):
            start += 1
        match = _LEADING_SPACE.match(self.text, start)
        assert match is not None
        return match.end()


def _scan(text: str) -> _Source:
    """Tokens and logical lines, tolerant of anything (unterminated strings, stray brackets)."""
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    if starts[-1] == len(text) and len(starts) > 1:
        starts.pop()
    tokens: list[_Token] = []
    lines: list[_Logical] = []
    closer: dict[int, int] = {}
    opened: list[int] = []
    begin = 0
    pos = 1 if text.startswith("\ufeff") else 0
    size = len(text)

    def close_line() -> None:
        nonlocal begin
        if len(tokens) > begin:
            top = bisect.bisect_right(starts, tokens[begin].start) - 1
            bottom = bisect.bisect_right(starts, tokens[-1].end - 1) - 1
            lines.append(_Logical(begin, len(tokens), top, bottom, _column(text, starts, top)))
        begin = len(tokens)
        opened.clear()

    while pos < size:
        char = text[pos]
        if char in " \t\f":
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        elif char == "#":
            found = _LINE_BREAK.search(text, pos)
            pos = found.start() if found else size
        elif char in "\r\n":
            if not opened:
                close_line()
            pos += 2 if text.startswith("\r\n", pos) else 1
        elif char == "\\" and text[pos + 1 : pos + 2] in ("\r", "\n"):
            pos += 3 if text.startswith("\r\n", pos + 1) else 2
        elif char in "'\"":
            end = _string_end(text, pos, "", 0)
            tokens.append(_Token("string", text[pos:end], pos, end))
            pos = end
        elif (name := _NAME.match(text, pos)) is not None:
            end = name.end()
            if text[end : end + 1] in ("'", '"') and name.group().lower() in _STRING_PREFIXES:
                end = _string_end(text, end, name.group().lower(), 0)
                tokens.append(_Token("string", text[pos:end], pos, end))
            else:
                tokens.append(_Token("name", name.group(), pos, end))
            pos = end
        elif (number := _NUMBER.match(text, pos)) is not None:
            tokens.append(_Token("number", number.group(), pos, number.end()))
            pos = number.end()
        else:
            end = _OPERATOR.match(text, pos).end()  # type: ignore[union-attr]
            tokens.append(_Token("op", text[pos:end], pos, end))
            if char in "([{":
                opened.append(len(tokens) - 1)
            elif char in ")]}" and opened:
                closer[opened.pop()] = len(tokens) - 1
            pos = end
    close_line()
    return _Source(text, tokens, closer, lines, starts)


def _column(text: str, starts: list[int], row: int) -> int:
    column = 0
    for char in text[starts[row] : starts[row + 1] if row + 1 < len(starts) else len(text)]:
        if char == " ":
            column += 1
        elif char == "\t":
            column = column // 8 * 8 + 8
        elif char == "\f":
            column = 0
        elif char != "\ufeff":
            break
    return column


def _string_end(text: str, pos: int, prefix: str, nesting: int) -> int:
    """End of the string literal whose opening quote is at ``pos``."""
    quote = text[pos]
    triple = text.startswith(quote * 3, pos)
    delimiter = quote * 3 if triple else quote
    formatted = ("f" in prefix or "t" in prefix) and nesting < _MAX_FSTRING_NESTING
    index = pos + len(delimiter)
    size = len(text)
    while index < size:
        char = text[index]
        if char == "\\":
            index += 3 if text.startswith("\r\n", index + 1) else 2
        elif text.startswith(delimiter, index):
            return index + len(delimiter)
        elif char in "\r\n" and not triple:
            return index
        elif formatted and char == "{":
            if text.startswith("{{", index):
                index += 2
            else:
                index = _field_end(text, index + 1, triple, nesting)
        else:
            index += 1
    return size


def _field_end(text: str, index: int, triple: bool, nesting: int) -> int:
    """End of an f-string replacement field; stops at a line break in a one-line string."""
    depth = 0
    size = len(text)
    while index < size:
        char = text[index]
        if char in "'\"":
            run = index
            while run > 0 and text[run - 1].isalpha():
                run -= 1
            prefix = text[run:index].lower()
            index = _string_end(
                text, index, prefix if prefix in _STRING_PREFIXES else "", nesting + 1
            )
        elif char in "\r\n" and not triple:
            return index
        elif char in "([{":
            depth += 1
            index += 1
        elif char in ")]}":
            if depth == 0 and char == "}":
                return index + 1
            depth = max(depth - 1, 0)
            index += 1
        else:
            index += 1
    return size

"""The static evaluator behind :mod:`migrate.rewrite.pyfile`: what a path expression in
the scanned source evaluates to when that is known without running it (literals, ``+``,
``%s``, ``.format``, f-strings, ``os.path.join/expanduser/...``, ``os.environ['HOME']``,
names bound earlier). This module reads the tokens; what each operation means is
:mod:`migrate.discover.pathexpr`, the table the plan's reader uses too."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

from migrate.discover import pathexpr
from migrate.rewrite._pyscan import _Source, _Token


@dataclass(frozen=True)
class _Ref:
    """A module or function reached by name (``os.path.join``), canonical spelling."""

    name: str


@dataclass(frozen=True)
class _Method:
    value: str
    name: str


class _NotStatic(Exception):
    pass


_Value = str | tuple | _Ref | _Method


_canonical = pathexpr.canonical


def _prefixed(token: str) -> tuple[str, str]:
    """A string token's prefix (lower case) and its quoted part."""
    head = 0
    while token[head] not in "'\"":
        head += 1
    return token[:head].lower(), token[head:]


def _string_value(token: str) -> str:
    """Value of one string literal token, Python 2 prefixes included; raises if not static."""
    prefix, quoted = _prefixed(token)
    if "f" in prefix or "t" in prefix:
        raise _NotStatic(token)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(prefix.replace("u", "") + quoted)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise _NotStatic(token) from exc
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if not isinstance(value, str):
        raise _NotStatic(token)
    return value


class _Evaluator:
    """Static value of an expression's tokens, given the names known at that point."""

    def __init__(
        self, source: _Source, home: str, names: dict[str, str], modules: dict[str, str]
    ) -> None:
        self.tokens = source.tokens
        self.closer = source.closer
        self.home = home
        self.names = names
        self.modules = modules

    def path(self, start: int, stop: int) -> str | None:
        """The string ``tokens[start:stop]`` evaluates to, or None when that is not static."""
        try:
            value, end = self._sum(start, stop)
        except (_NotStatic, RecursionError):
            return None
        return value if end == stop and isinstance(value, str) else None

    def _sum(self, index: int, stop: int) -> tuple[_Value, int]:
        value, index = self._product(index, stop)
        while index < stop and self.tokens[index].text == "+":
            right, index = self._product(index + 1, stop)
            if not (isinstance(value, str) and isinstance(right, str)):
                raise _NotStatic("+")
            value += right
        return value, index

    def _product(self, index: int, stop: int) -> tuple[_Value, int]:
        value, index = self._postfix(index, stop)
        while index < stop and self.tokens[index].text == "%":
            arguments, index = self._postfix(index + 1, stop)
            value = _percent(value, arguments, self.home)
        return value, index

    def _postfix(self, index: int, stop: int) -> tuple[_Value, int]:
        value, index = self._atom(index, stop)
        tokens = self.tokens
        while index < stop:
            token = tokens[index]
            if token.text == "." and index + 1 < stop and tokens[index + 1].kind == "name":
                value = self._attribute(value, tokens[index + 1].text)
                index += 2
            elif token.text == "(":
                end = self._close(index, stop)
                value = self._call(
                    value, [self._argument(a, b) for a, b in self.split(index + 1, end)]
                )
                index = end + 1
            elif token.text == "[":
                end = self._close(index, stop)
                value = self._subscript(value, self._whole(index + 1, end))
                index = end + 1
            else:
                break
        return value, index

    def _atom(self, index: int, stop: int) -> tuple[_Value, int]:
        if index >= stop:
            raise _NotStatic("nothing")
        token = self.tokens[index]
        if token.kind == "string":
            parts = []
            while index < stop and self.tokens[index].kind == "string":
                parts.append(self._string(self.tokens[index].text))
                index += 1
            return "".join(parts), index
        if token.kind == "name":
            if token.text in self.names:
                return self.names[token.text], index + 1
            if token.text in self.modules:
                return _Ref(self.modules[token.text]), index + 1
            raise _NotStatic(token.text)
        if token.text == "(":
            end = self._close(index, stop)
            items = self.split(index + 1, end)
            trailing = end > index + 1 and self.tokens[end - 1].text == ","
            if len(items) == 1 and not trailing:
                return self._whole(*items[0]), end + 1
            return tuple(self._whole(a, b) for a, b in items), end + 1
        raise _NotStatic(token.text)

    def _string(self, token: str) -> str:
        prefix, quoted = _prefixed(token)
        if "f" in prefix and "b" not in prefix:
            return self._fstring(quoted)
        return _string_value(token)

    def _fstring(self, quoted: str) -> str:
        """``f'{HOME}/lib'`` with plain known names in the fields; nothing fancier."""
        quote = 3 if quoted[:3] in ("'''", '"""') else 1
        body = quoted[quote:-quote]
        if "\\" in body:
            raise _NotStatic(quoted)
        pieces = re.split(r"(\{\{|\}\}|\{[^{}]*\})", body)
        out = []
        for piece in pieces:
            if piece in ("{{", "}}"):
                out.append(piece[0])
            elif piece.startswith("{"):
                name = piece[1:-1].strip()
                if name not in self.names:
                    raise _NotStatic(piece)
                out.append(self.names[name])
            elif "{" in piece or "}" in piece:
                raise _NotStatic(piece)
            else:
                out.append(piece)
        return "".join(out)

    def _whole(self, start: int, stop: int) -> _Value:
        value, end = self._sum(start, stop)
        if end != stop:
            raise _NotStatic("trailing tokens")
        return value

    def _argument(self, start: int, stop: int) -> _Value:
        if self.tokens[start].text in ("*", "**") or (
            start + 1 < stop and self.tokens[start + 1].text == "="
        ):
            raise _NotStatic("keyword or starred argument")
        return self._whole(start, stop)

    def _close(self, index: int, stop: int) -> int:
        end = self.closer.get(index, stop)
        if end >= stop:
            raise _NotStatic("unbalanced")
        return end

    def split(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Comma-separated items of ``tokens[start:stop]``; a trailing comma adds none."""
        return _split(self.tokens, self.closer, start, stop, ",")

    def _attribute(self, value: _Value, name: str) -> _Value:
        if isinstance(value, _Ref):
            return _Ref(_canonical(f"{value.name}.{name}"))
        if isinstance(value, str) and name == "format":
            return _Method(value, name)
        raise _NotStatic(name)

    def _subscript(self, value: _Value, key: _Value) -> _Value:
        if value == _Ref("os.environ") and isinstance(key, str):
            return self._evaluate("os.environ", [key])
        raise _NotStatic("subscript")

    def _call(self, function: _Value, arguments: list[_Value]) -> _Value:
        strings = [a for a in arguments if isinstance(a, str)]
        if len(strings) != len(arguments):
            raise _NotStatic("call")
        if isinstance(function, _Method):
            return self._evaluate(function.name, [function.value, *strings])
        if not isinstance(function, _Ref):
            raise _NotStatic("call")
        return self._evaluate(function.name, strings)

    def _evaluate(self, operation: str, args: list[str]) -> str:
        try:
            return pathexpr.evaluate(operation, args, self.home)
        except pathexpr.NotStatic as exc:
            raise _NotStatic(operation) from exc


def _percent(template: _Value, arguments: _Value, home: str) -> str:
    values = arguments if isinstance(arguments, tuple) else (arguments,)
    if not isinstance(template, str) or not all(isinstance(v, str) for v in values):
        raise _NotStatic("%")
    try:
        return pathexpr.evaluate("percent", [template, *values], home)  # type: ignore[list-item]
    except pathexpr.NotStatic as exc:
        raise _NotStatic("%") from exc


def _split(
    tokens: list[_Token], closer: dict[int, int], start: int, stop: int, separator: str
) -> list[tuple[int, int]]:
    """Ranges between top-level ``separator`` tokens; empty ranges are dropped."""
    out = []
    begin = index = start
    while index < stop:
        token = tokens[index]
        if token.text == separator:
            if index > begin:
                out.append((begin, index))
            begin = index + 1
        elif token.text in ("(", "[", "{") and index in closer:
            index = closer[index]
        index += 1
    if stop > begin:
        out.append((begin, stop))
    return out

"""Disable the ``sys.path`` edits of a WSGI file or script that bring concentric dirs back.

Once an app runs in its own venv, a line such as ``sys.path.insert(0, '/home/me/lib/python2.7')``
would put the shared installs in front of the venv again, and ``execfile(activate_this, ...)``
would switch to another environment. :func:`rewrite_python` comments those statements out,
each with a ``# concentric-migrate:`` note, and leaves every other byte alone.

The source may be Python 2 or 3 and need not parse with this interpreter (``print "x"``,
``except E, e:``), so it is read with a small scanner that knows strings (prefixes, triple
quotes, f-string fields), comments, brackets and backslash continuations, never with ``ast``.
A path is judged only when it is static: literals, implicit concatenation, ``+``, ``%s``
formatting, ``os.path.join/expanduser/dirname/normpath``, ``os.environ['HOME']`` and names
bound to such a value earlier (an assignment inside an ``if``/``for``/``try`` block makes the
name unknown after it; a function's locals stay inside it). Anything else is left alone:
a wrong guess would break an app, a missed one only keeps today's behaviour.

What happens to a matching statement:

* alone on its logical line: every physical line becomes a comment (the first carries the
  note); when that empties an indented block, the first line becomes ``pass  # ...`` instead;
* one of several statements on a line (``import sys; sys.path.insert(...)``, ``if x: ...``):
  it becomes ``pass`` and the note goes to the end of the line; when such a statement spans
  several physical lines :class:`CannotRewrite` asks the user to split it;
* a list of paths with both kinds (``sys.path[0:0] = [...]``, ``sys.path.extend([...])``,
  ``sys.path = [...] + sys.path``, ``for d in [...]: site.addsitedir(d)``): the concentric
  elements are removed from the list (commented out when alone on their lines) and the rest
  of the statement is kept, with a note at the end of the line;
* ``activate_this = '.../bin/activate_this.py'`` followed by ``execfile(activate_this, ...)``,
  ``exec(open(activate_this).read(), ...)`` or ``with open(activate_this) as f: exec(f.read(),
  ...)``: the activation is disabled, and the assignment too when it is the name's only
  binding and nothing else reads it.

Paths are judged with the same meaning the plan gives them (:mod:`migrate.discover.pathexpr`);
``__file__`` is the file's own path when the caller names it, as the plan reads it.

Left alone on purpose: paths only known at run time (environment variables other than
``HOME``, other calls, ``sys.version``), lists held in variables (``sys.path[:0] = new``), a
``sys.path`` replaced wholesale or a non-empty slice of it replaced (disabling those would
do more than drop a dir), loops other than ``for d in [literal list]`` over one edit, a
``for`` with an ``else:`` clause, modules reached other than by name or ``import ... as``
(``s = sys``; a bare ``addsitedir`` not imported from ``site``), and ``exec`` of anything
but an activate_this file.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from migrate.rewrite import (
    MARKER,
    CannotRewrite,
    Change,
    Rewrite,
    expand_home,
    is_concentric_dir,
    splice,
)
from migrate.rewrite._pyeval import _canonical, _Evaluator, _prefixed, _split
from migrate.rewrite._pyscan import _LINE_BREAK, _Logical, _scan, _Source

__all__ = ["rewrite_python"]

WHY_PATH = "concentric lib dir, the app's venv has its packages"
WHY_ACTIVATE = "activates another environment, the app's venv replaces it"
WHY_ACTIVATE_PATH = "path of the activation disabled here, nothing else uses it"
WHY_DROP = "dropped concentric lib dirs, the app's venv has their packages"

_HINTS = ("path", "addsitedir", "exec")
_COMPOUND = frozenset(
    {"if", "elif", "else", "while", "for", "try", "except", "finally", "with", "def", "class"}
)
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_BLANK_OR_COMMENT = re.compile(r"^[ \t\f]*(?:#.*)?$")
_AUGMENTED = frozenset(
    {"+=", "-=", "*=", "/=", "//=", "%=", "**=", ">>=", "<<=", "&=", "^=", "|=", "@=", "=", ":"}
)
"""After a name: operators that rebind it (``=`` alone and ``:`` are odd forms of the same)."""
_DEFAULT_MODULES = {"sys": "sys", "site": "site", "os": "os", "posixpath": "os.path"}


# -------------------------------------------------------------------------------- analysis


@dataclass
class _Removal:
    """Logical lines to comment out, or one statement ``(line, start, stop)`` to replace."""

    why: str
    lines: tuple[int, ...] = ()
    statement: tuple[int, int, int] | None = None
    use_pass: bool = False

    def tokens(self, source: _Source) -> Iterator[int]:
        if self.statement is not None:
            yield from range(self.statement[1], self.statement[2])
        for line in self.lines:
            yield from range(source.lines[line].first, source.lines[line].stop)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    new: str
    why: str
    span: tuple[int, int]
    """Physical lines of the statement edited: the extent of the Change that reports it."""


@dataclass
class _Block:
    column: int
    local: bool
    """A ``def``/``class`` body: its bindings never reach the enclosing scope."""
    names: dict[str, str]


@dataclass
class _Analysis:
    removals: list[_Removal] = field(default_factory=list)
    edits: list[_Edit] = field(default_factory=list)
    notes: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    """Logical line -> (why, what) for the note at its end."""
    activations: list[str] = field(default_factory=list)
    """Variables naming the activate_this file of a disabled activation."""
    bindings: dict[str, list[int | None]] = field(default_factory=dict)
    """Name -> logical line of each plain ``NAME = static value`` (None: any other binding)."""


class _Analyzer:
    def __init__(self, source: _Source, home: str, file: str | None = None) -> None:
        self.source = source
        self.tokens = source.tokens
        self.closer = source.closer
        self.home = home
        self.modules = dict(_DEFAULT_MODULES)
        self.blocks = [_Block(0, False, {"__file__": file} if file else {})]
        self.result = _Analysis()
        self.handled: set[int] = set()

    @property
    def names(self) -> dict[str, str]:
        return self.blocks[-1].names

    def evaluator(self) -> _Evaluator:
        return _Evaluator(self.source, self.home, self.names, self.modules)

    def run(self) -> _Analysis:
        previous: _Logical | None = None
        for number, line in enumerate(self.source.lines):
            self._enter(line, previous)
            header, statements = self._statements(line)
            if header is not None:
                if number not in self.handled:
                    self._compound(number, line, header, statements)
                self._bind_header(line.first, header)
            for start, stop in statements:
                whole = header is None and len(statements) == 1
                if number not in self.handled:
                    self._statement(number, start, stop, whole)
                self._bind(start, stop, number if whole else None, conditional=header is not None)
            previous = line
        return self.result

    # -- scopes ---------------------------------------------------------------------------
    def _enter(self, line: _Logical, previous: _Logical | None) -> None:
        while len(self.blocks) > 1 and line.column < self.blocks[-1].column:
            block = self.blocks.pop()
            if not block.local:
                outer = self.blocks[-1].names
                for name in [n for n, v in outer.items() if block.names.get(n) != v]:
                    del outer[name]
        if previous is not None and line.column > self.blocks[-1].column:
            keyword = self.tokens[previous.first].text
            local = keyword in ("def", "class", "async")
            self.blocks.append(_Block(line.column, local, dict(self.names)))

    def _statements(self, line: _Logical) -> tuple[int | None, list[tuple[int, int]]]:
        """Header colon index (compound statements) and the simple statements' token ranges."""
        tokens = self.tokens
        first = tokens[line.first]
        start = line.first
        header = None
        if first.kind == "name" and (
            first.text in _COMPOUND or (first.text == "async" and start + 1 < line.stop)
        ):
            header = self._header_colon(line)
            if header is None:
                return None, []
            start = header + 1
        return header, _split(tokens, self.closer, start, line.stop, ";")

    def _header_colon(self, line: _Logical) -> int | None:
        lambdas = 0
        index = line.first
        while index < line.stop:
            text = self.tokens[index].text
            if text == "lambda":
                lambdas += 1
            elif text == ":":
                if not lambdas:
                    return index
                lambdas -= 1
            elif text in ("(", "[", "{") and index in self.closer:
                index = self.closer[index]
            index += 1
        return None

    # -- bindings -------------------------------------------------------------------------
    def _forget(self, name: str) -> None:
        self.names.pop(name, None)
        self.modules.pop(name, None)
        self.result.bindings.setdefault(name, []).append(None)

    def _bind_header(self, first: int, colon: int) -> None:
        tokens = self.tokens
        keyword = tokens[first].text
        if keyword == "async":
            first += 1
            keyword = tokens[first].text
        if keyword in ("def", "class") and first + 1 < colon:
            self._forget(tokens[first + 1].text)
        elif keyword == "for":
            stop = next((i for i in range(first, colon) if tokens[i].text == "in"), colon)
            self._forget_names(first + 1, stop)
        elif keyword == "except":
            after = [i for i in range(first, colon) if tokens[i].text in (",", "as")]
            if after:
                self._forget_names(after[0] + 1, colon)
        self._forget_implicit(first, colon)

    def _forget_names(self, start: int, stop: int) -> None:
        for index in range(start, stop):
            token = self.tokens[index]
            if token.kind == "name" and (index == 0 or self.tokens[index - 1].text != "."):
                self._forget(token.text)

    def _forget_implicit(self, start: int, stop: int) -> None:
        """``as NAME``, ``NAME :=`` and comprehension variables (they leak in Python 2)."""
        tokens = self.tokens
        for index in range(start, stop):
            text = tokens[index].text
            if text == "as" and index + 1 < stop and tokens[index + 1].kind == "name":
                self._forget(tokens[index + 1].text)
            elif text == ":=" and index > start and tokens[index - 1].kind == "name":
                self._forget(tokens[index - 1].text)
            elif text == "for" and index > start:
                end = next((i for i in range(index, stop) if tokens[i].text == "in"), stop)
                self._forget_names(index + 1, end)

    def _bind(self, start: int, stop: int, line: int | None, *, conditional: bool) -> None:
        tokens = self.tokens
        keyword = tokens[start].text
        if keyword in ("import", "from"):
            self._import(start, stop)
            return
        if keyword in ("global", "del", "nonlocal"):
            for name in (t.text for t in tokens[start + 1 : stop] if t.kind == "name"):
                self._forget(name)
                for block in self.blocks:
                    block.names.pop(name, None)
            return
        self._forget_implicit(start, stop)
        targets = _split(tokens, self.closer, start, stop, "=")
        if len(targets) > 1 and tokens[targets[0][1]].text == "=":
            simple = len(targets) == 2 and targets[0] == (start, start + 1)
            value = None
            if simple and tokens[start].kind == "name" and not conditional:
                value = self.evaluator().path(*targets[-1])
            for a, b in targets[:-1]:
                self._forget_names(a, b)
            if value is not None:
                self.names[tokens[start].text] = value
                self.result.bindings[tokens[start].text][-1] = line
        elif start + 1 < stop and tokens[start].kind == "name":
            name, operator = tokens[start].text, tokens[start + 1].text
            if operator not in _AUGMENTED:
                return
            before = self.names.get(name)
            right = self.evaluator().path(start + 2, stop)
            self._forget(name)
            if operator == "+=" and before is not None and right is not None and not conditional:
                self.names[name] = before + right

    def _import(self, start: int, stop: int) -> None:
        tokens = self.tokens
        if tokens[start].text == "from":
            index = start + 1
            module = []
            while index < stop and tokens[index].text != "import":
                module.append(tokens[index].text)
                index += 1
            base = "".join(module)
            first, last = index + 1, stop
            if first < stop and tokens[first].text == "(" and first in self.closer:
                first, last = first + 1, self.closer[first]
            items = _split(tokens, self.closer, first, last, ",")
            if any(tokens[a].text == "*" for a, _ in items):
                for block in self.blocks:
                    block.names.clear()
                return
            for a, b in items:
                parts = [t.text for t in tokens[a:b]]
                if not parts:
                    continue
                local = parts[-1]
                self._forget(local)
                if not base.startswith("."):
                    self.modules[local] = _canonical(f"{base}.{parts[0]}")
            return
        for a, b in _split(tokens, self.closer, start + 1, stop, ","):
            parts = [t.text for t in tokens[a:b]]
            if "as" in parts:
                local = parts[-1]
                self._forget(local)
                self.modules[local] = _canonical("".join(parts[: parts.index("as")]))
            elif parts:
                self._forget(parts[0])
                self.modules[parts[0]] = _canonical(parts[0])

    # -- statements -----------------------------------------------------------------------
    def _dotted(self, index: int, stop: int) -> tuple[str, int]:
        """Canonical dotted name at ``index`` (head resolved through imports) and its end."""
        tokens = self.tokens
        if index >= stop or tokens[index].kind != "name":
            return "", index
        parts = [self.modules.get(tokens[index].text, tokens[index].text)]
        index += 1
        while index + 1 < stop and tokens[index].text == "." and tokens[index + 1].kind == "name":
            parts.append(tokens[index + 1].text)
            index += 2
        return _canonical(".".join(parts)), index

    def _call(self, start: int, stop: int) -> tuple[str, list[tuple[int, int]]] | None:
        """``name(args)`` spanning exactly ``[start, stop)``."""
        name, index = self._dotted(start, stop)
        if not name or index >= stop or self.tokens[index].text != "(":
            return None
        if self.closer.get(index) != stop - 1:
            return None
        return name, _split(self.tokens, self.closer, index + 1, stop - 1, ",")

    def _remove(self, number: int, start: int, stop: int, whole: bool, why: str) -> None:
        statement = None if whole else (number, start, stop)
        self.result.removals.append(
            _Removal(why, lines=(number,) if whole else (), statement=statement)
        )

    def _path_argument(self, start: int, stop: int) -> tuple[int, int] | None:
        """The path a ``sys.path.insert/append`` or ``site.addsitedir`` call adds."""
        call = self._call(start, stop)
        if call is None:
            return None
        name, arguments = call
        if name == "sys.path.insert" and len(arguments) == 2:
            return arguments[1]
        if name == "sys.path.append" and len(arguments) == 1:
            return arguments[0]
        if name == "site.addsitedir" and len(arguments) in (1, 2):
            return arguments[0]
        return None

    def _statement(self, number: int, start: int, stop: int, whole: bool) -> None:
        path = self._path_argument(start, stop)
        if path is not None:
            value = self.evaluator().path(*path)
            if value is not None and is_concentric_dir(value, self.home):
                self._remove(number, start, stop, whole, WHY_PATH)
            return
        lists = self._path_lists(start, stop)
        if lists:
            self._lists(number, lists, lambda: self._remove(number, start, stop, whole, WHY_PATH))
            return
        activation = self._activation(start, stop)
        if activation is not None:
            self._remove(number, start, stop, whole, WHY_ACTIVATE)
            self._activated(activation)

    def _path_lists(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Bracket pairs of the path lists a statement adds to ``sys.path``."""
        tokens = self.tokens
        call = self._call(start, stop)
        if call is not None:
            name, arguments = call
            if name == "sys.path.extend" and len(arguments) == 1:
                return self._literal_lists([arguments[0]])
            return []
        name, index = self._dotted(start, stop)
        if name != "sys.path" or index >= stop:
            return []
        operator = tokens[index].text
        if operator == "[" and index in self.closer:
            end = self.closer[index]
            if not self._empty_slice(index + 1, end) or end + 1 >= stop:
                return []
            if tokens[end + 1].text != "=":
                return []
            return self._literal_lists([(end + 2, stop)])
        if operator == "+=":
            return self._literal_lists([(index + 1, stop)])
        if operator != "=":
            return []
        terms = _split(tokens, self.closer, index + 1, stop, "+")
        itself = [t for t in terms if self._dotted(*t) == ("sys.path", t[1])]
        if len(itself) != 1 or len(terms) < 2:
            return []
        bounds = [index, *(b for _, b in terms)]
        if terms[-1][1] != stop or any(
            a != b + 1 for (a, _), b in zip(terms, bounds, strict=False)
        ):
            return []
        return self._literal_lists([t for t in terms if t not in itself], lists_only=True)

    def _literal_lists(
        self, ranges: list[tuple[int, int]], lists_only: bool = False
    ) -> list[tuple[int, int]]:
        out = []
        for start, stop in ranges:
            if start >= stop:
                return []
            opener = self.tokens[start].text
            if opener not in ("[", "(") or (lists_only and opener != "["):
                return []
            if self.closer.get(start) != stop - 1:
                return []
            out.append((start, stop - 1))
        return out

    def _empty_slice(self, start: int, stop: int) -> bool:
        texts = [t.text for t in self.tokens[start:stop]]
        if texts.count(":") != 1:
            return False
        colon = texts.index(":")
        low, high = texts[:colon], texts[colon + 1 :]
        if any(len(part) > 1 or (part and not part[0].isdigit()) for part in (low, high)):
            return False
        return (low and low == high) or (not low and high == ["0"])

    def _lists(
        self, number: int, lists: list[tuple[int, int]], remove: Callable[[], object]
    ) -> None:
        """Remove the statement when every listed path is concentric, else only those paths."""
        evaluator = self.evaluator()
        elements: list[tuple[tuple[int, int], list[tuple[int, int]], list[bool]]] = []
        for opener, closer in lists:
            items = evaluator.split(opener + 1, closer)
            flags = []
            for item in items:
                value = evaluator.path(*item)
                flags.append(value is not None and is_concentric_dir(value, self.home))
            elements.append(((opener, closer), items, flags))
        every = [flag for _, _, flags in elements for flag in flags]
        if not any(every):
            return
        if all(every):
            remove()
            return
        dropped: list[str] = []
        for (opener, closer), items, flags in elements:
            dropped.extend(self._drop(number, (opener, closer), items, flags))
        if dropped:
            self.result.notes.setdefault(number, []).append((WHY_DROP, ", ".join(dropped)))

    def _drop(
        self,
        number: int,
        brackets: tuple[int, int],
        items: list[tuple[int, int]],
        flags: list[bool],
    ) -> list[str]:
        """Edits removing the flagged items of one list; the texts of those not commented.

        An item alone on its lines is commented out there; any other goes with its comma, and
        the last one with the comma before it (kept in a tuple, where it may be needed)."""
        opener, closer = brackets
        source = self.source
        tokens = self.tokens
        text = source.text
        span = (source.lines[number].top, source.lines[number].bottom)
        edits = self.result.edits
        deleted: list[str] = []
        for position, ((start, stop), flag) in enumerate(zip(items, flags, strict=True)):
            if not flag:
                continue
            comma = stop if stop < closer and tokens[stop].text == "," else None
            after = comma + 1 if comma is not None else stop
            top = source.physical(tokens[start].start)
            bottom = source.physical(tokens[after - 1].end - 1)
            alone = source.indent_end(top) == tokens[start].start and (
                after >= len(tokens) or source.physical(tokens[after].start) > bottom
            )
            if alone:
                rows = list(range(top, bottom + 1))
                edits.extend(_comment_lines(source, rows, WHY_DROP, False, span))
                continue
            deleted.append(" ".join(text[tokens[start].start : tokens[stop - 1].end].split()))
            if comma is not None:
                end = tokens[comma].end
                if source.physical(tokens[comma + 1].start) == bottom:
                    end = tokens[comma + 1].start
                edits.append(_Edit(tokens[start].start, end, "", WHY_DROP, span))
                continue
            edits.append(_Edit(tokens[start].start, tokens[stop - 1].end, "", WHY_DROP, span))
            kept = [i for i in range(position) if not flags[i]]
            if kept:
                before = items[kept[-1]][1]
                if tokens[before].text == ",":
                    begin = (
                        tokens[before].end if tokens[opener].text == "(" else tokens[before].start
                    )
                    end = tokens[before].end
                    following = tokens[before + 1]
                    if source.physical(following.start) == source.physical(end):
                        end = following.start
                    if end > begin:
                        edits.append(_Edit(begin, end, "", WHY_DROP, span))
        return deleted

    # -- activate_this --------------------------------------------------------------------
    def _activation(self, start: int, stop: int) -> tuple[int, int] | None:
        """The path expression of an ``execfile``/``exec`` that runs an activate_this file."""
        target = self._executed(start, stop, None)
        if isinstance(target, tuple) and self._activates(target):
            return target
        return None

    def _activates(self, expression: tuple[int, int]) -> bool:
        value = self.evaluator().path(*expression)
        if value is None:
            return False
        path = expand_home(value, self.home)
        return path.endswith("/bin/activate_this.py") or is_concentric_dir(path, self.home)

    def _executed(self, start: int, stop: int, handle: str | None) -> tuple[int, int] | str | None:
        """What ``execfile(F)``, ``exec(<read>)`` or Python 2's ``exec <read> in G`` runs."""
        tokens = self.tokens
        call = self._call(start, stop)
        if call is not None and call[0] == "execfile" and 1 <= len(call[1]) <= 3:
            return call[1][0]
        if call is not None and call[0] == "exec" and 1 <= len(call[1]) <= 3:
            return self._read_of(*call[1][0], handle)
        if tokens[start].text == "exec" and start + 1 < stop:
            end = next((i for i in range(start + 1, stop) if tokens[i].text == "in"), stop)
            return self._read_of(start + 1, end, handle)
        return None

    def _read_of(self, start: int, stop: int, handle: str | None) -> tuple[int, int] | str | None:
        """File expression of ``open(F).read()`` or ``compile(open(F).read(), ...)``; ``handle``
        for ``handle.read()``."""
        tokens = self.tokens
        for _ in range(2):
            while start < stop and tokens[start].text == "(" and self.closer.get(start) == stop - 1:
                start, stop = start + 1, stop - 1
            call = self._call(start, stop)
            if call is None or call[0] != "compile" or not call[1]:
                break
            start, stop = call[1][0]
        if stop - start < 4 or [t.text for t in tokens[stop - 4 : stop]] != [".", "read", "(", ")"]:
            return None
        if handle is not None and stop - start == 5 and tokens[start].text == handle:
            return handle
        return self._opened(start, stop - 4)

    def _opened(self, start: int, stop: int) -> tuple[int, int] | None:
        """F of ``open(F, ...)`` spanning exactly ``[start, stop)``."""
        call = self._call(start, stop)
        if call is None or call[0] not in ("open", "file", "io.open") or not call[1]:
            return None
        return call[1][0]

    def _activated(self, target: tuple[int, int]) -> None:
        start, stop = target
        if stop - start == 1 and self.tokens[start].kind == "name":
            self.result.activations.append(self.tokens[start].text)

    # -- compound statements --------------------------------------------------------------
    def _compound(
        self, number: int, line: _Logical, colon: int, body: list[tuple[int, int]]
    ) -> None:
        """``with open(ACTIVATE) as f: exec(f.read())`` and ``for d in [...]: addsitedir(d)``."""
        tokens = self.tokens
        keyword = tokens[line.first].text
        if keyword not in ("with", "for"):
            return
        statement = self._body(number, line, body)
        if statement is None:
            return
        body_line, start, stop = statement
        group = (number,) if body_line == number else (number, body_line)
        first = line.first + 1
        if keyword == "with":
            if colon - first < 6 or tokens[colon - 2].text != "as":
                return
            handle = tokens[colon - 1]
            target = self._opened(first, colon - 2)
            if handle.kind != "name" or target is None or not self._activates(target):
                return
            if self._executed(start, stop, handle.text) != handle.text:
                return
            self.result.removals.append(_Removal(WHY_ACTIVATE, lines=group))
            self._activated(target)
            self.handled.update(group)
            return
        if first + 2 >= colon or tokens[first].kind != "name" or tokens[first + 1].text != "in":
            return
        lists = self._literal_lists([(first + 2, colon)])
        path = self._path_argument(start, stop)
        if not lists or path is None or path[1] - path[0] != 1:
            return
        if tokens[path[0]].text != tokens[first].text:
            return

        def remove() -> None:
            self.result.removals.append(_Removal(WHY_PATH, lines=group))

        self._lists(number, lists, remove)
        self.handled.update(group)

    def _body(
        self, number: int, line: _Logical, body: list[tuple[int, int]]
    ) -> tuple[int, int, int] | None:
        """The one simple statement a compound statement runs: ``(line, start, stop)``; none
        when an ``else:`` clause follows (it would be left without its statement)."""
        if body:
            return (number, *body[0]) if len(body) == 1 else None
        lines = self.source.lines
        following = number + 1
        if following >= len(lines) or lines[following].column <= line.column:
            return None
        after = following + 1
        if after < len(lines) and lines[after].column > line.column:
            return None
        if (
            after < len(lines)
            and lines[after].column == line.column
            and self.tokens[lines[after].first].text == "else"
        ):
            return None
        header, statements = self._statements(lines[following])
        if header is not None or len(statements) != 1:
            return None
        return (following, *statements[0])


# ------------------------------------------------------------------------------- rendering


def _activation_assignments(source: _Source, result: _Analysis) -> None:
    """Also disable ``activate_this = '...'`` when the disabled lines were its only readers."""
    removed = {i for removal in result.removals for i in removal.tokens(source)}
    tokens = source.tokens
    for name in dict.fromkeys(result.activations):
        sites = result.bindings.get(name, [])
        if len(sites) != 1 or sites[0] is None:
            continue
        line = source.lines[sites[0]]
        target = line.first
        readers = [
            i
            for i, token in enumerate(tokens)
            if token.kind == "name"
            and token.text == name
            and i != target
            and (i == 0 or tokens[i - 1].text != ".")
        ]
        in_fstring = any(
            t.kind == "string" and "f" in _prefixed(t.text)[0] and re.search(rf"\b{name}\b", t.text)
            for t in tokens
        )
        if in_fstring or any(i not in removed for i in readers):
            continue
        if any(sites[0] in r.lines for r in result.removals):
            continue
        result.removals.append(_Removal(WHY_ACTIVATE_PATH, lines=(sites[0],)))


def _needs_pass(source: _Source, removals: list[_Removal]) -> None:
    """Mark the removal that would leave an indented block without a statement."""
    gone = {line for removal in removals for line in removal.lines}
    lines = source.lines
    for removal in removals:
        if not removal.lines:
            continue
        first = min(removal.lines)
        column = lines[first].column
        if column == 0:
            continue
        low = first
        while low > 0 and lines[low - 1].column >= column:
            low -= 1
        high = first
        while high + 1 < len(lines) and lines[high + 1].column >= column:
            high += 1
        if low == first and all(i in gone for i in range(low, high + 1)):
            removal.use_pass = True


def _render(text: str, edits: list[_Edit], source: _Source) -> tuple[str, tuple[Change, ...]]:
    edits = sorted(edits, key=lambda e: (e.start, e.end))
    for before, after in itertools.pairwise(edits):
        if after.start < before.end:
            raise CannotRewrite("overlapping edits in one statement; rewrite it by hand")
    new = splice(text, ((e.start, e.end, e.new) for e in edits))
    hunks: list[tuple[int, int, list[_Edit]]] = []
    for edit in sorted(edits, key=lambda e: (e.span, e.start)):
        top, bottom = edit.span
        if hunks and top <= hunks[-1][1]:
            hunks[-1] = (hunks[-1][0], max(bottom, hunks[-1][1]), [*hunks[-1][2], edit])
        else:
            hunks.append((top, bottom, [edit]))
    changes = []
    for top, bottom, group in hunks:
        start, end = source.starts[top], source.line_end(bottom)
        pieces = []
        position = start
        for edit in sorted(group, key=lambda e: (e.start, e.end)):
            pieces.append(text[position : edit.start] + edit.new)
            position = edit.end
        pieces.append(text[position:end])
        whys = list(dict.fromkeys(edit.why for edit in group))
        changes.append(Change(top + 1, text[start:end], "".join(pieces), "; ".join(whys)))
    return new, tuple(changes)


def _cookie(text: str) -> str | None:
    """The PEP 263 encoding declaration, which a new comment on line 1 or 2 could create."""
    first, second = [*_LINE_BREAK.split(text.removeprefix("\ufeff"), maxsplit=2), ""][:2]
    for line in (first, second) if _BLANK_OR_COMMENT.match(first) else (first,):
        match = _CODING.match(line)
        if match:
            return match.group(1)
    return None


def _comment_lines(
    source: _Source, rows: list[int], why: str, use_pass: bool, span: tuple[int, int]
) -> list[_Edit]:
    """Turn physical lines into comments; the first carries the note (after ``pass`` if asked)."""
    edits = []
    for row in rows:
        indent = source.indent_end(row)
        if row == rows[0]:
            lead = "pass  " if use_pass else ""
            edits.append(_Edit(indent, indent, f"{lead}# {MARKER} {why}: ", why, span))
        elif indent < source.line_end(row):
            edits.append(_Edit(indent, indent, "# ", why, span))
    return edits


def _edits(source: _Source, result: _Analysis, force_pass: bool) -> list[_Edit]:
    edits = list(result.edits)
    notes = {number: list(items) for number, items in result.notes.items()}
    text = source.text
    tokens = source.tokens
    for removal in result.removals:
        if removal.statement is not None:
            number, start, stop = removal.statement
            begin, end = tokens[start].start, tokens[stop - 1].end
            if source.physical(begin) != source.physical(end - 1):
                raise CannotRewrite(
                    f"line {source.physical(begin) + 1}: a sys.path edit or activation to disable"
                    " shares its line with other statements and spans several lines; put it on"
                    " a line of its own and run again"
                )
            span = (source.lines[number].top, source.lines[number].bottom)
            edits.append(_Edit(begin, end, "pass", removal.why, span))
            notes.setdefault(number, []).append((removal.why, text[begin:end]))
            continue
        lines = [source.lines[number] for number in sorted(removal.lines)]
        rows = [row for line in lines for row in range(line.top, line.bottom + 1)]
        use_pass = removal.use_pass or (force_pass and rows[0] < 2)
        edits.extend(_comment_lines(source, rows, removal.why, use_pass, (rows[0], rows[-1])))
    for number, items in notes.items():
        row = source.lines[number].bottom
        start = source.starts[row]
        end = start + len(text[start : source.line_end(row)].rstrip())
        note = "; ".join(f"{why}: {what}" for why, what in items)
        whys = "; ".join(dict.fromkeys(why for why, _ in items))
        span = (source.lines[number].top, row)
        edits.append(_Edit(end, end, f"  # {MARKER} {note}", whys, span))
    return edits


def rewrite_python(text: str, *, home: str, file: str | None = None) -> Rewrite:
    """Comment out the statements of a Python 2/3 file that put concentric dirs on ``sys.path``.

    ``home`` is the account's home dir (``~`` and ``os.environ['HOME']`` mean it); ``file``
    the file's absolute path, which ``__file__`` then means (as the plan reads it). Returns the
    input unchanged (same object) when nothing applies; raises :class:`CannotRewrite` only
    for a concentric edit that cannot be disabled without reformatting the user's code.
    """
    if not any(hint in text for hint in _HINTS):
        return Rewrite(text)
    source = _scan(text)
    result = _Analyzer(source, home, file).run()
    _activation_assignments(source, result)
    if not result.removals and not result.edits and not result.notes:
        return Rewrite(text)
    _needs_pass(source, result.removals)
    new, changes = _render(text, _edits(source, result, False), source)
    if _cookie(new) != _cookie(text):
        new, changes = _render(text, _edits(source, result, True), source)
        if _cookie(new) != _cookie(text):
            raise CannotRewrite(
                "commenting out a sys.path edit on line 1 or 2 would change the file's encoding"
                " declaration; move the edit further down and run again"
            )
    return Rewrite(new, changes)

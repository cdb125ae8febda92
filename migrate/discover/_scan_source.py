# -*- coding: utf-8 -*-
"""Read imports and sys.path edits out of Python source, statically (ast), never running it.

This file is written in the common subset of Python 2.7 and 3.x on purpose: when the
tool's own Python cannot parse an account's file (Python 2 syntax), the target
interpreter runs this very file on it (``pythonX.Y _scan_source.py FILE...`` prints
JSON). Keep it dependency-free and free of newer syntax.
"""

import ast
import json
import sys

_OLD_AST = sys.version_info < (3, 8)
_PATH_FUNCS = ("join", "dirname", "abspath", "realpath", "normpath", "expanduser")


class Unresolved(Exception):
    pass


def scan(source, filename="<source>"):
    """Return {"imports": [...], "path_edits": [...], "error": str or None}."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, TypeError) as exc:
        return {"imports": [], "path_edits": [], "error": "%s: %s" % (type(exc).__name__, exc)}
    scanner = _Scanner(filename)
    try:
        scanner.visit(tree)
    except RecursionError if sys.version_info >= (3, 5) else RuntimeError:
        return {"imports": [], "path_edits": [], "error": "source nested too deeply"}
    return {"imports": scanner.imports, "path_edits": scanner.edits, "error": None}


class _Scanner(ast.NodeVisitor):
    def __init__(self, filename):
        self.filename = filename
        self.imports = []
        self.edits = []
        self.optional_depth = 0
        self.names = {"__file__": filename}

    # -- imports ---------------------------------------------------------------
    def _add(self, name, node, how):
        if name:
            self.imports.append(
                {"name": name, "line": node.lineno, "how": how, "optional": self.optional_depth > 0}
            )

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node, "import")

    def visit_ImportFrom(self, node):
        if node.level:
            return
        self._add(node.module, node, "from")

    def visit_Try(self, node):
        catches = any(_catches_import_error(handler) for handler in node.handlers)
        if catches:
            self.optional_depth += 1
        for statement in node.body:
            self.visit(statement)
        if catches:
            self.optional_depth -= 1
        for part in node.handlers + node.orelse + getattr(node, "finalbody", []):
            self.visit(part)

    visit_TryExcept = visit_Try  # Python 2

    def visit_Call(self, node):
        target = _dotted(node.func)
        if target in ("importlib.import_module", "import_module", "__import__"):
            if node.args and _is_str(node.args[0]):
                self._add(_str_value(node.args[0]), node, "dynamic")
        elif target in ("sys.path.insert", "sys.path.append", "site.addsitedir"):
            self._path_edit(target, node)
        elif target == "sys.path.extend" and len(node.args) == 1:
            self._list_edit(node.args[0], front=False)
        self.generic_visit(node)

    # -- module-level names used in path expressions --------------------------
    def visit_Assign(self, node):
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                self.names[node.targets[0].id] = self._evaluate(node.value)
            except Unresolved:
                self.names.pop(node.targets[0].id, None)
        elif len(node.targets) == 1:
            self._path_assignment(node.targets[0], node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if _dotted(node.target) == "sys.path" and isinstance(node.op, ast.Add):
            self._list_edit(node.value, front=False)
        self.generic_visit(node)

    def visit_For(self, node):
        """``for d in [...]: sys.path.insert(0, d)``: the body once per element, ``d`` bound."""
        name = node.target.id if isinstance(node.target, ast.Name) else None
        if name is None or not isinstance(node.iter, (ast.List, ast.Tuple)) or node.orelse:
            self.generic_visit(node)
            return
        saved = self.names.get(name)
        for element in node.iter.elts:
            try:
                self.names[name] = self._evaluate(element)
            except Unresolved:
                self.names.pop(name, None)
            self._line = element.lineno
            for statement in node.body:
                self.visit(statement)
            self._line = None
        if saved is None:
            self.names.pop(name, None)
        else:
            self.names[name] = saved

    # -- sys.path edits ---------------------------------------------------------
    _line = None
    """Inside ``for d in [...]``: the line of the element the edits come from."""

    def _path_assignment(self, target, value):
        """``sys.path[0:0] = [...]``, ``sys.path[:0] = [...]``, ``sys.path = [...] + sys.path``
        and ``sys.path = sys.path + [...]``."""
        if isinstance(target, ast.Subscript) and _dotted(target.value) == "sys.path":
            bounds = target.slice
            if isinstance(bounds, ast.Slice) and bounds.step is None:
                try:
                    lower = 0 if bounds.lower is None else self._evaluate_int(bounds.lower)
                    upper = self._evaluate_int(bounds.upper) if bounds.upper is not None else None
                except Unresolved:
                    return
                if lower == 0 and upper == 0:
                    self._list_edit(value, front=True)
        elif _dotted(target) == "sys.path" and isinstance(value, ast.BinOp):
            if isinstance(value.op, ast.Add) and _dotted(value.right) == "sys.path":
                self._list_edit(value.left, front=True)
            elif isinstance(value.op, ast.Add) and _dotted(value.left) == "sys.path":
                self._list_edit(value.right, front=False)

    def _list_edit(self, node, front):
        """Each element of a literal list put on ``sys.path``: inserted in order at the
        front, or appended."""
        if not isinstance(node, (ast.List, ast.Tuple)):
            return
        for position, element in enumerate(node.elts):
            edit = {
                "op": "insert" if front else "append",
                "line": element.lineno,
                "end_line": getattr(element, "end_lineno", element.lineno),
            }
            if front:
                edit["index"] = position
            self._edit_value(edit, element)

    def _path_edit(self, target, node):
        operation = target.rsplit(".", 1)[1]
        argument = node.args[-1] if node.args else None
        line = self._line or node.lineno
        edit = {
            "op": operation,
            "line": line,
            "end_line": line if self._line else getattr(node, "end_lineno", node.lineno),
        }
        if operation == "insert":
            try:
                edit["index"] = int(self._evaluate_int(node.args[0]))
            except (Unresolved, IndexError):
                edit["index"] = None
        self._edit_value(edit, argument)

    def _edit_value(self, edit, argument):
        try:
            edit["path"] = self._evaluate(argument) if argument is not None else None
            edit["expression"] = None
        except Unresolved as exc:
            edit["path"] = None
            edit["expression"] = str(exc)
        self.edits.append(edit)

    def _evaluate_int(self, node):
        if _OLD_AST and isinstance(node, ast.Num):
            return node.n
        if not _OLD_AST and isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self._evaluate_int(node.operand)
        raise Unresolved("index")

    def _evaluate(self, node):
        """A string, or an operation ``{"op": NAME, "args": [...]}`` that
        :mod:`migrate.discover.pathexpr` evaluates for the account: nothing is evaluated
        here, where the host's (or the old interpreter's) os.path and cwd would leak in."""
        if _is_str(node):
            return _str_value(node)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            raise Unresolved(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return _op("concat", [self._evaluate(node.left), self._evaluate(node.right)])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_str(node.left):
            values = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            return _op("percent", [_str_value(node.left)] + [self._evaluate(v) for v in values])
        if isinstance(node, getattr(ast, "JoinedStr", ())):
            return _op("concat", [self._evaluate(part) for part in node.values])
        if isinstance(node, getattr(ast, "FormattedValue", ())):
            if node.conversion not in (None, -1) or node.format_spec is not None:
                raise Unresolved(_describe(node))
            return self._evaluate(node.value)
        if isinstance(node, ast.Call) and not getattr(node, "keywords", None):
            func = _dotted(node.func)
            short = func.rsplit(".", 1)[-1]
            if func.startswith(("os.path.", "path.", "posixpath.")) and short in _PATH_FUNCS:
                return _op(func, [self._evaluate(a) for a in node.args])
            if func in ("os.environ.get", "os.getenv") and node.args:
                return _op("os.environ", [self._evaluate(a) for a in node.args])
            if (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and _is_str(node.func.value)
            ):
                args = [self._evaluate(a) for a in node.args]
                return _op("format", [_str_value(node.func.value)] + args)  # noqa: RUF005 (Python 2)
        if isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ":
            key = node.slice
            if isinstance(key, getattr(ast, "Index", ())):
                key = key.value
            return _op("os.environ", [self._evaluate(key)])
        raise Unresolved(_describe(node))


def _op(name, args):
    return {"op": name, "args": args}


def _catches_import_error(handler):
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(_dotted(n) in ("ImportError", "ModuleNotFoundError", "Exception") for n in names)


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_str(node):
    if _OLD_AST:
        return isinstance(node, ast.Str)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _str_value(node):
    return node.s if _OLD_AST else node.value


def _describe(node):
    try:
        return ast.unparse(node)
    except Exception:
        return type(node).__name__


def main(argv):
    out = {}
    for path in argv:
        try:
            with open(path, "rb") as handle:
                source = handle.read()
        except (IOError, OSError) as exc:
            out[path] = {"imports": [], "path_edits": [], "error": str(exc)}
            continue
        out[path] = scan(source, path)
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])

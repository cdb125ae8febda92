"""Load the recipes (``recipes/*.toml``) and apply them: names frameworks import from strings.

A recipe says how to recognise an app type and where its code names modules in strings
(Django settings, Paste ``egg:`` URIs, Trac components, database URLs). Adding a recipe is
adding a TOML file; this engine knows only the generic string sources.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+]*)://")
_ENABLED = {"enabled", "on", "yes", "true", "1"}


class RecipeError(Exception):
    """A recipe file is not valid; the message names it."""


@dataclass(frozen=True)
class StringSource:
    kind: str
    """How the strings are read: ``module``, ``url``, ``egg-uri``, ``module-key``."""
    files: tuple[str, ...] = ()
    assign: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    ini: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    urls: bool = False


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    detect_imports: tuple[str, ...] = ()
    detect_files: tuple[str, ...] = ()
    detect_entry_kinds: tuple[str, ...] = ()
    no_python: bool = False
    strings: tuple[StringSource, ...] = ()
    provides: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class RecipeRef:
    """A module or distribution an app needs because a framework loads it from a string."""

    recipe: str
    target: str
    """A dotted module name, or a distribution name when ``is_distribution``."""
    file: Path
    line: int
    setting: str
    is_distribution: bool = False
    alternatives: tuple[str, ...] = ()
    """For drivers: import names any one of which satisfies the string."""


def load_recipes(extra: Iterable[Path] = ()) -> tuple[Recipe, ...]:
    """The recipes shipped with the tool, then any extra TOML files given."""
    out = []
    for item in sorted(resources.files("migrate._recipes").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            out.append(parse_recipe(item.read_text(encoding="utf-8"), item.name))
    for path in extra:
        out.append(parse_recipe(path.read_text(encoding="utf-8"), str(path)))
    return tuple(out)


def parse_recipe(text: str, origin: str) -> Recipe:
    try:
        data = tomllib.loads(text)
        detect = data.get("detect", {})
        strings = tuple(
            StringSource(
                kind=item["as"],
                files=tuple(item.get("files", ())),
                assign=tuple(item.get("assign", ())),
                env=tuple(item.get("env", ())),
                ini=tuple(item.get("ini", ())),
                keys=tuple(item.get("keys", ())),
                sections=tuple(item.get("sections", ())),
                urls=bool(item.get("urls", False)),
            )
            for item in data.get("strings", ())
        )
        return Recipe(
            name=data["name"],
            description=data.get("description", ""),
            detect_imports=tuple(detect.get("imports", ())),
            detect_files=tuple(detect.get("files", ())),
            detect_entry_kinds=tuple(detect.get("entry_kinds", ())),
            no_python=bool(detect.get("no_python", False)),
            strings=strings,
            provides={k: tuple(v) for k, v in data.get("provides", {}).items()},
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise RecipeError(f"recipe {origin}: {exc}") from exc


def detect(
    recipes: Sequence[Recipe],
    imported: set[str],
    files: Sequence[Path],
    entry_kinds: set[str],
    has_python: bool = True,
) -> tuple[Recipe, ...]:
    """The recipes that apply to an app, by what it imports, its files and its entry points."""
    out = []
    names = [f.name for f in files]
    for recipe in recipes:
        if recipe.no_python:
            if not has_python:
                out.append(recipe)
            continue
        if not has_python:
            continue
        if (
            any(name in imported for name in recipe.detect_imports)
            or any(kind in entry_kinds for kind in recipe.detect_entry_kinds)
            or (
                recipe.detect_files
                and not recipe.detect_imports
                and _any_match(files, names, recipe.detect_files)
            )
        ):
            out.append(recipe)
    return tuple(out)


def _any_match(files: Sequence[Path], names: list[str], patterns: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(str(path), "*/" + pattern)
        for path, name in zip(files, names, strict=True)
        for pattern in patterns
    )


def string_refs(
    recipe: Recipe, sources: Sequence[Path], other_files: Sequence[Path] = ()
) -> list[RecipeRef]:
    """Everything ``recipe`` says the app imports from strings in its files."""
    refs: list[RecipeRef] = []
    for source in recipe.strings:
        if source.assign:
            for path in _matching(sources, source.files):
                refs.extend(_assignments(recipe, source, path))
        if source.env:
            for path in sources:
                refs.extend(_env_settings(recipe, source, path))
        if source.urls:
            for path in sources:
                refs.extend(_urls(recipe, path))
        if source.ini:
            for path in _matching(other_files, source.ini):
                refs.extend(_ini(recipe, source, path))
    return [_with_provides(recipe, ref) for ref in refs]


def _with_provides(recipe: Recipe, ref: RecipeRef) -> RecipeRef:
    provided = (recipe.provides or {}).get(ref.target)
    if provided:
        return RecipeRef(ref.recipe, provided[0], ref.file, ref.line, ref.setting, False, provided)
    return ref


def _matching(files: Sequence[Path], patterns: Sequence[str]) -> list[Path]:
    return [
        f
        for f in files
        if any(fnmatch.fnmatch(f.name, p) or fnmatch.fnmatch(str(f), "*/" + p) for p in patterns)
    ]


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return None


def _assignments(recipe: Recipe, source: StringSource, path: Path) -> list[RecipeRef]:
    tree = _parse(path)
    if tree is None:
        return []
    wanted: dict[str, list[str]] = {}
    for spec in source.assign:
        head, _, rest = spec.partition(".")
        wanted.setdefault(head, []).append(rest)
    refs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AugAssign):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                for rest in wanted[target.id]:
                    setting = f"{target.id}.{rest}" if rest else target.id
                    for text, line in _strings_at(value, rest.split(".") if rest else []):
                        refs.append(RecipeRef(recipe.name, text, path, line, setting))
    return [r for r in refs if _looks_dotted(r.target)]


def _strings_at(node: ast.AST, keys: list[str]) -> list[tuple[str, int]]:
    """String constants under ``node`` following dict ``keys`` (``*`` = any key)."""
    if not keys:
        return [
            (n.value, n.lineno)
            for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
    if not isinstance(node, ast.Dict):
        return []
    head, rest = keys[0], keys[1:]
    out = []
    for key, value in zip(node.keys, node.values, strict=True):
        if head == "*" or (isinstance(key, ast.Constant) and key.value == head):
            out.extend(_strings_at(value, rest))
    return out


def _env_settings(recipe: Recipe, source: StringSource, path: Path) -> list[RecipeRef]:
    tree = _parse(path)
    if tree is None:
        return []
    refs = []
    for node in ast.walk(tree):
        pair = _env_assignment(node)
        if pair and pair[0] in source.env:
            refs.append(RecipeRef(recipe.name, pair[1], path, node.lineno, pair[0]))  # type: ignore[attr-defined]
    return refs


def _env_assignment(node: ast.AST) -> tuple[str, str] | None:
    """``os.environ.setdefault(K, V)`` or ``os.environ[K] = V`` with string literals."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "setdefault"
        and ast.unparse(node.func.value) == "os.environ"
    ):
        args = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            return args[0], args[1]
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if (
            isinstance(target, ast.Subscript)
            and ast.unparse(target.value) == "os.environ"
            and isinstance(target.slice, ast.Constant)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return str(target.slice.value), node.value.value
    return None


def _urls(recipe: Recipe, path: Path) -> list[RecipeRef]:
    tree = _parse(path)
    if tree is None:
        return []
    refs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _URL.match(node.value)
            if match and match["scheme"] in (recipe.provides or {}):
                refs.append(
                    RecipeRef(recipe.name, match["scheme"], path, node.lineno, "database URL")
                )
    return refs


def _ini(recipe: Recipe, source: StringSource, path: Path) -> list[RecipeRef]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        parser.read_string(text, str(path))
    except (configparser.Error, OSError):
        return []
    lines = text.splitlines()
    refs = []
    for section in parser.sections():
        if source.sections and section not in source.sections:
            continue
        for key, value in parser.items(section):
            line = _line_of(lines, key)
            if source.kind == "egg-uri" and key in source.keys:
                for word in value.split():
                    if word.startswith("egg:"):
                        dist = word[4:].split("#", 1)[0]
                        refs.append(
                            RecipeRef(recipe.name, dist, path, line, f"[{section}] {key}", True)
                        )
            elif source.kind == "module-key" and value.strip().lower() in _ENABLED:
                module = key.rstrip("*").rstrip(".")
                if _looks_dotted(module):
                    refs.append(RecipeRef(recipe.name, module, path, line, f"[{section}]"))
    return refs


def _line_of(lines: list[str], key: str) -> int:
    for number, line in enumerate(lines, 1):
        if line.strip().lower().startswith(key.lower()):
            return number
    return 0


def _looks_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))

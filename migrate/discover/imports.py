"""Static reading of an app's own source: what it imports and how it edits ``sys.path``.

Files are parsed with ``ast`` by this Python; files only an older Python can parse
(``print "x"``) are handed to the target interpreter running :mod:`migrate.discover._scan_source`,
and when that interpreter is absent a tokenizer fallback still finds the imports.
Nothing is imported or executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tokenize
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from migrate.discover import _scan_source, pathexpr
from migrate.discover.interpreters import Interpreter
from migrate.paths import read_regular

MAX_SOURCE_BYTES = 2 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", "node_modules", "static", "media", "apache2"}


@dataclass(frozen=True)
class ImportRef:
    name: str
    """Dotted module name as written (``django.core.wsgi``)."""
    file: Path
    line: int
    how: str
    """``import``, ``from``, ``dynamic`` (import_module/__import__), ``recipe:NAME``, ``trace``."""
    optional: bool = False

    @property
    def top_level(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class PathEdit:
    """A ``sys.path.insert/append`` or ``site.addsitedir`` call found in a file."""

    op: str
    file: Path
    line: int
    end_line: int
    path: Path | None
    index: int | None = None
    unresolved: str | None = None
    """The expression text when it could not be evaluated statically."""


@dataclass(frozen=True)
class SourceScan:
    file: Path
    imports: tuple[ImportRef, ...]
    path_edits: tuple[PathEdit, ...]
    error: str | None = None
    parsed_by: str = "ast"
    sha256: str | None = None
    """Of the bytes read (None when they could not be)."""


def scan_sources(
    files: Iterable[Path], home: Path, interpreter: Interpreter | None = None
) -> dict[Path, SourceScan]:
    """Scan each file; Python 2 files fall back to ``interpreter``, then to tokenize."""
    results: dict[Path, SourceScan] = {}
    digests: dict[Path, str] = {}
    retry: list[Path] = []
    for path in files:
        try:
            source = _read(path)
        except OSError as exc:
            results[path] = SourceScan(path, (), (), f"cannot read: {exc.strerror}", "none")
            continue
        if source is None:
            too_big = f"larger than {MAX_SOURCE_BYTES} bytes"
            results[path] = SourceScan(path, (), (), too_big, "none")
            continue
        digests[path] = hashlib.sha256(source).hexdigest()
        raw = _scan_source.scan(source, str(path))
        if raw["error"] and source.strip():
            retry.append(path)
        results[path] = _from_raw(path, raw, home, "ast")
    if retry and interpreter is not None and interpreter.version.startswith("2"):
        for path, raw in _scan_with(interpreter, retry).items():
            if not raw["error"]:
                results[path] = _from_raw(path, raw, home, f"python{interpreter.version}")
    for path in retry:
        if results[path].error:
            results[path] = _tokenize_fallback(path, results[path].error or "")
    return {path: replace(scan, sha256=digests.get(path)) for path, scan in results.items()}


@dataclass(frozen=True)
class AppFiles:
    sources: tuple[Path, ...]
    """The app's own ``.py`` / ``.wsgi`` files."""
    configs: tuple[Path, ...]
    """``.ini`` files (Paste Deploy, Trac) that recipes read."""


def app_files(roots: Iterable[Path], exclude: Collection[str] = frozenset()) -> AppFiles:
    """Walk the app's code once, skipping lib dirs, venvs, eggs and ``exclude`` (real paths)."""
    sources: dict[str, Path] = {}
    configs: dict[str, Path] = {}
    for root in roots:
        if root.is_file():
            sources.setdefault(os.path.realpath(root), root)
            continue
        for directory, dirs, names in os.walk(root):
            if os.path.realpath(directory) in exclude or "pyvenv.cfg" in names:
                dirs[:] = []
                continue
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _SKIP_DIRS
                and d != "lib"
                and not d.startswith(".")
                and not d.endswith((".egg", ".egg-info", ".dist-info"))
            )
            for name in sorted(names):
                found = sources if name.endswith((".py", ".wsgi")) else configs
                if found is configs and not name.endswith(".ini"):
                    continue
                path = Path(directory, name)
                found.setdefault(os.path.realpath(path), path)
    return AppFiles(tuple(sources.values()), tuple(configs.values()))


def _read(path: Path) -> bytes | None:
    """The file's bytes; None when it is too large to be source; OSError when unreadable
    (a FIFO or folder included)."""
    data = read_regular(path, MAX_SOURCE_BYTES)
    return None if len(data) > MAX_SOURCE_BYTES else data


def _scan_with(interpreter: Interpreter, files: list[Path]) -> dict[Path, dict[str, Any]]:
    try:
        result = subprocess.run(
            [
                str(interpreter.executable),
                "-S",
                "-E",
                "-s",
                _scan_source.__file__,
                *map(str, files),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        data = json.loads(result.stdout) if result.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {Path(k): v for k, v in data.items()}


def _from_raw(path: Path, raw: Mapping[str, Any], home: Path, parsed_by: str) -> SourceScan:
    imports = tuple(
        ImportRef(item["name"], path, item["line"], item["how"], bool(item["optional"]))
        for item in raw["imports"]
    )
    edits = []
    for item in raw["path_edits"]:
        value = evaluate_path(item.get("path"), home)
        edits.append(
            PathEdit(
                op=item["op"],
                file=path,
                line=item["line"],
                end_line=item.get("end_line") or item["line"],
                path=Path(os.path.normpath(value)) if value else None,
                index=item.get("index"),
                unresolved=None if value else (item.get("expression") or "expression"),
            )
        )
    return SourceScan(path, imports, tuple(edits), raw["error"], parsed_by)


def evaluate_path(value: Any, home: Path) -> str | None:
    """The scanner's path expression for HOME (:mod:`migrate.discover.pathexpr`), or None."""
    if value is None or isinstance(value, str):
        return value
    args = [evaluate_path(a, home) for a in value.get("args", [])]
    if any(a is None for a in args):
        return None
    try:
        return pathexpr.evaluate(value.get("op", ""), args, str(home))  # type: ignore[arg-type]
    except pathexpr.NotStatic:
        return None


def _tokenize_fallback(path: Path, error: str) -> SourceScan:
    """Find ``import x`` / ``from x import`` at statement starts when no parser can help."""
    try:
        source = _read(path) or b""
    except OSError:
        source = b""
    imports: list[ImportRef] = []
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        tokens = []
    at_start = True
    for index, token in enumerate(tokens):
        if token.type in (
            tokenize.ENCODING,
            tokenize.NEWLINE,
            tokenize.NL,
            tokenize.INDENT,
            tokenize.DEDENT,
        ):
            at_start = True
            continue
        if at_start and token.type == tokenize.NAME and token.string in ("import", "from"):
            for name in _names_after(tokens, index + 1, several=token.string == "import"):
                imports.append(ImportRef(name, path, token.start[0], token.string))
        at_start = token.type == tokenize.OP and token.string == ";"
    return SourceScan(path, tuple(imports), (), error, "tokenize")


def _names_after(tokens: list[tokenize.TokenInfo], index: int, several: bool) -> list[str]:
    """``a.b`` (from-imports), or ``a.b as c, d`` (plain imports) starting at ``index``."""
    names: list[str] = []
    parts: list[str] = []
    skipping_alias = False
    while index < len(tokens):
        token = tokens[index]
        if token.string == "," and several:
            if parts:
                names.append("".join(parts))
            parts, skipping_alias = [], False
        elif token.string == "as":
            skipping_alias = True
        elif not skipping_alias and (token.type == tokenize.NAME or token.string == "."):
            if token.string == "import":
                break
            parts.append(token.string)
        else:
            break
        index += 1
    if parts:
        names.append("".join(parts))
    return [n for n in names if n and not n.startswith(".")]

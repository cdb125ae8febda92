"""An app's own code, and every name it needs from outside it.

The code of an entry point is its file, and for a WSGI app the file's folder and the code
dirs on its python-path, plus every module of the home it imports in turn (a script's
helpers). What it needs is the imports of that code (:mod:`migrate.discover.imports`), the
strings its framework imports (:mod:`migrate.resolve.recipes`) and, when asked, what a
runtime trace saw loading (:mod:`migrate.resolve.trace`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.entrypoints import EntryPoint
from migrate.discover.imports import ImportRef, SourceScan, app_files, scan_sources
from migrate.discover.interpreters import Interpreter
from migrate.findings import AppFinding
from migrate.paths import home_relative, is_inside
from migrate.resolve.distindex import DistIndex
from migrate.resolve.recipes import Recipe, RecipeRef, detect, string_refs
from migrate.resolve.syspath import PathModel

Ref = ImportRef | RecipeRef
"""One name the app's code needs: an import, or a string its framework imports."""

Tracer = Callable[[EntryPoint, Interpreter, Path], tuple[set[str], str | None]]
"""Runs an entry point under its old path; returns (top-level names imported, error)."""


@dataclass(frozen=True)
class AppCode:
    """What one entry point's code needs, and which files said so."""

    refs: tuple[Ref, ...]
    recipes: tuple[str, ...]
    """The recipes that applied (framework names)."""
    sources: Mapping[Path, str]
    """sha256 of each source file read: a migration must find them unchanged."""
    findings: tuple[AppFinding, ...]


def read_app_code(
    entry: EntryPoint,
    model: PathModel,
    interpreter: Interpreter | None,
    scans: Mapping[Path, SourceScan],
    *,
    home: Path,
    app_dir: Path | None,
    index: DistIndex,
    recipes: Sequence[Recipe],
    tracer: Tracer | None = None,
) -> AppCode:
    """Scan the entry point's code (``scans`` holds what was read already) and collect
    every name it needs, as the model of its path resolves them."""
    findings: list[AppFinding] = []
    refs: list[Ref] = []
    if entry.module is not None:
        # ``-m module``: its code is that module, found on the path, not the working dir.
        refs.append(ImportRef(entry.module, entry.path, 0, "run"))
        local = _local_code(model, entry.module.split(".")[0], index, home)
        roots = [local] if local is not None else []
    else:
        roots = [entry.path]
    if entry.kind == "wsgi" and app_dir is not None:
        roots.extend(d for d in (entry.path.parent, *entry.site_dirs) if _is_code_dir(d, app_dir))
    files = app_files(roots, exclude=index.real_lib_dirs)
    read = dict(scans)
    read.update(scan_sources([s for s in files.sources if s not in read], home, interpreter))
    _follow_local(model, read, interpreter, index, home)
    refs.extend(ref for scan in read.values() for ref in scan.imports)
    for scan in read.values():
        if scan.error and scan.parsed_by in ("tokenize", "none"):
            unread = scan.error.removeprefix("cannot read: ")
            message = (
                f"could not read it ({unread}): its imports are unknown"
                if unread != scan.error
                else f"could not parse ({scan.error}); imports read by tokenizer"
            )
            findings.append(AppFinding("entry-point", str(scan.file), message))
    imported = {ref.top_level for ref in refs if isinstance(ref, ImportRef)}
    configs = list(files.configs)
    applied = detect(recipes, imported, [*read, *configs], {entry.kind})
    for recipe in applied:
        refs.extend(string_refs(recipe, list(read), configs))
    if tracer is not None and interpreter is not None:
        names, error = tracer(entry, interpreter, home)
        if error:
            findings.append(AppFinding("entry-point", str(entry.path), f"trace: {error}"))
        refs.extend(ImportRef(n, entry.path, 0, "trace") for n in sorted(names))
    return AppCode(
        tuple(refs),
        tuple(r.name for r in applied),
        {path: scan.sha256 for path, scan in read.items() if scan.sha256},
        tuple(findings),
    )


def top_name(ref: Ref) -> str:
    """The top-level import name a reference needs ("" for a distribution name)."""
    if isinstance(ref, ImportRef):
        return ref.top_level
    return "" if ref.is_distribution else ref.target.split(".", 1)[0]


@functools.lru_cache(maxsize=4096)
def in_home(path: Path, home: Path) -> str:
    """:func:`~migrate.paths.home_relative`, kept: a plan names the same files and lib dirs
    in the findings of many apps (the paths are absolute: the answer never changes)."""
    return home_relative(path, home)


def describe(ref: Ref, home: Path) -> str:
    """Why a reference is there, in the words the plan shows."""
    where = f"{in_home(ref.file, home)}:{ref.line}" if ref.line else in_home(ref.file, home)
    if isinstance(ref, RecipeRef):
        return f"recipe {ref.recipe}: {ref.setting} in {where}"
    if ref.how == "trace":
        return f"traced loading {in_home(ref.file, home)}"
    if ref.how == "run":
        return f"runs -m {ref.name} in {in_home(ref.file, home)}"
    optional = " (optional)" if ref.optional else ""
    return f"import {ref.name} in {where}{optional}"


def _follow_local(
    model: PathModel,
    scans: dict[Path, SourceScan],
    interpreter: Interpreter | None,
    index: DistIndex,
    home: Path,
) -> None:
    """Scan the home's modules the code imports that no installer made, transitively."""
    pending = True
    while pending:
        pending = False
        wanted = []
        for scan in list(scans.values()):
            for ref in scan.imports:
                local = _local_code(model, ref.top_level, index, home)
                if local is not None:
                    wanted.extend(f for f in app_files([local]).sources if f not in scans)
        if wanted:
            scans.update(scan_sources(sorted(set(wanted)), home, interpreter))
            pending = True


def _local_code(model: PathModel, name: str, index: DistIndex, home: Path) -> Path | None:
    """The module or package ``import name`` loads when it is the account's own code: in
    the home, made by no installer, outside every lib dir."""
    provider = model.resolve(name).winner
    if provider is None or provider.origin is None or provider.entry is None:
        return None
    if provider.entry.rule == "stdlib" or index.provider_dist(provider, model.python):
        return None
    origin = provider.origin
    if not is_inside(origin, home) or str(provider.entry.path) in index.lib_dirs:
        return None
    return origin.parent if origin.name.startswith("__init__.") else origin


def _is_code_dir(directory: Path, app_dir: Path) -> bool:
    text = str(directory)
    if "/lib/python" in text or text.endswith("site-packages") or "/site-packages/" in text:
        return False
    # Through symlinks: a code dir that really lies outside the app is not the app's code.
    return is_inside(os.path.realpath(directory), os.path.realpath(app_dir))

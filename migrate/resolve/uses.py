"""Which distribution each name an app needs comes from, closed over ``Requires-Dist``.

The path model says which file an import loads; :class:`~migrate.resolve.distindex.DistIndex`
says which distribution installed it. A :class:`UsedSet` gathers those for every entry point
of one app, adds what they require (markers evaluated for the app's Python, not the
host's) and yields the app's :class:`PackageRow` list: used or merely visible.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from migrate.discover.imports import ImportRef
from migrate.findings import AppFinding
from migrate.inventory.model import Distribution
from migrate.resolve import pep508
from migrate.resolve.appcode import Ref, describe, in_home
from migrate.resolve.distindex import DistIndex
from migrate.resolve.reach import declared_groups, loads_group, reach_of
from migrate.resolve.recipes import RecipeRef
from migrate.resolve.syspath import PathEntry, PathModel, Resolution


@dataclass(frozen=True)
class PackageRow:
    """One distribution an app can see (or uses), and where it comes from."""

    dist: Distribution
    entry: Path
    """The ``sys.path`` entry it is found on (lib dir, egg, develop checkout)."""
    rule: str
    used: bool
    why: tuple[str, ...] = ()
    direct: bool = False
    """Used by the app's own code (an import, a recipe string, the trace), not only required."""
    required_by: tuple[str, ...] = ()
    """Canonical names of the used distributions that require it."""


@dataclass
class _Use:
    dist: Distribution
    entry: Path
    rule: str
    why: list[str] = field(default_factory=list)
    direct: bool = False
    required_by: list[str] = field(default_factory=list)

    def row(self) -> PackageRow:
        return PackageRow(
            self.dist, self.entry, self.rule, True, tuple(dict.fromkeys(self.why)), self.direct,
            tuple(self.required_by),
        )  # fmt: skip


class UsedSet:
    """One app's distributions: those its entry points see, and those they use.

    Feed it each entry point's model and references (:meth:`add`), then :meth:`close` it
    once; :attr:`findings` holds what did not resolve.
    """

    def __init__(self, index: DistIndex, home: Path) -> None:
        self.index = index
        self.home = home
        self.findings: list[AppFinding] = []
        self._uses: dict[str, _Use] = {}
        self._visible: dict[str, tuple[Distribution, Path, str]] = {}
        self._required: set[tuple[str, frozenset[str]]] = set()
        """(distribution, extras) whose requirements were followed already."""

    def add(self, model: PathModel, refs: Sequence[Ref]) -> None:
        """What this entry point can see, and what its references load."""
        for entry in model.entries:
            for dist in self.index.dists_on(entry.path, entry.rule, model.python):
                self._visible.setdefault(str(dist.path), (dist, entry.path, entry.rule))
        for ref in refs:
            if isinstance(ref, RecipeRef) and ref.is_distribution:
                self._use_by_name(model, canonicalize_name(ref.target), describe(ref, self.home))
            else:
                self._use_import(model, ref)

    def top_level_names(self) -> set[str]:
        """The import names the used distributions provide."""
        return {n for u in self._uses.values() for n in u.dist.top_level}

    def close(
        self, python: str, models: Sequence[PathModel] = (), *, minimal: bool = False
    ) -> tuple[PackageRow, ...]:
        """Add every distribution the used ones require and — unless ``minimal`` — what
        their code imports and the plugins they load (:mod:`migrate.resolve.reach`), as
        ``models`` resolve them, until nothing more is added; return the app's rows."""
        self._conflicts()
        scanned: set[str] = set()
        while True:
            self._require(python)
            if minimal or not self._reach(models, scanned):
                return self._rows()

    def _conflicts(self) -> None:
        by_name: dict[str, list[tuple[Distribution, Path, str]]] = {}
        for item in self._visible.values():
            by_name.setdefault(item[0].name, []).append(item)
        used_names = {u.dist.name for u in self._uses.values()}
        for name, items in by_name.items():
            versions = {d.version for d, _, _ in items}
            if len(versions) > 1 and name in used_names:
                where = "; ".join(
                    f"{d.version} in {in_home(d.path, self.home)}" for d, _, _ in items
                )
                self._report("conflict", name, f"{len(versions)} versions visible: {where}")

    def _require(self, python: str) -> None:
        by_name: dict[str, list[tuple[Distribution, Path, str]]] = {}
        for item in self._visible.values():
            by_name.setdefault(item[0].name, []).append(item)
        queue: list[tuple[Distribution, frozenset[str]]] = [
            (u.dist, frozenset()) for u in list(self._uses.values())
        ]
        seen = self._required
        while queue:
            dist, extras = queue.pop(0)
            if (str(dist.path), extras) in seen:
                continue
            seen.add((str(dist.path), extras))
            for text in dist.requires:
                requirement = pep508.parse(text)
                if requirement is None or not pep508.applies(requirement, python, extras):
                    continue
                name = canonicalize_name(requirement.name)
                candidates = by_name.get(name)
                needed_by = f"{dist.display_name} {dist.version} requires {requirement}"
                if not candidates:
                    self._report("conflict", name, f"{needed_by}, which the app cannot see")
                    continue
                target, entry, rule = candidates[0]
                if not pep508.admits(requirement, target.version):
                    self._report(
                        "conflict", name, f"{needed_by}, but the app sees {target.version}"
                    )
                use = self._uses.setdefault(str(target.path), _Use(target, entry, rule))
                why = f"required by {dist.display_name} ({requirement})"
                if why not in use.why:
                    use.why.append(why)
                if dist.name not in use.required_by:
                    use.required_by.append(dist.name)
                queue.append((target, frozenset(requirement.extras)))

    def _reach(self, models: Sequence[PathModel], scanned: set[str]) -> bool:
        """Add what the used distributions not yet read import, and their plugins; True
        when something was added."""
        added = False
        # The visible distributions that declare plugins: few, and the same for each use.
        declaring = [
            (key, item, declared)
            for key, item in self._visible.items()
            if (declared := declared_groups(item[0]))
        ]
        for use in list(self._uses.values()):
            dist = use.dist
            if str(dist.path) in scanned:
                continue
            scanned.add(str(dist.path))
            reach = reach_of(dist)
            for name, (file, line) in sorted(reach.imports.items()):
                if name in dist.top_level:
                    continue
                found = self._provider(models, name)
                if found is None or str(found[0].path) == str(dist.path):
                    continue
                where = f"{in_home(file, self.home)}:{line}"
                added |= self._use_for(found, f"imported by {dist.display_name} ({where})", dist)
            for key, (other, entry, rule), declared in declaring:
                if key in self._uses:
                    continue
                groups = [g for g in sorted(declared) if loads_group(dist, reach, g)]
                if groups:
                    why = f"plugin of {dist.display_name} (entry points {', '.join(groups)})"
                    added |= self._use_for((other, entry, rule), why, dist)
        return added

    def _provider(
        self, models: Sequence[PathModel], name: str
    ) -> tuple[Distribution, Path, str] | None:
        """The distribution ``import name`` loads on the first model that finds one."""
        for model in models:
            winner = model.resolve(name).winner
            if winner is None or winner.entry is None or winner.entry.rule == "stdlib":
                continue
            dist = self.index.provider_dist(winner, model.python)
            if dist is not None:
                return dist, winner.entry.path, winner.entry.rule
        return None

    def _use_for(self, found: tuple[Distribution, Path, str], why: str, by: Distribution) -> bool:
        dist, entry, rule = found
        new = str(dist.path) not in self._uses
        use = self._uses.setdefault(str(dist.path), _Use(dist, entry, rule))
        if why not in use.why:
            use.why.append(why)
        if by.name not in use.required_by:
            use.required_by.append(by.name)
        return new

    def _rows(self) -> tuple[PackageRow, ...]:
        rows = []
        for key, (dist, entry, rule) in self._visible.items():
            use = self._uses.get(key)
            if use is None and dist.lib_dir is not None and self.index.scope(dist) == "system":
                continue
            rows.append(use.row() if use else PackageRow(dist, entry, rule, False))
        rows.extend(use.row() for key, use in self._uses.items() if key not in self._visible)
        return tuple(sorted(rows, key=lambda r: (r.dist.name, str(r.dist.path))))

    def _report(self, kind: str, name: str, message: str) -> None:
        self.findings.append(AppFinding(kind, name, message))

    def _use(self, dist: Distribution, entry: Path, rule: str, why: str) -> None:
        use = self._uses.setdefault(str(dist.path), _Use(dist, entry, rule))
        use.why.append(why)
        use.direct = True

    def _use_import(self, model: PathModel, ref: ImportRef | RecipeRef) -> None:
        if isinstance(ref, RecipeRef):
            names = ref.alternatives or (ref.target.split(".")[0],)
        else:
            names = (ref.top_level,)
        resolution = None
        name = names[0]
        for name in names:
            resolution = model.resolve(name.split(".")[0])
            if resolution.winner is not None:
                break
        assert resolution is not None
        winner = resolution.winner
        if winner is None:
            optional = isinstance(ref, ImportRef) and ref.optional
            if not optional and model.stdlib_known:
                self._report(
                    "missing",
                    names[0],
                    f"{describe(ref, self.home)} needs {' or '.join(names)}; "
                    "nothing on its path provides it",
                )
            return
        if winner.kind == "builtin" or (winner.entry and winner.entry.rule == "stdlib"):
            return
        if winner.kind in ("nspkg", "namespace"):
            full = ref.name if isinstance(ref, ImportRef) else name
            portion = self._namespace_portion(model, full, resolution)
            if portion is None:
                return
            dist, entry = portion
        else:
            dist = self.index.provider_dist(winner, model.python)
            if dist is None or winner.entry is None:
                return
            entry = winner.entry
        self._use(dist, entry.path, entry.rule, describe(ref, self.home))

    def _use_by_name(self, model: PathModel, name: str, why: str) -> None:
        for entry in model.entries:
            for dist in self.index.dists_on(entry.path, entry.rule, model.python):
                if dist.name == name:
                    self._use(dist, entry.path, entry.rule, why)
                    return
        self._report(
            "missing",
            name,
            f"{why} names distribution {name}, which is not installed where the app looks",
        )

    def _namespace_portion(
        self, model: PathModel, name: str, resolution: Resolution
    ) -> tuple[Distribution, PathEntry] | None:
        """The distribution ``import ns.sub`` really loads when ``ns`` is a namespace (made by
        ``-nspkg.pth`` files or PEP 420): the first portion dir holding ``sub``, in the
        order the namespace's ``__path__`` lists them. ``import ns`` alone uses none."""
        parts = name.split(".")
        if len(parts) < 2:
            return None
        top, sub = parts[0], parts[1]
        portions = [
            (directory, PathEntry(directory.parent, "nspkg", pth))
            for n, directory, pth in model.nspkg
            if n == top
        ]
        portions += [
            (p.origin, p.entry)
            for p in resolution.candidates
            if p.kind == "namespace" and p.origin is not None and p.entry is not None
        ]
        for directory, entry in portions:
            if not (directory / sub).is_dir() and not any(directory.glob(f"{sub}.*")):
                continue
            dists = self.index.dists_on(entry.path, entry.rule, model.python)
            owner = next((d for d in dists if _owns(d, top, sub)), None)
            if owner is not None:
                return owner, entry
        return None


def _owns(dist: Distribution, top: str, sub: str) -> bool:
    """``dist`` installed ``top/sub``: by its file list, else its egg-info's SOURCES.txt,
    else by the naming convention of namespace portions (``top.sub``)."""
    prefix = f"{top}/{sub}"

    def listed(names: Iterable[str]) -> bool:
        return any(
            n == prefix or n.startswith((prefix + "/", prefix + ".")) or f"/{prefix}/" in n
            for n in (name.replace(os.sep, "/") for name in names)
        )

    if dist.files is not None:
        return listed(dist.files)
    if dist.kind == "egg-info" and dist.path.is_dir():
        try:
            sources = (dist.path / "SOURCES.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            sources = ""
        if sources:
            return listed(sources.splitlines())
    return canonicalize_name(dist.name) == canonicalize_name(f"{top}.{sub}")

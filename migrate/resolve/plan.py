"""Per app: which copy of each package it imports today, what it really uses, what is wrong.

Inputs are the account, its inventory and its crontab; the output is a :class:`Plan` of
plain records. The path model (:mod:`migrate.resolve.syspath`) says which file each import name
loads; the used set is the app's own imports (static, :mod:`migrate.discover.imports`), the
strings its framework imports (:mod:`migrate.resolve.recipes`) and, optionally, a runtime trace
(:mod:`migrate.resolve.trace`), closed over ``Requires-Dist`` for the target Python.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from migrate.discover.account import Account, LibDir
from migrate.discover.crontab import Crontab
from migrate.discover.entrypoints import ACCOUNT_GROUP, EntryPoint, find_entry_points
from migrate.discover.httpd import Config
from migrate.discover.imports import ImportRef, SourceScan, app_files, scan_sources
from migrate.discover.interpreters import Interpreter
from migrate.discover.servers import Server
from migrate.discover.snapshot import FileRead
from migrate.findings import FINDING_KINDS, AppFinding, Finding
from migrate.inventory import inventory_lib_dir
from migrate.inventory.model import Distribution, Inventory, LibDirInventory
from migrate.layout import venv_dir
from migrate.paths import home_relative, is_inside
from migrate.resolve import pep508
from migrate.resolve.recipes import Recipe, RecipeRef, detect, load_recipes, string_refs
from migrate.resolve.runtime import interpreter_of, venv_base, with_override
from migrate.resolve.syspath import (
    DirCache,
    PathEntry,
    PathModel,
    Provider,
    Resolution,
    build_path_model,
)

if TYPE_CHECKING:
    from migrate.resolve.probe import ProbeReport


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


@dataclass(frozen=True)
class AppPlan:
    name: str
    path: Path | None
    python: str | None
    has_python: bool
    entry_points: tuple[EntryPoint, ...] = ()
    packages: tuple[PackageRow, ...] = ()
    findings: tuple[AppFinding, ...] = ()
    recipes: tuple[str, ...] = ()
    models: tuple[PathModel, ...] = field(default=(), compare=False, repr=False)
    executable: Path | None = None
    """The interpreter its runtime starts (mod_wsgi's for a served app): its venv's base."""
    probes: tuple[ProbeOutcome, ...] = ()
    """``plan --probe``: each entry point's runtime asked, or why it could not be."""
    config: Config | None = field(default=None, compare=False, repr=False)
    """Its parsed ``httpd.conf``, if it has one."""
    server: Server | None = None
    """Its private Apache, if it has one."""
    venv_exists: bool = False
    """Something is at its venv path already (an earlier migration's venv)."""
    sources: Mapping[Path, str] = field(default_factory=dict, compare=False, repr=False)
    """sha256 of each source file whose imports made its used set: a migration must find
    them unchanged, or what it built is for code that is no longer there."""

    @property
    def used(self) -> tuple[PackageRow, ...]:
        return tuple(row for row in self.packages if row.used)

    @property
    def runs_python(self) -> bool:
        """Some entry point runs the app's Python: it has something to verify."""
        return self.has_python and bool(self.entry_points)

    @property
    def migratable(self) -> bool:
        """The one rule of which apps get a venv (build, run): Python runs it, of a known X.Y."""
        return self.runs_python and self.python is not None


@dataclass(frozen=True)
class Plan:
    home: Path
    apps: tuple[AppPlan, ...]
    findings: tuple[Finding, ...] = ()
    crontab: Crontab | None = None
    """The crontab as read (``--crontab FILE`` or ``crontab -l``): what ``run`` rewrites."""
    files: Mapping[Path, FileRead] = field(default_factory=dict, compare=False, repr=False)
    """The bytes discovery read of every file a migration may rewrite."""


Tracer = Callable[[EntryPoint, Interpreter, Path], tuple[set[str], str | None]]
"""Runs an entry point under its old path; returns (top-level names imported, error)."""

Prober = Callable[[EntryPoint, Path, Sequence[str]], "ProbeReport"]
"""Starts an entry point's real runtime privately (:func:`migrate.resolve.probe.probe_entry`)."""


@dataclass(frozen=True)
class ProbeOutcome:
    """The real runtime of one entry point against the static model of it."""

    entry: Path
    runtime: str | None
    """What was started; None when it could not be (``detail`` says why)."""
    agrees: bool | None
    detail: str


def plan_account(
    account: Account,
    inventory: Inventory,
    crontab: Crontab | None,
    *,
    apps: Sequence[str] = (),
    interpreters: Mapping[str, Path] | None = None,
    tracer: Tracer | None = None,
    recipes: Sequence[Recipe] | None = None,
    prober: Prober | None = None,
) -> Plan:
    """Resolve every app (or those named) and the account group ``~``."""
    entry_points = find_entry_points(account, crontab)
    index = _Index(inventory)
    recipe_book = tuple(recipes) if recipes is not None else load_recipes()
    groups: list[tuple[str, Path | None, bool]] = [
        (a.name, a.path, a.has_python) for a in account.apps
    ]
    groups.append((ACCOUNT_GROUP, None, True))
    plans = []
    for name, path, has_python in groups:
        if apps and name not in apps:
            continue
        eps = entry_points.for_group(name)
        if name == ACCOUNT_GROUP and not eps:
            continue
        if not has_python:
            plans.append(AppPlan(name, path, None, False, recipes=("static",)))
            continue
        resolver = _AppResolver(
            account, index, name, path, eps, interpreters, recipe_book, tracer, prober
        )
        plans.append(
            dataclasses.replace(
                resolver.resolve(),
                config=entry_points.configs.get(name),
                server=entry_points.servers.get(name),
                venv_exists=os.path.lexists(venv_dir(account.home, name)),
            )
        )
    # What stops a migration is worth seeing in the plan too: unreadable or escaping lib
    # dirs and apps (the inventory's errors) besides the entry points' own.
    errors = tuple(f for f in inventory.all_findings if f.severity == "error")
    findings = tuple(dict.fromkeys(errors + entry_points.findings))
    return Plan(account.home, tuple(plans), findings, crontab, entry_points.files)


class _Index:
    """Find the inventory record behind a path entry (lib dir, egg, develop checkout)."""

    def __init__(self, inventory: Inventory) -> None:
        self.lib_dirs: dict[str, LibDirInventory] = {
            str(lib.path): lib for lib in inventory.lib_dirs
        }
        self.real_lib_dirs = frozenset(os.path.realpath(lib.path) for lib in inventory.lib_dirs)
        self.eggs: dict[str, Distribution] = {}
        self.links: dict[str, Distribution] = {}
        self.cache = DirCache()
        """Listings shared by every app's path model: a plan reads, never writes."""
        for lib in inventory.lib_dirs:
            for dist in lib.distributions:
                if dist.kind == "egg":
                    self.eggs[str(dist.path)] = dist
                elif dist.kind == "egg-link" and dist.target is not None:
                    self.links[str(dist.target)] = dist

    def system(self, path: Path, python: str) -> LibDirInventory:
        key = str(path)
        if key not in self.lib_dirs:
            # The interpreter's own packages: read for names and versions, not verified.
            lib = LibDir(path, python, "system")
            self.lib_dirs[key] = inventory_lib_dir(lib, None, verify=False)
        return self.lib_dirs[key]

    def dists_on(self, entry: Path, rule: str, python: str) -> tuple[Distribution, ...]:
        """Distributions whose metadata lives on this sys.path entry."""
        key = str(entry)
        if key in self.eggs:
            return (self.eggs[key],)
        if key in self.links:
            return (self.links[key],)
        lib = self.lib_dirs.get(key)
        if lib is None and rule in ("site-packages", "python-home"):
            lib = self.system(entry, python)
        if lib is None:
            return ()
        return tuple(d for d in lib.distributions if d.kind not in ("egg", "egg-link"))

    def provider_dist(self, provider: Provider, python: str) -> Distribution | None:
        if provider.entry is None or provider.kind in ("builtin", "nspkg"):
            return None
        candidates = self.dists_on(provider.entry.path, provider.entry.rule, python)
        owners = [d for d in candidates if provider.name in d.top_level]
        if len(owners) > 1 and provider.origin is not None:
            rel = os.path.relpath(provider.origin, provider.entry.path)
            owners = [d for d in owners if d.files and rel in d.files] or owners
        if owners:
            return owners[0]
        if len(candidates) == 1 and candidates[0].kind in ("egg", "egg-link"):
            return candidates[0]
        return None


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


class _AppResolver:
    def __init__(
        self,
        account: Account,
        index: _Index,
        name: str,
        path: Path | None,
        entry_points: tuple[EntryPoint, ...],
        interpreters: Mapping[str, Path] | None,
        recipes: Sequence[Recipe],
        tracer: Tracer | None,
        prober: Prober | None = None,
    ) -> None:
        self.account = account
        self.home = account.home
        self.index = index
        self.name = name
        self.path = path
        self.entry_points = entry_points
        self.interpreters = interpreters
        self.recipes = recipes
        self.tracer = tracer
        self.prober = prober
        self.probes: list[ProbeOutcome] = []
        self.cache = index.cache
        self.findings: list[AppFinding] = []
        self.sources: dict[Path, str] = {}

    def resolve(self) -> AppPlan:
        overridden = []
        for entry in self.entry_points:
            entry, found = with_override(entry, self.interpreters)
            overridden.append(entry)
            self.findings.extend(found)
        self.entry_points = tuple(overridden)
        if not self.entry_points:
            finding = AppFinding(
                "entry-point", self.name, "no WSGI file, script or cron job runs this app's Python"
            )
            return AppPlan(self.name, self.path, None, True, findings=(finding,))
        uses: dict[str, _Use] = {}
        visible: dict[str, tuple[Distribution, Path, str]] = {}
        models = []
        recipe_names: list[str] = []
        for entry in self.entry_points:
            interpreter, found = interpreter_of(entry, self.account, self.name)
            self.findings.extend(found)
            readable = os.path.lexists(entry.path) and not entry.path.is_dir()
            scans = scan_sources([entry.path] if readable else [], self.home, interpreter)
            self._leaving_entries(entry)
            edits = scans[entry.path].path_edits if entry.path in scans else ()
            model = build_path_model(entry, interpreter, edits, self.home, self.cache)
            models.append(model)
            for finding in model.findings:
                self.findings.append(AppFinding("entry-point", str(finding.path), finding.message))
            self._collect_visible(model, visible)
            refs, used_recipes = self._used_names(entry, model, interpreter, scans)
            recipe_names.extend(r for r in used_recipes if r not in recipe_names)
            self._record_uses(model, refs, uses)
            if self.prober is not None:
                self._probe(entry, interpreter, refs)
        self._close(models, uses, visible)
        self._shadowing(models, uses)
        packages = self._rows(uses, visible)
        self._scope_findings(packages)
        python = next((e.python for e in self.entry_points if e.python), None)
        executable, found = venv_base(self.entry_points, python)
        self.findings.extend(found)
        return AppPlan(
            self.name,
            self.path,
            python,
            True,
            self.entry_points,
            packages,
            tuple(_dedupe_findings(self.findings)),
            tuple(recipe_names),
            tuple(models),
            executable,
            tuple(self.probes),
            sources=dict(self.sources),
        )

    def _report(self, kind: str, name: str, message: str) -> None:
        self.findings.append(AppFinding(kind, name, message))

    # -- interpreter -----------------------------------------------------------
    def _probe(
        self,
        entry: EntryPoint,
        interpreter: Interpreter | None,
        refs: Sequence[ImportRef | RecipeRef],
    ) -> None:
        """Ask the real runtime; a disagreement with the model is a ``probe`` finding.

        The runtime reports its path before the entry file runs, so it is compared with the
        model of that moment (no file edits), name by name for what the app imports.
        """
        from migrate.resolve.probe import ProbeUnavailable, disagreements

        assert self.prober is not None
        names = sorted({_top(ref) for ref in refs if _top(ref)})
        model = build_path_model(entry, interpreter, (), self.home, self.cache)
        if model.account_code:
            shown = ", ".join(home_relative(p, self.home) for p in model.account_code)
            why = f"not probed: starting it would run import lines of {shown}"
            self.probes.append(ProbeOutcome(entry.path, None, None, why))
            return
        try:
            report = self.prober(entry, self.home, names)
        except ProbeUnavailable as exc:
            self.probes.append(ProbeOutcome(entry.path, None, None, f"not probed: {exc}"))
            return
        found = disagreements(report, model)
        detail = (
            f"agrees: {len(report.sys_path)} path entries, {len(names)} names"
            if not found
            else "; ".join(found)
        )
        self.probes.append(ProbeOutcome(entry.path, report.runtime, not found, detail))
        for problem in found:
            self._report("probe", str(entry.path), f"the real runtime disagrees: {problem}")

    # -- the used set ----------------------------------------------------------
    def _used_names(
        self,
        entry: EntryPoint,
        model: PathModel,
        interpreter: Interpreter | None,
        scans: dict[Path, SourceScan],
    ) -> tuple[list[ImportRef | RecipeRef], list[str]]:
        roots = [entry.path]
        if entry.kind == "wsgi" and self.path is not None:
            # A WSGI app's code: the WSGI file's folder and the code dirs on its python-path.
            roots.extend(
                d for d in (entry.path.parent, *entry.site_dirs) if _is_code_dir(d, self.path)
            )
        files = app_files(roots, exclude=self.index.real_lib_dirs)
        scans.update(
            scan_sources([s for s in files.sources if s not in scans], self.home, interpreter)
        )
        scans = self._follow_local(model, scans, interpreter)
        self.sources.update((path, scan.sha256) for path, scan in scans.items() if scan.sha256)
        refs: list[ImportRef | RecipeRef] = [ref for scan in scans.values() for ref in scan.imports]
        for scan in scans.values():
            if scan.error and scan.parsed_by in ("tokenize", "none"):
                unread = scan.error.removeprefix("cannot read: ")
                message = (
                    f"could not read it ({unread}): its imports are unknown"
                    if unread != scan.error
                    else f"could not parse ({scan.error}); imports read by tokenizer"
                )
                self._report("entry-point", str(scan.file), message)
        imported = {ref.top_level for ref in refs if isinstance(ref, ImportRef)}
        configs = list(files.configs)
        applied = detect(self.recipes, imported, [*scans, *configs], {entry.kind})
        for recipe in applied:
            refs.extend(string_refs(recipe, list(scans), configs))
        if self.tracer is not None and interpreter is not None:
            names, error = self.tracer(entry, interpreter, self.home)
            if error:
                self.findings.append(AppFinding("entry-point", str(entry.path), f"trace: {error}"))
            refs.extend(ImportRef(n, entry.path, 0, "trace") for n in sorted(names))
        return refs, [r.name for r in applied]

    def _follow_local(
        self, model: PathModel, scans: dict[Path, SourceScan], interpreter: Interpreter | None
    ) -> dict[Path, SourceScan]:
        """Scan the app's own modules its code imports, transitively (scripts' helpers)."""
        pending = True
        while pending:
            pending = False
            wanted = []
            for scan in list(scans.values()):
                for ref in scan.imports:
                    provider = model.resolve(ref.top_level).winner
                    if provider is None or provider.origin is None or provider.entry is None:
                        continue
                    if provider.entry.rule == "stdlib" or self.index.provider_dist(
                        provider, model.python
                    ):
                        continue
                    origin = provider.origin
                    if (
                        not is_inside(origin, self.home)
                        or str(provider.entry.path) in self.index.lib_dirs
                    ):
                        continue
                    local = origin.parent if origin.name.startswith("__init__.") else origin
                    wanted.extend(f for f in app_files([local]).sources if f not in scans)
            if wanted:
                scans.update(scan_sources(sorted(set(wanted)), self.home, interpreter))
                pending = True
        return scans

    def _record_uses(
        self, model: PathModel, refs: Sequence[ImportRef | RecipeRef], uses: dict[str, _Use]
    ) -> None:
        for ref in refs:
            if isinstance(ref, RecipeRef) and ref.is_distribution:
                self._use_by_name(model, canonicalize_name(ref.target), _why(ref, self.home), uses)
                continue
            names = (
                ref.alternatives
                if isinstance(ref, RecipeRef) and ref.alternatives
                else (ref.target.split(".")[0] if isinstance(ref, RecipeRef) else ref.top_level,)
            )
            resolution = None
            name = names[0]
            full = ref.name if isinstance(ref, ImportRef) else None
            for name in names:
                resolution = model.resolve(name.split(".")[0])
                if resolution.winner is not None:
                    break
            assert resolution is not None
            winner = resolution.winner
            optional = isinstance(ref, ImportRef) and ref.optional
            if winner is None:
                if not optional and model.stdlib_known:
                    wanted = " or ".join(names)
                    self._report(
                        "missing",
                        names[0],
                        f"{_why(ref, self.home)} needs {wanted}; nothing on its path provides it",
                    )
                continue
            if winner.kind == "builtin" or (winner.entry and winner.entry.rule == "stdlib"):
                continue
            if winner.kind in ("nspkg", "namespace"):
                portion = self._namespace_portion(model, full or name, resolution)
                if portion is None:
                    continue
                dist, entry = portion
            else:
                dist = self.index.provider_dist(winner, model.python)
                if dist is None or winner.entry is None:
                    continue
                entry = winner.entry
            use = uses.setdefault(str(dist.path), _Use(dist, entry.path, entry.rule))
            use.why.append(_why(ref, self.home))
            use.direct = True

    def _leaving_entries(self, entry: EntryPoint) -> None:
        """Path entries that look like the home's but lead out of it through a symlink: what
        they hold is neither inventoried nor moved, and a rewrite cannot judge them."""
        home_real = os.path.realpath(self.home)
        for directory in (*entry.site_dirs, *entry.pythonpath):
            real = os.path.realpath(directory)
            if is_inside(directory, self.home) and not is_inside(real, home_real):
                self.findings.append(
                    AppFinding(
                        "entry-point",
                        str(directory),
                        f"leads outside the home (to {real}), named by {entry.source}: "
                        "put what it holds in the home, or drop it from the path",
                    )
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

    def _use_by_name(self, model: PathModel, name: str, why: str, uses: dict[str, _Use]) -> None:
        for entry in model.entries:
            for dist in self.index.dists_on(entry.path, entry.rule, model.python):
                if dist.name == name:
                    use = uses.setdefault(str(dist.path), _Use(dist, entry.path, entry.rule))
                    use.direct = True
                    use.why.append(why)
                    return
        self._report(
            "missing",
            name,
            f"{why} names distribution {name}, which is not installed where the app looks",
        )

    # -- visibility, closure, findings ----------------------------------------
    def _collect_visible(
        self, model: PathModel, visible: dict[str, tuple[Distribution, Path, str]]
    ) -> None:
        for entry in model.entries:
            for dist in self.index.dists_on(entry.path, entry.rule, model.python):
                visible.setdefault(str(dist.path), (dist, entry.path, entry.rule))

    def _close(
        self,
        models: Sequence[PathModel],
        uses: dict[str, _Use],
        visible: dict[str, tuple[Distribution, Path, str]],
    ) -> None:
        """Add every distribution the used ones require (markers for the app's Python)."""
        python = models[0].python
        by_name: dict[str, list[tuple[Distribution, Path, str]]] = {}
        for item in visible.values():
            by_name.setdefault(item[0].name, []).append(item)
        used_names = {u.dist.name for u in uses.values()}
        for name, items in by_name.items():
            versions = {d.version for d, _, _ in items}
            if len(versions) > 1 and name in used_names:
                where = "; ".join(
                    f"{d.version} in {home_relative(d.path, self.home)}" for d, _, _ in items
                )
                self.findings.append(
                    AppFinding("conflict", name, f"{len(versions)} versions visible: {where}")
                )
        queue: list[tuple[Distribution, frozenset[str]]] = [
            (u.dist, frozenset()) for u in uses.values()
        ]
        seen: set[tuple[str, frozenset[str]]] = set()
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
                use = uses.setdefault(str(target.path), _Use(target, entry, rule))
                why = f"required by {dist.display_name} ({requirement})"
                if why not in use.why:
                    use.why.append(why)
                if dist.name not in use.required_by:
                    use.required_by.append(dist.name)
                queue.append((target, frozenset(requirement.extras)))

    def _shadowing(self, models: Sequence[PathModel], uses: dict[str, _Use]) -> None:
        used_names = {n for u in uses.values() for n in u.dist.top_level}
        reported: set[str] = set()
        for model in models:
            for name in sorted(model.names(inside=self.home)):
                if name in reported:
                    continue
                resolution = model.resolve(name)
                losers = [
                    p
                    for p in resolution.shadowed
                    if p.entry is not None and p.entry.rule != "stdlib"
                ]
                if resolution.winner is None or not losers or name == "site":
                    continue  # setuptools' boot site.py is meant to lose to the real one
                winner_dist = self.index.provider_dist(resolution.winner, model.python)
                loser_text = []
                for loser in losers:
                    dist = self.index.provider_dist(loser, model.python)
                    if (
                        dist is not None
                        and winner_dist is not None
                        and dist.path == winner_dist.path
                    ):
                        continue
                    version = f" {dist.version}" if dist and dist.version else ""
                    loser_text.append(
                        f"{home_relative(loser.origin or loser.entry.path, self.home)}{version}"
                    )  # type: ignore[union-attr]
                if not loser_text:
                    continue
                reported.add(name)
                win_version = (
                    f" {winner_dist.version}" if winner_dist and winner_dist.version else ""
                )
                usage = "used" if name in used_names else "not used"
                winner = resolution.winner
                loads = home_relative(winner.origin or Path("?"), self.home)
                rule = winner.entry.rule if winner.entry else "builtin"
                self._report(
                    "shadowed",
                    name,
                    f"{name} ({usage}) loads {loads}{win_version} [{rule}]; "
                    f"hidden: {', '.join(loser_text)}",
                )

    def _rows(
        self, uses: dict[str, _Use], visible: dict[str, tuple[Distribution, Path, str]]
    ) -> tuple[PackageRow, ...]:
        rows = []
        for key, (dist, entry, rule) in visible.items():
            use = uses.get(key)
            if use is None and dist.lib_dir is not None and self._is_system(dist):
                continue
            rows.append(use.row() if use else PackageRow(dist, entry, rule, False))
        for key, use in uses.items():
            if key not in visible:
                rows.append(use.row())
        return tuple(sorted(rows, key=lambda r: (r.dist.name, str(r.dist.path))))

    def _is_system(self, dist: Distribution) -> bool:
        lib = self.index.lib_dirs.get(str(dist.lib_dir))
        return lib is not None and lib.scope == "system"

    def _scope_findings(self, packages: Sequence[PackageRow]) -> None:
        for row in packages:
            lib = self.index.lib_dirs.get(str(row.dist.lib_dir))
            scope = lib.scope if lib else None
            if row.used and self.name != ACCOUNT_GROUP and scope in ("account", "user-site"):
                self._report(
                    "leaked",
                    row.dist.name,
                    f"{row.dist.display_name} {row.dist.version or '?'} is used but comes from the "
                    f"{'account-wide' if scope == 'account' else 'user-site'} dir "
                    f"{home_relative(row.dist.lib_dir, self.home)}",
                )
            if not row.used and scope != "system":
                self._report(
                    "unused",
                    row.dist.name,
                    f"{row.dist.display_name} {row.dist.version or '?'} is visible but not used",
                )


def _top(ref: ImportRef | RecipeRef) -> str:
    """The top-level import name a reference needs ("" for a distribution name)."""
    if isinstance(ref, ImportRef):
        return ref.top_level
    return "" if ref.is_distribution else ref.target.split(".", 1)[0]


def _is_code_dir(directory: Path, app_dir: Path) -> bool:
    text = str(directory)
    if "/lib/python" in text or text.endswith("site-packages") or "/site-packages/" in text:
        return False
    # Through symlinks: a code dir that really lies outside the app is not the app's code.
    return is_inside(os.path.realpath(directory), os.path.realpath(app_dir))


def _why(ref: ImportRef | RecipeRef, home: Path) -> str:
    where = (
        f"{home_relative(ref.file, home)}:{ref.line}" if ref.line else home_relative(ref.file, home)
    )
    if isinstance(ref, RecipeRef):
        return f"recipe {ref.recipe}: {ref.setting} in {where}"
    if ref.how == "trace":
        return f"traced loading {home_relative(ref.file, home)}"
    optional = " (optional)" if ref.optional else ""
    return f"import {ref.name} in {where}{optional}"


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


def _dedupe_findings(findings: Iterable[AppFinding]) -> list[AppFinding]:
    unique = dict.fromkeys(findings)
    return sorted(unique, key=lambda f: (FINDING_KINDS.index(f.kind), f.name))

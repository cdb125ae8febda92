"""Per app: which copy of each package it imports today, what it really uses, what is wrong.

Inputs are the account, its inventory and its crontab; the output is a :class:`Plan` of
plain records. Per entry point: the interpreter that runs it (:mod:`~migrate.resolve.runtime`),
the path model saying which file each import name loads (:mod:`~migrate.resolve.syspath`),
what its code needs (:mod:`~migrate.resolve.appcode`); per app, the distributions those come
from closed over ``Requires-Dist`` (:mod:`~migrate.resolve.uses`), what is wrong
(:mod:`~migrate.resolve.checks`) and, asked for, the real runtime's word
(:mod:`~migrate.resolve.oracle`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migrate.discover.account import Account
from migrate.discover.crontab import Crontab
from migrate.discover.entrypoints import ACCOUNT_GROUP, EntryPoint, find_entry_points
from migrate.discover.httpd import Config
from migrate.discover.imports import scan_sources
from migrate.discover.servers import Server
from migrate.discover.snapshot import FileRead
from migrate.findings import FINDING_KINDS, AppFinding, Finding
from migrate.inventory.model import Inventory
from migrate.layout import venv_dir
from migrate.resolve.appcode import Tracer, read_app_code, top_name
from migrate.resolve.checks import leaving_entries, scope_findings, shadowing
from migrate.resolve.distindex import DistIndex
from migrate.resolve.oracle import ProbeOutcome, Prober, ask_runtime
from migrate.resolve.recipes import Recipe, load_recipes
from migrate.resolve.runtime import interpreter_of, venv_base, with_override
from migrate.resolve.syspath import PathModel, build_path_model
from migrate.resolve.uses import PackageRow, UsedSet

__all__ = [
    "AppPlan",
    "PackageRow",
    "Plan",
    "ProbeOutcome",
    "Prober",
    "Tracer",
    "plan_account",
]


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
    concentric: tuple[Path, ...] = ()
    """The account's shared lib dirs (``~/lib``, each app's ``lib``, the user site): what a
    migrated app must no longer need (``verify --isolated`` hides them)."""


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
    minimal: bool = False,
) -> Plan:
    """Resolve every app (or those named) and the account group ``~``.

    The used set is conservative unless ``minimal``: what the app's code imports, closed
    over ``Requires-Dist`` *and* over what the used distributions' own code imports and
    the plugins they load; ``minimal`` keeps the ``Requires-Dist`` closure alone."""
    entry_points = find_entry_points(account, crontab)
    index = DistIndex(inventory)
    recipe_book = tuple(recipes) if recipes is not None else load_recipes()
    # An app of no Python files of its own may still run Python: an installed server
    # (``python -m trac.web.standalone``) its start script or cron starts.
    groups: list[tuple[str, Path | None, bool]] = [
        (a.name, a.path, a.has_python or bool(entry_points.for_group(a.name))) for a in account.apps
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
        resolved = _resolve_app(
            account, index, name, path, eps, interpreters, recipe_book, tracer, prober, minimal
        )
        plans.append(
            dataclasses.replace(
                resolved,
                config=entry_points.configs.get(name),
                server=entry_points.servers.get(name),
                venv_exists=os.path.lexists(venv_dir(account.home, name)),
            )
        )
    # What stops a migration is worth seeing in the plan too: unreadable or escaping lib
    # dirs and apps (the inventory's errors) besides the entry points' own.
    errors = tuple(f for f in inventory.all_findings if f.severity == "error")
    findings = tuple(dict.fromkeys(errors + entry_points.findings))
    concentric = tuple(lib.path for lib in account.lib_dirs if lib.scope != "system")
    return Plan(account.home, tuple(plans), findings, crontab, entry_points.files, concentric)


def _resolve_app(
    account: Account,
    index: DistIndex,
    name: str,
    path: Path | None,
    entry_points: Sequence[EntryPoint],
    interpreters: Mapping[str, Path] | None,
    recipes: Sequence[Recipe],
    tracer: Tracer | None,
    prober: Prober | None,
    minimal: bool = False,
) -> AppPlan:
    """One app: each entry point's path model and code, the distributions they use, what
    is wrong, and the interpreter its venv is made from."""
    home = account.home
    findings: list[AppFinding] = []
    overridden = []
    for entry in entry_points:
        entry, found = with_override(entry, interpreters)
        overridden.append(entry)
        findings.extend(found)
    entry_points = tuple(overridden)
    if not entry_points:
        finding = AppFinding(
            "entry-point", name, "no WSGI file, script or cron job runs this app's Python"
        )
        return AppPlan(name, path, None, True, findings=(finding,))
    used = UsedSet(index, home)
    models = []
    recipe_names: list[str] = []
    sources: dict[Path, str] = {}
    probes = []
    for entry in entry_points:
        interpreter, found = interpreter_of(entry, account, name)
        findings.extend(found)
        readable = os.path.lexists(entry.path) and not entry.path.is_dir()
        scans = scan_sources([entry.path] if readable else [], home, interpreter)
        findings.extend(leaving_entries(entry, home))
        edits = scans[entry.path].path_edits if entry.path in scans else ()
        model = build_path_model(entry, interpreter, edits, home, index.cache)
        models.append(model)
        findings.extend(AppFinding("entry-point", str(f.path), f.message) for f in model.findings)
        code = read_app_code(
            entry, model, interpreter, scans,
            home=home, app_dir=path, index=index, recipes=recipes, tracer=tracer,
        )  # fmt: skip
        findings.extend(code.findings)
        sources.update(code.sources)
        recipe_names.extend(r for r in code.recipes if r not in recipe_names)
        used.add(model, code.refs)
        if prober is not None:
            names = sorted({top_name(ref) for ref in code.refs if top_name(ref)})
            at_start = build_path_model(entry, interpreter, (), home, index.cache)
            outcome, found = ask_runtime(prober, entry, at_start, home, names)
            probes.append(outcome)
            findings.extend(found)
    packages = used.close(models[0].python, models, minimal=minimal)
    findings.extend(used.findings)
    findings.extend(shadowing(models, used.top_level_names(), index, home))
    findings.extend(scope_findings(name, packages, index, home))
    python = next((e.python for e in entry_points if e.python), None)
    executable, found = venv_base(entry_points, python)
    findings.extend(found)
    return AppPlan(
        name,
        path,
        python,
        True,
        entry_points,
        packages,
        tuple(_dedupe_findings(findings)),
        tuple(recipe_names),
        tuple(models),
        executable,
        tuple(probes),
        sources=sources,
    )


def _dedupe_findings(findings: Iterable[AppFinding]) -> list[AppFinding]:
    unique = dict.fromkeys(findings)
    return sorted(unique, key=lambda f: (FINDING_KINDS.index(f.kind), f.name))

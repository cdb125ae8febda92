"""Turn records into the two stable outputs: JSON documents and human tables.

Every ``--json`` document is built here, on one envelope: ``schema`` (the version of that
command's document, raised only on an incompatible change), ``command`` and ``ok`` (true
exactly when the command exits 0). A command that fails prints :func:`error_json` instead,
the same shape for every command. docs/schemas/ holds the JSON Schema of each document.
Human output names paths in the home as ``~/…`` (the account's home, ``--home``); JSON
gives absolute paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrate.inventory.model import Distribution, Finding, Inventory, LibDirInventory, PthFile
from migrate.paths import home_relative, home_relative_text

if TYPE_CHECKING:
    from migrate.build.app import BuiltVenv
    from migrate.build.verify import VerifyReport
    from migrate.journal import RollbackResult, TransactionInfo
    from migrate.resolve.plan import AppPlan, Plan
    from migrate.rewrite import Change
    from migrate.run.actions import PlannedFile
    from migrate.run.build import BuildResult
    from migrate.run.execute import ProcessOutcome, RunResult
    from migrate.run.migration import AppStatus, Migration
    from migrate.run.restart import Health

SCHEMA_VERSIONS = {
    "inventory": 1,
    "plan": 1,
    "requirements": 1,
    "build": 1,
    "run": 1,
    "verify": 1,
    "rollback": 1,
    "journal": 1,
}
"""The version of each command's document; the error document shares its command's."""


def document(command: str, ok: bool, **fields: Any) -> dict[str, Any]:
    """The envelope every JSON document starts with."""
    return {"schema": SCHEMA_VERSIONS[command], "command": command, "ok": ok, **fields}


def error_json(
    command: str,
    *,
    kind: str,
    message: str,
    exit_code: int,
    problems: Sequence[str] = (),
    transaction: str | None = None,
    rolled_back: bool | None = None,
) -> dict[str, Any]:
    """What any command prints under ``--json`` when it fails (exit 1) or is misused (exit 2).

    ``kind``: ``bad-input`` (exit 2: nothing was done), ``refused`` (a check before the
    first write failed: nothing was written; ``problems`` lists each), ``failed`` (the
    operation failed; ``transaction`` and ``rolled_back`` say what became of its writes).
    """
    return {
        "schema": SCHEMA_VERSIONS.get(command, 1),
        "command": command,
        "ok": False,
        "error": {
            "kind": kind,
            "exit_code": exit_code,
            "message": message,
            "problems": list(problems),
            "transaction": transaction,
            "rolled_back": rolled_back,
        },
    }


def inventory_json(inventory: Inventory) -> dict[str, Any]:
    """The ``inventory --json`` document (docs/schemas/inventory.schema.json)."""
    return document(
        "inventory",
        True,
        home=str(inventory.home),
        apps=[
            {"name": app.name, "path": str(app.path), "has_python": app.has_python}
            for app in inventory.apps
        ],
        lib_dirs=[_lib_dir_json(lib) for lib in inventory.lib_dirs],
        findings=[finding_json(f) for f in inventory.all_findings],
    )


def _lib_dir_json(lib: LibDirInventory) -> dict[str, Any]:
    return {
        "path": str(lib.path),
        "python": lib.python,
        "scope": lib.scope,
        "app": lib.app,
        "distributions": [distribution_json(d) for d in lib.distributions],
        "pth": [_pth_json(p) for p in lib.pth],
        "setuptools_site_py": str(lib.setuptools_site_py) if lib.setuptools_site_py else None,
    }


def distribution_json(dist: Distribution) -> dict[str, Any]:
    return {
        "name": dist.name,
        "display_name": dist.display_name,
        "version": dist.version,
        "version_guessed": dist.version_guessed,
        "kind": dist.kind,
        "path": str(dist.path),
        "top_level": list(dist.top_level),
        "requires": list(dist.requires),
        "installer": dist.installer,
        "files": list(dist.files) if dist.files is not None else None,
        "modified": list(dist.modified),
        "missing": list(dist.missing),
        "python": dist.python,
        "zipped": dist.zipped,
        "editable": dist.editable,
        "target": str(dist.target) if dist.target else None,
        "target_exists": dist.target_exists,
    }


def _pth_json(pth: PthFile) -> dict[str, Any]:
    return {
        "path": str(pth.path),
        "role": pth.role,
        "plen_wrapper": pth.plen_wrapper,
        "paths": [
            {"line": line.lineno, "path": str(line.path), "exists": line.exists}
            for line in pth.path_entries
        ],
        "imports": [{"line": line.lineno, "text": line.text} for line in pth.import_lines],
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    return {"path": str(finding.path), "severity": finding.severity, "message": finding.message}


def inventory_text(inventory: Inventory, *, verbose: bool = False) -> str:
    """One table per lib dir, then .pth files and findings: what a person reads first.

    ``verbose`` adds the details behind the notes: which files were modified or are
    missing, and every .pth line.
    """
    out: list[str] = []
    home = inventory.home
    total = sum(len(lib.distributions) for lib in inventory.lib_dirs)
    out.append(f"{inventory.home}: {len(inventory.lib_dirs)} lib dir(s), {total} distribution(s)")
    if inventory.apps:
        apps = ", ".join(
            f"{app.name}{'' if app.has_python else ' (no Python)'}" for app in inventory.apps
        )
        out.append(f"apps: {apps}")
    for lib in inventory.lib_dirs:
        where = f"app {lib.app}" if lib.app else lib.scope
        out.append("")
        out.append(f"{home_relative(lib.path, home)}  (python {lib.python}, {where})")
        if lib.distributions:
            rows = [_dist_row(d, home) for d in sorted(lib.distributions, key=lambda d: d.name)]
            out.extend(
                "  " + line for line in table(("name", "version", "kind", "imports", "notes"), rows)
            )
        else:
            out.append("  (no distributions)")
        if verbose:
            for dist in lib.distributions:
                out.extend(f"    modified: {dist.name}: {rel}" for rel in dist.modified)
                out.extend(f"    missing:  {dist.name}: {rel}" for rel in dist.missing)
        for pth in lib.pth:
            out.append("  " + _pth_line(pth))
            if verbose:
                out.extend(
                    f"    {line.lineno:>3} {line.kind:7} {line.text}"
                    for line in pth.lines
                    if line.kind in ("path", "import")
                )
        if lib.setuptools_site_py:
            out.append(
                f"  site.py: setuptools' easy_install boot script ({lib.setuptools_site_py.name})"
            )
    findings = inventory.all_findings
    if findings:
        out.append("")
        out.append(f"findings ({len(findings)}):")
        out.extend(
            f"  {f.severity:7} {home_relative(f.path, home)}: {home_relative_text(f.message, home)}"
            for f in findings
        )
    return "\n".join(out) + "\n"


def _dist_row(dist: Distribution, home: Path) -> tuple[str, ...]:
    notes = []
    if dist.version_guessed:
        notes.append("version from __version__")
    if dist.zipped:
        notes.append("zipped")
    if dist.kind == "egg-link" or dist.editable:
        state = "" if dist.target_exists else " (missing)"
        target = home_relative(dist.target, home) if dist.target else None
        notes.append(f"develop -> {target}{state}" if target else "develop")
    if dist.modified:
        notes.append(f"{len(dist.modified)} file(s) modified")
    if dist.missing:
        notes.append(f"{len(dist.missing)} file(s) missing")
    if dist.installer:
        notes.append(f"by {dist.installer}")
    return (
        dist.display_name,
        dist.version or "?",
        dist.kind,
        ",".join(dist.top_level) or "-",
        "; ".join(notes),
    )


def _pth_line(pth: PthFile) -> str:
    extra = []
    if pth.plen_wrapper:
        extra.append("__plen wrapper: entries go to the front of sys.path")
    if pth.import_lines:
        extra.append(f"{len(pth.import_lines)} import line(s), not run")
    missing = sum(1 for line in pth.path_entries if not line.exists)
    if missing:
        extra.append(f"{missing} missing")
    detail = f" ({'; '.join(extra)})" if extra else ""
    return f"{pth.path.name}: {pth.role}, {len(pth.path_entries)} path(s){detail}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, str(cells[-1])]).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def plan_json(plan: Plan) -> dict[str, Any]:
    """The ``plan --json`` document (docs/schemas/plan.schema.json)."""
    return document(
        "plan",
        True,
        home=str(plan.home),
        apps=[_app_json(app) for app in plan.apps],
        findings=[finding_json(f) for f in plan.findings],
    )


def _app_json(app: AppPlan) -> dict[str, Any]:
    return {
        "name": app.name,
        "path": str(app.path) if app.path else None,
        "python": app.python,
        "executable": None if app.executable is None else str(app.executable),
        "has_python": app.has_python,
        "recipes": list(app.recipes),
        "entry_points": [
            {
                "path": str(e.path),
                "kind": e.kind,
                "python": e.python,
                "python_reason": e.python_reason,
                "source": e.source,
                "interpreter": e.interpreter,
                "executable": None if e.executable is None else str(e.executable),
                "executable_reason": e.executable_reason,
                "module": e.module,
                "pythonpath": [str(d) for d in e.pythonpath],
                "site_dirs": [str(d) for d in e.site_dirs],
            }
            for e in app.entry_points
        ],
        "packages": [
            {
                "name": row.dist.name,
                "version": row.dist.version,
                "kind": row.dist.kind,
                "path": str(row.dist.path),
                "lib_dir": str(row.dist.lib_dir),
                "entry": str(row.entry),
                "rule": row.rule,
                "used": row.used,
                "why": list(row.why),
            }
            for row in app.packages
        ],
        "findings": [{"kind": f.kind, "name": f.name, "message": f.message} for f in app.findings],
        "probes": [
            {"entry": str(p.entry), "runtime": p.runtime, "agrees": p.agrees, "detail": p.detail}
            for p in app.probes
        ],
    }


def plan_text(plan: Plan, *, verbose: bool = False) -> str:
    """Per app: its entry points, a package table, then its findings by kind."""
    out: list[str] = []
    for app in plan.apps:
        out.append("")
        if not app.has_python:
            out.append(f"{app.name}: no Python (skipped)")
            continue
        python = f"python {app.python}" if app.python else "python ?"
        recipes = f", {', '.join(app.recipes)}" if app.recipes else ""
        out.append(f"{app.name}  ({python}{recipes})")
        for entry in app.entry_points:
            where = home_relative(entry.path, plan.home)
            source = home_relative_text(entry.source, plan.home)
            reason = home_relative_text(entry.python_reason, plan.home)
            out.append(f"  {entry.kind:6} {where}  [{source}; {reason}]")
            runs = home_relative(entry.executable, plan.home) if entry.executable else "?"
            why = home_relative_text(entry.executable_reason, plan.home)
            out.append(f"         runs on {runs}  [{why}]")
            for label, dirs in (("PYTHONPATH", entry.pythonpath), ("python-path", entry.site_dirs)):
                if dirs:
                    shown = ":".join(str(home_relative(d, plan.home)) for d in dirs)
                    out.append(f"         {label} {shown}")
        rows = [
            (
                row.dist.display_name,
                row.dist.version or "?",
                home_relative(row.dist.lib_dir, plan.home),
                row.rule,
                "yes" if row.used else "-",
                (row.why[0] + (f" (+{len(row.why) - 1})" if len(row.why) > 1 else ""))
                if row.why and not verbose
                else "; ".join(row.why),
            )
            for row in app.packages
        ]
        if rows:
            out.extend(
                "  " + line
                for line in table(("package", "version", "from", "rule", "used", "why"), rows)
            )
        for finding in app.findings:
            where = f"{home_relative(finding.name, plan.home)}: " if finding.name[:1] == "/" else ""
            out.append(
                f"  {finding.kind:9} {where}{home_relative_text(finding.message, plan.home)}"
            )
        for probe in app.probes:
            runtime = f" on {home_relative_text(probe.runtime, plan.home)}" if probe.runtime else ""
            detail = home_relative_text(probe.detail, plan.home)
            label = "probed" if probe.runtime else "probe"
            out.append(f"  {label:9} {home_relative(probe.entry, plan.home)}{runtime}: {detail}")
    for finding in plan.findings:
        out.append(
            f"{finding.severity}: {home_relative(finding.path, plan.home)}: {finding.message}"
        )
    return "\n".join(out).lstrip("\n") + "\n"


def migration_json(migration: Migration, requirements: Sequence[PlannedFile]) -> dict[str, Any]:
    """``run --dry-run --json``: what would change, file by file and line by line; ``ok`` is
    false (and the exit code 1) when ``run`` would refuse, for the ``problems`` listed."""
    return document(
        "run",
        not migration.problems,
        dry_run=True,
        home=str(migration.home),
        problems=list(migration.problems),
        accounted=accounted_json(migration.statuses),
        requirements=[planned_json(f) for f in requirements],
        apps=[
            {
                "app": app.app,
                "venv": str(app.venv),
                "python": app.python,
                "restart": None if app.server is None else [str(p) for p in app.server.restart],
                "port": None if app.server is None else app.server.port,
                "files": [
                    {
                        "path": str(edit.file.path),
                        "changes": [_change_json(c) for c in edit.changes],
                    }
                    for edit in app.edits
                ],
            }
            for app in migration.apps
        ],
        crontab=None
        if migration.crontab is None
        else {
            "file": None if migration.crontab.file is None else str(migration.crontab.file),
            "changes": [_change_json(c) for c in migration.crontab.changes],
        },
    )


def _change_json(change: Change) -> dict[str, Any]:
    return {"line": change.line, "before": change.before, "after": change.after, "why": change.why}


def run_json(result: RunResult) -> dict[str, Any]:
    """``run --json`` after a migration."""
    return document(
        "run",
        True,
        dry_run=False,
        home=str(result.home),
        transaction=result.transaction,
        crontab_changed=result.crontab_changed,
        accounted=accounted_json(result.statuses),
        apps=[
            {
                "app": app.app,
                "venv": str(app.venv),
                "python": app.python,
                "packages": app.packages,
                "changed": [str(p) for p in app.changed],
                "status_before": None if app.before is None else app.before.status,
                "status_after": None if app.after is None else app.after.status,
                "restarted": app.restarted,
                "verified": None if app.verify is None else app.verify.ok,
                "processes": [_process_json(p) for p in app.processes],
            }
            for app in result.apps
        ],
    )


def planned_json(item: PlannedFile) -> dict[str, Any]:
    return {"path": str(item.path), "changed": item.changed, "created": item.before is None}


def requirements_json(
    files: Sequence[PlannedFile], *, dry_run: bool, transaction: str | None
) -> dict[str, Any]:
    """``requirements --json``: every file written (or, with ``--dry-run``, to write)."""
    return document(
        "requirements",
        True,
        dry_run=dry_run,
        transaction=transaction,
        files=[planned_json(f) for f in files],
    )


def build_skipped(app: str) -> str:
    return (
        f"{app}: skipped, its Python version is unknown (see `plan`); name the interpreter "
        "with --python X.Y=PATH"
    )


def build_summary(result: BuildResult, home: Path, *, show_origins: bool) -> list[str]:
    """What a person reads after ``build``: each venv, and how to undo."""
    if result.transaction is None:
        return ["nothing to build: no app runs Python from this account (see `plan`)"]
    lines = []
    for venv in result.built:
        where = home_relative(venv.path, home)
        lines.append(f"{venv.app} -> {where} ({len(venv.pins)} package(s), Python {venv.python})")
        if show_origins:
            lines.extend(
                f"  {pin.name} {pin.version}: {origin}"
                for pin, origin in zip(venv.pins, venv.origins, strict=True)
            )
    lines.append(
        f"journal: {result.transaction}; undo with: concentric-migrate --home {home} rollback"
    )
    return lines


def build_json(built: Sequence[BuiltVenv], transaction: str | None) -> dict[str, Any]:
    """``build --json``: each venv and the wheel behind every pin (no transaction when
    there was nothing to build)."""
    return document(
        "build",
        True,
        transaction=transaction,
        apps=[
            {
                "app": b.app,
                "venv": str(b.path),
                "python": b.python,
                "pins": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "wheel": str(w.path),
                        "sha256": w.sha256,
                        "origin": origin,
                    }
                    for p, w, origin in zip(b.pins, b.wheels, b.origins, strict=True)
                ],
            }
            for b in built
        ],
    )


def verify_json(reports: Sequence[VerifyReport]) -> dict[str, Any]:
    """``verify --json``: every import and version checked, per app; ``ok`` false on any
    problem (exit 1)."""
    return document(
        "verify",
        all(r.ok for r in reports),
        apps=[
            {
                "app": r.app,
                "venv": str(r.venv),
                "ok": r.ok,
                "isolation": r.isolation or None,
                "leaks": list(r.leaks),
                "runtimes": list(r.runtimes),
                "changed": list(r.changed),
                "problems": list(r.problems),
                "imports": [{"name": c.name, "ok": c.ok} for c in r.imports],
                "versions": [
                    {"name": c.name, "expected": c.expected, "found": c.found} for c in r.versions
                ],
            }
            for r in reports
        ],
    )


def rollback_json(result: RollbackResult | None, restarted: Sequence[Health]) -> dict[str, Any]:
    """``rollback --json``; ``transaction`` is null when the home had none to roll back.
    The lists say what this command did: empty when the transaction was ``already`` undone."""
    did = result is not None and not result.already
    return document(
        "rollback",
        True,
        transaction=None if result is None else result.id,
        already=result is not None and result.already,
        restored=[str(p) for p in result.restored] if did else [],
        removed=[str(p) for p in result.removed] if did else [],
        kept_aside=[str(p) for p in result.kept_aside] if did else [],
        restarted=[{"app": h.app, "status": h.status} for h in restarted],
    )


def journal_json(found: Sequence[TransactionInfo]) -> dict[str, Any]:
    """``journal --json``: every transaction of the home, oldest first."""
    return document(
        "journal",
        True,
        transactions=[
            {
                "id": t.id,
                "state": t.state,
                "created": t.created,
                "description": t.description,
                "path": str(t.path),
                "files": [str(p) for p in t.files],
            }
            for t in found
        ],
    )


def run_summary(result: RunResult, home: Path) -> list[str]:
    """What a person reads after ``run``: per app what changed, where its venv is, how to undo."""
    lines = []
    for app in result.apps:
        lines.append(f"{app.app}: venv {home_relative(app.venv, home)} (Python {app.python}, "
                     f"{app.packages} package(s))")  # fmt: skip
        lines.extend(f"  rewrote {home_relative(path, home)}" for path in app.changed)
        if app.restarted and app.after is not None and app.before is not None:
            lines.append(f"  restarted: HTTP {app.after.status} on port {app.after.port}, "
                         f"as before")  # fmt: skip
        elif app.before is not None:
            lines.append(f"  not restarted: {app.before.detail or 'not running'}")
        for process in app.processes:
            lines.append("  " + _process_line(process, home))
    lines.extend(_not_migrated(result.statuses))
    if result.crontab_changed:
        lines.append("crontab: rewritten")
    lines.append(f"journal: {result.transaction}; undo with: concentric-migrate --home {home} "
                 f"rollback {result.transaction}")  # fmt: skip
    return lines


def migration_text(migration: Migration, requirements: Sequence[PlannedFile]) -> list[str]:
    """``run --dry-run``: per app its venv and restart, then a unified diff of every file."""
    home = migration.home
    lines = []
    for app in migration.apps:
        restart = "no Apache of its own"
        if app.server is not None:
            scripts = " + ".join(p.name for p in app.server.restart)
            restart = f"restart with apache2/bin/{scripts}, GET port {app.server.port}"
        elif app.daemons:
            restart = "; ".join(
                f"restart {home_relative(d.entry, home)} with {home_relative(d.launcher, home)}"
                + (" (after its stop)" if d.stop_script else "")
                for d in app.daemons
            )
        lines.append(
            f"{app.app}: venv {home_relative(app.venv, home)} (Python {app.python}); {restart}"
        )
        lines.extend(f"  rewrite {home_relative(e.file.path, home)}" for e in app.edits)
    lines.extend(_not_migrated(migration.statuses))
    if migration.crontab is not None:
        lines.append(f"crontab: {len(migration.crontab.changes)} line(s) change")
    lines.extend(f"problem: {home_relative_text(p, home)}" for p in migration.problems)
    diffs = [f.diff() for f in requirements if f.changed]
    diffs += [e.file.diff() for e in migration.edits if e.file.changed]
    if migration.crontab is not None:
        diffs.append(_crontab_diff(migration))
    lines.extend(d.rstrip("\n") for d in diffs)
    return lines


def _process_line(process: ProcessOutcome, home: Path) -> str:
    daemon = process.before.daemon
    what = (
        f"{home_relative(daemon.entry, home)} (started by {home_relative(daemon.launcher, home)})"
    )
    if process.after is None:
        return f"not restarted: no process ran {what}"
    health = process.after.health
    answer = f", HTTP {health.status} on port {health.port} as before" if health else ""
    return f"restarted {what}: pid {', '.join(map(str, process.after.pids))}{answer}"


def _process_json(process: ProcessOutcome) -> dict[str, Any]:
    daemon = process.before.daemon

    def status(health: Health | None) -> int | None:
        return None if health is None else health.status

    return {
        "entry": str(daemon.entry),
        "module": daemon.module,
        "launcher": str(daemon.launcher),
        "restarted": process.after is not None,
        "ports": list(process.before.ports),
        "status_before": status(process.before.health),
        "status_after": None if process.after is None else status(process.after.health),
    }


def _not_migrated(statuses: Sequence[AppStatus]) -> list[str]:
    """The apps a migration leaves as they are, each with why: every app is accounted for."""
    words = {"static": "static", "skipped": "not migrated", "left": "not migrated"}
    return [f"{s.app}: {words[s.state]} ({s.why})" for s in statuses if s.state != "migrated"]


def accounted_json(statuses: Sequence[AppStatus]) -> list[dict[str, str]]:
    return [{"app": s.app, "state": s.state, "why": s.why} for s in statuses]


def _crontab_diff(migration: Migration) -> str:
    import difflib

    assert migration.crontab is not None
    name = str(migration.crontab.file) if migration.crontab.file else "crontab -l"
    return "".join(
        difflib.unified_diff(
            migration.crontab.before.splitlines(keepends=True),
            migration.crontab.after.splitlines(keepends=True),
            name,
            name,
        )
    )

"""What ``run`` will change, as data: every file edit, the crontab, restarts — nothing written.

A pure function of the :class:`~migrate.resolve.plan.Plan`: the bytes discovery read of each
migrated app's files (httpd.conf and what it Includes, WSGI files, scripts, the Apache start
scripts), its server and the crontab as read go through the pure rewriters of
:mod:`migrate.rewrite`, and the new bytes become :class:`~migrate.run.actions.PlannedFile`
objects for the journal, each with the bytes it was planned from. Anything that cannot be
rewritten safely is a *problem*: ``run`` refuses before writing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from migrate.discover.crontab import Crontab
from migrate.discover.entrypoints import ACCOUNT_GROUP, shebang_of
from migrate.discover.servers import Server
from migrate.discover.snapshot import FileRead
from migrate.layout import app_start_scripts, venv_dir
from migrate.paths import home_relative, is_inside
from migrate.resolve.plan import AppPlan, Plan
from migrate.rewrite import CannotRewrite, Change, Rewrite
from migrate.rewrite.crontab import CronTargets, rewrite_crontab
from migrate.rewrite.httpd import rewrite_httpd
from migrate.rewrite.pyfile import rewrite_python
from migrate.rewrite.shell import rewrite_launches, rewrite_shebang, rewrite_start_script
from migrate.run.actions import PlannedFile
from migrate.run.daemons import Daemon, daemons_of


@dataclass(frozen=True)
class Edit:
    """One file's rewrite: the bytes before and after, and each change with its reason."""

    file: PlannedFile
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class AppMigration:
    app: str
    venv: Path
    python: str
    edits: tuple[Edit, ...] = ()
    server: Server | None = None
    daemons: tuple[Daemon, ...] = ()
    """Its Python servers started by its own sh scripts: restarted with those."""


@dataclass(frozen=True)
class CrontabEdit:
    before: str
    after: str
    file: Path | None
    """``--crontab FILE``, or None for the user's installed crontab."""
    changes: tuple[Change, ...]
    before_sha256: str = ""
    """Of the crontab as read: the journal refuses to replace one that changed since."""


AppState = Literal["migrated", "static", "skipped", "left"]


@dataclass(frozen=True)
class AppStatus:
    """What a migration does with one app of the plan, and why: every app is accounted for."""

    app: str
    state: AppState
    """``migrated``; ``static`` (no Python code); ``skipped`` (``--skip``); ``left``: it has
    Python code the migration cannot move, which makes ``run`` refuse."""
    why: str


@dataclass(frozen=True)
class Migration:
    home: Path
    apps: tuple[AppMigration, ...]
    crontab: CrontabEdit | None = None
    problems: tuple[str, ...] = field(default=())
    """Reasons ``run`` must not start: each says what to do."""
    statuses: tuple[AppStatus, ...] = ()
    """Every app of the plan, in its order."""

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(edit for app in self.apps for edit in app.edits)


def plan_migration(
    plan: Plan,
    *,
    interpreters: Mapping[str, Path] | None = None,
    skip: Collection[str] = (),
) -> Migration:
    """Every edit ``run`` makes for the apps in ``plan`` (each with entry points and a
    Python), except those in ``skip``. An app with Python code that cannot migrate and is
    not skipped is a problem: it would stay on the concentric dirs the user means to drop."""
    home = plan.home
    statuses = tuple(_status(app, skip) for app in plan.apps)
    migrating = [app for app, s in zip(plan.apps, statuses, strict=True) if s.state == "migrated"]
    venvs = {app.name: venv_dir(home, app.name) for app in migrating}
    problems = [
        f"{home_relative(finding.path, home)}: {finding.message}; fix this first"
        for finding in plan.findings
        if finding.severity == "error" and _concerns(finding.path, home, migrating)
    ]
    problems.extend(
        f"{s.app}: {s.why}, so it would stay on the concentric dirs; make its runtime "
        f"findable (see `plan`), or leave it as it is with --skip {s.app}"
        for s in statuses
        if s.state == "left"
    )
    texts: dict[Path, _Text] = {}
    for app in migrating:
        problems.extend(_app_problems(app, venvs[app.name], home))
        if app.server is not None:
            problems.extend(_mod_wsgi_problems(app, app.server, interpreters))
        rewriting = _Rewriting(plan.files, texts, problems, home)
        _rewrite_app(app, str(venvs[app.name]), migrating, rewriting)
    crontab = None
    if plan.crontab is not None:
        crontab = _crontab_edit(plan.crontab, plan.files, venvs, migrating, problems, home)
    by_app: dict[str, list[Edit]] = {app.name: [] for app in migrating}
    for text in texts.values():
        if text.changes:
            planned = PlannedFile(text.path, text.text.encode("utf-8"), text.before)
            by_app[_owner(text.path, home, migrating)].append(Edit(planned, tuple(text.changes)))
    apps = tuple(
        AppMigration(
            app.name,
            venvs[app.name],
            app.python or "",
            tuple(sorted(by_app[app.name], key=lambda e: str(e.file.path))),
            app.server,
            daemons_of(app.name, app.entry_points),
        )
        for app in migrating
    )
    return Migration(home, apps, crontab, tuple(dict.fromkeys(problems)), statuses)


def _status(app: AppPlan, skip: Collection[str]) -> AppStatus:
    if not app.has_python:
        return AppStatus(app.name, "static", "no Python code")
    if app.name in skip:
        return AppStatus(app.name, "skipped", "--skip: left as it is")
    if app.migratable:
        return AppStatus(app.name, "migrated", f"Python {app.python}")
    if not app.entry_points:
        return AppStatus(app.name, "left", "no WSGI file, script or cron job runs its Python")
    return AppStatus(app.name, "left", "its Python version is unknown (--python X.Y=PATH)")


def _app_problems(app: AppPlan, venv: Path, home: Path) -> list[str]:
    """What in the plan stops this app's migration: its Python, entry files it cannot
    judge, a venv of an earlier migration."""
    problems = [
        f"{app.name}: {finding.message}; settle this `plan` finding first"
        for finding in app.findings
        if finding.kind in ("interpreter", "probe")
    ]
    problems.extend(
        f"{home_relative(finding.name, home)}: {finding.message} — {app.name} cannot be "
        "migrated faithfully until this is fixed"
        for finding in app.findings
        if finding.kind == "entry-point"
        and finding.message.startswith(("could not parse", "could not read", "leads outside"))
    )
    if app.venv_exists:
        problems.append(
            f"{app.name} has a venv at {home_relative(venv, home)} already: roll back the "
            "migration that made it (`concentric-migrate journal`), or move it away, then "
            "run again"
        )
    return problems


def _rewrite_app(
    app: AppPlan, venv: str, migrating: Sequence[AppPlan], rewriting: _Rewriting
) -> None:
    """Run every rewriter over the files of one app (a file's rewrites accumulate)."""
    home = rewriting.home
    if app.config is not None:
        for file in app.config.files:
            rewriting.apply(file, rewrite_httpd, venv=venv, home=str(home))
    if app.path is not None and app.name != ACCOUNT_GROUP:
        for script in app_start_scripts(app.path):
            rewriting.apply(script, rewrite_start_script, home=str(home))
    launchers: dict[Path, set[int]] = {}
    for entry in app.entry_points:
        if entry.launcher is not None:
            launchers.setdefault(entry.launcher, set()).add(entry.launch_line)
    for launcher, lines in launchers.items():
        rewriting.apply(
            launcher, rewrite_launches, venv=venv, lines=",".join(map(str, sorted(lines)))
        )
        rewriting.apply(launcher, rewrite_start_script, home=str(home))
    for entry in app.entry_points:
        if _in_bin_dir(entry.path, home, migrating) and rewriting.shebang(entry.path):
            rewriting.apply(entry.path, rewrite_shebang, venv=venv)
        rewriting.apply(entry.path, rewrite_python, home=str(home), file=str(entry.path))


def _crontab_edit(
    crontab: Crontab,
    files: Mapping[Path, FileRead],
    venvs: Mapping[str, Path],
    migrating: Sequence[AppPlan],
    problems: list[str],
    home: Path,
) -> CrontabEdit | None:
    # Scripts cron runs by their shebang outside the bin dirs keep their shebang: the
    # crontab line gets the venv's python in front instead.
    shebang_run = frozenset(
        str(entry.path)
        for app in migrating
        for entry in app.entry_points
        if entry.kind == "cron"
        and not _in_bin_dir(entry.path, home, migrating)
        and _shebang(files.get(entry.path))
    )
    venv_shebangs = frozenset(
        str(entry.path)
        for app in migrating
        for entry in app.entry_points
        if _in_bin_dir(entry.path, home, migrating) and _shebang(files.get(entry.path))
    )
    targets = CronTargets(
        str(home), {name: str(p) for name, p in venvs.items()}, shebang_run, venv_shebangs
    )
    try:
        result = rewrite_crontab(crontab.text, targets)
    except CannotRewrite as exc:
        problems.append(f"crontab: {exc}")
        return None
    if not result.changed:
        return None
    return CrontabEdit(crontab.text, result.text, crontab.file, result.changes, crontab.sha256)


@dataclass
class _Text:
    """A file being rewritten: its bytes now, its text after the rewriters so far."""

    path: Path
    """The name it was first rewritten under (what the journal writes through)."""
    before: bytes
    text: str
    changes: list[Change] = field(default_factory=list)
    venv: str | None = None
    """The venv a venv-specific rewrite (shebang, start script, httpd.conf) pointed it at."""


@dataclass
class _Rewriting:
    """The files being rewritten, from the bytes discovery read; problems collected."""

    files: Mapping[Path, FileRead]
    texts: dict[Path, _Text]
    problems: list[str]
    home: Path

    def shebang(self, path: Path) -> bool:
        return _shebang(self.files.get(Path(os.path.abspath(path))))

    def apply(self, path: Path, rewriter: Callable[..., Rewrite], /, **options: str) -> None:
        """Run ``rewriter`` over the file's current text (an earlier rewriter's output, if
        any); a file discovery did not find is left alone."""
        path = Path(os.path.abspath(path))
        read = self.files.get(path)
        if read is None:
            return
        where = home_relative(path, self.home)
        # One file under two names (a WSGI file linked into two apps) is one rewrite: keyed
        # by where it really is, or the second write would find the first's bytes.
        key = Path(read.real)
        if key not in self.texts:
            if read.data is None:
                self.problems.append(f"{where}: cannot be read ({read.error})")
                return
            try:
                text = read.data.decode("utf-8")
            except UnicodeDecodeError:
                if b"/lib/python" in read.data or b"site-packages" in read.data:
                    self.problems.append(
                        f"{where} is not UTF-8 and names a lib dir: convert it to UTF-8 (or "
                        "edit it by hand) and run again"
                    )
                return
            self.texts[key] = _Text(path, read.data, text)
        current = self.texts[key]
        try:
            result = rewriter(current.text, **options)
        except CannotRewrite as exc:
            self.problems.append(f"{where}: {exc}")
            return
        if result.changed and not is_inside(read.real, os.path.realpath(self.home)):
            self.problems.append(
                f"{where} leads outside the home (to {read.real}), where the migration writes "
                "nothing, yet it needs a change: copy the file into the home in place of the "
                "link (or edit it by hand), then run again"
            )
            return
        venv = options.get("venv")
        if result.changed and venv is not None:
            if current.venv not in (None, venv):
                self.problems.append(
                    f"{where} is one file with another app's (it leads to {read.real}), which "
                    "cannot run both apps' venvs: give each app its own copy, then run again"
                )
                return
            current.venv = venv
        current.text = result.text
        current.changes.extend(result.changes)


def _shebang(read: FileRead | None) -> bool:
    return read is not None and read.data is not None and shebang_of(read.data) is not None


def _concerns(path: Path, home: Path, apps: Sequence[AppPlan]) -> bool:
    """A problem at ``path`` matters to these apps: it is in ``~/lib`` (every app sees it),
    one of their folders, or — for ``~`` — anywhere in the home."""
    if is_inside(path, home / "lib"):
        return True
    names = {app.name for app in apps}
    if ACCOUNT_GROUP in names and is_inside(path, home):
        return True
    return any(app.path is not None and is_inside(path, app.path) for app in apps)


def _in_bin_dir(path: Path, home: Path, apps: Sequence[AppPlan]) -> bool:
    """``HOME/bin`` and ``APP/bin``: where scripts get the venv's python as their shebang."""
    folders = {home / "bin", *(app.path / "bin" for app in apps if app.path is not None)}
    return path.parent in folders


def _owner(path: Path, home: Path, apps: Sequence[AppPlan]) -> str:
    """The migrated app a file belongs to: its app dir, else ``~`` (or the first app)."""
    for app in apps:
        if app.path is not None and is_inside(path, app.path):
            return app.name
    names = [app.name for app in apps]
    return ACCOUNT_GROUP if ACCOUNT_GROUP in names else names[0]


def _mod_wsgi_problems(
    app: AppPlan, server: Server, overrides: Mapping[str, Path] | None
) -> list[str]:
    """Why a venv of this app could not be mod_wsgi's ``python-home`` (rule 5: it must come
    from the installation whose libpython mod_wsgi loads)."""
    version = server.mod_wsgi_python
    if server.mod_wsgi is None or version is None:
        return []
    if version != app.python:
        return [
            f"{app.name}: mod_wsgi ({server.mod_wsgi}) runs Python {version}, but the app's "
            f"packages are for Python {app.python}; a python-home for {app.python} cannot "
            f"work there. Install a mod_wsgi built for Python {app.python} (pip install "
            f"mod_wsgi with that Python, then point LoadModule at it), or migrate with "
            f"--python {version}=... after checking the app runs on {version}"
        ]
    wanted = server.mod_wsgi_interpreter
    given = (overrides or {}).get(version)
    if wanted and given and os.path.realpath(given) != os.path.realpath(wanted):
        return [
            f"{app.name}: mod_wsgi loads the libpython of {wanted}, so its venv must be "
            f"made with that Python, not --python {version}={given}: drop that --python "
            "or migrate this app separately with --app"
        ]
    return []

"""What ``run`` will change, as data: every file edit, the crontab, restarts — nothing written.

From a :class:`~migrate.resolve.plan.Plan` this reads the files each migrated app's entry
points live in (httpd.conf and what it Includes, WSGI files, scripts, the Apache start
scripts, the crontab), runs the pure rewriters of :mod:`migrate.rewrite` over them and
collects the new bytes as :class:`~migrate.run.actions.PlannedFile` objects for the journal.
Anything that cannot be rewritten safely is a *problem*: ``run`` refuses before writing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migrate.discover.entrypoints import (
    ACCOUNT_GROUP,
    mod_wsgi_python_version,
    mod_wsgi_so,
    shebang_python,
)
from migrate.discover.httpd import Config, read_config
from migrate.discover.interpreters import mod_wsgi_interpreter
from migrate.layout import venv_dir
from migrate.paths import home_relative, is_inside, read_regular
from migrate.resolve.plan import AppPlan, Plan
from migrate.rewrite import CannotRewrite, Change, Rewrite
from migrate.rewrite.crontab import CronTargets, rewrite_crontab
from migrate.rewrite.httpd import rewrite_httpd
from migrate.rewrite.pyfile import rewrite_python
from migrate.rewrite.shell import rewrite_shebang, rewrite_start_script
from migrate.run.actions import PlannedFile

START_SCRIPTS = ("start", "stop", "restart")
_LISTEN = re.compile(r"^(?:\[?[0-9A-Fa-f.:]*\]?:)?(\d+)$")


@dataclass(frozen=True)
class Edit:
    """One file's rewrite: the bytes before and after, and each change with its reason."""

    file: PlannedFile
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Server:
    """An app's private Apache: how to restart it and where to ask whether it is healthy."""

    app: str
    bin_dir: Path
    port: int | None
    mod_wsgi: Path | None
    """The ``mod_wsgi.so`` its httpd.conf loads, if any."""
    pid_file: Path | None = None

    @property
    def restart(self) -> tuple[Path, ...]:
        """``restart``, or ``stop`` then ``start``: what WebFaction's scripts offer."""
        restart = self.bin_dir / "restart"
        if restart.is_file():
            return (restart,)
        return tuple(self.bin_dir / name for name in ("stop", "start"))


@dataclass(frozen=True)
class AppMigration:
    app: str
    venv: Path
    python: str
    edits: tuple[Edit, ...] = ()
    server: Server | None = None


@dataclass(frozen=True)
class CrontabEdit:
    before: str
    after: str
    file: Path | None
    """``--crontab FILE``, or None for the user's installed crontab."""
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Migration:
    home: Path
    apps: tuple[AppMigration, ...]
    crontab: CrontabEdit | None = None
    problems: tuple[str, ...] = field(default=())
    """Reasons ``run`` must not start: each says what to do."""

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(edit for app in self.apps for edit in app.edits)


def plan_migration(
    plan: Plan,
    *,
    crontab_text: str | None,
    crontab_file: Path | None = None,
    interpreters: Mapping[str, Path] | None = None,
) -> Migration:
    """Every edit ``run`` makes for the apps in ``plan`` (each with entry points and a Python)."""
    home = plan.home
    migrating = [app for app in plan.apps if app.migratable]
    venvs = {app.name: venv_dir(home, app.name) for app in migrating}
    problems = [
        f"{home_relative(finding.path, home)}: {finding.message}; fix this first"
        for finding in plan.findings
        if finding.severity == "error" and _concerns(finding.path, home, migrating)
    ]
    texts: dict[Path, _Text] = {}
    servers: dict[str, Server] = {}
    for app in migrating:
        problems.extend(_app_problems(app, venvs[app.name], home))
        config = _config_of(app)
        if config is not None:
            assert app.path is not None
            server = servers[app.name] = _server(app.path, app.name, config)
            problems.extend(_mod_wsgi_problems(app, server, interpreters))
        _rewrite_app(app, config, str(venvs[app.name]), migrating, texts, problems, home)
    crontab = None
    if crontab_text is not None:
        crontab = _crontab_edit(crontab_text, crontab_file, venvs, migrating, problems, home)
    by_app: dict[str, list[Edit]] = {app.name: [] for app in migrating}
    for path, text in texts.items():
        if text.changes:
            edit = Edit(
                PlannedFile(path, text.text.encode("utf-8"), text.before), tuple(text.changes)
            )
            by_app[_owner(path, home, migrating)].append(edit)
    apps = tuple(
        AppMigration(
            app.name,
            venvs[app.name],
            app.python or "",
            tuple(sorted(by_app[app.name], key=lambda e: str(e.file.path))),
            servers.get(app.name),
        )
        for app in migrating
    )
    return Migration(home, apps, crontab, tuple(dict.fromkeys(problems)))


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
    if os.path.lexists(venv):
        problems.append(
            f"{app.name} has a venv at {home_relative(venv, home)} already: roll back the "
            "migration that made it (`concentric-migrate journal`), or move it away, then "
            "run again"
        )
    return problems


def _config_of(app: AppPlan) -> Config | None:
    """The app's own ``httpd.conf`` (with what it Includes), if it has one."""
    if app.path is None or app.name == ACCOUNT_GROUP:
        return None
    conf = app.path / "apache2" / "conf" / "httpd.conf"
    return read_config(conf) if conf.is_file() else None


def _rewrite_app(
    app: AppPlan,
    config: Config | None,
    venv: str,
    migrating: Sequence[AppPlan],
    texts: dict[Path, _Text],
    problems: list[str],
    home: Path,
) -> None:
    """Run every rewriter over the files of one app (a file's rewrites accumulate)."""
    if config is not None:
        for file in config.files:
            _apply(texts, file, home, problems, rewrite_httpd, venv=venv, home=str(home))
    if app.path is not None and app.name != ACCOUNT_GROUP:
        for name in START_SCRIPTS:
            script = app.path / "apache2" / "bin" / name
            if script.is_file():
                _apply(texts, script, home, problems, rewrite_start_script, home=str(home))
    for entry in app.entry_points:
        if _in_bin_dir(entry.path, home, migrating) and shebang_python(entry.path):
            _apply(texts, entry.path, home, problems, rewrite_shebang, venv=venv)
        if entry.path.is_file():
            _apply(texts, entry.path, home, problems, rewrite_python, home=str(home))


def _crontab_edit(
    text: str,
    file: Path | None,
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
        and entry.path.is_file()
        and shebang_python(entry.path)
    )
    targets = CronTargets(str(home), {name: str(p) for name, p in venvs.items()}, shebang_run)
    try:
        result = rewrite_crontab(text, targets)
    except CannotRewrite as exc:
        problems.append(f"crontab: {exc}")
        return None
    return CrontabEdit(text, result.text, file, result.changes) if result.changed else None


@dataclass
class _Text:
    """A file being rewritten: its bytes now, its text after the rewriters so far."""

    before: bytes
    text: str
    changes: list[Change] = field(default_factory=list)


def _apply(
    texts: dict[Path, _Text],
    path: Path,
    home: Path,
    problems: list[str],
    rewriter: Callable[..., Rewrite],
    /,
    **options: str,
) -> None:
    """Run ``rewriter`` over the file's current text (an earlier rewriter's output, if any)."""
    path = Path(os.path.abspath(path))
    where = home_relative(path, home)
    outside = not is_inside(os.path.realpath(path), os.path.realpath(home))
    if path not in texts:
        try:
            data = read_regular(path)
        except OSError as exc:
            problems.append(f"{where}: cannot be read ({exc.strerror})")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if b"/lib/python" in data or b"site-packages" in data:
                problems.append(
                    f"{where} is not UTF-8 and names a lib dir: convert it to UTF-8 (or edit "
                    "it by hand) and run again"
                )
            return
        texts[path] = _Text(data, text)
    current = texts[path]
    try:
        result = rewriter(current.text, **options)
    except CannotRewrite as exc:
        problems.append(f"{where}: {exc}")
        return
    if outside and result.changed:
        problems.append(
            f"{where} leads outside the home (to {os.path.realpath(path)}), where the migration "
            "writes nothing, yet it needs a change: copy the file into the home in place of the "
            "link (or edit it by hand), then run again"
        )
        return
    current.text = result.text
    current.changes.extend(result.changes)


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


def server_of(app_dir: Path, name: str) -> Server | None:
    """An app's private Apache, from ``APP/apache2/conf/httpd.conf``; None without one."""
    conf = app_dir / "apache2" / "conf" / "httpd.conf"
    return _server(app_dir, name, read_config(conf)) if conf.is_file() else None


def _server(app_dir: Path, name: str, config: Config) -> Server:
    root = config.server_root or app_dir / "apache2"
    pid_files = config.named("pidfile")
    pid_file = Path(pid_files[-1].args[0]) if pid_files and pid_files[-1].args else None
    pid_file = root / (pid_file or Path("logs") / "httpd.pid")  # Apache's default
    return Server(
        name, app_dir / "apache2" / "bin", _port(config), mod_wsgi_so(config, root), pid_file
    )


def _port(config: Config) -> int | None:
    for listen in config.named("listen"):
        if listen.args and (match := _LISTEN.match(listen.args[0])):
            return int(match.group(1))
    return None


def _mod_wsgi_problems(
    app: AppPlan, server: Server, overrides: Mapping[str, Path] | None
) -> list[str]:
    """Why a venv of this app could not be mod_wsgi's ``python-home`` (rule 5: it must come
    from the installation whose libpython mod_wsgi loads)."""
    if server.mod_wsgi is None:
        return []
    version = mod_wsgi_python_version(server.mod_wsgi)
    if version is None:
        return []
    if version != app.python:
        return [
            f"{app.name}: mod_wsgi ({server.mod_wsgi}) runs Python {version}, but the app's "
            f"packages are for Python {app.python}; a python-home for {app.python} cannot "
            f"work there. Install a mod_wsgi built for Python {app.python} (pip install "
            f"mod_wsgi with that Python, then point LoadModule at it), or migrate with "
            f"--python {version}=... after checking the app runs on {version}"
        ]
    wanted = mod_wsgi_interpreter(server.mod_wsgi)
    given = (overrides or {}).get(version)
    if wanted and given and os.path.realpath(given) != os.path.realpath(wanted):
        return [
            f"{app.name}: mod_wsgi loads the libpython of {wanted}, so its venv must be "
            f"made with that Python, not --python {version}={given}: drop that --python "
            "or migrate this app separately with --app"
        ]
    return []

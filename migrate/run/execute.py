"""The one-shot migration: requirements, venvs, rewrites, restart, verify — one transaction.

Every write goes through one journal transaction, in this order: the requirement files,
the venvs (staged aside, renamed in), the rewritten files, the crontab. Then each venv is
verified, and each app whose Apache answered before is restarted and must answer with the
same status as before. Any failure rolls the whole transaction back, restarts the apps it
had restarted (on their old configuration again) and raises :class:`RunFailed` with the
reason. A crash at any point leaves a journal that ``rollback`` undoes exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migrate import report
from migrate.build.app import BuildOptions, BuiltVenv, build_apps, builder_refused
from migrate.build.verify import VerifyReport, verify_venvs
from migrate.discover.account import discover
from migrate.discover.crontab import INSTALLED, Crontab, parse_crontab
from migrate.discover.entrypoints import EntryPoints, find_entry_points
from migrate.discover.servers import Server, read_server
from migrate.journal import SessionAborted, TargetChanged, Transaction, home_lock, session
from migrate.layout import app_dir, logs_dir, webapps_dir
from migrate.paths import home_relative, read_regular
from migrate.privilege import Owner, give, owner_of
from migrate.resolve.plan import AppPlan, Plan
from migrate.run.actions import PlannedFile
from migrate.run.daemons import (
    Daemon,
    DaemonState,
    cron_environment,
    daemons_of,
    restart_daemon,
    state,
)
from migrate.run.health import Page, baseline, changes, refreshed
from migrate.run.migration import AppStatus, Migration
from migrate.run.restart import (
    Health,
    RestartError,
    can_restart,
    probe,
    probe_port,
    restart,
    running,
    wait_for,
)


class RunRefused(Exception):
    """``run`` will not start (nothing was written); one problem per line, each says what to do."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class RunFailed(Exception):
    """``run`` failed after it began and rolled everything back (``rolled_back``).

    ``kept_aside``: edits made meanwhile that the rollback kept aside; ``states``: each app's
    state probed after the rollback and the restarts on the old configuration, one line
    each (what it really is, never what it should be)."""

    def __init__(
        self,
        reason: str,
        transaction: str | None,
        rolled_back: bool,
        kept_aside: tuple[Path, ...] = (),
        states: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transaction = transaction
        self.rolled_back = rolled_back
        self.kept_aside = kept_aside
        self.states = states


@dataclass(frozen=True)
class AppOutcome:
    app: str
    venv: Path
    python: str
    packages: int
    changed: tuple[Path, ...]
    before: Health | None = None
    after: Health | None = None
    verify: VerifyReport | None = None
    processes: tuple[ProcessOutcome, ...] = ()
    """Its servers started by its own sh scripts."""

    @property
    def restarted(self) -> bool:
        """Its Apache, or a server its start script starts, was restarted."""
        return self.after is not None or any(p.after is not None for p in self.processes)


@dataclass(frozen=True)
class ProcessOutcome:
    """One process app's server: how it ran before ``run``, and after its restart."""

    before: DaemonState
    after: DaemonState | None
    """None when it was not running, so not restarted (or ``--no-restart``)."""


@dataclass(frozen=True)
class RunResult:
    home: Path
    transaction: str | None
    """None when there was nothing to migrate (no transaction was begun)."""
    apps: tuple[AppOutcome, ...]
    crontab_changed: bool
    statuses: tuple[AppStatus, ...] = ()
    """Every app of the plan: migrated, static, skipped."""


@dataclass(frozen=True)
class RunOptions:
    """How ``run`` builds and checks; the defaults are the command's (offline)."""

    build: BuildOptions = field(default_factory=lambda: BuildOptions(offline=True))
    restart_apps: bool = True
    urls: tuple[str, ...] = ()
    """Paths each restarted app must answer as before, besides ``/`` and its links."""


def run_migration(
    plan: Plan,
    migration: Migration,
    requirements: Sequence[PlannedFile],
    *,
    description: str,
    options: RunOptions | None = None,
) -> RunResult:
    """Migrate the apps of ``migration`` (planned from ``plan``) as one transaction.

    Each step is reported (:mod:`migrate.report`): one INFO record per step, the venv
    builds' progress as DEBUG records.
    """
    chosen = options or RunOptions()
    refused = builder_refused(owner_of(plan.home)) if migration.apps else None
    if migration.problems or refused:
        raise RunRefused([*migration.problems, *([refused] if refused else [])])
    home = plan.home
    names = {app.app for app in migration.apps}
    apps = [app for app in plan.apps if app.name in names]
    servers = [a.server for a in migration.apps if a.server] if chosen.restart_apps else []
    daemons = [d for a in migration.apps for d in a.daemons] if chosen.restart_apps else []
    owner = owner_of(home)
    uid = owner.uid if owner else os.geteuid()
    with home_lock(home):
        before = {server.app: probe(server) for server in servers}
        states = [state(d, uid) for d in daemons]
        up = [now for now in states if now.running]
        for daemon in daemons:
            if daemon not in {now.daemon for now in up}:
                where = home_relative(daemon.entry, home)
                report.step(f"{daemon.app}: no process runs {where}, so it is not restarted")
        answering = [server for server in servers if before[server.app].status is not None]
        for server in servers:
            if server not in answering:
                report.step(f"{server.app}: not answering on port {server.port}, so not restarted")
        stuck = [server for server in answering if not can_restart(server)]
        if stuck:
            raise RunRefused(
                [
                    f"{s.app} is running but has no {s.bin_dir}/restart (nor stop and start): "
                    "restart it yourself after the migration, and run with --no-restart"
                    for s in stuck
                ]
            )
        if answering or any(was.ports for was in up):
            report.step("fetch each running app's pages twice, to learn what varies by itself")
        pages = {server.port: baseline(server.port, chosen.urls) for server in answering}
        pages.update((was.ports[0], baseline(was.ports[0], chosen.urls)) for was in up if was.ports)
        restarted: list[Server] = []
        restarted_daemons: list[DaemonState] = []
        old_crontab = plan.crontab.text if plan.crontab is not None else None
        new_crontab = migration.crontab.after if migration.crontab is not None else old_crontab

        final: list[str] = []

        def recover(cause: BaseException, rolled_back: bool) -> None:
            """After the automatic rollback: the apps it restarted, on their old config;
            then what state each app is really in."""
            reason = str(cause) or type(cause).__name__
            if not rolled_back:
                stopped = "the rollback stopped: run `concentric-migrate rollback`"
                report.step(f"failed: {reason}; {stopped}")
            else:
                report.step(f"failed, rolled back: {reason}")
                _restart_on_old_config(restarted, before, home, owner)
                environment = cron_environment(old_crontab, home, uid)
                for was in restarted_daemons:
                    _daemon_on_old_config(was, environment, home, owner)
            try:
                final.extend(_states_now(servers, before, states, uid, home))
            except Exception as exc:  # the failure being reported comes first
                final.append(f"the apps' state could not be probed: {exc}")

        try:
            with session(home, description, recover=recover) as transaction:
                built = _write_everything(transaction, migration, requirements, apps, chosen)
                runtimes = _entry_points_now(home, migration, plan)
                reports = _verify_all(built, apps, home, plan.concentric, runtimes)
                _sources_as_planned(apps, migration)
                pages = {port: refreshed(port, seen) for port, seen in pages.items()}
                after = {}
                daemons_after: dict[Daemon, DaemonState] = {}
                for server in answering:
                    report.step(f"restart {server.app} and GET http://127.0.0.1:{server.port}/")
                    restarted.append(server)
                    restart(server, _restart_log(home, server.app, owner), owner)
                    after[server.app] = health = wait_for(server, before[server.app].status)
                    if health.status != before[server.app].status:
                        raise _Stop(
                            f"{server.app} answered {_status(health)} after the restart, "
                            f"{_status(before[server.app])} before; "
                            f"{home_relative(server.bin_dir.parent / 'logs', home)} says why"
                        )
                    _same_pages(server.app, server.port, pages)
                environment = cron_environment(new_crontab, home, uid)
                for was in up:
                    where = home_relative(was.daemon.entry, home)
                    launcher = home_relative(was.daemon.launcher, home)
                    report.step(f"restart {was.daemon.app} ({where}) with {launcher}")
                    restarted_daemons.append(was)
                    log = _restart_log(home, was.daemon.app, owner)
                    daemons_after[was.daemon] = restart_daemon(
                        was, environment=environment, home=home, log=log, owner=owner
                    )
                    if was.ports:
                        _same_pages(was.daemon.app, was.ports[0], pages)
        except SessionAborted as exc:  # Ctrl-C too: never leave half a migration running
            raise RunFailed(
                str(exc), exc.transaction, exc.rolled_back, exc.kept_aside, tuple(final)
            ) from exc.cause
    outcomes = tuple(
        AppOutcome(
            m.app,
            m.venv,
            m.python,
            next((len(b.pins) for b in built if b.app == m.app), 0),
            tuple(e.file.path for e in m.edits if e.file.changed),
            before.get(m.app),
            after.get(m.app),
            reports.get(m.app),
            tuple(
                ProcessOutcome(was, daemons_after.get(was.daemon))
                for was in states
                if was.daemon.app == m.app
            ),
        )
        for m in migration.apps
    )
    return RunResult(
        home, transaction.id, outcomes, migration.crontab is not None, migration.statuses
    )


class _Stop(Exception):
    """A check after the writes failed: roll back."""


def _write_everything(
    transaction: Transaction,
    migration: Migration,
    requirements: Sequence[PlannedFile],
    apps: Sequence[AppPlan],
    options: RunOptions,
) -> list[BuiltVenv]:
    home = migration.home
    for item in requirements:
        if item.changed:
            transaction.make_dir(item.path.parent)
            mode = None if item.before else item.mode
            transaction.write_file(item.path, item.content, mode, expect_sha256=item.before_sha256)
    jobs = options.build.jobs
    report.step(f"build {len(apps)} venv(s)" + (f", {jobs} at once" if jobs > 1 else ""))
    built = build_apps(home, apps, transaction, options.build)
    # Each rewrite carries the sha256 of the bytes it was planned from: a file or crontab
    # edited since (while the venvs were built, say) is refused, never overwritten.
    try:
        for edit in migration.edits:
            if edit.file.changed:
                report.step(f"rewrite {home_relative(edit.file.path, home)}")
                transaction.write_file(
                    edit.file.path, edit.file.content, expect_sha256=edit.file.before_sha256
                )
        if migration.crontab is not None:
            report.step("rewrite the crontab")
            crontab = migration.crontab
            expected = crontab.before_sha256
            transaction.set_crontab(crontab.after, crontab.file, expect_sha256=expected)
    except TargetChanged as exc:
        what = "the crontab" if exc.target is None else home_relative(exc.target, home)
        raise _Stop(f"{what} changed while the migration ran: run again") from exc
    return built


def _sources_as_planned(apps: Sequence[AppPlan], migration: Migration) -> None:
    """The code each venv was built for is still the code there: a source edited while
    ``run`` worked (a new import, say) would find a venv planned without it. A file the
    migration rewrote must hold what it wrote."""
    home = migration.home
    written = {
        os.path.realpath(edit.file.path): hashlib.sha256(edit.file.content).hexdigest()
        for edit in migration.edits
        if edit.file.changed
    }
    for app in apps:
        for path, read in app.sources.items():
            planned = written.get(os.path.realpath(path), read)
            try:
                now = hashlib.sha256(read_regular(path)).hexdigest()
            except OSError:
                now = None
            if now != planned:
                raise _Stop(
                    f"{home_relative(path, home)} changed while the migration ran: run again"
                )


def _entry_points_now(home: Path, migration: Migration, plan: Plan) -> EntryPoints:
    """The entry points as the rewritten files and crontab say now: the runtimes to start."""
    crontab = plan.crontab
    if migration.crontab is not None:
        source = crontab.source if crontab is not None else INSTALLED
        crontab = parse_crontab(migration.crontab.after, source)
    return find_entry_points(discover(home), crontab)


def _verify_all(
    built: Sequence[BuiltVenv],
    apps: Sequence[AppPlan],
    home: Path,
    hidden: Sequence[Path],
    runtimes: EntryPoints,
) -> dict[str, VerifyReport]:
    """``verify --isolated`` of each venv (at once: :func:`verify_venvs`): its imports, and
    its entry points' real runtimes as the rewritten files start them, with the concentric
    dirs hidden. The first failing app in ``built`` order stops the run."""
    by_name = {app.name: app for app in apps}
    for venv in built:
        report.step(f"verify {venv.app} with the concentric dirs hidden")
    checks = [(venv.path, by_name[venv.app], runtimes.for_group(venv.app)) for venv in built]
    reports = {}
    with contextlib.closing(verify_venvs(checks, home, hidden)) as results:
        for venv, verified in zip(built, results, strict=True):
            if not verified.ok:
                raise _Stop(f"verify {venv.app}: " + "; ".join(verified.problems))
            reports[venv.app] = verified
    return reports


def _restart_on_old_config(
    restarted: Sequence[Server],
    before: Mapping[str, Health],
    home: Path,
    owner: Owner | None,
) -> None:
    for server in restarted:
        try:
            restart(server, _restart_log(home, server.app, owner), owner)
            health = wait_for(server, before[server.app].status)
            report.step(f"{server.app}: restarted on the old configuration ({_status(health)})")
        except (RestartError, OSError) as exc:
            report.step(f"{server.app}: could not restart on the old configuration: {exc}")


def _same_pages(app: str, port: int | None, pages: Mapping[int, Sequence[Page]]) -> None:
    """Every page answers as before (what varies by itself aside), or the run stops."""
    if port is None or port not in pages:
        return
    report.step(f"compare {len(pages[port])} page(s) of {app} with those before")
    found = changes(port, pages[port])
    if found:
        raise _Stop(f"{app} answers differently after the restart:\n" + "\n".join(found))


def _states_now(
    servers: Sequence[Server],
    before: Mapping[str, Health],
    daemons: Sequence[DaemonState],
    uid: int,
    home: Path,
) -> list[str]:
    """Each app's state as probed now (``GET /``, its processes), beside what it was before
    the run: the one sentence a failed run ends with per app, never one chosen in advance."""
    lines = []
    for server in servers:
        was, now = before[server.app], probe(server)
        same = "as before" if now.status == was.status else f"before the run: {_status(was)}"
        lines.append(f"{server.app}: {_status(now)} on port {server.port} ({same})")
    for was in daemons:
        daemon = was.daemon
        where = home_relative(daemon.entry, home)
        pids = state(daemon, uid).pids
        running = f"running (pid {', '.join(map(str, pids))})" if pids else "not running"
        same = (
            "as before"
            if bool(pids) == was.running
            else ("it ran before the run" if was.running else "it did not run before the run")
        )
        lines.append(f"{daemon.app}: {where} {running} ({same})")
    return lines


def _daemon_on_old_config(
    was: DaemonState, environment: Mapping[str, str], home: Path, owner: Owner | None
) -> None:
    """Its start script is the old one again: run it, so the old code serves as before."""
    daemon = was.daemon
    uid = owner.uid if owner else os.geteuid()
    now = state(daemon, uid)
    current = DaemonState(daemon, now.pids, now.ports, was.health)
    try:
        log = _restart_log(home, daemon.app, owner)
        restart_daemon(current, environment=environment, home=home, log=log, owner=owner)
        report.step(f"{daemon.app}: {daemon.entry.name} restarted on the old configuration")
    except (RestartError, OSError) as exc:
        report.step(f"{daemon.app}: could not restart on the old configuration: {exc}")


def _restart_log(home: Path, app: str, owner: Owner | None) -> Path:
    """The tool's log of what an app's start and stop scripts printed (owned by the user)."""
    folder = logs_dir(home)
    try:
        folder.mkdir(mode=0o700)
        give(folder, owner)
    except FileExistsError:
        pass
    if folder.is_symlink() or not folder.is_dir():
        raise RestartError(f"{folder} is not a folder (a symlink?): refusing to write logs there")
    log = folder / f"{'account' if app == '~' else app}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RestartError(f"{log} is not a regular file: refusing to write to it")
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
    finally:
        os.close(fd)
    return log


def _status(health: Health) -> str:
    return f"HTTP {health.status}" if health.status is not None else f"no answer: {health.detail}"


def restart_restored(
    home: Path, restored: Sequence[Path], crontab: Crontab | None = None
) -> list[Health]:
    """After a rollback: restart each running app whose Apache configuration came back, and
    each running process app whose start script came back, so it serves from the old
    configuration again (not from a venv that is gone)."""
    apps = {}
    for path in restored:
        try:
            parts = Path(path).relative_to(webapps_dir(home)).parts
        except ValueError:
            continue
        if len(parts) > 3 and parts[1:3] == ("apache2", "conf"):
            apps[parts[0]] = app_dir(home, parts[0])
    healths = []
    for name, folder in sorted(apps.items()):
        server = read_server(folder, name)
        if server is None:
            continue
        if not running(server) and probe(server).status is None:
            report.step(f"{name}: not running, so not restarted")
            continue
        try:
            owner = owner_of(home)
            restart(server, _restart_log(home, name, owner), owner)
        except RestartError as exc:
            report.step(f"{name}: {exc}")
            healths.append(Health(name, server.port, None, str(exc)))
            continue
        health = wait_for(server, None, any_answer=True)
        report.step(f"{name}: restarted on the restored configuration ({_status(health)})")
        healths.append(health)
    return healths + _restart_restored_daemons(home, restored, crontab)


def _restart_restored_daemons(
    home: Path, restored: Sequence[Path], crontab: Crontab | None
) -> list[Health]:
    back = {os.path.abspath(path) for path in restored}
    entries = find_entry_points(discover(home), crontab)
    daemons = [
        daemon
        for name in sorted({entry.group for entry in entries.entry_points})
        for daemon in daemons_of(name, entries.for_group(name))
        if os.path.abspath(daemon.launcher) in back
    ]
    owner = owner_of(home)
    uid = owner.uid if owner else os.geteuid()
    environment = cron_environment(crontab.text if crontab is not None else None, home, uid)
    healths = []
    for daemon in daemons:
        now = state(daemon, uid)
        where = home_relative(daemon.entry, home)
        if not now.running:
            report.step(f"{daemon.app}: no process runs {where}, so it is not restarted")
            continue
        try:
            log = _restart_log(home, daemon.app, owner)
            # Whatever it answered from a venv that is gone is no measure: it must come back.
            after = restart_daemon(
                DaemonState(daemon, now.pids, now.ports), environment=environment, home=home,
                log=log, owner=owner,
            )  # fmt: skip
        except (RestartError, OSError) as exc:
            report.step(f"{daemon.app}: {exc}")
            healths.append(Health(daemon.app, now.ports[0] if now.ports else None, None, str(exc)))
            continue
        port = after.ports[0] if after.ports else None
        health = probe_port(daemon.app, port) if port else Health(daemon.app, None, None)
        shown = _status(health) if port else f"pid {', '.join(map(str, after.pids))}"
        report.step(f"{daemon.app}: {where} restarted with its restored start script ({shown})")
        healths.append(health)
    return healths

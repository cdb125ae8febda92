"""The ``concentric-migrate`` command: parse, call the library, render. Nothing else.

Exit codes are stable: 0 success, 1 the operation failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrate import __version__
from migrate.discover.account import AccountError, discover
from migrate.inventory import take_inventory
from migrate.paths import home_relative, home_relative_text, is_inside
from migrate.render import table
from migrate.terminal import reporting

if TYPE_CHECKING:
    from migrate.discover.crontab import Crontab
    from migrate.journal import TransactionInfo
    from migrate.resolve.plan import Plan, Tracer
    from migrate.run.actions import PlannedFile
    from migrate.run.migration import Migration

# Commands import the rest of the library when they run: start-up stays small.

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

APP_OPTION = click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="APP",
    help="Only this app (repeatable); ~ is the account.",
)


def json_option(text: str = "Print one JSON document (docs/json-schemas.md).") -> Any:
    """``--json``: the same flag, name and meaning on every command."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["concentric.json"] = value  # meta is shared with the group's context
        return value

    return click.option(
        "--json", "as_json", is_flag=True, is_eager=True, callback=remember, help=text
    )


class BadInput(click.ClickException):
    """Bad usage or input: one line on stderr, exit 2; nothing was written."""

    exit_code = EXIT_BAD_INPUT
    kind = "bad-input"


class Failed(click.ClickException):
    """The operation failed: the message on stderr, exit 1. The details are for ``--json``."""

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        refused: Sequence[str] = (),
        transaction: str | None = None,
        rolled_back: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = "refused" if refused else "failed"
        self.problems = tuple(refused)
        self.transaction = transaction
        self.rolled_back = rolled_back


_MACHINE_ERRORS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space under the quota",
    errno.EROFS: "make the file system writable again",
    errno.EIO: "check the disk",
}
"""What the machine refuses, and what to do: a one-line error, not a traceback. The
journal makes any writing command safe to run again (a rollback left open says so)."""


class _Commands(click.Group):
    """The command group; under ``--json`` any failure also prints the error document.

    The error document goes to stdout (stderr keeps the one-line message), so a script
    reads one JSON document whatever happened: usage errors, bad input, failures and an
    aborted prompt alike. ``--json`` is known from its option once the command's arguments
    are parsed; an error in parsing them is judged by ``--json`` among them.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if self._wants_json(ctx):
                exit_code = exc.exit_code
                kind = getattr(exc, "kind", None) or ("bad-input" if exit_code == 2 else "failed")
                self._echo_error(ctx, exc.format_message(), kind, exit_code, exc)
            raise
        except click.Abort:
            if self._wants_json(ctx):
                self._echo_error(ctx, "aborted", "failed", EXIT_FAILED, None)
            raise
        except OSError as exc:
            if exc.errno not in _MACHINE_ERRORS:
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            fix = _MACHINE_ERRORS[exc.errno]
            failed = Failed(f"{exc.strerror}{where}: {fix}, then run the command again")
            if self._wants_json(ctx):
                self._echo_error(ctx, failed.format_message(), "failed", EXIT_FAILED, failed)
            raise failed from exc

    def _wants_json(self, ctx: click.Context) -> bool:
        name = ctx.invoked_subcommand
        command = self.commands.get(name) if name else None
        if command is None or not any(p.name == "as_json" for p in command.params):
            return False
        if "concentric.json" in ctx.meta:
            return bool(ctx.meta["concentric.json"])
        args = ctx.meta.get("concentric.args", [])
        return "--json" in args[args.index(name) + 1 :] if name in args else False

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["concentric.args"] = list(args)
        return super().parse_args(ctx, args)

    @staticmethod
    def _echo_error(
        ctx: click.Context, message: str, kind: str, exit_code: int, exc: Exception | None
    ) -> None:
        from migrate.render import error_json

        _echo_json(
            error_json(
                ctx.invoked_subcommand or "",
                kind=kind,
                message=message,
                exit_code=exit_code,
                problems=getattr(exc, "problems", ()),
                transaction=getattr(exc, "transaction", None),
                rolled_back=getattr(exc, "rolled_back", None),
            )
        )


@dataclass(frozen=True)
class Settings:
    home: Path
    crontab: Path | None
    verbosity: int

    def read_crontab(self) -> Crontab | None:
        """``--crontab FILE``, else the installed crontab of HOME's user when the caller may
        read it (her own, or root's ``crontab -u``)."""
        from migrate.discover.crontab import INSTALLED, crontab_text, parse_crontab

        if self.crontab:  # a file: the journal (and its import) is not needed to read it
            text = crontab_text(self.crontab, None)
        else:
            from migrate.journal import JournalError
            from migrate.journal.crontab import installed_crontab

            # One driver of the crontab command: the one the journal replaces it with.
            installed = installed_crontab(self.home)
            try:
                text = crontab_text(None, None if installed is None else installed.read)
            except JournalError as exc:
                raise Failed(f"cannot read the installed crontab: {exc}") from exc
        if text is None:
            return None
        return parse_crontab(text, self.crontab or INSTALLED)

    def require_home(self) -> Path:
        if not self.home.exists():
            raise BadInput(f"--home {self.home}: no such directory")
        if not self.home.is_dir():
            raise BadInput(f"--home {self.home}: not a directory")
        return self.home


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("HOME", "~"),
    show_default="$HOME",
    help="The account's home directory to inventory and migrate.",
)
@click.option(
    "--crontab",
    "crontab",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Read the crontab from FILE instead of running `crontab -l`.",
)
@click.option("-v", "--verbose", count=True, help="Say more (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only print results and errors.")
@click.version_option(__version__, prog_name="concentric-migrate")
@click.pass_context
def cli(ctx: click.Context, home: Path, crontab: Path | None, verbose: int, quiet: bool) -> None:
    """Move a concentric Python account (~/lib/pythonX.Y, eggs, .pth files) to one
    pinned virtualenv per app.

    Start with `demo` to try it all on a sample account built offline. On your own
    account: `inventory` (what is installed where), `plan` (what each app really uses),
    `run --dry-run` (every change, as diffs), then `run` (requirements, venvs, rewrites,
    restarts, verify: one journaled step). `requirements`, `build` and `verify` are its
    steps one at a time; every write is journaled and `rollback` undoes it.
    """
    if crontab is not None and not crontab.is_file():
        what = "not a regular file" if os.path.lexists(crontab) else "no such file"
        raise BadInput(f"--crontab {crontab}: {what}")
    home = Path(os.path.abspath(os.path.expanduser(home)))
    if crontab is not None:
        crontab = Path(os.path.abspath(crontab))  # relative to where the user is, not HOME
    ctx.obj = Settings(home=home, crontab=crontab, verbosity=-1 if quiet else verbose)


@cli.command()
@json_option("Print one JSON document (docs/json-schemas.md).")
@click.pass_obj
def inventory(settings: Settings, as_json: bool) -> None:
    """List every Python lib dir of the account and every distribution in it.

    Reads dist-info, egg-info, eggs (zipped or not), egg-links, .pth files and bare
    copied packages. Nothing from the account is imported or executed; unreadable or
    corrupt files are reported as findings and the rest is still listed.
    """
    home = settings.require_home()
    try:
        account = discover(home)
    except AccountError as exc:
        raise BadInput(str(exc)) from exc
    from migrate.render import inventory_json, inventory_text

    with reporting(not as_json and settings.verbosity >= 0, lib_dirs=len(account.lib_dirs)):
        result = take_inventory(account)
    if as_json:
        _echo_json(inventory_json(result))
    else:
        click.echo(inventory_text(result, verbose=settings.verbosity > 0), nl=False)


def _echo_json(document: object) -> None:
    """One JSON document on stdout: indented for a terminal, compact for a pipe (faster)."""
    indent = 2 if sys.stdout.isatty() else None
    # color=True: the document has no ANSI codes, so skip click's scan for them.
    click.echo(json.dumps(document, indent=indent), color=True)


def _rolled_back(
    reason: str,
    transaction: str | None,
    rolled_back: bool,
    home: Path,
    undone: str,
    kept: Sequence[Path] = (),
    states: Sequence[str] = (),
) -> Failed:
    """A writing command that failed: what was undone (``undone``, when it all was), where
    edits made meanwhile were kept, what state each app is in now, or how to finish the
    rollback."""
    lines = [
        reason,
        undone
        if rolled_back
        else f"The rollback did not finish: run `concentric-migrate --home {home} rollback`.",
        *(f"Kept an edit made meanwhile in {home_relative(path, home)}" for path in kept),
        *(["Now:", *(f"  {line}" for line in states)] if states else []),
    ]
    return Failed("\n".join(lines), transaction=transaction, rolled_back=rolled_back)


def _parse_python_overrides(values: tuple[str, ...]) -> dict[str, Path]:
    """``--python X.Y=PATH`` values, each checked by running it: it must be Python X.Y."""
    from migrate.discover.interpreters import interpreter_at

    out: dict[str, Path] = {}
    for value in values:
        version, sep, path = value.partition("=")
        if not sep or not re.fullmatch(r"\d+\.\d+", version) or not path:
            raise BadInput(f"--python {value}: expected X.Y=/path/to/pythonX.Y")
        if version in out:
            raise BadInput(f"--python {version}= is given twice: name one interpreter per X.Y")
        executable = Path(os.path.abspath(os.path.expanduser(path)))
        if not executable.is_file() or not os.access(executable, os.X_OK):
            raise BadInput(f"--python {value}: {executable} is not an executable file")
        facts = interpreter_at(executable)
        if facts is None:
            raise BadInput(f"--python {value}: {executable} does not run as a Python")
        if facts.version != version:
            raise BadInput(f"--python {value}: {executable} is Python {facts.version}")
        out[version] = executable
    return out


PYTHON_OPTION = click.option(
    "--python",
    "pythons",
    multiple=True,
    metavar="X.Y=PATH",
    help="What pythonX.Y is for entry points whose runtime names no file: where it is looked "
    "up on a PATH, assumed, or not found (a path in a shebang or cron line, and mod_wsgi's "
    "libpython, stay as they are); repeatable; it must run as Python X.Y.",
)
MINIMAL_OPTION = click.option(
    "--minimal",
    is_flag=True,
    help="A lean used set: what the app's own code imports, closed over Requires-Dist only. "
    "By default the packages it uses are followed too (their optional imports and the "
    "plugins they load), as the app can import them today.",
)
PROBE_OPTION = click.option(
    "--probe",
    is_flag=True,
    help="Start each entry point's real runtime privately (its mod_wsgi, its cron interpreter) "
    "and check the model against the sys.path and imports it reports. Runs what the runtime "
    "runs at start-up (.pth lines), not the app's own code; writes nothing in the home.",
)


@cli.command()
@APP_OPTION
@click.option(
    "--trace",
    is_flag=True,
    help="Also load each app under its old path and record what it imports (runs app code).",
)
@PYTHON_OPTION
@PROBE_OPTION
@MINIMAL_OPTION
@json_option("Print one JSON document (docs/json-schemas.md).")
@click.pass_obj
def plan(
    settings: Settings,
    apps: tuple[str, ...],
    trace: bool,
    pythons: tuple[str, ...],
    probe: bool,
    minimal: bool,
    as_json: bool,
) -> None:
    """Show, per app, which copy of each package it imports today and why.

    For every app (and `~`, the account's own scripts and cron jobs): its entry points,
    the packages it can see with the path rule that put each there, which it uses and
    why, and findings: shadowed, leaked (used from ~/lib or ~/.local), unused, missing,
    conflict, interpreter, probe. Nothing is changed. --trace runs the apps' code;
    --probe starts each app's runtime privately (its start-up, not its code).
    """
    from migrate.render import plan_json, plan_text

    overrides = _parse_python_overrides(pythons)
    tracer = None
    if trace:
        from migrate.resolve.trace import trace_entry

        tracer = trace_entry
    result = _plan(
        settings, apps, interpreters=overrides, tracer=tracer, probe=probe, minimal=minimal
    )
    if as_json:
        _echo_json(plan_json(result))
    else:
        click.echo(plan_text(result, verbose=settings.verbosity > 0), nl=False)


def _plan(
    settings: Settings,
    apps: tuple[str, ...],
    interpreters: dict[str, Path] | None = None,
    tracer: Tracer | None = None,
    probe: bool = False,
    minimal: bool = False,
) -> Plan:
    """Discover, inventory and resolve: the read-only front of plan and every writing command."""
    from migrate.resolve.plan import Prober, plan_account
    from migrate.resolve.recipes import RecipeError

    prober: Prober | None = None
    if probe:
        from migrate.resolve.probe import probe_entry

        prober = probe_entry

    home = settings.require_home()
    account = discover(home)
    known = {app.name for app in account.apps} | {"~"}
    unknown = [a for a in apps if a not in known]
    if unknown:
        raise BadInput(f"--app {unknown[0]}: no such app (apps: {', '.join(sorted(known))})")
    crontab = settings.read_crontab()
    try:
        return plan_account(
            account, take_inventory(account), crontab, apps=apps, interpreters=interpreters,
            tracer=tracer, prober=prober, minimal=minimal,
        )  # fmt: skip
    except RecipeError as exc:
        raise Failed(str(exc)) from exc


@cli.command()
@APP_OPTION
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    help="Write to DIR/APP/ instead (outside the home: nothing in the home is touched).",
)
@click.option(
    "--mode",
    type=click.Choice(["exact", "compile"]),
    default="exact",
    show_default=True,
    help="exact: pin what is installed; compile: also let pip-tools prove the set consistent.",
)
@click.option(
    "--find-links",
    "find_links",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Wheel directory for --mode compile and --hashes (repeatable).",
)
@click.option(
    "--no-index",
    is_flag=True,
    help="With --mode compile: use only --find-links, not the package index.",
)
@click.option(
    "--hashes",
    is_flag=True,
    help="Add --hash=sha256 of the wheel each pin installs from (needs a wheelhouse).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print a unified diff of every file that would change; write nothing.",
)
@MINIMAL_OPTION
@json_option("Print one JSON document of what was (or would be) written.")
@click.pass_obj
def requirements(
    settings: Settings,
    apps: tuple[str, ...],
    out: Path | None,
    mode: str,
    find_links: tuple[Path, ...],
    no_index: bool,
    hashes: bool,
    dry_run: bool,
    minimal: bool,
    as_json: bool,
) -> None:
    """Write requirements.in and a pinned requirements.txt for every app (and ~).

    requirements.in lists what the app uses directly, each with where it is imported;
    requirements.txt pins everything it needs at the version installed today, with
    `# via` provenance, in a form plain `pip install -r` understands. Distributions no
    index can provide (bare copies, develop installs, patched ones) are marked.

    The files go into HOME/webapps/APP/ (the account's into HOME/.venvs/) through the
    journal: `concentric-migrate rollback` undoes them. With --out DIR they go to
    DIR/APP/ (DIR/_account/ for ~) and the home is not touched.
    """
    from migrate.lock import LockError
    from migrate.run import actions

    home = settings.require_home()
    if out is not None and is_inside(os.path.realpath(out), os.path.realpath(home)):
        raise BadInput(
            f"--out {out} is inside the home: leave --out away to write there through the journal"
        )
    if no_index and mode != "compile":
        raise BadInput("--no-index only applies to --mode compile")
    plan_result = _plan(settings, apps, minimal=minimal)
    command = "concentric-migrate requirements" + "".join(f" --app {a}" for a in apps)
    try:
        files = actions.requirement_files(
            plan_result, out=out, command=command, mode=mode, find_links=find_links,
            index=not no_index, hashes=hashes,
        )  # fmt: skip
    except LockError as exc:
        raise Failed(str(exc)) from exc
    _write_or_show(settings, files, dry_run=dry_run, as_json=as_json, out=out, description=command)


def _write_or_show(
    settings: Settings,
    files: Sequence[PlannedFile],
    *,
    dry_run: bool,
    as_json: bool,
    out: Path | None,
    description: str,
) -> None:
    """The one place a command turns planned files into writes (journaled) or a diff."""
    from migrate.render import requirements_json
    from migrate.run import actions

    changed = [f for f in files if f.changed]
    if dry_run:
        if as_json:
            _echo_json(requirements_json(files, dry_run=True, transaction=None))
        else:
            for planned in changed:
                click.echo(planned.diff(), nl=False)
            click.echo(f"{len(changed)} file(s) would change; nothing was written.", err=True)
        return
    txn_id = None
    if out is not None:
        actions.write_outside(changed)
    else:
        from migrate.journal import JournalError, SessionAborted

        try:
            txn_id = actions.apply(settings.home, changed, description=description)
        except SessionAborted as exc:
            raise _rolled_back(
                str(exc), exc.transaction, exc.rolled_back, settings.home,
                "The files written so far were rolled back.", exc.kept_aside,
            ) from exc  # fmt: skip
        except JournalError as exc:  # the lock is held, or a crashed transaction is still open
            raise Failed(str(exc)) from exc
    if as_json:
        _echo_json(requirements_json(files, dry_run=False, transaction=txn_id))
        return
    for planned in files:
        state = "written" if planned.changed else "unchanged"
        click.echo(f"{state:9} {home_relative(planned.path, settings.home)}")
    if txn_id:
        click.echo(
            f"journal: {txn_id}; undo with: concentric-migrate --home {settings.home} rollback"
        )


JOBS_OPTION = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    help="Stage N apps' venvs at once in N worker processes. By default (or with 1) they "
    "are staged by threads of this command, one per CPU; either way one journal renames "
    "them in, in order.",
)
SOURCE_OPTION = click.option(
    "--source",
    type=click.Choice(["installed", "index"]),
    default="installed",
    show_default=True,
    help="Build wheels from the installed files (offline), or take each pinned version's wheel "
    "from the package index where that is faithful (patched, local and develop installs, and "
    "versions without a wheel, still come from the installed files).",
)
BYTECODE_OPTION = click.option(
    "--bytecode/--no-bytecode",
    default=True,
    show_default=True,
    help="Compile bytecode once in the shared store (as pip does), or leave it to first import.",
)


@cli.command()
@APP_OPTION
@PYTHON_OPTION
@JOBS_OPTION
@BYTECODE_OPTION
@SOURCE_OPTION
@MINIMAL_OPTION
@json_option("Print one JSON document of the venvs built.")
@click.pass_obj
def build(
    settings: Settings,
    apps: tuple[str, ...],
    pythons: tuple[str, ...],
    jobs: int,
    bytecode: bool,
    source: str,
    minimal: bool,
    as_json: bool,
) -> None:
    """Build one virtualenv per app (and ~) from the files installed today, offline.

    Each used distribution is repacked into a wheel (HOME/.concentric-migrate/wheels), once
    however many apps use it, so patched packages and ones no index has survive; the venv
    is made with the app's Python (old Pythons through a cached legacy virtualenv), filled
    from exactly those wheels (hardlinked from a shared store) with a pip of its own, its
    requirements checked as `pip check` does, and renamed into HOME/webapps/APP/venv
    (~: HOME/.venvs/account) as one journaled transaction: `rollback` removes them. If any
    app fails, everything this command built is rolled back.
    """
    from migrate import render
    from migrate.build.app import BuildOptions
    from migrate.journal import JournalError, SessionAborted
    from migrate.run.build import BuildRefused, build_venvs

    home = settings.home
    result = _plan(settings, apps, interpreters=_parse_python_overrides(pythons), minimal=minimal)
    command = "concentric-migrate build" + "".join(f" --app {a}" for a in apps)
    options = BuildOptions(jobs, bytecode=bytecode, source=source)
    try:
        with reporting(not as_json and settings.verbosity >= 0):
            outcome = build_venvs(result, options, description=command)
    except BuildRefused as exc:
        raise Failed(str(exc), refused=exc.problems) from exc
    except SessionAborted as exc:
        raise _rolled_back(
            str(exc), exc.transaction, exc.rolled_back, home,
            "The venvs built so far were rolled back.", exc.kept_aside,
        ) from exc  # fmt: skip
    except JournalError as exc:  # the lock is held, or a crashed transaction is still open
        raise Failed(str(exc)) from exc
    if as_json:
        _echo_json(render.build_json(outcome.built, outcome.transaction))
        return
    for name in outcome.skipped:
        click.echo(render.build_skipped(name), err=True)
    for line in render.build_summary(outcome, home, show_origins=source == "index"):
        click.echo(line)


@cli.command()
@APP_OPTION
@PYTHON_OPTION
@JOBS_OPTION
@BYTECODE_OPTION
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and a unified diff of every file that would change; write nothing.",
)
@SOURCE_OPTION
@click.option(
    "--offline/--online",
    default=None,
    help="Never use a package index (the default unless --source index).",
)
@click.option(
    "--restart/--no-restart",
    default=True,
    show_default=True,
    help="Restart each running app (its Apache, or the server its own start script starts) "
    "and check it answers the same pages as before.",
)
@click.option(
    "--trace",
    is_flag=True,
    help="Also load each app under its old path to find what it imports (runs app code).",
)
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Check the model against each entry point's real runtime, started privately, "
    "wherever it can be started; a disagreement stops the run before it writes.",
)
@click.option(
    "--skip",
    "skip",
    multiple=True,
    metavar="APP",
    help="Leave APP as it is (repeatable): run refuses while an app with Python code would "
    "stay on the concentric dirs unless it is named here.",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="PATH",
    help="A page (/path?query) each restarted app must still answer as before, besides / and "
    "the same-site links on it (repeatable).",
)
@MINIMAL_OPTION
@click.option("--yes", "-y", is_flag=True, help="Do not ask before migrating.")
@json_option("Print one JSON document of what was (or, with --dry-run, would be) done.")
@click.pass_obj
def run(
    settings: Settings,
    apps: tuple[str, ...],
    pythons: tuple[str, ...],
    trace: bool,
    jobs: int,
    bytecode: bool,
    dry_run: bool,
    source: str,
    offline: bool | None,
    restart: bool,
    probe: bool,
    skip: tuple[str, ...],
    urls: tuple[str, ...],
    minimal: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Migrate in one command: requirements, venvs, rewrites, restart, verify.

    Writes requirements.txt per app, builds each app's venv from the installed files,
    points httpd.conf (python-home), WSGI files, scripts' shebangs, the apache2/bin
    scripts and the crontab at it, verifies each venv, restarts each running app and
    checks it answers as before: all one journaled transaction. If anything fails, it is
    all rolled back and the apps are restarted on their old configuration. Nothing under
    ~/lib or an app's lib/ is deleted; `concentric-migrate rollback` undoes a migration.
    Start with --dry-run.
    """
    from migrate import render
    from migrate.build.app import BuildOptions
    from migrate.journal import JournalError
    from migrate.lock import LockError
    from migrate.resolve.trace import trace_entry
    from migrate.run import actions
    from migrate.run.execute import RunFailed, RunOptions, RunRefused, RunResult, run_migration
    from migrate.run.migration import plan_migration

    overrides = _parse_python_overrides(pythons)
    home = settings.require_home()
    if offline is None:
        offline = source != "index"
    if offline and source == "index":
        raise BadInput("--source index needs the index: leave out --offline")
    bad = [url for url in urls if not url.startswith("/") or url.startswith("//")]
    if bad:
        raise BadInput(f"--url {bad[0]}: give a path on the app's site, starting with /")
    tracer = trace_entry if trace else None
    plan_result = _plan(
        settings, apps, interpreters=overrides, tracer=tracer, probe=probe, minimal=minimal
    )
    _check_app_names(plan_result, skip, "--skip")
    command = "concentric-migrate run" + "".join(f" --app {a}" for a in apps)
    kept = dataclasses.replace(
        plan_result, apps=tuple(a for a in plan_result.apps if a.name not in skip)
    )
    try:
        requirement_files = actions.requirement_files(kept, out=None, command=command)
    except LockError as exc:
        raise Failed(str(exc)) from exc
    migration = plan_migration(plan_result, interpreters=overrides, skip=skip)
    if dry_run:
        _show_dry_run(migration, requirement_files, as_json=as_json, quiet=settings.verbosity < 0)
        return
    if not migration.apps and not migration.problems:  # as build and verify: not a failure
        if as_json:
            _echo_json(render.run_json(RunResult(home, None, (), False, migration.statuses)))
        else:
            click.echo("nothing to migrate: no app runs Python from this account (see `plan`)")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("run changes the account: add --yes (see --dry-run first)")
        names = ", ".join(app.app for app in migration.apps)
        click.confirm(f"Migrate {names} in {home}?", abort=True, err=True)
    show = not as_json and settings.verbosity >= 0
    try:
        with reporting(show):
            result = run_migration(
                plan_result, migration, requirement_files, description=command,
                options=RunOptions(
                    BuildOptions(jobs, bytecode=bytecode, source=source, offline=offline),
                    restart, urls,
                ),
            )  # fmt: skip
    except RunRefused as exc:
        shown = (home_relative_text(p, home) for p in exc.problems)
        raise Failed("run will not start:\n" + "\n".join(shown), refused=exc.problems) from exc
    except RunFailed as exc:
        raise _rolled_back(
            exc.reason, exc.transaction, exc.rolled_back, home,
            "Everything was rolled back.", exc.kept_aside, exc.states,
        ) from exc  # fmt: skip
    except JournalError as exc:  # the lock is held, or a crashed transaction is still open
        raise Failed(str(exc)) from exc
    if as_json:
        _echo_json(render.run_json(result))
        return
    for line in render.run_summary(result, home):
        click.echo(line)


def _check_app_names(plan: Plan, names: Sequence[str], option: str) -> None:
    known = {app.name for app in plan.apps}
    unknown = [name for name in names if name not in known]
    if unknown:
        shown = ", ".join(sorted(known)) or "none"
        raise BadInput(f"{option} {unknown[0]}: no such app in the plan (apps: {shown})")


def _show_dry_run(
    migration: Migration, requirement_files: Sequence[PlannedFile], *, as_json: bool, quiet: bool
) -> None:
    """``run --dry-run``: the plan and every diff; exit 1 when ``run`` would refuse."""
    from migrate import render

    if as_json:
        _echo_json(render.migration_json(migration, requirement_files))
        if migration.problems:
            raise SystemExit(EXIT_FAILED)
        return
    for line in render.migration_text(migration, requirement_files):
        click.echo(line)
    if migration.problems:
        shown = (home_relative_text(p, migration.home) for p in migration.problems)
        raise Failed("run would refuse to start:\n" + "\n".join(shown))
    if not migration.apps:
        click.echo("nothing to migrate: no app runs Python from this account (see `plan`)")
    elif not quiet:
        click.echo("Nothing was written (--dry-run).", err=True)


@cli.command()
@APP_OPTION
@PYTHON_OPTION
@click.option(
    "--isolated",
    is_flag=True,
    help="Hide the account's lib dirs (~/lib/pythonX.Y, each app's lib/, the user site) while "
    "checking: a private mount namespace where the kernel allows one, else an audit.",
)
@json_option("Print one JSON document: every import and version checked, per app.")
@click.pass_obj
def verify(
    settings: Settings,
    apps: tuple[str, ...],
    pythons: tuple[str, ...],
    isolated: bool,
    as_json: bool,
) -> None:
    """Prove each app's venv imports what the app uses, at the pinned versions.

    Runs the venv's Python in isolated mode (no user site, no PYTHONPATH, no ~/lib):
    every used top-level name is imported and every distribution's version compared with
    the pin. With --isolated the account's lib dirs are hidden too (a private mount
    namespace where the kernel allows it, else an audit of every file opened): anything
    that still reaches one fails. The venvs are checked at once, one per CPU. Exit 1 on
    any mismatch, missing venv or import error.
    """
    from migrate.build.verify import verify_venvs
    from migrate.layout import venv_dir
    from migrate.render import verify_json

    result = _plan(settings, apps, interpreters=_parse_python_overrides(pythons))
    hidden = result.concentric if isolated else ()
    checks = [
        (venv_dir(result.home, app.name), app, app.entry_points)
        for app in result.apps
        if app.runs_python
    ]
    reports = list(verify_venvs(checks, result.home, hidden))
    if as_json:
        _echo_json(verify_json(reports))
    elif not reports:
        click.echo("nothing to verify: no app runs Python from this account (see `plan`)")
    else:
        for report in reports:
            state = "ok" if report.ok else "FAILED"
            counts = f"{len(report.imports)} import(s), {len(report.versions)} version(s)"
            where = home_relative(report.venv, result.home)
            hiding = f", the lib dirs hidden ({report.isolation})" if report.isolation else ""
            click.echo(f"{report.app:12} {state:7} {counts} checked in {where}{hiding}")
            for runtime in report.runtimes:
                click.echo(f"    runtime {home_relative_text(runtime, result.home)}")
            for problem in report.problems:
                click.echo(f"    {home_relative_text(problem, result.home)}")
    if not all(r.ok for r in reports):
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.argument("transaction", required=False)
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even over files edited since; your edits are kept aside in the journal.",
)
@click.option(
    "--restart/--no-restart",
    default=True,
    show_default=True,
    help="Restart running apps whose Apache configuration or start script was restored.",
)
@json_option("Print one JSON document of what was restored.")
@click.pass_obj
def rollback(
    settings: Settings, transaction: str | None, force: bool, restart: bool, as_json: bool
) -> None:
    """Undo the newest transaction not yet rolled back (or TRANSACTION), byte for byte.

    Files are restored with their mode, owner and ACLs; files and directories the
    transaction created are removed. A file edited since the transaction makes rollback
    refuse (exit 1) and change nothing, unless --force. Rolling back twice is harmless;
    a transaction left open by a crash is rolled back the same way. Each running app
    whose Apache configuration or start script was restored is restarted on it (unless
    --no-restart).
    """
    from migrate.journal import EditedSince, JournalError, home_lock
    from migrate.journal import rollback as undo
    from migrate.render import rollback_json

    home = settings.require_home()
    known = [t.id for t in _transactions(home)]
    if transaction is not None and transaction not in known:
        listed = f" (transactions: {', '.join(known[-5:])})" if known else ""
        raise BadInput(f"no transaction {transaction!r} in {home}{listed}; see `journal`")
    if not known:
        if as_json:
            _echo_json(rollback_json(None, []))
        else:
            click.echo("nothing to roll back: no transaction in this home")
        return
    try:
        with home_lock(home):
            result = undo(home, transaction, force=force)
    except EditedSince as exc:
        names = "\n  ".join(home_relative(p, home) for p in exc.files)
        raise Failed(
            f"refusing to roll back: {len(exc.files)} file(s) changed or added since the "
            f"migration:"
            f"\n  {names}\n"
            "Nothing was changed. Re-run with --force to restore anyway; your edited copies "
            "are then kept in the transaction's edited/ folder.",
            refused=[f"{home_relative(p, home)} changed since the migration" for p in exc.files],
        ) from exc
    except JournalError as exc:
        raise Failed(str(exc)) from exc
    healths = []
    if restart and not result.already:
        from migrate.run.execute import restart_restored

        try:
            crontab = settings.read_crontab()
        except Failed:
            crontab = None  # apps cron starts through scripts elsewhere are then not found
        with reporting(not as_json and settings.verbosity >= 0):
            healths = restart_restored(home, result.restored, crontab)
    if as_json:
        _echo_json(rollback_json(result, healths))
        return
    if result.already:
        click.echo(f"{result.id} was already rolled back; nothing to do.")
        return
    for path in result.restored:
        click.echo(f"restored  {home_relative(path, home)}")
    for path in result.removed:
        click.echo(f"removed   {home_relative(path, home)}")
    for path in result.kept_aside:
        click.echo(f"kept your edited copy in {home_relative(path, home)}")
    click.echo(f"rolled back {result.id}")


def _transactions(home: Path) -> list[TransactionInfo]:
    """The home's transactions; a journal that cannot be read is a failure, not a traceback."""
    from migrate.journal import JournalError, transactions

    try:
        return transactions(home)
    except JournalError as exc:
        raise Failed(str(exc)) from exc


@cli.command(name="journal")
@json_option()
@click.pass_obj
def journal_command(settings: Settings, as_json: bool) -> None:
    """List the transactions: id, state (open, committed, rolled-back), time, files."""
    from migrate.render import journal_json

    found = _transactions(settings.require_home())
    if as_json:
        _echo_json(journal_json(found))
        return
    if not found:
        click.echo("no transactions yet")
        return
    rows = [(t.id, t.state, t.created, str(len(t.files)), t.description) for t in found]
    click.echo("\n".join(table(("transaction", "state", "created", "files", "command"), rows)))


@cli.command()
@click.argument(
    "directory", required=False, type=click.Path(path_type=Path), default="concentric-demo"
)
@click.pass_context
def demo(ctx: click.Context, directory: Path) -> None:
    """Build a sample WebFaction-style account in DIRECTORY (offline) and run the story on it.

    inventory, plan, run --dry-run (the plan and a diff of every file), run (requirements,
    venvs, rewrites, verify: one journaled transaction), verify, journal, and rollback,
    each printed with the command that runs it.

    DIRECTORY defaults to ./concentric-demo; the account is DIRECTORY/home and its
    crontab DIRECTORY/crontab. A directory made by an earlier demo is rebuilt; any
    other non-empty directory is refused.
    """
    from migrate.demo import PY, DemoError, build_demo_account

    settings: Settings = ctx.obj
    try:
        account = build_demo_account(directory)
    except DemoError as exc:
        raise BadInput(str(exc)) from exc
    ctx.obj = Settings(home=account.home, crontab=account.crontab, verbosity=settings.verbosity)
    prefix = f"concentric-migrate --home {account.home} --crontab {account.crontab}"
    python = f"{PY}={account.python}"
    if settings.verbosity >= 0:
        click.echo(
            f"Built a sample account in {account.home} (crontab: {account.crontab}).\n"
            f"No Apache or cron serves its apps, so each command names their Python: "
            f"--python {python} (a bare install of this machine's Python {PY})."
        )
    pythons = {"pythons": (python,)}
    for step, command, kwargs in (
        ("inventory", inventory, {}),
        (f"plan --python {python}", plan, pythons),
        (f"run --python {python} --dry-run", run, {"dry_run": True, **pythons}),
        (f"run --python {python} --yes", run, {"yes": True, **pythons}),
        (f"verify --python {python}", verify, pythons),
        ("journal", journal_command, {}),
        ("rollback", rollback, {}),
    ):
        if settings.verbosity >= 0:
            click.echo(f"\n$ {prefix} {step}\n")
        ctx.invoke(command, **kwargs)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so an open transaction is rolled back."""

    def __str__(self) -> str:
        return "terminated (SIGTERM)"


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the rollback
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli(prog_name="concentric-migrate")
    except Terminated:
        click.echo("Error: terminated (SIGTERM)", err=True)
        sys.exit(128 + signal.SIGTERM)

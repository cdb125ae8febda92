"""The ``concentric-migrate`` command: parse, call the library, render. Nothing else.

Exit codes are stable: 0 success, 1 the operation failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrate import __version__
from migrate.account import AccountError, discover
from migrate.inventory import take_inventory

if TYPE_CHECKING:
    from migrate.crontab import Crontab

# Commands import the rest of the library when they run: start-up stays small.

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(click.ClickException):
    """Bad usage or input: one line on stderr, exit 2."""

    exit_code = EXIT_BAD_INPUT


class Failed(click.ClickException):
    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class Settings:
    home: Path
    crontab: Path | None
    verbosity: int

    def read_crontab(self) -> Crontab | None:
        """``--crontab FILE``, else ``crontab -l`` when HOME is the invoking user's own."""
        from migrate.crontab import parse_crontab, read_installed_crontab

        if self.crontab is not None:
            data = self.crontab.read_bytes()
            text = data.decode("utf-8", errors="surrogateescape")
            return parse_crontab(text, Path(os.path.abspath(self.crontab)))
        if os.path.realpath(self.home) != os.path.realpath(os.path.expanduser("~")):
            return None
        text = read_installed_crontab()
        return parse_crontab(text) if text is not None else None

    def require_home(self) -> Path:
        if not self.home.exists():
            raise BadInput(f"--home {self.home}: no such directory")
        if not self.home.is_dir():
            raise BadInput(f"--home {self.home}: not a directory")
        return self.home


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Read the crontab from FILE instead of running `crontab -l`.",
)
@click.option("-v", "--verbose", count=True, help="Say more (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only print results and errors.")
@click.version_option(__version__, prog_name="concentric-migrate")
@click.pass_context
def cli(ctx: click.Context, home: Path, crontab: Path | None, verbose: int, quiet: bool) -> None:
    """Move a concentric Python account (~/lib/pythonX.Y, eggs, .pth files) to one
    pinned virtualenv per app.

    Start with `inventory` to see what is installed where, or `demo` to try it all on a
    sample account built offline.
    """
    if crontab is not None and not crontab.is_file():
        raise BadInput(f"--crontab {crontab}: no such file")
    home = Path(os.path.abspath(os.path.expanduser(home)))
    ctx.obj = Settings(home=home, crontab=crontab, verbosity=-1 if quiet else verbose)


@cli.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (docs/json-schemas.md)."
)
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
    show_progress = not as_json and settings.verbosity >= 0 and sys.stderr.isatty()
    from migrate.render import inventory_json, inventory_text

    progress = (
        click.progressbar(length=len(account.lib_dirs), label="reading lib dirs", file=sys.stderr)
        if show_progress
        else contextlib.nullcontext(None)
    )
    with progress as bar:
        result = take_inventory(account, on_lib_dir=(lambda _lib: bar.update(1)) if bar else None)
    if as_json:
        _echo_json(inventory_json(result))
    else:
        click.echo(inventory_text(result, verbose=settings.verbosity > 0), nl=False)


def _echo_json(document: object) -> None:
    """One JSON document on stdout: indented for a terminal, compact for a pipe (faster)."""
    indent = 2 if sys.stdout.isatty() else None
    # color=True: the document has no ANSI codes, so skip click's scan for them.
    click.echo(json.dumps(document, indent=indent), color=True)


def _parse_python_overrides(values: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for value in values:
        version, sep, path = value.partition("=")
        if not sep or not version or not path:
            raise BadInput(f"--python {value}: expected X.Y=/path/to/python")
        out[version] = Path(path)
    return out


@cli.command()
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="APP",
    help="Only this app (repeatable); ~ is the account.",
)
@click.option(
    "--trace",
    is_flag=True,
    help="Also load each app under its old path and record what it imports (runs app code).",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    metavar="X.Y=PATH",
    help="Use this interpreter for Python X.Y.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (docs/json-schemas.md)."
)
@click.pass_obj
def plan(
    settings: Settings, apps: tuple[str, ...], trace: bool, pythons: tuple[str, ...], as_json: bool
) -> None:
    """Show, per app, which copy of each package it imports today and why.

    For every app (and `~`, the account's own scripts and cron jobs): its entry points,
    the packages it can see with the path rule that put each there, which it uses and
    why, and findings: shadowed, leaked (used from ~/lib or ~/.local), unused, missing,
    conflict, interpreter. Nothing is changed. --trace runs the apps' code.
    """
    from migrate.recipes import RecipeError
    from migrate.render import plan_json, plan_text
    from migrate.resolve import plan_account
    from migrate.trace import trace_entry

    home = settings.require_home()
    overrides = _parse_python_overrides(pythons)
    account = discover(home)
    known = {app.name for app in account.apps} | {"~"}
    unknown = [a for a in apps if a not in known]
    if unknown:
        raise BadInput(f"--app {unknown[0]}: no such app (apps: {', '.join(sorted(known))})")
    inventory_result = take_inventory(account)
    try:
        result = plan_account(
            account,
            inventory_result,
            settings.read_crontab(),
            apps=apps,
            interpreters=overrides,
            tracer=trace_entry if trace else None,
        )
    except RecipeError as exc:
        raise Failed(str(exc)) from exc
    if as_json:
        _echo_json(plan_json(result))
    else:
        click.echo(plan_text(result, verbose=settings.verbosity > 0), nl=False)


@cli.command()
@click.argument(
    "directory", required=False, type=click.Path(path_type=Path), default="concentric-demo"
)
@click.pass_context
def demo(ctx: click.Context, directory: Path) -> None:
    """Build a sample WebFaction-style account in DIRECTORY (offline); inventory and plan it.

    DIRECTORY defaults to ./concentric-demo; the account is DIRECTORY/home and its
    crontab DIRECTORY/crontab. A directory made by an earlier demo is rebuilt; any
    other non-empty directory is refused.
    """
    from migrate.demo import DemoError, build_demo_account

    settings: Settings = ctx.obj
    try:
        account = build_demo_account(directory)
    except DemoError as exc:
        raise BadInput(str(exc)) from exc
    ctx.obj = Settings(home=account.home, crontab=account.crontab, verbosity=settings.verbosity)
    prefix = f"concentric-migrate --home {account.home} --crontab {account.crontab}"
    if settings.verbosity >= 0:
        click.echo(f"Built a sample account in {account.home} (crontab: {account.crontab}).")
    for step, command, kwargs in (
        ("inventory", inventory, {"as_json": False}),
        ("plan", plan, {"apps": (), "trace": False, "pythons": (), "as_json": False}),
    ):
        if settings.verbosity >= 0:
            click.echo(f"\n$ {prefix} {step}\n")
        ctx.invoke(command, **kwargs)


def main() -> None:
    cli(prog_name="concentric-migrate")

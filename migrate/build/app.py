"""One app's virtualenv from the files installed today, renamed into place by the journal.

``build_app`` pins what the app uses (:func:`migrate.lock.pins_for`), repacks each pinned
copy into a wheel (:mod:`migrate.build.repack`), builds the venv aside in
``HOME/.concentric-migrate/tmp-*`` (same file system as the home, so the final step is a
rename), installs exactly those wheels, checks them, rewrites the staging path to the
destination and hands the folder to ``Transaction.install_dir``: rollback removes it.

The venv carries what it must provide (:func:`migrate.build.verify.write_manifest`), which
:func:`migrate.build.verify.verify_app` checks.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

from migrate import report
from migrate.build.indexsource import IndexChoice, index_wheel
from migrate.build.repack import RepackedWheel, RepackError, repack
from migrate.build.venv import (
    LinkResult,
    StoreFill,
    VenvError,
    can_link,
    create_venv,
    embedded_pip,
    install,
    install_linked,
    relocate,
)
from migrate.build.verify import write_manifest
from migrate.discover.interpreters import Interpreter, interpreter_at
from migrate.journal import Transaction
from migrate.layout import (
    helpers_dir,
    staging_dirs,
    state_dir,
    store_dir,
    venv_dir,
    wheelhouse_dir,
)
from migrate.lock import Pin, pins_for
from migrate.paths import home_relative
from migrate.privilege import Owner, become, give_tree, owner_of, user
from migrate.report import BuildStep
from migrate.resolve.plan import AppPlan


class BuildError(Exception):
    """An app's venv cannot be built; nothing of it was installed. The message says what to do."""


@dataclass(frozen=True)
class BuildOptions:
    """How venvs are built: one value from the command line down to each venv."""

    jobs: int = 1
    """Apps staged at once in worker processes; 1: by threads of this process, one per CPU."""
    link: bool = True
    """Hardlink from the shared store where the target allows it; else pip installs."""
    bytecode: bool = True
    source: str = "installed"
    """``installed``: wheels repacked from the files installed today; ``index``: from an
    index where it serves the identical files."""
    offline: bool = False
    """Never ask a package index (the legacy helper for old Pythons needs one, once)."""


@dataclass(frozen=True)
class BuiltVenv:
    app: str
    path: Path
    python: str
    pins: tuple[Pin, ...]
    wheels: tuple[RepackedWheel, ...]
    linked: LinkResult | None = None
    """How the store path filled the venv; None when pip installed everything."""
    origins: tuple[str, ...] = ()
    """Per pin: where its wheel came from (``from the index``, or why the installed files)."""


@dataclass(frozen=True)
class Staged:
    """A venv built aside (``staged``), ready to be renamed to ``venv.path`` by the journal."""

    staged: Path
    venv: BuiltVenv


def build_app(
    home: Path,
    app: AppPlan,
    transaction: Transaction,
    options: BuildOptions = BuildOptions(),
) -> BuiltVenv:
    """Build ``app``'s venv offline and install it at :func:`venv_dir` through ``transaction``.

    The caller holds ``home_lock`` and owns the transaction (commit or rollback). On any
    failure before the rename the staging folder is removed and BuildError (or the
    journal's error) raised.

    With ``options.link`` (the default, where the target allows it: not a legacy Python)
    each wheel is unpacked once into the shared store and hardlinked into the venv
    (:func:`migrate.build.venv.install_linked`, bytecode compiled there once unless
    ``bytecode`` is false); without, the venv is seeded with pip, which installs the wheels.
    """
    return install_staged(home, stage_app(home, app, options), transaction)


def stage_app(
    home: Path,
    app: AppPlan,
    options: BuildOptions = BuildOptions(),
    wheels: Wheels | None = None,
) -> Staged:
    """Everything of :func:`build_app` but the rename: writes only the tool's own state
    (wheelhouse, store, ``HOME/.concentric-migrate/tmp-*``), so apps can be staged in
    parallel while one journal installs them. On failure nothing staged is left.

    ``wheels``: what :func:`_repack_and_fill` made for every app of the run (each
    distinct distribution packed once, the store filled and compiled): staging then only
    links — a tree left uncompiled (a full disk, say) links without bytecode rather than
    being compiled by every app staged at once. Without it, this app's own are packed
    (and compiled) here."""
    interpreter = _buildable(home, app)
    assert app.python is not None
    dest = venv_dir(home, app.name)
    state = state_dir(home)
    _same_file_system(state, dest)

    pins = pins_for(app, home)
    filled = wheels is not None  # the store too: staging links, and compiles no tree
    if wheels is None:
        wheels = repack_apps(home, [app], options)
    chosen = [wheels[_wheel_key(pin, app.python)] for pin in pins]
    origins = [origin for _, origin in chosen]
    wheels_here = [wheel for wheel, _ in chosen]

    staged = state / f"tmp-{secrets.token_hex(8)}"
    try:
        linking = options.link and can_link(interpreter)
        report.build(BuildStep(app.name, "venv", 0, 1, f"Python {app.python}"))
        create_venv(
            staged, interpreter, helpers=helpers_dir(home), prompt=app.name, seed=not linking,
            offline=options.offline,
        )  # fmt: skip
        report.build(BuildStep(app.name, "install", 0, 1, f"{len(wheels_here)} wheels"))
        linked = None
        if linking:
            # The venv keeps a pip of its own (as a seeded venv would), linked like the rest.
            items = [(w.path, w.sha256) for w in wheels_here]
            items += [seed] if (seed := embedded_pip(app.python)) else []
            linked = install_linked(
                staged, items, store_dir(home), python=app.python,
                bytecode=options.bytecode and not filled, owner=owner_of(home),
            )  # fmt: skip
        else:
            install(staged, [wheel.path for wheel in wheels_here])
        write_manifest(staged, app, pins)
        report.build(BuildStep(app.name, "relocate", 0, 1, home_relative(dest, home)))
        relocate(staged, dest, compile=options.bytecode and (linked is None or bool(linked.by_pip)))
        _like_its_folder(staged, dest, home)
    except VenvError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise BuildError(f"{app.name}: {exc}") from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    built = BuiltVenv(app.name, dest, app.python, pins, tuple(wheels_here), linked, tuple(origins))
    return Staged(staged, built)


def _buildable(home: Path, app: AppPlan) -> Interpreter:
    """The interpreter ``app``'s venv is made with, or BuildError saying why it cannot be."""
    if not app.has_python or app.python is None:
        raise BuildError(f"{app.name} runs no Python: it needs no venv")
    dest = venv_dir(home, app.name)
    if os.path.lexists(dest):
        raise BuildError(
            f"{home_relative(dest, home)} exists already: move it away (or roll back the "
            "migration that made it) before building"
        )
    base = app.executable  # the runtime's, or --python where the runtime does not say
    interpreter = interpreter_at(base) if base is not None else None
    if interpreter is None or interpreter.version != app.python:
        raise BuildError(
            f"{app.name} needs Python {app.python}, and no interpreter its runtime starts "
            f"runs here ({base or 'none found'}; see `plan`): name one with "
            f"--python {app.python}=/path"
        )
    return interpreter


WheelKey = tuple[str, str, str, str, str]
"""A distribution's identity in one run: its install's path and kind, name, version, and
the Python its wheel is tagged for."""

Wheels = dict[WheelKey, tuple[RepackedWheel, str]]
"""Per distribution of the run: its wheel, and where that came from (``installed files``,
or why the index's)."""


def _wheel_key(pin: Pin, python: str) -> WheelKey:
    dist = pin.row.dist
    return (os.fspath(dist.path), dist.kind, pin.name, pin.version, python)


def _wheels_of(app: AppPlan, home: Path, wheels: Wheels) -> Wheels:
    """The part of the run's wheels one app pins (what a worker is sent)."""
    if not app.has_python or app.python is None:
        return {}
    keys = (_wheel_key(pin, app.python) for pin in pins_for(app, home))
    return {key: wheels[key] for key in keys if key in wheels}


def repack_apps(
    home: Path,
    apps: Sequence[AppPlan],
    options: BuildOptions,
    then: Callable[[WheelKey, RepackedWheel], None] | None = None,
) -> Wheels:
    """The wheel of every distribution the ``apps`` pin, each packed (or fetched) once;
    ``then`` is given each as soon as it is made.

    Ten apps that share ``~/lib`` pin the same installed copies: packing them per app
    re-read and re-hashed every installed file ten times (3.2 s of a 10-app build)."""
    todo: dict[WheelKey, Pin] = {}
    for app in apps:
        if app.has_python and app.python is not None:
            for pin in pins_for(app, home):
                todo.setdefault(_wheel_key(pin, app.python), pin)
    wheels: Wheels = {}
    for number, (key, pin) in enumerate(todo.items()):
        report.build(BuildStep("wheels", "repack", number, len(todo), pin.name))
        python = key[-1]
        if options.source == "index":
            choice = index_wheel(pin, python, wheelhouse_dir(home) / "from-index")
            fetched = _from_index(pin, choice)
            wheels[key] = (fetched or _repack(pin, home, python), choice.reason)
        else:
            wheels[key] = (_repack(pin, home, python), "installed files")
        if then is not None:
            then(key, wheels[key][0])
    report.build(BuildStep("wheels", "repack", len(todo), len(todo)))
    return wheels


def _repack_and_fill(home: Path, apps: Sequence[AppPlan], options: BuildOptions) -> Wheels:
    """What every app's staging needs, made once: each distribution's wheel, and every
    store tree the apps will link, unpacked and compiled before any app is staged (apps
    staged at once then only link, and no two compile one tree).

    An app that cannot be built stops it first, before any packing. Each wheel goes to the
    store as soon as it is packed, so unpacking and compiling overlap the packing of the
    next. Apps that cannot link (a legacy Python) get nothing from the store."""
    interpreters = {i.version: i for i in (_buildable(home, app) for app in apps)}
    with contextlib.ExitStack() as stack:
        fills = {
            python: stack.enter_context(_store_fill(home, interpreter, options))
            for python, interpreter in sorted(interpreters.items())
            if options.link and can_link(interpreter)
        }

        for python, fill in fills.items():  # first: it is ready, and the most to compile
            if seed := embedded_pip(python):
                fill.add(*seed)

        def to_store(key: WheelKey, wheel: RepackedWheel) -> None:
            if (fill := fills.get(key[-1])) is not None:
                fill.add(wheel.path, wheel.sha256)

        wheels = repack_apps(home, apps, options, then=to_store)
        if fills:
            report.build(BuildStep("wheels", "store", 0, 1, "unpack and compile"))
    if fills:
        report.build(BuildStep("wheels", "store", 1, 1, "unpack and compile"))
    return wheels


def _store_fill(home: Path, interpreter: Interpreter, options: BuildOptions) -> StoreFill:
    return StoreFill(
        store_dir(home), interpreter=interpreter.executable, python=interpreter.version,
        bytecode=options.bytecode, owner=owner_of(home),
    )  # fmt: skip


def install_staged(home: Path, staged: Staged, transaction: Transaction) -> BuiltVenv:
    """Rename a staged venv into place through the journal (rollback removes it)."""
    venv = staged.venv
    where = home_relative(venv.path, home)
    report.build(BuildStep(venv.app, "rename", 0, 1, where))
    try:
        transaction.install_dir(staged.staged, venv.path, venv.linked and venv.linked.known)
    finally:
        if os.path.lexists(staged.staged):  # never renamed in: a leftover of ours alone
            shutil.rmtree(staged.staged, ignore_errors=True)
    report.build(BuildStep(venv.app, "rename", 1, 1, where))
    return venv


def build_apps(
    home: Path,
    apps: Sequence[AppPlan],
    transaction: Transaction,
    options: BuildOptions = BuildOptions(),
) -> list[BuiltVenv]:
    """Build every app's venv, the apps staged at once: by threads of this process, one per
    CPU, or with ``options.jobs`` > 1 by that many worker processes.

    Each venv is made with the interpreter the app's runtime starts (``app.executable``:
    mod_wsgi's own for a served app; ``--python`` where the runtime does not say).
    Staging writes only the tool's state, so it runs beside the journal, which stays in
    this thread and installs the staged venvs one by one, in ``apps`` order. On the first
    failure the other staged venvs are removed and the error raised; the caller rolls
    back what was installed. Progress is reported once per app staged, as "apps"
    (:func:`migrate.report.build`, from this thread).

    As root on another user's home the workers always run, and run as her
    (:func:`migrate.privilege.become`): staging writes by path into her state folder,
    where she could swap a folder for a link to anywhere while it works.
    """

    sweep_staging(home)
    jobs = options.jobs
    owner = owner_of(home)
    if owner is None and (jobs <= 1 or len(apps) <= 1):
        return _build_in_threads(home, apps, transaction, options)
    refused = builder_refused(owner)
    if refused:
        raise BuildError(refused)
    context = multiprocessing.get_context("fork")
    futures: dict[Future[Staged], AppPlan] = {}
    installed: set[Path] = set()
    workers = max(1, min(jobs, len(apps)))
    try:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=become, initargs=(owner,)
        ) as pool:
            # A worker's progress does not reach this process: one step says what it does.
            report.build(
                BuildStep("wheels", "prepare", 0, 1, f"wheels and store, {len(apps)} apps")
            )
            wheels = pool.submit(_repack_and_fill, home, apps, options).result()
            futures = {
                pool.submit(stage_app, home, app, options, _wheels_of(app, home, wheels)): app
                for app in apps
            }
            for done, future in enumerate(as_completed(futures), 1):
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    raise future.exception()  # type: ignore[misc]
                report.build(BuildStep("apps", "staged", done, len(apps), futures[future].name))
        by_app = {app.name: future.result() for future, app in futures.items()}
        built = []
        for app in apps:
            staged = by_app[app.name]
            installed.add(staged.staged)
            built.append(install_staged(home, staged, transaction))
        return built
    finally:
        for future in futures:  # staged by a worker, never installed: ours alone
            if future.done() and not future.cancelled() and future.exception() is None:
                leftover = future.result().staged
                if leftover not in installed:
                    shutil.rmtree(leftover, ignore_errors=True)


def _build_in_threads(
    home: Path, apps: Sequence[AppPlan], transaction: Transaction, options: BuildOptions
) -> list[BuiltVenv]:
    """Stage the apps in threads of this process, one per CPU (linking a venv is mostly
    ``link`` and ``mkdir`` calls, which run side by side), and install each in ``apps``
    order as soon as it and those before it are staged."""
    wheels = _repack_and_fill(home, apps, options)
    staging = min(len(apps), os.cpu_count() or 1)
    if staging <= 1:
        return [
            install_staged(home, stage_app(home, app, options, wheels), transaction) for app in apps
        ]
    built: list[BuiltVenv] = []
    futures: list[Future[Staged]] = []

    def stop_the_rest(done: Future[Staged]) -> None:  # a failure stops the apps after it
        if not done.cancelled() and done.exception() is not None:
            for future in futures[futures.index(done) + 1 :]:
                future.cancel()

    with ThreadPoolExecutor(max_workers=staging, thread_name_prefix="stage") as pool:
        try:
            for app in apps:
                futures.append(pool.submit(stage_app, home, app, options, wheels))
                futures[-1].add_done_callback(stop_the_rest)
            for number, (app, future) in enumerate(zip(apps, futures, strict=True), 1):
                staged = future.result()
                report.build(BuildStep("apps", "staged", number, len(apps), app.name))
                built.append(install_staged(home, staged, transaction))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
            for future in futures:  # staged, never installed (renamed away): ours alone
                if future.done() and not future.cancelled() and future.exception() is None:
                    shutil.rmtree(future.result().staged, ignore_errors=True)
    return built


@functools.cache
def builder_refused(owner: Owner | None) -> str | None:
    """Why the workers that build as ``owner`` could not run (None: they can, or there is
    no one to become): forked and no longer root, they import what they still need of
    this tool and its Python, so she must be able to read them — as she must the apps'
    interpreters. Tried in a worker of the same kind; asked once per process (``run``
    asks before it writes anything, and again as it builds)."""
    if owner is None:
        return None
    context = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=become, initargs=(owner,)
        ) as pool:
            pool.submit(_import_what_staging_needs).result(timeout=120)
    except Exception as exc:  # whatever stops it is the answer, said in one line
        said = str(exc).strip() or type(exc).__name__
        return (
            f"as root the tool builds {owner.name}'s venvs as {owner.name}, who cannot run "
            f"its Python ({sys.executable}: {said}): install concentric-migrate where she "
            f"can read it (a venv under /opt, say), or run it as {owner.name}"
        )
    return None


def _import_what_staging_needs() -> None:
    import virtualenv.run  # noqa: F401 (what create_venv imports as it starts)


def _like_its_folder(staged: Path, dest: Path, home: Path) -> None:
    """The venv gets the permissions of the folder it goes into (the app dir; for ``~``,
    HOME/.venvs, or HOME while that does not exist): its mode on the venv's top folder,
    and — when this runs as root for another user's home — that folder's owner on every
    file, so the app can still use it."""
    folder = dest.parent if dest.parent.exists() else home
    info = os.stat(folder)
    os.chmod(staged, stat.S_IMODE(info.st_mode))
    if os.geteuid() != 0 or info.st_uid == 0:
        return
    give_tree(staged, user(info.st_uid, info.st_gid))  # last: root writes nothing in it after


def sweep_staging(home: Path) -> None:
    """Remove venvs a killed build staged and never installed (the state dir's ``tmp-*``).

    Safe only where the caller holds ``home_lock`` inside a transaction that has not
    staged anything yet: ``begin`` refuses while another transaction is open, so no
    journal can still name one of them.
    """
    for leftover in staging_dirs(home):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)


def _from_index(pin: Pin, choice: IndexChoice) -> RepackedWheel | None:
    if choice.path is None or choice.sha256 is None:
        return None
    parse_wheel_filename(choice.path.name)  # a valid wheel name, or InvalidWheelFilename
    tag = "-".join(choice.path.name.removesuffix(".whl").split("-")[-3:])
    return RepackedWheel(pin.row.dist, choice.path, choice.sha256, tag, reused=False)


def _repack(pin: Pin, home: Path, python: str) -> RepackedWheel:
    dist = pin.row.dist
    try:
        return repack(dist, wheelhouse_dir(home), python=python)
    except RepackError as exc:
        raise BuildError(
            f"{pin.name} {pin.version} ({home_relative(dist.path, home)}) cannot be built "
            f"from its installed files: {exc}. Repair or reinstall it in place, or drop it "
            "from the app, then build again"
        ) from None


def _same_file_system(state: Path, dest: Path) -> None:
    """The venv is built in ``state`` and renamed to ``dest``: a rename needs one file system."""
    existing = dest.parent
    while not existing.exists():
        existing = existing.parent
    if os.stat(state).st_dev != os.stat(existing).st_dev:
        raise BuildError(
            f"{state} and {existing} are on different file systems, so the venv cannot be "
            "renamed into place atomically"
        )

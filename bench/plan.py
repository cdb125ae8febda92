"""Benchmark ``concentric-migrate plan`` on a large fake account (50 apps x 100 distributions).

Run it from the project root with the interpreter that has the project installed::

    python bench/plan.py                       # 50 apps, each sees 100 distributions
    python bench/plan.py --apps 10 --visible 40 --keep

It builds, in a temporary directory, a WebFaction-style home:

* ``HOME/lib/pythonX.Y``: ``visible / 2`` account-wide distributions (small generated
  wheels, installed with one real offline ``pip install --target``), many of them with
  ``Requires-Dist`` on each other (plain, with a version range, with a marker that does
  not apply, and through an extra), so the closure has work to do;
* ``HOME/webapps/appNN/`` for every app: ``lib/pythonX.Y`` with ``visible / 2`` more
  distributions (a fifth of them newer copies of account-wide names, which shadow those;
  the rest from a pool shared by the apps, some requiring account-wide ones, some in a
  range the app's shadowing copy does not satisfy), ``apache2/conf/httpd.conf``
  (``WSGIDaemonProcess appNN python-path=APPDIR:APPLIB:HOMELIB``, ``WSGIProcessGroup``,
  ``WSGIScriptAlias / APPDIR/appNN.wsgi``) and ``appNN.wsgi`` importing 10 of the
  packages it can see;
* ``HOME/bin/reportN.py`` scripts and a crontab file running them with ``pythonX.Y``.

It then times, in one run, over ``--rounds`` interleaved rounds (default 5):

* in a fresh process each round (no cache of an earlier round warm; start-up and imports
  not counted): ``discover`` + ``take_inventory`` ("inventory only"), then
  ``parse_crontab`` + ``plan_account`` ("plan only"), and the two together ("plan incl.
  inventory", what the ``plan`` command does);
* ``concentric-migrate --home HOME --crontab FILE plan --json`` as a subprocess, its
  bytecode cached as an installed tool has it (see bench/inventory.py);
* the naive "just try it" baseline: per app, the real interpreter importing its WSGI
  file's imports under the app's python-path
  (``PYTHONPATH=APPDIR:APPLIB:HOMELIB python -s -c 'import a, b, ...'``), summed.

and prints min / median / max seconds, per-app seconds, the naive/ours ratio, what was
found and whether the targets hold, judged on the medians: the library incl. inventory in
at most 0.5 s and the CLI in at most 1 s (issue 17). When one is missed (or with
``--profile``), the library call is profiled with cProfile in this process, cold as the
CLI runs it, and the hotspots are printed. It exits 1 when a target is missed. The
temporary directory is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# bench/inventory.py (this script's folder is sys.path[0]): same wheels, same pip call,
# same interleaved rounds.
from inventory import (
    BENCH_DIR,
    PY,
    ROUNDS,
    Timing,
    _package,
    _source,
    cli_command,
    cli_env,
    in_fresh_process,
    interleaved,
    pip_install_target,
    run_cli,
    timed,
    write_files,
)

from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.demo import httpd_conf
from migrate.discover.account import discover
from migrate.discover.crontab import Crontab, parse_crontab
from migrate.inventory import take_inventory
from migrate.resolve.plan import Plan, plan_account

TARGET_SECONDS = 0.5
"""The library call incl. the inventory (issue 17)."""
TARGET_CLI_SECONDS = 1.0
"""``plan --json`` by the CLI, start-up included (issue 17)."""
IMPORTS_PER_APP = 10
REPORT_SCRIPTS = 3
PROFILE_TOP = 15


# --- the fake account -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which distributions go where; names only, so the imports can be written too."""

    apps: int
    per_lib: int
    """Distributions installed in each lib dir (account-wide, and each app's)."""

    @property
    def shadowing(self) -> int:
        """Per app: newer copies of account-wide names (a fifth of its lib dir)."""
        return max(1, self.per_lib // 5)

    @property
    def own(self) -> int:
        return self.per_lib - self.shadowing

    @property
    def pool(self) -> int:
        """App-level distributions the apps pick their ``own`` from (overlapping windows)."""
        return self.own * 2

    def app_name(self, n: int) -> str:
        return f"app{n:02d}"

    def shadowed_in(self, n: int) -> list[int]:
        """Account-wide indices app ``n`` has its own (newer) copy of."""
        return sorted({(n * 3 + k * 5) % self.per_lib for k in range(self.shadowing)})

    def own_in(self, n: int) -> list[int]:
        """Pool indices installed in app ``n``: a window of ``own`` consecutive ones."""
        start = (n * 7) % self.pool
        return [(start + j) % self.pool for j in range(self.own)]

    def imports_of(self, n: int) -> list[str]:
        """Top-level names app ``n``'s WSGI file imports: own, shadowing and account-wide."""
        own = self.own_in(n)
        shadowed = self.shadowed_in(n)
        names = [pool_module(own[j * len(own) // 4]) for j in range(4)]
        names += [account_module(i) for i in shadowed[:2]]
        plain = [i for i in range(self.per_lib) if i not in shadowed]
        names += [account_module(plain[(n + j * 7) % len(plain)]) for j in range(4)]
        return list(dict.fromkeys(names))[:IMPORTS_PER_APP]


def account_name(i: int) -> str:
    return f"acct-lib-{i:03d}"


def account_module(i: int) -> str:
    return account_name(i).replace("-", "_")


def pool_name(k: int) -> str:
    return f"app-lib-{k:03d}"


def pool_module(k: int) -> str:
    return pool_name(k).replace("-", "_")


def _files(module: str, version: str, single: bool) -> dict[str, bytes]:
    if single:
        return {f"{module}.py": _source(module, version)}
    files = _package(module, version, ("core", "util"))
    files[f"{module}/sub/__init__.py"] = b""
    files[f"{module}/sub/helpers.py"] = _source(f"{module}.sub.helpers")
    return files


def account_specs(count: int, major: int) -> list[WheelSpec]:
    """The account-wide distributions (``major`` 1); ``major`` 2: the apps' newer copies."""
    specs = []
    for i in range(count):
        version = f"{major}.{i}.0"
        requires: list[str] = []
        if i % 3 == 1:
            requires.append(f"{account_name(i - 1)}>=1.{i - 1}")
        if i % 5 == 2 and i + 1 < count:
            requires.append(f'{account_name(i + 1)}; python_version < "3"')
        if i % 7 == 3:
            requires.append(f"{account_name(i - 3)}[fast]")
        if i % 7 == 0 and i + 2 < count:
            requires.append(f'{account_name(i + 2)}; extra == "fast"')
        specs.append(
            WheelSpec(
                account_name(i),
                version,
                _files(account_module(i), version, single=i % 10 == 9),
                requires=tuple(requires),
                summary=f"Account-wide {i}",
                extra_metadata=(("Provides-Extra", "fast"),) if i % 7 == 0 else (),
            )
        )
    return specs


def pool_specs(count: int, account: int) -> list[WheelSpec]:
    """App-level distributions; some require account-wide ones (some below 2.0)."""
    specs = []
    for k in range(count):
        version = f"0.{k}.0"
        requires: list[str] = []
        if k % 4 == 0:
            requires.append(f"{account_name(k % account)}>=1.0")
        if k % 6 == 1:
            requires.append(f"{account_name((k * 3) % account)}<2")
        if k % 3 == 2:
            requires.append(f"{pool_name(k - 1)}")
        specs.append(
            WheelSpec(
                pool_name(k),
                version,
                _files(pool_module(k), version, single=k % 10 == 9),
                requires=tuple(requires),
                summary=f"App-level {k}",
            )
        )
    return specs


def wsgi_file(imports: Sequence[str]) -> bytes:
    lines = [f"import {name}" for name in imports]
    lines += [
        "",
        "",
        "def application(environ, start_response):",
        "    start_response('200 OK', [('Content-Type', 'text/plain')])",
        f"    return [{imports[0]}.__version__.encode()]",
    ]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class FakeAccount:
    root: Path
    home: Path
    crontab: Path
    apps: tuple[tuple[Path, tuple[str, ...]], ...]
    """(app dir, top-level names its WSGI file imports) per app."""
    python: Path
    """The apps' interpreter (no Apache serves them): a bare install of this Python, named
    with ``--python`` as ``concentric-migrate demo`` does."""


def build_account(root: Path, layout: Layout, jobs: int) -> FakeAccount:
    home = root / "home"
    wheel_dir = root / "wheels"
    account = [build_wheel(s, wheel_dir) for s in account_specs(layout.per_lib, 1)]
    newer = [build_wheel(s, wheel_dir / "newer") for s in account_specs(layout.per_lib, 2)]
    pool = [build_wheel(s, wheel_dir) for s in pool_specs(layout.pool, layout.per_lib)]

    installs: list[tuple[Path, list[Path]]] = [(home / "lib" / f"python{PY}", account)]
    apps = []
    for n in range(1, layout.apps + 1):
        name = layout.app_name(n)
        app = home / "webapps" / name
        wheels = [newer[i] for i in layout.shadowed_in(n)] + [pool[k] for k in layout.own_in(n)]
        installs.append((app / "lib" / f"python{PY}", wheels))
        imports = layout.imports_of(n)
        write_files(app, {
            f"{name}.wsgi": wsgi_file(imports),
            "apache2/conf/httpd.conf": httpd_conf(app, home, name, 18000 + n),
        })  # fmt: skip
        apps.append((app, tuple(imports)))

    def populate(item: tuple[Path, list[Path]]) -> None:
        lib, wheels = item
        lib.mkdir(parents=True)
        pip_install_target(lib, wheels)

    with ThreadPoolExecutor(max_workers=jobs) as pool_executor:
        list(pool_executor.map(populate, installs))

    cron = ['MAILTO=""']
    for r in range(REPORT_SCRIPTS):
        script = home / "bin" / f"report{r}.py"
        names = [account_module((r * 11 + j * 3) % layout.per_lib) for j in range(3)]
        body = f"#!/usr/local/bin/python{PY}\nimport {', '.join(names)}\nprint('ok')\n"
        write_files(script.parent, {script.name: body.encode()})
        script.chmod(0o755)
        cron.append(f"{r * 10} 3 * * * python{PY} {script} > /dev/null 2>&1")
    cron.append(f"*/20 * * * * {home}/webapps/{layout.app_name(1)}/apache2/bin/start")
    crontab = root / "crontab"
    crontab.write_text("\n".join(cron) + "\n", encoding="utf-8")
    venv.EnvBuilder(symlinks=True, with_pip=False, clear=True).create(root / "python")
    return FakeAccount(root, home, crontab, tuple(apps), root / "python" / "bin" / f"python{PY}")


# --- measurements -----------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    apps: int
    """Apps planned (including ``~``, the account's own scripts)."""
    wsgi_apps: int
    packages: int
    """Package rows over all apps (what each app can see or uses)."""
    used: int
    findings: Counter[str]
    min_rows: int
    max_rows: int

    @property
    def finding_total(self) -> int:
        return self.findings.total()


def found_in_plan(plan: Plan) -> Found:
    rows = [len(a.packages) for a in plan.apps if a.name != "~"]
    findings = Counter(f.kind for a in plan.apps for f in a.findings)
    findings.update("account" for _ in plan.findings)
    return Found(
        apps=len(plan.apps),
        wsgi_apps=sum(1 for a in plan.apps if any(e.kind == "wsgi" for e in a.entry_points)),
        packages=sum(len(a.packages) for a in plan.apps),
        used=sum(len(a.used) for a in plan.apps),
        findings=findings,
        min_rows=min(rows, default=0),
        max_rows=max(rows, default=0),
    )


def found_in_json(document: dict) -> Found:
    apps = document["apps"]
    rows = [len(a["packages"]) for a in apps if a["name"] != "~"]
    findings = Counter(f["kind"] for a in apps for f in a["findings"])
    findings.update("account" for _ in document["findings"])
    return Found(
        apps=len(apps),
        wsgi_apps=sum(1 for a in apps if any(e["kind"] == "wsgi" for e in a["entry_points"])),
        packages=sum(len(a["packages"]) for a in apps),
        used=sum(1 for a in apps for p in a["packages"] if p["used"]),
        findings=findings,
        min_rows=min(rows, default=0),
        max_rows=max(rows, default=0),
    )


def read_crontab(path: Path) -> Crontab:
    return parse_crontab(path.read_bytes().decode("utf-8", errors="surrogateescape"))


def full_plan(home: Path, crontab: Path, python: Path) -> Plan:
    """What ``concentric-migrate plan`` does in process: discover, inventory, plan."""
    account = discover(home)
    return plan_account(
        account, take_inventory(account), read_crontab(crontab), interpreters={PY: python}
    )


LIBRARY_RUN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from plan import PY, found_in_plan, read_crontab
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.resolve.plan import plan_account
home, crontab, python = map(Path, sys.argv[1:4])
start = time.perf_counter()
account = discover(home)
inventory = take_inventory(account)
inventoried = time.perf_counter()
plan = plan_account(account, inventory, read_crontab(crontab), interpreters={PY: python})
done = time.perf_counter()
found = found_in_plan(plan)
print(json.dumps({
    "seconds": done - start, "inventory": inventoried - start, "plan": done - inventoried,
    "found": {**vars(found), "findings": dict(found.findings)},
}))
"""


@dataclass(frozen=True)
class Measured:
    library: Timing
    """discover + take_inventory + plan_account, in a fresh process."""
    inventory: Timing
    plan: Timing
    cli: Timing
    naive: Timing
    library_found: Found
    cli_found: Found
    naive_ok: int


def measure(account: FakeAccount, rounds: int) -> Measured:
    """The library (fresh process), the CLI and the naive baseline, interleaved."""
    home, crontab, python = account.home, account.crontab, account.python
    library_args = (str(home), str(crontab), str(python), str(BENCH_DIR))
    command = [
        *cli_command(), "--home", str(home), "--crontab", str(crontab), "plan",
        "--python", f"{PY}={python}", "--json",
    ]  # fmt: skip
    env = cli_env(account.root)
    run_cli(command, env)  # untimed: compiles the bytecode into the cache
    parts: dict[str, list[float]] = {"inventory": [], "plan": []}

    def library() -> tuple[float, Found]:
        seconds, document = in_fresh_process(LIBRARY_RUN, *library_args)
        parts["inventory"].append(document["inventory"])
        parts["plan"].append(document["plan"])
        found = document["found"]
        return seconds, Found(**{**found, "findings": Counter(found["findings"])})

    def cli() -> tuple[float, Found]:
        seconds, stdout = timed(lambda: run_cli(command, env))()
        return seconds, found_in_json(json.loads(stdout))

    done = interleaved(rounds, {"library": library, "cli": cli, "naive": naive_runs(account)})
    return Measured(
        library=done["library"][0],
        inventory=Timing(tuple(parts["inventory"])),
        plan=Timing(tuple(parts["plan"])),
        cli=done["cli"][0],
        naive=done["naive"][0],
        library_found=done["library"][1],
        cli_found=done["cli"][1],
        naive_ok=done["naive"][1],
    )


def naive_runs(account: FakeAccount) -> Callable[[], tuple[float, int]]:
    """One round of the naive baseline: ``pythonX.Y -s -c 'import ...'`` per app under its
    python-path (the interpreter the plan models); (seconds, apps that imported everything)."""
    python = str(account.python)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    home_lib = account.home / "lib" / f"python{PY}"
    jobs = []
    for app, imports in account.apps:
        path = os.pathsep.join(map(str, (app, app / "lib" / f"python{PY}", home_lib)))
        command = [python, "-s", "-c", f"import {', '.join(imports)}"]
        jobs.append((command, {**env, "PYTHONPATH": path}))

    def run() -> int:
        ok = 0
        for command, job_env in jobs:
            done = subprocess.run(command, env=job_env, capture_output=True, check=False)
            ok += done.returncode == 0
        return ok

    return timed(run)


def profile(home: Path, crontab: Path, python: Path) -> str:
    """cProfile of the library call incl. inventory, cold as the CLI runs it (nothing of
    the plan ran in this process before): the top functions by own time, and by cumulative
    time within ``migrate/``."""
    profiler = cProfile.Profile()
    profiler.enable()
    full_plan(home, crontab, python)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]
    out = io.StringIO()
    out.write(f"cProfile of discover + take_inventory + plan_account: {total:.2f} s profiled\n")
    out.write(f"\ntop {PROFILE_TOP} by own time (share of profiled time, calls):\n")
    by_own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    for (file, line, func), (_cc, calls, own, _cum, _callers) in by_own[:PROFILE_TOP]:
        out.write(f"  {own / total:6.1%}  {calls:>9}  {_where(file, line, func)}\n")
    out.write(f"\ntop {PROFILE_TOP} in migrate/ by cumulative time:\n")
    ours = [item for item in entries.items() if f"{os.sep}migrate{os.sep}" in item[0][0]]
    by_cum = sorted(ours, key=lambda item: item[1][3], reverse=True)
    for (file, line, func), (_cc, calls, _own, cum, _callers) in by_cum[:PROFILE_TOP]:
        out.write(f"  {cum / total:6.1%}  {calls:>9}  {_where(file, line, func)}\n")
    return out.getvalue()


def _where(file: str, line: int, func: str) -> str:
    if file == "~":
        return func
    for marker in (f"{os.sep}migrate{os.sep}", f"{os.sep}site-packages{os.sep}"):
        if marker in file:
            file = file[file.index(marker) + len(os.sep) :]
            break
    else:
        if f"{os.sep}lib{os.sep}python" in file:
            file = "stdlib/" + os.path.basename(file)
    return f"{file}:{line} {func}"


# --- report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    timing: Timing
    found: Found | None
    ours: bool
    target: float | None = None
    """Seconds the median must not exceed, if a target applies to this row."""

    @property
    def seconds(self) -> float:
        return self.timing.median


def report(rows: Sequence[Row], *, layout: Layout, naive_ok: int, build_seconds: float) -> bool:
    naive = next(r for r in rows if not r.ours)
    python = sys.version.split()[0]
    print()
    print(
        f"Python {python}, {os.cpu_count()} CPU(s); building the account took {build_seconds:.0f} s"
    )
    print(
        f"{layout.apps} apps x {layout.per_lib * 2} visible distributions "
        f"({layout.per_lib} in ~/lib/python{PY} + {layout.per_lib} in the app's lib dir, "
        f"{layout.shadowing} of them shadowing); {IMPORTS_PER_APP} imports per WSGI file; "
        f"{REPORT_SCRIPTS} cron scripts"
    )
    print()
    width = max(len(r.label) for r in rows)
    print(
        f"{'':<{width}} {'min s':>7} {'median s':>8} {'max s':>7} {'s/app':>7} "
        f"{'naive/ours':>10} {'apps':>5} {'packages':>8} {'used':>5} {'findings':>8}"
    )
    for r in rows:
        ratio = f"{naive.seconds / r.seconds:9.1f}x" if r.ours else f"{'':>10}"
        if r.found is not None:
            counts = (
                f"{r.found.apps:>5} {r.found.packages:>8} {r.found.used:>5} "
                f"{r.found.finding_total:>8}"
            )
        else:
            counts = f"{naive_ok if not r.ours else '':>5}"
        t = r.timing
        print(
            f"{r.label:<{width}} {t.min:7.3f} {t.median:8.3f} {t.max:7.3f} "
            f"{r.seconds / layout.apps:7.4f} {ratio} {counts}"
        )
    print()
    found = next(r.found for r in rows if r.found is not None)
    print(
        f"package rows per app: {found.min_rows}..{found.max_rows}; apps with a WSGI file: "
        f"{found.wsgi_apps}; naive baseline: {naive_ok}/{layout.apps} apps imported everything"
    )
    print(f"findings by kind: {dict(sorted(found.findings.items()))}")
    if any(r.found != found for r in rows if r.found is not None):
        print("warning: the library and the CLI found different things")
    print()
    checks = [
        (f"{r.label}: {layout.apps} apps x {layout.per_lib * 2} visible in "
         f"<= {r.target:g} s (median)", r.seconds <= r.target)
        for r in rows
        if r.target is not None
    ]  # fmt: skip
    checks.append((f"every app planned ({layout.apps} + ~)", found.apps == layout.apps + 1))
    width = max(len(label) for label, _ in checks)
    for label, ok in checks:
        print(f"target  {label:<{width}}  {'yes' if ok else 'NO'}")
    return all(ok for _, ok in checks)


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=50, help="apps (default 50)")
    parser.add_argument(
        "--visible",
        type=int,
        default=100,
        help="distributions each app sees, half account-wide, half its own (default 100)",
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel pip installs while building"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the library call even if the target holds"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary account")
    args = parser.parse_args(argv)
    if args.apps < 1 or args.visible < 20 or args.rounds < 1:
        parser.error("--apps and --rounds must be at least 1 and --visible at least 20")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    layout = Layout(apps=args.apps, per_lib=args.visible // 2)
    root = Path(tempfile.mkdtemp(prefix="concentric-bench-plan-"))
    try:
        print(f"building {layout.apps} apps x {layout.per_lib * 2} visible in {root} ...")
        start = time.perf_counter()
        account = build_account(root, layout, max(1, args.jobs))
        build_seconds = time.perf_counter() - start
        home, crontab = account.home, account.crontab
        print(f"timing ({args.rounds} interleaved rounds) ...")
        python = account.python
        done = measure(account, args.rounds)
        rows = [
            Row("plan_account only (library; account+inventory given)", done.plan,
                done.library_found, ours=True),
            Row("discover + take_inventory only (library)", done.inventory, None, ours=True),
            Row("plan incl. inventory (library: discover+take_inventory+plan_account)",
                done.library, done.library_found, ours=True, target=TARGET_SECONDS),
            Row("concentric-migrate --crontab FILE plan --json (CLI)", done.cli,
                done.cli_found, ours=True, target=TARGET_CLI_SECONDS),
            Row("naive: PYTHONPATH=... python -s -c 'import ...' per app", done.naive,
                None, ours=False),
        ]  # fmt: skip
        naive_ok = done.naive_ok
        ok = report(rows, layout=layout, naive_ok=naive_ok, build_seconds=build_seconds)
        if not ok or args.profile:
            print()
            print(profile(home, crontab, python))
    finally:
        if args.keep:
            print(f"kept {root} (account: {root / 'home'}, crontab: {root / 'crontab'})")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

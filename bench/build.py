"""Benchmark building one venv per app: this tool against uv and the naive way, like for like.

Run it from the project root with the interpreter that has the project installed::

    python bench/build.py                    # 10 apps, 5 interleaved rounds
    python bench/build.py --apps 4 --rounds 3 --naive-rounds 1 --keep
    PATH=/path/to/uv/bin:$PATH python bench/build.py   # uv is compared only when on PATH

It generates, offline, 18 wheels of realistic file counts (a "framework" of 2,000 small
modules that requires the 17 others, of 50-300 files each) and a WebFaction-style account:
``HOME/lib/pythonX.Y`` with the 18 installed by a real ``pip install --target``, and
``HOME/webapps/appNN`` (``httpd.conf`` with the concentric ``python-path``, a WSGI file
importing the framework). Every app uses all 18.

Every approach runs as whole processes, as a user would run it, and makes the **same
contents**: the 18 distributions plus pip in each venv (our venvs keep a pip of their own,
so uv installs the same pip wheel too, and the naive venv gets it from ``ensurepip``):

* ``run``: ``concentric-migrate run --no-restart --yes`` — the whole migration (inventory,
  plan, requirements, repack, store, venvs, rewrites, verify), bytecode compiled;
* ``build``: ``concentric-migrate build`` — the venvs alone, with and without bytecode;
* ``plan``: ``concentric-migrate plan --json`` — what ``build`` does before its first venv
  (start-up, inventory, plan), timed alone, to tell the venvs' share of a build;
* ``uv``: ``uv venv`` + ``uv pip install --offline --link-mode hardlink`` per app, with and
  without ``--compile-bytecode`` (link mode named: uv's default differs by platform);
* ``naive``: ``python -m venv`` + ``pip install --no-index -r requirements.txt`` per app.

Cold: no store or wheelhouse of ours, an empty uv cache. Warm: our state folder (wheelhouse,
store) and uv's cache kept from a run before; only the venvs are gone. The page cache is
warm on both sides. Each round runs every approach once, in turn, on a fresh copy of the
account (copied outside the timing, then ``sync``: the writes and deletions of the step
before, a naive round's 650 MB say, are not left for the next one to wait on); the rounds
interleave so that the machine's drift hits every approach alike. It prints min, median
and max seconds, the peak memory (max RSS) of our commands, disk (``du`` over all venvs
together, plus our store or uv's cache, which their files are hardlinked from: a
hardlinked file counts once), and the issue-17 targets against the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migrate.build.venv import embedded_pip
from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.demo import httpd_conf

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
ENV = {
    **os.environ,
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "UV_NO_CONFIG": "1",
    "UV_PYTHON_DOWNLOADS": "never",
}
SIZES = (2000, 300, 300, 300, 250, 250, 250, 200, 200, 200, 150, 150, 150, 100, 100, 80, 60, 50)
TOOL = [str(Path(sys.executable).with_name("concentric-migrate"))]


def module_text(package: str, number: int) -> bytes:
    """A plausible module of about 1.5 kB: a class, functions, constants."""
    body = [f'"""Module {number} of {package}."""', "", "import os", "import re", ""]
    body += [f"CONSTANT_{i} = {i * number}" for i in range(8)]
    body += ["", f"class Thing{number}:", '    """A thing."""', ""]
    for i in range(6):
        body += [
            f"    def method_{i}(self, value):",
            f"        return re.sub('a', 'b', os.fspath(str(value))) * {i + 1}",
            "",
        ]
    return ("\n".join(body) + "\n").encode()


def make_wheels(out: Path) -> list[Path]:
    """18 pure wheels; the framework (``pkg00``) requires the others."""
    made = []
    names = [f"pkg{i:02d}" for i in range(len(SIZES))]
    for index, (name, count) in enumerate(zip(names, SIZES, strict=True)):
        files: dict[str, bytes] = {}
        for number in range(count - 1):
            folder = f"{name}/sub{number // 40:02d}"
            files.setdefault(f"{folder}/__init__.py", b"")
            files[f"{folder}/mod{number:04d}.py"] = module_text(name, number)
        files[f"{name}/__init__.py"] = b'__version__ = "1.0"\n\ndef main():\n    print("ok")\n'
        files[f"{name}-1.0.dist-info/entry_points.txt"] = (
            f"[console_scripts]\n{name}-run = {name}:main\n".encode()
        )
        requires = tuple(f"{other}==1.0" for other in names[1:]) if index == 0 else ()
        made.append(build_wheel(WheelSpec(name, "1.0", files, requires=requires), out))
    return made


def sh(*command: str | Path, env: dict[str, str] = ENV) -> int:
    """Run one whole process; its peak RSS in KiB (``wait4``'s, children it reaped included)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [str(c) for c in command], env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            said = errors.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(map(str, command))} failed:\n{said}")
    return usage.ru_maxrss


def du_k(paths: list[Path]) -> int:
    done = subprocess.run(
        ["du", "-sck", *map(str, paths)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1].split()[0])


@dataclass
class Bench:
    root: Path
    apps: int
    wheels_dir: Path
    requirements: Path
    python: Path
    pristine: Path
    """The account as it was before any migration; each round copies it."""

    def account(self, name: str) -> Path:
        """A fresh copy of the pristine account (not timed)."""
        home = self.root / "homes" / name
        if home.exists():
            shutil.rmtree(home)
        subprocess.run(["cp", "-a", str(self.pristine), str(home)], check=True)
        return home


def build_bench(root: Path, apps: int) -> Bench:
    wheels_dir = root / "wheels"
    wheels = make_wheels(wheels_dir)
    pip_wheel = embedded_pip(PY)
    assert pip_wheel is not None, "virtualenv bundles no pip for this Python"
    shutil.copy2(pip_wheel[0], wheels_dir)
    pip_version = pip_wheel[0].name.split("-")[1]
    requirements = root / "requirements.txt"
    lines = [f"pkg{i:02d}==1.0\n" for i in range(len(SIZES))] + [f"pip=={pip_version}\n"]
    requirements.write_text("".join(lines))
    python_home = root / "python"
    venv.EnvBuilder(symlinks=True, with_pip=False).create(python_home)
    python = python_home / "bin" / f"python{PY}"
    home = root / "pristine"
    lib = home / "lib" / f"python{PY}"
    lib.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--target",
            str(lib),
            *map(str, wheels),
        ],
        check=True,
        env=ENV,
    )
    for n in range(apps):
        name = f"app{n:02d}"
        app = home / "webapps" / name
        (app / "apache2" / "conf").mkdir(parents=True)
        (app / "lib" / f"python{PY}").mkdir(parents=True)
        conf = httpd_conf(app, home, name, 18000 + n)
        (app / "apache2" / "conf" / "httpd.conf").write_bytes(conf)
        (app / f"{name}.wsgi").write_text(
            "import pkg00\n\ndef application(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            "    return [pkg00.__version__.encode()]\n"
        )
    (root / "homes").mkdir()
    (root / "crontab").write_text("")
    return Bench(root, apps, wheels_dir, requirements, python, home)


@dataclass
class Approach:
    label: str
    prepare: Callable[[Bench, str], Path]
    """Make the round's starting state (not timed); returns the folder measured for disk."""
    act: Callable[[Bench, Path], int]
    """The timed whole processes; returns the peak RSS (KiB) of the largest."""
    group: str = ""
    seconds: list[float] = field(default_factory=list)
    peak_kib: int = 0
    disk_kib: int = 0


def ours(command: tuple[str, ...], *, warm: bool) -> tuple[Callable, Callable]:
    def tool(bench: Bench, home: Path, *args: str) -> int:
        return sh(*TOOL, "--home", home, "--crontab", bench.root / "crontab", "-q", *args)

    def prepare(bench: Bench, label: str) -> Path:
        home = bench.account(label)
        if warm:  # the wheelhouse and store of a run before; no venv yet
            tool(bench, home, *command, "--python", f"{PY}={bench.python}")
            tool(bench, home, "rollback")
        return home

    def act(bench: Bench, home: Path) -> int:
        return tool(bench, home, *command, "--python", f"{PY}={bench.python}")

    return prepare, act


def external(kind: str, *options: str, warm: bool) -> tuple[Callable, Callable]:
    def prepare(bench: Bench, label: str) -> Path:
        where = bench.root / "external" / re.sub(r"[^A-Za-z0-9.-]+", "_", label)
        cache = where.with_name(where.name + "-cache")
        if where.exists():
            shutil.rmtree(where)
        if cache.exists() and not warm:
            shutil.rmtree(cache)
        where.mkdir(parents=True)
        if warm and not cache.exists():
            make_venvs(bench, kind, where / "warm-up", cache, options)
            shutil.rmtree(where / "warm-up")
        return where

    def act(bench: Bench, where: Path) -> int:
        cache = where.with_name(where.name + "-cache")
        return make_venvs(bench, kind, where, cache, options)

    return prepare, act


def make_venvs(bench: Bench, kind: str, where: Path, cache: Path, options: tuple) -> int:
    peak = 0
    for n in range(bench.apps):
        env_dir = where / f"app{n:02d}"
        if kind == "uv":
            uv = shutil.which("uv")
            sh(uv, "venv", "--quiet", "--python", bench.python, env_dir)
            peak = sh(
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                env_dir / "bin" / "python",
                "--offline",
                "--no-index",
                "--find-links",
                bench.wheels_dir,
                "--cache-dir",
                cache,
                "--link-mode",
                "hardlink",
                *options,
                "-r",
                bench.requirements,
            )
        else:
            sh(bench.python, "-m", "venv", env_dir)
            peak = sh(
                env_dir / "bin" / "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                bench.wheels_dir,
                "-r",
                bench.requirements,
            )
    return peak


PLAN_LABEL = "concentric-migrate plan --json (no venv)"
"""What ``build`` does before its first venv (start-up, inventory, plan), timed alone (it
also writes the plan's JSON, which a build does not: a little more than a build's share)."""


def approaches(uv: bool, naive: bool) -> list[Approach]:
    run = ("run", "--no-restart", "--yes")
    made = [
        Approach("concentric-migrate run --no-restart, cold", *ours(run, warm=False), "run"),
        Approach("concentric-migrate build, cold", *ours(("build",), warm=False), "b-cold"),
        Approach(
            "concentric-migrate build --no-bytecode, cold",
            *ours(("build", "--no-bytecode"), warm=False),
            "nb-cold",
        ),
        Approach(
            "concentric-migrate build --no-bytecode, warm",
            *ours(("build", "--no-bytecode"), warm=True),
            "nb-warm",
        ),
        Approach(
            "  the same, -j 2 (two apps staged at once)",
            *ours(("build", "--no-bytecode", "-j", "2"), warm=True),
            "nb-warm",
        ),
        Approach(PLAN_LABEL, *ours(("plan", "--json"), warm=False), "plan"),
    ]
    if uv:
        made += [
            Approach(
                "uv --compile-bytecode, cold",
                *external("uv", "--compile-bytecode", warm=False),
                "b-cold",
            ),
            Approach("uv, cold", *external("uv", warm=False), "nb-cold"),
            Approach("uv, warm", *external("uv", warm=True), "nb-warm"),
        ]
    if naive:
        made.append(
            Approach(
                "naive: python -m venv + pip install -r", *external("naive", warm=False), "naive"
            )
        )
    return made


def disk_of(bench: Bench, approach: Approach, where: Path) -> int:
    if approach.label == PLAN_LABEL:
        return 0
    if approach.label.startswith(("concentric", "  the same")):
        venvs = [where / "webapps" / f"app{n:02d}" / "venv" for n in range(bench.apps)]
        return du_k([*venvs, where / ".concentric-migrate" / "store"])
    cache = where.with_name(where.name + "-cache")  # uv's venvs link into its cache
    return du_k([where, cache] if cache.exists() else [where])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--naive-rounds", type=int, default=1, help="rounds of the naive way (0: none)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    uv = shutil.which("uv")
    root = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        bench = build_bench(root, args.apps)
        files = sum(1 for _ in (bench.pristine / "lib").rglob("*") if _.is_file())
        version = ""
        if uv:
            version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout
        uv_said = version.strip() or "uv not on PATH"
        print(
            f"Python {PY}, {os.cpu_count()} CPU(s); {args.apps} apps, each 18 wheels + pip "
            f"({files} files installed in ~/lib); {uv_said}"
        )
        chosen = approaches(bool(uv), args.naive_rounds > 0)
        for number in range(args.rounds):
            for approach in chosen:
                if approach.group == "naive" and number >= args.naive_rounds:
                    continue
                where = approach.prepare(bench, approach.label)
                os.sync()  # what the step before wrote or deleted is on disk, not on this one
                start = time.perf_counter()
                peak = approach.act(bench, where)
                approach.seconds.append(time.perf_counter() - start)
                approach.peak_kib = max(approach.peak_kib, peak)
                approach.disk_kib = disk_of(bench, approach, where)
                print(f"  {approach.label}: {approach.seconds[-1]:.2f} s", file=sys.stderr)
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        report(chosen, args.apps)
        return 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def report(chosen: list[Approach], apps: int) -> None:
    print(f"\n{'':48} {'min s':>7} {'median':>7} {'max s':>7} {'disk MB':>8}")
    for a in chosen:
        print(
            f"{a.label:48} {min(a.seconds):7.2f} {statistics.median(a.seconds):7.2f} "
            f"{max(a.seconds):7.2f} {a.disk_kib / 1024:8.1f}"
        )
    medians = {a.label: statistics.median(a.seconds) for a in chosen}
    disks = {a.label: a.disk_kib for a in chosen}
    ours_peak = max(a.peak_kib for a in chosen if a.label.startswith(("concentric", "  the")))
    print(
        f"\npeak memory (max RSS) of a command of ours: {ours_peak / 1024:.0f} MB "
        f"(target <= 100 MB: {'met' if ours_peak <= 100 * 1024 else 'MISSED'})"
    )

    def target(what: str, mine: str, theirs: str, limit: float, more: bool = False) -> None:
        if mine not in medians or theirs not in medians:
            return
        ratio = medians[theirs] / medians[mine] if more else medians[mine] / medians[theirs]
        met = ratio >= limit if more else ratio <= limit
        sign = ">=" if more else "<="
        print(f"{what}: {ratio:.2f}x (target {sign} {limit}x: {'met' if met else 'MISSED'})")

    run = "concentric-migrate run --no-restart, cold"
    target(
        "whole run, bytecode, cold / uv --compile-bytecode venvs alone",
        run,
        "uv --compile-bytecode, cold",
        0.4,
    )
    target("naive / whole run", run, "naive: python -m venv + pip install -r", 15, more=True)
    target(
        "build, bytecode, cold / uv --compile-bytecode",
        "concentric-migrate build, cold",
        "uv --compile-bytecode, cold",
        1.0,
    )
    target(
        "build --no-bytecode, cold / uv, cold",
        "concentric-migrate build --no-bytecode, cold",
        "uv, cold",
        1.0,
    )
    target(
        "build --no-bytecode, warm / uv, warm",
        "concentric-migrate build --no-bytecode, warm",
        "uv, warm",
        1.0,
    )
    lean, uv_lean = "concentric-migrate build --no-bytecode, warm", "uv, warm"
    if lean in medians and uv_lean in medians:
        venvs = medians[lean] - medians[PLAN_LABEL]
        print(
            f"build --no-bytecode, warm, less what it does before any venv (plan --json "
            f"{medians[PLAN_LABEL]:.2f} s): {venvs:.2f} s for the venvs / uv, warm: "
            f"{venvs / medians[uv_lean]:.2f}x"
        )
    if lean in disks and uv_lean in disks:
        ratio = disks[lean] / disks[uv_lean]
        print(
            f"disk, no bytecode, same contents / uv: {ratio:.2f}x "
            f"(target <= 1.0x: {'met' if ratio <= 1.0 else 'MISSED'})"
        )
    print(f"({apps} apps; ratios of medians)")


if __name__ == "__main__":
    sys.exit(main())

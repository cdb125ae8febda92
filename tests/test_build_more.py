"""``concentric-migrate build`` as a user runs it (the CLI, in a subprocess), on real accounts.

- ``--jobs 2`` builds exactly what a sequential build builds, and rolls back the same;
- a failure with ``--jobs 2`` leaves nothing: no venv, no staging folder, the home as it was;
- every legacy install kind (egg-info dirs with and without installed-files.txt, the
  distutils egg-info file, ``-nspkg.pth`` namespaces, egg dirs and zipped eggs behind
  easy-install.pth), made by the real setuptools of the tool's own Python, builds into a
  venv that imports all of it with the old lib dirs gone;
- a build SIGKILLed from outside at any moment is undone by ``rollback``, and a new build
  after it succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import legacy
import pytest
from accounts import PY, install_wheels, module, write_files
from journal_helper import snapshot

from migrate.build.wheelfile import WheelSpec
from migrate.layout import STATE_DIR

APPS = ("alpha", "beta", "delta", "gamma")
CLI_TIMEOUT = 300


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as test_cli.py runs it: ``python -m migrate --home HOME ...``."""
    return subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=cli_env(), check=False,
    )  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (
        f"{done.args}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


def venvs(home: Path) -> list[Path]:
    return sorted(p for p in (*home.glob("webapps/*/venv"), home / ".venvs") if os.path.lexists(p))


def staging_leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / STATE_DIR).glob("tmp-*"))


def transactions(home: Path) -> list[dict[str, object]]:
    return json.loads(ok(cli(home, "journal", "--json")).stdout)["transactions"]


def verified(home: Path) -> dict[str, object]:
    done = cli(home, "verify", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report
    return report


def copy_account(template: Path, dest: Path) -> Path:
    """A byte-identical copy (modes, mtimes, symlinks) at another path."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


# --------------------------------------------------------------------------- the account

COMMON_1 = WheelSpec(
    "common",
    "1.0",
    {"common/__init__.py": module("1.0"), "common/data.txt": b"shared data\n"},
)
COMMON_09 = WheelSpec("common", "0.9", {"common/__init__.py": module("0.9", "OLD = True\n")})
UTIL = WheelSpec("util", "2.0", {"util.py": module("2.0", "import common\n")}, requires=("common",))
ALPHAKIT = WheelSpec(
    "alphakit",
    "1.0",
    {"alphakit/__init__.py": module("1.0", "import util\n")},
    requires=("util>=2",),
)
GAMMAPKG = WheelSpec(
    "gammapkg",
    "3.0",
    {
        "gammapkg/__init__.py": module("3.0", "\ndef main():\n    print('gamma')\n"),
        "gammapkg/sub/__init__.py": b"",
        "gammapkg/sub/deep.py": b"VALUE = 42\n",
        "gammapkg-3.0.dist-info/entry_points.txt": b"[console_scripts]\ngamma = gammapkg:main\n",
    },
)


def wsgi(*imports: str) -> str:
    """A WSGI file that imports ``imports`` and names no absolute path (so a copy works)."""
    return textwrap.dedent(f"""\
        import {", ".join(imports)}


        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        """)


def build_account(home: Path, wheels: Path) -> None:
    """Four apps over an account-wide lib: shared packages, app-only ones, a shadowing copy.

    alpha: its own alphakit (needs util, which needs common) plus common from ~/lib;
    beta: its own common 0.9, shadowing ~/lib's 1.0; gamma: its own gammapkg (a console
    script, a subpackage) and util; delta: an empty lib dir, util and common from ~/lib.
    """
    lib = f"lib/python{PY}"
    install_wheels(home / lib, [COMMON_1, UTIL], wheels)
    install_wheels(home / "webapps/alpha" / lib, [ALPHAKIT], wheels)
    install_wheels(home / "webapps/beta" / lib, [COMMON_09], wheels)
    install_wheels(home / "webapps/gamma" / lib, [GAMMAPKG], wheels)
    (home / "webapps/delta" / lib).mkdir(parents=True)  # as the app installer made it: empty
    write_files(home / "webapps", {
        "alpha/alpha.wsgi": wsgi("alphakit", "common"),
        "beta/beta.wsgi": wsgi("common"),
        "gamma/gamma.wsgi": wsgi("gammapkg.sub.deep", "util"),
        "delta/delta.wsgi": wsgi("util"),
        "static/index.html": "<h1>no python here</h1>\n",
    })  # fmt: skip
    os.chmod(home / "webapps/beta/beta.wsgi", 0o640)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template")
    build_account(root / "home", root / "wheels")
    return root / "home"


def pinned(document: dict[str, object]) -> set[tuple[str, str, str, str]]:
    return {
        (app["app"], pin["name"], pin["version"], pin["sha256"])
        for app in document["apps"]  # type: ignore[attr-defined]
        for pin in app["pins"]
    }


def venv_tree(venv: Path) -> dict[str, str | None]:
    """Every file of a venv by relative path; the sha256 of the package sources (the rest
    names the venv's own path: scripts, bytecode, RECORD, pyvenv.cfg)."""
    tree: dict[str, str | None] = {}
    for path in venv.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(venv).as_posix()
        source = "/site-packages/" in rel and path.suffix in (".py", ".txt") and "RECORD" not in rel
        tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if source else None
    return tree


# --------------------------------------------------------------------------- 1. --jobs 2


def test_jobs_2_builds_what_a_sequential_build_builds_and_rolls_back(
    template: Path, tmp_path: Path
) -> None:
    parallel = copy_account(template, tmp_path / "parallel")
    sequential = copy_account(template, tmp_path / "sequential")
    before = snapshot(parallel)
    assert snapshot(sequential) == before

    par = ok(cli(parallel, "build", "--jobs", "2", "--json"))
    seq = ok(cli(sequential, "build", "--json"))
    par_doc, seq_doc = json.loads(par.stdout), json.loads(seq.stdout)

    # Installed in the apps' order either way, the same pins from the same wheel bytes.
    assert [a["app"] for a in par_doc["apps"]] == [a["app"] for a in seq_doc["apps"]] == list(APPS)
    assert pinned(par_doc) == pinned(seq_doc)
    pins = {(app, name): version for app, name, version, _ in pinned(par_doc)}
    assert pins == {
        ("alpha", "alphakit"): "1.0", ("alpha", "util"): "2.0", ("alpha", "common"): "1.0",
        ("beta", "common"): "0.9",
        ("gamma", "gammapkg"): "3.0", ("gamma", "util"): "2.0", ("gamma", "common"): "1.0",
        ("delta", "util"): "2.0", ("delta", "common"): "1.0",
    }  # fmt: skip
    shared = {sha for app, name, _, sha in pinned(par_doc) if name == "util"}
    assert len(shared) == 1, "one wheel for util, whichever worker repacked it first"

    for home in (parallel, sequential):
        assert [p.relative_to(home).as_posix() for p in venvs(home)] == [
            f"webapps/{app}/venv" for app in APPS
        ]
        assert staging_leftovers(home) == []
        assert [t["state"] for t in transactions(home)] == ["committed"]
        report = verified(home)
        assert {a["app"] for a in report["apps"]} == set(APPS)  # type: ignore[union-attr]
    for app in APPS:
        assert venv_tree(parallel / "webapps" / app / "venv") == venv_tree(
            sequential / "webapps" / app / "venv"
        ), app
    gamma = parallel / "webapps/gamma/venv/bin/gamma"
    assert subprocess.run([gamma], capture_output=True, text=True).stdout == "gamma\n"

    for home in (parallel, sequential):
        undone = ok(cli(home, "rollback"))
        assert "rolled back" in undone.stdout
        assert venvs(home) == []
        assert snapshot(home) == before


# --------------------------------------------------------------------------- 2. failure


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_failure_while_apps_are_staged_at_once_leaves_nothing(tmp_path: Path, jobs: str) -> None:
    """The failing app sits between two good ones: whatever the workers (processes with
    ``--jobs 2``, threads of the command without) staged is removed, whatever was renamed
    in is rolled back, and the home is as it was."""
    home = tmp_path / "home"
    lib = f"lib/python{PY}"
    needy = WheelSpec(
        "needy", "2.0", {"needy/__init__.py": module("2.0")}, requires=("absent-dep>=1",)
    )
    install_wheels(home / lib, [COMMON_1, UTIL], tmp_path / "wheels")
    install_wheels(home / "webapps/b_needy" / lib, [needy], tmp_path / "wheels")
    install_wheels(home / "webapps/c_last" / lib, [GAMMAPKG], tmp_path / "wheels")
    (home / "webapps/a_first" / lib).mkdir(parents=True)
    write_files(home / "webapps", {
        "a_first/first.wsgi": wsgi("util"),
        "b_needy/needy.wsgi": wsgi("needy", "common"),
        "c_last/last.wsgi": wsgi("gammapkg", "util"),
    })  # fmt: skip
    before = snapshot(home)

    failed = cli(home, "build", "--jobs", jobs)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    assert "b_needy" in failed.stderr and "absent-dep" in failed.stderr, failed.stderr
    assert "needy 2.0 requires absent-dep" in failed.stderr
    assert "The venvs built so far were rolled back." in failed.stderr
    assert venvs(home) == []
    assert staging_leftovers(home) == []
    assert snapshot(home) == before
    assert [t["state"] for t in transactions(home)] == ["rolled-back"]
    again = ok(cli(home, "rollback"))
    assert "already rolled back" in again.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_distribution_that_cannot_be_packed_stops_the_build_and_leaves_nothing(
    tmp_path: Path, jobs: str
) -> None:
    """The last app's distribution cannot be packed (its metadata names no valid project):
    the build says which and why, in one line, and leaves no venv, no staging folder, the
    home as it was."""
    home = tmp_path / "home"
    lib = f"lib/python{PY}"
    install_wheels(home / lib, [COMMON_1, UTIL], tmp_path / "wheels")
    badly = WheelSpec("badly", "1.0", {"badly/__init__.py": module("1.0")})
    install_wheels(home / "webapps/c_last" / lib, [badly], tmp_path / "wheels")
    (metadata,) = (home / "webapps/c_last" / lib).glob("badly-1.0.dist-info/METADATA")
    metadata.write_text(metadata.read_text().replace("Name: badly", "Name: badly named!"))
    write_files(home / "webapps", {
        "a_first/first.wsgi": wsgi("util"),
        "b_second/second.wsgi": wsgi("common"),
        "c_last/last.wsgi": wsgi("badly", "util"),
    })  # fmt: skip
    for app in ("a_first", "b_second"):
        (home / "webapps" / app / lib).mkdir(parents=True)
    before = snapshot(home)

    failed = cli(home, "build", "--jobs", jobs)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    [said] = [line for line in failed.stderr.splitlines() if "not a valid project name" in line]
    assert "badly named!" in said and "c_last" in said, failed.stderr
    assert venvs(home) == []
    assert staging_leftovers(home) == []
    assert snapshot(home) == before


# --------------------------------------------------------------------------- 3. legacy kinds

LEGACY_IMPORTS = {
    # module: (distribution, version, how it was installed)
    "tinypipold": ("tiny-pipold", "4.0", "egg-info dir + installed-files.txt (old pip)"),
    "tinysvem": ("tiny-svem", "3.1", "egg-info dir, no installed-files.txt (svem)"),
    "tinydistutils": ("tinydistutils", "0.1", "egg-info file (distutils)"),
    "acme.one": ("acme.one", "1.0", "namespace portion, -nspkg.pth"),
    "acme.two": ("acme.two", "1.0", "namespace portion, -nspkg.pth"),
    "eggdir": ("tiny-eggdir", "1.5", "egg directory, easy-install.pth"),
    "eggzipped": ("tiny-eggzipped", "1.5", "zipped egg, easy-install.pth"),
}
NAMESPACE = ("acme.one", "acme.two")


def setuptools_python() -> Path | None:
    """The tool's own ``pythonX.Y`` if it has setuptools (legacy.py's tools need the name),
    else another ``pythonX.Y`` of the same version that does."""
    sibling = Path(sys.executable).with_name(f"python{PY}")
    if sibling.exists() and legacy._runs_as(sibling, PY):
        return sibling
    return legacy.find_interpreter(PY)


def has_stdlib_distutils(python: Path) -> bool:
    done = subprocess.run(
        [str(python), "-c", "import distutils.core"], capture_output=True, check=False,
        env=legacy.clean_env(SETUPTOOLS_USE_DISTUTILS="stdlib"),
    )  # fmt: skip
    return done.returncode == 0


def write_installed_files(record: Path) -> Path:
    """What pip (< 20.2, legacy ``setup.py install``) wrote after running setup.py with
    ``--record``: each recorded path relative to the egg-info dir, sorted."""
    lines = record.read_text().splitlines()
    egg_info = next(os.path.dirname(line) for line in lines if line.endswith(".egg-info/PKG-INFO"))
    rows = sorted(
        os.path.relpath(line + (os.sep if os.path.isdir(line) else ""), egg_info) for line in lines
    )
    target = Path(egg_info) / "installed-files.txt"
    target.write_text("\n".join(rows) + "\n")
    return target


def easy_install(python: Path, project: Path, lib: Path, home: Path, *, zipped: bool) -> Path:
    """``setup.py bdist_egg`` then setuptools' own ``easy_install`` command, as
    ``legacy.easy_install_egg`` runs it on the old interpreters."""
    egg = legacy.build_egg(python, project)
    legacy.run(
        [python, "setup.py", "-q", "easy_install", "--install-dir", lib, "--no-deps",
         "--zip-ok" if zipped else "--always-unzip", egg],
        cwd=project, env=legacy._installer_env(lib, home),
    )  # fmt: skip
    installed = lib / egg.name
    assert installed.is_file() == zipped and installed.exists(), installed
    return installed


def build_legacy_account(python: Path, home: Path, work: Path) -> Path:
    """App ``old`` whose lib dir the real setuptools filled, one install of each kind."""
    lib = home / "webapps" / "old" / "lib" / f"python{PY}"
    lib.mkdir(parents=True)
    # (a) the old pip's legacy install: svem + --record, then its installed-files.txt
    pipold = legacy.write_project(work / "pipold", "tiny-pipold", "4.0", "tinypipold")
    egg_info = legacy.setup_install(python, pipold, lib, record=work / "pipold.txt", home=home)
    write_installed_files(work / "pipold.txt")
    assert (egg_info / "installed-files.txt").is_file()
    # (b) setup.py install --single-version-externally-managed: SOURCES.txt, top_level.txt
    svem = legacy.write_project(
        work / "svem", "tiny-svem", "3.1", "tinysvem", install_requires=("tiny-pipold>=4",)
    )
    egg_info = legacy.setup_install(python, svem, lib, record=work / "svem.txt", home=home)
    assert not (egg_info / "installed-files.txt").exists() and (egg_info / "SOURCES.txt").exists()
    # (c) distutils' single-file NAME-VER-pyX.Y.egg-info
    plain = legacy.write_project(
        work / "distutils", "tinydistutils", "0.1", "tinydistutils", use_distutils=True
    )
    if has_stdlib_distutils(python):
        legacy.run(
            [python, "setup.py", "-q", "install", "--install-lib", lib, "--record",
             work / "distutils.txt"],
            cwd=plain, env=legacy.clean_env(home, SETUPTOOLS_USE_DISTUTILS="stdlib"),
        )  # fmt: skip
    else:  # Python 3.12 dropped distutils: lay out what its install_egg_info wrote
        shutil.copy2(plain / "tinydistutils.py", lib / "tinydistutils.py")
        fields = ("Summary", "Home-page", "Author", "Author-email", "License", "Description")
        (lib / f"tinydistutils-0.1-py{PY}.egg-info").write_text(
            "Metadata-Version: 1.0\nName: tinydistutils\nVersion: 0.1\n"
            + "".join(f"{field}: UNKNOWN\n" for field in (*fields, "Platform"))
        )
    assert (lib / f"tinydistutils-0.1-py{PY}.egg-info").is_file()
    # (d) two portions of the pkg_resources-style namespace acme, as svem installs them
    for name in NAMESPACE:
        project = legacy.write_project(work / name, name, "1.0", name, namespace="acme")
        legacy.setup_install(python, project, lib, record=work / f"{name}.txt", home=home)
    assert not (lib / "acme" / "__init__.py").exists()
    nspkg = sorted(p.name for p in lib.glob("*-nspkg.pth"))
    assert nspkg == [f"acme.one-1.0-py{PY}-nspkg.pth", f"acme.two-1.0-py{PY}-nspkg.pth"]
    assert "sys._getframe(1).f_locals['sitedir']" in (lib / nspkg[0]).read_text()
    # (e) an egg directory and a zipped egg, behind easy-install.pth's sys.__plen wrapper
    eggdir = legacy.write_project(work / "eggdir", "tiny-eggdir", "1.5", "eggdir", zip_safe=False)
    easy_install(python, eggdir, lib, home, zipped=False)
    eggzipped = legacy.write_project(
        work / "eggzipped", "tiny-eggzipped", "1.5", "eggzipped",
        install_requires=("tiny-svem>=3",), zip_safe=True,
    )  # fmt: skip
    easy_install(python, eggzipped, lib, home, zipped=True)
    assert "sys.__plen" in (lib / "easy-install.pth").read_text()

    wsgi_file = home / "webapps" / "old" / "old.wsgi"
    wsgi_file.write_text(wsgi(*LEGACY_IMPORTS))
    return wsgi_file


@dataclass(frozen=True)
class LegacyBuilt:
    home: Path
    wsgi: Path
    before: dict[str, tuple[object, ...]]
    plan: dict[str, dict[str, object]]
    build: subprocess.CompletedProcess[str]
    venv: Path


@pytest.fixture(scope="module")
def legacy_built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LegacyBuilt]:
    python = setuptools_python()
    if python is None:
        pytest.skip(f"no python{PY} with setuptools: the legacy installs need the real setuptools")
    root = tmp_path_factory.mktemp("legacy-kinds")
    home = root / "home"
    wsgi_file = build_legacy_account(python, home, root / "work")
    before = snapshot(home)
    plan = json.loads(ok(cli(home, "plan", "--json")).stdout)
    (app,) = plan["apps"]
    packages = {p["name"]: p for p in app["packages"]}
    build = cli(home, "build")
    yield LegacyBuilt(home, wsgi_file, before, packages, build, home / "webapps/old/venv")


def import_in_venv(
    built: LegacyBuilt, modules: tuple[str, ...], *, load_wsgi: bool = False
) -> dict[str, object]:
    """Import ``modules`` (after loading the app's WSGI file, with ``load_wsgi``) in the
    venv's python, isolated, from an empty folder, with every lib dir of the account renamed
    away: where each module came from and its ``__version__``."""
    moved = [lib for lib in (built.home / "lib", *built.home.glob("webapps/*/lib")) if lib.is_dir()]
    for lib in moved:
        lib.rename(lib.with_name("lib.away"))
    script = textwrap.dedent("""\
        import json, runpy, sys
        if sys.argv[1]:
            runpy.run_path(sys.argv[1])
        found = {}
        for name in sys.argv[2:]:
            try:
                module = __import__(name, fromlist=["_"])
                found[name] = [module.__file__, getattr(module, "__version__", None)]
            except BaseException as exc:
                found[name] = repr(exc)
        print(json.dumps(found))
        """)
    empty = built.home.parent / "empty"
    empty.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            [str(built.venv / "bin" / "python"), "-I", "-c", script,
             str(built.wsgi) if load_wsgi else "", *modules],
            capture_output=True, text=True, cwd=empty, check=False, timeout=60,
        )  # fmt: skip
    finally:
        for lib in moved:
            lib.with_name("lib.away").rename(lib)
    if done.returncode != 0:
        return {"<wsgi>": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def test_legacy_kinds_build_verify_and_stand_alone(legacy_built: LegacyBuilt) -> None:
    ok(legacy_built.build)
    assert staging_leftovers(legacy_built.home) == []
    used = {name for name, row in legacy_built.plan.items() if row["used"]}
    kinds = {row["name"]: row["kind"] for row in legacy_built.plan.values()}
    plain = {m: d for m, d in LEGACY_IMPORTS.items() if m not in NAMESPACE}
    assert {dist for dist, _, _ in plain.values()} <= used, kinds
    assert kinds["tiny-eggzipped"] == kinds["tiny-eggdir"] == "egg"
    verified(legacy_built.home)

    found = import_in_venv(legacy_built, tuple(plain))
    site = legacy_built.venv / "lib" / f"python{PY}" / "site-packages"
    for name, (_, version, how) in plain.items():
        assert isinstance(found.get(name), list), (name, how, found)
        file, module_version = found[name]  # type: ignore[misc]
        assert Path(file).is_relative_to(site), (name, how, file)
        assert module_version == version, (name, how)


def test_namespace_portions_made_by_nspkg_pth_are_used_and_built(
    legacy_built: LegacyBuilt,
) -> None:
    ok(legacy_built.build)
    used = {name for name, row in legacy_built.plan.items() if row["used"]}
    assert {"acme-one", "acme-two"} <= used, legacy_built.plan
    found = import_in_venv(legacy_built, NAMESPACE, load_wsgi=True)
    site = legacy_built.venv / "lib" / f"python{PY}" / "site-packages"
    for name in NAMESPACE:
        assert isinstance(found.get(name), list), (name, found)
        assert Path(found[name][0]).is_relative_to(site)  # type: ignore[index]


def test_legacy_kinds_roll_back_byte_for_byte(legacy_built: LegacyBuilt) -> None:
    """Last of the legacy tests: it undoes the build the others look at."""
    ok(legacy_built.build)
    undone = ok(cli(legacy_built.home, "rollback"))
    assert "rolled back" in undone.stdout
    assert not legacy_built.venv.exists()
    assert snapshot(legacy_built.home) == legacy_built.before


# --------------------------------------------------------------------------- 4. SIGKILL

Trigger = Callable[[Path, float], bool]
"""Given the home and the seconds since the build started: kill it now?"""


def after(seconds: float) -> Trigger:
    return lambda _home, elapsed: elapsed >= seconds


def locked(home: Path, _elapsed: float) -> bool:
    """The build holds the home's lock (it writes its pid there once it has it)."""
    try:
        return (home / STATE_DIR / "lock").stat().st_size > 0
    except FileNotFoundError:
        return False


def journal_begun(home: Path, _elapsed: float) -> bool:
    try:
        return any(not p.name.startswith(".") for p in (home / STATE_DIR / "journal").iterdir())
    except FileNotFoundError:
        return False


def staging(home: Path, _elapsed: float) -> bool:
    return bool(staging_leftovers(home))


def installed(count: int) -> Trigger:
    return lambda home, _elapsed: len(venvs(home)) >= count


@dataclass(frozen=True)
class Outcome:
    label: str
    killed: bool
    had_transaction: bool
    venvs_at_kill: int
    leftovers: tuple[str, ...]
    """What of the tool's own state (``tmp-*``, ``.unpack-*``) is still there after rollback."""


def alive_in_group(pgid: int) -> list[int]:
    """Processes (not zombies) of a process group, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found


def build_killed_when(home: Path, trigger: Trigger, *, jobs: int, log: Path) -> bool:
    """Run ``build`` in its own process group and SIGKILL the whole group when ``trigger``
    says so; False when the build finished first (it must have succeeded)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "migrate", "--home", str(home), "build", "--jobs", str(jobs)],
            stdout=subprocess.DEVNULL, stderr=err, env=cli_env(), start_new_session=True,
        )  # fmt: skip
        start = time.monotonic()
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if trigger(home, elapsed) or elapsed > CLI_TIMEOUT:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    assert elapsed <= CLI_TIMEOUT, "the build hung"
                    break
                time.sleep(0.01)
            else:
                assert proc.returncode == 0, log.read_text()
                return False
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    deadline = time.monotonic() + 10
    while alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alive_in_group(proc.pid) == [], "a worker outlived SIGKILL of its group"
    return True


def tool_leftovers(home: Path) -> tuple[str, ...]:
    state = home / STATE_DIR
    return tuple(
        sorted(
            p.relative_to(state).as_posix()
            for p in (
                *state.glob("tmp-*"),
                *state.glob("store/.unpack-*"),
                *state.glob("wheels/.tmp-*"),
            )
        )
    )


def kill_and_roll_back(
    template: Path, work: Path, label: str, trigger: Trigger, *, jobs: int = 1
) -> tuple[Path, Outcome]:
    home = copy_account(template, work / label / "home")
    before = snapshot(home)
    killed = build_killed_when(home, trigger, jobs=jobs, log=work / label / "build.log")
    listed = transactions(home)
    at_kill = len(venvs(home))

    undone = ok(cli(home, "rollback"))
    if listed:
        assert f"rolled back {listed[-1]['id']}" in undone.stdout, (label, undone.stdout)
    else:  # killed before the journal began: nothing was written to the home yet
        assert undone.stdout == "nothing to roll back: no transaction in this home\n", label
    assert venvs(home) == [], label
    assert snapshot(home) == before, f"the home differs after a kill ({label}) and rollback"
    assert {t["state"] for t in transactions(home)} <= {"rolled-back"}, label
    return home, Outcome(label, killed, bool(listed), at_kill, tool_leftovers(home))


def test_sigkill_at_any_moment_of_build_then_rollback_restores_the_home(
    template: Path, tmp_path: Path
) -> None:
    moments: list[tuple[str, Trigger, int]] = [
        ("locked", locked, 1),
        ("journal-begun", journal_begun, 1),
        ("staging", staging, 1),
        ("1-venv", installed(1), 1),
        ("4-venvs", installed(len(APPS)), 1),
        ("jobs2-2-venvs", installed(2), 2),
    ]
    outcomes = []
    homes = {}
    for label, trigger, jobs in moments:
        homes[label], outcome = kill_and_roll_back(template, tmp_path, label, trigger, jobs=jobs)
        outcomes.append(outcome)
    delay = 0.2
    while True:  # by the clock, later and later, until a build completes before its kill
        label = f"at-{delay:.2f}s"
        homes[label], outcome = kill_and_roll_back(template, tmp_path, label, after(delay))
        outcomes.append(outcome)
        if not outcome.killed:
            break
        delay *= 2.5
    summary = [
        (o.label, o.killed, o.had_transaction, o.venvs_at_kill, o.leftovers) for o in outcomes
    ]
    assert any(o.killed and not o.had_transaction for o in outcomes), summary
    assert any(o.killed and o.venvs_at_kill for o in outcomes), summary
    assert any(o.killed and o.had_transaction and not o.venvs_at_kill for o in outcomes), summary

    # A new build where a killed one left its staging folders (or, were there none, where
    # the latest kill struck), sequential and with workers, succeeds and verifies.
    chosen = [o for o in outcomes if o.killed and o.leftovers][:1] or [
        o for o in outcomes if o.killed
    ][-1:]
    chosen += [o for o in outcomes if o.label == "jobs2-2-venvs"]
    for outcome, jobs in zip(chosen, ("1", "2"), strict=True):
        home = homes[outcome.label]
        before = snapshot(home)
        ok(cli(home, "build", "--jobs", jobs))
        assert staging_leftovers(home) == []  # the killed build's staging was swept
        assert len(venvs(home)) == len(APPS), outcome
        verified(home)
        ok(cli(home, "rollback"))
        assert snapshot(home) == before


def test_pep_420_namespace_portions_are_each_used_and_built(tmp_path: Path) -> None:
    """``import nsp.a`` and ``import nsp.b`` from two wheels sharing the implicit namespace
    ``nsp`` (no ``nsp/__init__.py``): each portion is its own used distribution."""
    home = tmp_path / "home"
    lib = home / "webapps" / "ns" / "lib" / f"python{PY}"
    portions = [
        WheelSpec(f"nsp-{part}", "1.0", {f"nsp/{part}/__init__.py": module("1.0")})
        for part in ("a", "b", "c")
    ]
    install_wheels(lib, portions, tmp_path / "wheels")
    write_files(
        home / "webapps" / "ns", {"ns.wsgi": "import nsp.a\nfrom nsp.b import __version__\n"}
    )
    plan = json.loads(ok(cli(home, "plan", "--json")).stdout)
    (app,) = plan["apps"]
    used = {p["name"] for p in app["packages"] if p["used"]}
    assert used == {"nsp-a", "nsp-b"}  # nsp-c is visible, not imported
    ok(cli(home, "build"))
    verified = json.loads(ok(cli(home, "verify", "--json")).stdout)
    assert verified["ok"] and [a["app"] for a in verified["apps"]] == ["ns"]


@pytest.mark.network
def test_source_index_takes_released_wheels_and_keeps_what_no_index_has(tmp_path: Path) -> None:
    """``build --source index``: an unmodified release comes from the index; a patched copy
    and a bare one are still built from the installed files (the patch survives)."""
    home = tmp_path / "home"
    lib = home / "webapps" / "a" / "lib" / f"python{PY}"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib),
         "six==1.16.0", "idna==3.7"],
        check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    with open(lib / "idna" / "__init__.py", "a") as patched:
        patched.write("# patched here\n")
    write_files(lib, {"localpkg/__init__.py": module("0.3")})
    write_files(home / "webapps" / "a", {"a.wsgi": "import six, idna, localpkg\n"})

    done = ok(cli(home, "build", "--source", "index", "--json"))
    (app,) = json.loads(done.stdout)["apps"]
    origins = {p["name"]: (p["origin"], Path(p["wheel"]).name) for p in app["pins"]}
    assert origins["six"] == ("from the index", "six-1.16.0-py2.py3-none-any.whl")
    assert origins["idna"][0].startswith("locally modified")
    assert origins["localpkg"][0].startswith("no metadata")
    verified = json.loads(ok(cli(home, "verify", "--json")).stdout)
    assert verified["ok"]
    site = Path(app["venv"]) / "lib" / f"python{PY}" / "site-packages"
    assert (site / "idna" / "__init__.py").read_text().endswith("# patched here\n")

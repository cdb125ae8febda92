"""The proof obligation of the path model: for an account exercising every path rule,
the REAL target interpreter, with its path set up the same way (real ``site.addsitedir``,
real .pth files, the entry file's own sys.path edits executed), imports exactly the file
the static model predicts, for every top-level name in sight."""

from __future__ import annotations

import os
import py_compile
import sys
from pathlib import Path

import pytest
from accounts import install_wheels, module, write_files

from migrate.account import discover
from migrate.crontab import parse_crontab
from migrate.demo import write_zipped_egg
from migrate.entrypoints import EntryPoint, find_entry_points
from migrate.imports import scan_sources
from migrate.interpreters import Interpreter, find_interpreter
from migrate.syspath import build_path_model
from migrate.trace import run_bootstrap
from migrate.wheelfile import WheelSpec

CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"
NSPKG_LINE = (
    "import sys, types, os;has_mfs = sys.version_info > (3, 5);"
    "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('nsroot',));"
    "importlib = has_mfs and __import__('importlib.util');has_mfs and __import__('importlib.machinery');"
    "m = has_mfs and sys.modules.setdefault('nsroot', importlib.util.module_from_spec("
    "importlib.machinery.PathFinder.find_spec('nsroot', [os.path.dirname(p)])));"
    "m = m or sys.modules.setdefault('nsroot', types.ModuleType('nsroot'));"
    "mp = (m or []) and m.__dict__.setdefault('__path__',[]);(p not in mp) and mp.append(p)\n"
)
PLEN_START = "import sys; sys.__plen = len(sys.path)\n"
PLEN_END = (
    "import sys; new = sys.path[sys.__plen:]; del sys.path[sys.__plen:]; "
    "p = getattr(sys, '__egginsert', 0); sys.path[p:p] = new; sys.__egginsert = p + len(new)\n"
)


def build_rules_account(home: Path, interpreter: Interpreter, wheel_dir: Path) -> str:
    """A WebFaction-style account in which every path rule decides some import."""
    py = interpreter.version
    lib = home / "lib" / f"python{py}"
    app = home / "webapps" / "app"
    app_lib = app / "lib" / f"python{py}"
    user_site = home / ".local" / "lib" / f"python{py}" / "site-packages"
    ext = interpreter.extension_suffixes[0]

    # Account-wide lib: real pip installs, eggs behind easy-install.pth, develop link, bare copies.
    install_wheels(
        lib,
        [
            WheelSpec(
                "shared", "2.0", {"shared/__init__.py": module("2.0")}, tag="py2.py3-none-any"
            ),
            WheelSpec("alpha", "1.0", {"alpha.py": module("1.0")}, tag="py2.py3-none-any"),
        ],
        wheel_dir,
    )
    write_zipped_egg(
        lib / f"zegg-1.0-py{py}.egg", "zegg", "1.0", {"zegg/__init__.py": module("1.0")}
    )
    write_zipped_egg(lib / f"alpha-0.5-py{py}.egg", "alpha", "0.5", {"alpha.py": module("0.5")})
    write_files(
        lib / f"degg-2.0-py{py}.egg",
        {"degg.py": module("2.0"), "EGG-INFO/PKG-INFO": "Name: degg\nVersion: 2.0\n"},
    )
    write_files(
        home / "src" / "devel",
        {
            "devel/__init__.py": module("0.1"),
            "devel.egg-info/PKG-INFO": "Name: devel\nVersion: 0.1\n",
        },
    )
    (lib / "devel.egg-link").write_text(f"{home / 'src' / 'devel'}\n.")
    (lib / "easy-install.pth").write_text(
        PLEN_START + f"./zegg-1.0-py{py}.egg\n./alpha-0.5-py{py}.egg\n./degg-2.0-py{py}.egg\n"
        f"{home / 'src' / 'devel'}\n" + PLEN_END
    )
    write_files(
        home,
        {
            "extra/extramod.py": "",
            "extra/shared/__init__.py": "",
            "rel/relmod.py": "",
            "pp/fromenv.py": "",
            "pp/alpha.py": "",
            "vendor/vendored.py": "",
            "sited/sitedmod.py": "",
            "sited/more.pth": "../sitedextra\n",
            "sitedextra/sitedextramod.py": "",
        },
    )
    write_files(
        lib,
        {
            "a-extra.pth": f"# absolute, relative and missing lines\n{home / 'extra'}\n../../rel\n../../missing\n",
            "nsroot-nspkg.pth": NSPKG_LINE,
            "nsroot/leaf/__init__.py": "",
            "barepkg/__init__.py": module("3.1"),
            "baremod.py": module("0.9"),
            "both/__init__.py": "",
            "both.py": "",
            f"native{ext}": b"\x7fELF",
        },
    )
    source = home / "compiled_src.py"
    source.write_text("X = 1\n")
    py_compile.compile(str(source), cfile=str(lib / "pyconly.pyc"))
    if not py.startswith("2."):
        write_files(lib, {"nsdir/inner.py": ""})
        write_files(app_lib, {"nsdir/other.py": ""})

    # App lib: shadows the account's `shared`; user site shadows nothing the app sees first.
    write_files(app_lib, {"shared/__init__.py": module("1.5"), "apponly.py": ""})
    write_files(user_site, {"usermod.py": "", "alpha.py": module("user")})

    write_files(
        app,
        {
            "code/myapp/__init__.py": "",
            "app.wsgi": (
                "import os, sys, site\n"
                "HERE = os.path.dirname(os.path.abspath(__file__))\n"
                "sys.path.insert(0, os.path.join(os.path.dirname(HERE), '..', 'vendor'))\n"
                f"site.addsitedir('{home / 'sited'}')\n"
                "def application(environ, start_response):\n"
                "    start_response('200 OK', [])\n"
                "    return [b'ok']\n"
            ),
            "apache2/conf/httpd.conf": (
                f'ServerRoot "{app / "apache2"}"\n'
                "Listen 18123\n"
                "<VirtualHost *:18123>\n"
                f"WSGIDaemonProcess app processes=1 threads=2 \\\n"
                f"    python-path={app / 'code'}:{app_lib}:{lib}\n"
                "WSGIProcessGroup app\n"
                f"WSGIScriptAlias / {app / 'app.wsgi'}\n"
                "</VirtualHost>\n"
            ),
            "scripts/job.py": "import sys\n",
            "scripts/helper.py": "",
        },
    )
    write_files(home / "bin", {"tool": f"#!/usr/local/bin/python{py}\nimport alpha\n"})
    os.chmod(home / "bin" / "tool", 0o755)
    return (
        f"PYTHONPATH={home / 'pp'}\n"
        f"*/5 * * * * python{py} {app / 'scripts' / 'job.py'} > /dev/null 2>&1\n"
        f"0 1 * * * PYTHONPATH= {home / 'bin' / 'tool'}\n"
    )


def interpreters() -> list[str]:
    return [CURRENT, "2.7", "3.6"]


@pytest.mark.parametrize("version", interpreters())
def test_model_predicts_the_file_python_imports_for_every_name(
    version: str, tmp_path: Path
) -> None:
    interpreter = find_interpreter(version)
    if interpreter is None:
        pytest.skip(f"no python{version} on this machine (PATH or pyenv)")
    home = tmp_path / "home"
    crontab = parse_crontab(build_rules_account(home, interpreter, tmp_path / "wheels"))
    account = discover(home)
    entries = find_entry_points(account, crontab).entry_points
    kinds = sorted(e.kind for e in entries)
    assert kinds == ["cron", "cron", "wsgi"], entries

    checked = 0
    for entry in entries:
        predicted, real = compare(entry, interpreter, home)
        mismatches = {
            n: (predicted[n], real.get(n)) for n in predicted if predicted[n] != real.get(n)
        }
        assert mismatches == {}, f"{entry.kind} {entry.path}: predicted != real for {mismatches}"
        checked += len(predicted)
    assert checked > 60


def compare(
    entry: EntryPoint, interpreter: Interpreter, home: Path
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    edits = scan_sources([entry.path], home, interpreter)[entry.path].path_edits
    model = build_path_model(entry, interpreter, edits, home)
    names = sorted(model.names() | FIXTURE_NAMES)
    result = run_bootstrap(entry, interpreter, home, action="find", names=names)
    assert result["error"] is None, result["error"]
    predicted = {}
    for name in names:
        winner = model.resolve(name).winner
        if winner is None:
            predicted[name] = None
        elif winner.kind == "builtin":
            predicted[name] = "built-in"
        else:
            predicted[name] = os.path.realpath(winner.origin) if winner.origin else None
    real = {
        n: (os.path.realpath(o) if o and o != "built-in" else o)
        for n, o in result["origins"].items()
    }
    return predicted, real


FIXTURE_NAMES = {
    "shared", "alpha", "zegg", "degg", "devel", "extramod", "relmod", "fromenv", "vendored",
    "sitedmod", "sitedextramod", "nsroot", "barepkg", "baremod", "both", "native", "pyconly",
    "nsdir", "apponly", "usermod", "myapp", "helper", "missingname", "sys",
}  # fmt: skip


def test_rules_are_tagged(tmp_path: Path) -> None:
    """Each entry of the modelled path says which rule put it there."""
    interpreter = find_interpreter(CURRENT)
    assert interpreter is not None
    home = tmp_path / "home"
    crontab = parse_crontab(build_rules_account(home, interpreter, tmp_path / "wheels"))
    entries = {
        e.kind + ":" + e.path.name: e
        for e in find_entry_points(discover(home), crontab).entry_points
    }
    lib = home / "lib" / f"python{CURRENT}"

    wsgi = entries["wsgi:app.wsgi"]
    edits = scan_sources([wsgi.path], home, interpreter)[wsgi.path].path_edits
    model = build_path_model(wsgi, interpreter, edits, home)
    rules = [(e.rule, e.path) for e in model.entries]
    assert rules[0] == ("file-edit", home / "vendor")
    assert [p.name for r, p in rules[1:5]] == [
        f"zegg-1.0-py{CURRENT}.egg",
        f"alpha-0.5-py{CURRENT}.egg",
        f"degg-2.0-py{CURRENT}.egg",
        "devel",
    ]
    assert {r for r, _ in rules[1:5]} == {"easy-install"}
    assert ("python-path", home / "webapps/app/code") in rules
    assert ("pth", home / "extra") in rules and ("pth", home / "rel") in rules
    assert ("file-edit", home / "sited") in rules and ("pth", home / "sitedextra") in rules
    assert ("user-site", home / f".local/lib/python{CURRENT}/site-packages") in rules
    assert (
        model.resolve("shared").winner.origin
        == home / f"webapps/app/lib/python{CURRENT}/shared/__init__.py"
    )
    assert model.resolve("alpha").winner.origin == lib / f"alpha-0.5-py{CURRENT}.egg" / "alpha.py"
    assert model.resolve("nsroot").winner.kind == "nspkg"

    job = entries["cron:job.py"]
    model = build_path_model(job, interpreter, (), home)
    rules = [(e.rule, e.path) for e in model.entries]
    assert rules[0] == ("script-dir", home / "webapps/app/scripts")
    scan = [p for r, p in rules if r == "upward-scan"]
    assert scan == [home / f"webapps/app/lib/python{CURRENT}", lib]
    assert ("PYTHONPATH", home / "pp") in rules
    assert model.resolve("fromenv").winner.entry.rule == "PYTHONPATH"

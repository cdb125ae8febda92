"""The proof obligation of the path model: for an account exercising every path rule, the
REAL runtime - the cron jobs run by ``/bin/sh`` in cron's environment with the interpreter
cron's ``PATH`` finds, and, where this machine has it, the app served by the real Apache +
mod_wsgi - imports exactly the file the static model predicts, for every top-level name in
sight. The account's scripts and WSGI file report what their runtime really did (real
.pth files, real eggs, their own sys.path edits executed); nothing is emulated.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import apache
import legacy
import pytest
from accounts import install_wheels, module, write_files
from oracle import PROBE, model_of, observed, predicted

from migrate.build.wheelfile import WheelSpec
from migrate.demo import write_zipped_egg
from migrate.discover.account import discover
from migrate.discover.crontab import Crontab, parse_crontab
from migrate.discover.entrypoints import EntryPoint, find_entry_points
from migrate.discover.imports import scan_sources
from migrate.discover.interpreters import Interpreter, interpreter_at, mod_wsgi_interpreter
from migrate.resolve.syspath import build_path_model

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
    write_files(home / "bin", {"tool": f"#!/usr/bin/env python{py}\nimport alpha\n"})
    os.chmod(home / "bin" / "tool", 0o755)
    return (
        f"PYTHONPATH={home / 'pp'}\n"
        f"*/5 * * * * python{py} {app / 'scripts' / 'job.py'} > /dev/null 2>&1\n"
        f"0 1 * * * PYTHONPATH= {home / 'bin' / 'tool'}\n"
    )


def interpreters() -> list[str]:
    return [CURRENT, "2.7", "3.6"]


# Appended to the account's scripts and WSGI file: report what this runtime really built,
# after the file's own sys.path edits, and where each name loads from (located, not imported).
REPORT = """
import os as _os
_lib = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "probe_lib.py")
_probe = {{"__name__": "probe_lib"}}
exec(compile(open(_lib).read(), _lib, "exec"), _probe)
report = _probe["report"]
_NAMES = {names!r}
"""
SCRIPT_REPORT = """
import json as _json
with open({out!r}, "w") as _handle:
    _json.dump(report({{"names": _NAMES}}), _handle)
"""
WSGI_REPORT = """
def application(environ, start_response):
    import json as _json
    start_response("200 OK", [("Content-Type", "application/json")])
    return [_json.dumps(report({"names": _NAMES})).encode("utf-8")]
"""


def runtime_for(version: str, webfaction_python: Path) -> Path | None:
    """What the account's cron finds as pythonX.Y: for this Python, one that scans upward as
    WebFaction's did (so the scan rule is proved too); for old ones, the stock interpreter."""
    if version == CURRENT:
        return webfaction_python
    return legacy.find_interpreter(version)


def apache_python() -> str | None:
    """X.Y of the Python the real mod_wsgi links, when Apache and mod_wsgi are here."""
    if apache.available() is not None:
        return None
    executable = mod_wsgi_interpreter(apache.MOD_WSGI)
    facts = interpreter_at(executable) if executable else None
    return facts.version if facts else None


@pytest.mark.parametrize("version", interpreters())
def test_model_predicts_the_file_the_real_runtime_imports_for_every_name(
    version: str, tmp_path: Path, webfaction_python: Path, decoy_on_path: Path
) -> None:
    runtime = runtime_for(version, webfaction_python)
    if runtime is None:
        pytest.skip(f"no python{version} on this machine (PATH or pyenv)")
    interpreter = interpreter_at(runtime)
    assert interpreter is not None and interpreter.version == version
    served = version == apache_python()
    root = apache.account_root("concentric-proof-")[0] if served else tmp_path
    try:
        home = root / "home"
        cron_bin = root / "cron-bin"
        cron_bin.mkdir()
        (cron_bin / f"python{version}").symlink_to(runtime)
        rules = build_rules_account(home, interpreter, root / "wheels")
        crontab = parse_crontab(f"PATH={cron_bin}:/usr/bin:/bin\n" + rules)
        entries = find_entry_points(discover(home), crontab).entry_points
        assert sorted(e.kind for e in entries) == ["cron", "cron", "wsgi"], entries
        assert all(e.executable != decoy_on_path / f"python{version}" for e in entries)
        models = {e.path: model_of(e, home) for e in entries if e.kind == "cron" or served}
        names = sorted(set().union(*(m.names() for m in models.values())) | FIXTURE_NAMES)
        reports = run_for_real(home, crontab, entries, names, root, served)
        assert set(reports) == set(models)

        for path, report in reports.items():
            modelled, predicted_origins = predicted(models[path], names)
            real_path, real = observed(report)
            mismatches = {
                n: (predicted_origins[n], real[n]) for n in names if predicted_origins[n] != real[n]
            }
            assert mismatches == {}, f"{path}: predicted != real for {mismatches}"
            assert modelled == real_path, path
        assert len(names) > 20
    finally:
        if served:
            shutil.rmtree(root, ignore_errors=True)


def run_for_real(
    home: Path,
    crontab: Crontab,
    entries: tuple[EntryPoint, ...],
    names: list[str],
    root: Path,
    served: bool,
) -> dict[Path, dict[str, object]]:
    """Each entry point reports from its own runtime: every cron line through ``/bin/sh``
    with cron's environment; the WSGI file through the real Apache + mod_wsgi."""
    outputs: dict[Path, Path] = {}
    for entry in entries:
        shutil.copy(PROBE, entry.path.parent / "probe_lib.py")
        text = entry.path.read_text() + REPORT.format(names=names)
        if entry.kind == "wsgi":
            renamed = text.replace("def application(", "def _replaced_application(")
            entry.path.write_text(renamed + WSGI_REPORT)
        else:
            outputs[entry.path] = root / f"{entry.path.name}.json"
            entry.path.write_text(text + SCRIPT_REPORT.format(out=str(outputs[entry.path])))
    for job in crontab.jobs:
        env = {"HOME": str(home), "LOGNAME": "root", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
        env.update(job.environment)
        done = subprocess.run(
            ["/bin/sh", "-c", job.command], env=env, cwd=home, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{job.command}: {done.stderr}"
    reports = {path: json.loads(output.read_text()) for path, output in outputs.items()}
    if served:
        (wsgi,) = [e for e in entries if e.kind == "wsgi"]
        reports[wsgi.path] = serve_once(home, wsgi)
    return reports


def serve_once(home: Path, wsgi: EntryPoint) -> dict[str, object]:
    """The app served by the real Apache + mod_wsgi with its own python-path."""
    app = home / "webapps" / "app"
    port = apache.free_port()
    conf = app / "apache2" / "conf" / "httpd.conf"
    conf.rename(conf.with_name("httpd.conf.rules"))
    apache.make_server(app, "app", port, list(wsgi.site_dirs))
    apache.open_up(home.parent)
    apache.start(app, home)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        raise AssertionError(apache.error_log(app)) from None
    finally:
        apache.stop(app)


FIXTURE_NAMES = {
    "shared", "alpha", "zegg", "degg", "devel", "extramod", "relmod", "fromenv", "vendored",
    "sitedmod", "sitedextramod", "nsroot", "barepkg", "baremod", "both", "native", "pyconly",
    "nsdir", "apponly", "usermod", "myapp", "helper", "missingname", "sys",
}  # fmt: skip


def test_rules_are_tagged(tmp_path: Path, webfaction_python: Path) -> None:
    """Each entry of the modelled path says which rule put it there."""
    interpreter = interpreter_at(webfaction_python)
    assert interpreter is not None and interpreter.upward_scan
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

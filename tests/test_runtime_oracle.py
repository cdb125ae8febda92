"""The runtime is the oracle: the path model against the real mod_wsgi, cron's /bin/sh and
the interpreters they start — never against an emulation — with a decoy interpreter first
on the operator's PATH.

The account's WSGI file and cron scripts are themselves probes (they report their real
``sys.path`` and where each name loads from); the model of the same account must predict
both, entry by entry and file by file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import apache
import pytest
import virtualenv
from accounts import install_wheels, module, write_files
from oracle import PROBE, model_of, observed, predicted

from migrate.build.wheelfile import WheelSpec
from migrate.demo import write_zipped_egg
from migrate.discover.account import discover
from migrate.discover.crontab import parse_crontab
from migrate.discover.entrypoints import find_entry_points
from migrate.discover.interpreters import CRON_PATH, interpreter_at, mod_wsgi_interpreter, which
from migrate.inventory import take_inventory
from migrate.resolve.plan import plan_account

PLEN_START = "import sys; sys.__plen = len(sys.path)\n"
PLEN_END = (
    "import sys; new = sys.path[sys.__plen:]; del sys.path[sys.__plen:]; "
    "p = getattr(sys, '__egginsert', 0); sys.path[p:p] = new; sys.__egginsert = p + len(new)\n"
)
NAMES = [
    "shared", "alpha", "zegg", "apponly", "extramod", "relmod", "vendored", "venvonly",
    "usermod", "fromenv", "jobhelper", "missingname", "json", "ntpath", "sys",
]  # fmt: skip

# A WSGI file / script that reports what its runtime built: the real path and where each
# name loads from (located, not imported), after its own sys.path edit.
REPORTER = """\
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))
_here = os.path.dirname(os.path.abspath(__file__))
_probe = {{"__name__": "probe_lib"}}
exec(compile(open(os.path.join(_here, "probe_lib.py")).read(), "probe_lib.py", "exec"), _probe)
report = _probe["report"]
import json as _json
_REPORT = {{"names": {names!r}}}
{tail}
"""
WSGI_TAIL = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [_json.dumps(report(_REPORT)).encode("utf-8")]
"""
SCRIPT_TAIL = """\
with open({out!r}, "w") as handle:
    _json.dump(report(_REPORT), handle)
"""


@dataclass(frozen=True)
class Runtime:
    python: str
    """X.Y of the interpreter mod_wsgi links."""
    executable: Path


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    why = apache.available()
    if why is not None:
        pytest.skip(why)
    executable = mod_wsgi_interpreter(apache.MOD_WSGI)
    if executable is None:
        pytest.skip("ldd cannot tell which libpython Debian's mod_wsgi loads")
    facts = interpreter_at(executable)
    assert facts is not None
    return Runtime(facts.version, executable)


def build_account(root: Path, runtime: Runtime) -> tuple[Path, Path]:
    """An account in which the rules of the runtime decide imports: python-path order,
    .pth lines (absolute, relative, missing), easy-install eggs with ``__plen``, shadowing,
    a user site, a venv for python-home, and the WSGI file's own ``sys.path`` edit."""
    py = runtime.python
    home = root / "home"
    lib = home / "lib" / f"python{py}"
    app = home / "webapps" / "app"
    app_lib = app / "lib" / f"python{py}"
    wheels = root / "wheels"
    install_wheels(
        lib,
        [
            WheelSpec("shared", "2.0", {"shared/__init__.py": module("2.0")}),
            WheelSpec("alpha", "1.0", {"alpha.py": module("1.0")}),
        ],
        wheels,
    )
    write_zipped_egg(
        lib / f"zegg-1.0-py{py}.egg", "zegg", "1.0", {"zegg/__init__.py": module("1.0")}
    )
    write_zipped_egg(lib / f"alpha-0.5-py{py}.egg", "alpha", "0.5", {"alpha.py": module("0.5")})
    (lib / "easy-install.pth").write_text(
        PLEN_START + f"./zegg-1.0-py{py}.egg\n./alpha-0.5-py{py}.egg\n" + PLEN_END
    )
    write_files(
        home,
        {
            "extra/extramod.py": "",
            "rel/relmod.py": "",
            "pp/fromenv.py": "",
            f".local/lib/python{py}/site-packages/usermod.py": "",
        },
    )
    (lib / "a-extra.pth").write_text(f"{home / 'extra'}\n../../rel\n../../missing\n")
    write_files(app_lib, {"shared/__init__.py": module("1.5"), "apponly.py": ""})
    write_files(app, {"vendor/vendored.py": "", "code/.keep": "", "scripts/jobhelper.py": ""})
    venv = root / "venv"
    virtualenv.cli_run(
        [str(venv), "--python", str(runtime.executable), "--no-seed", "--quiet"],
        setup_logging=False,
    )
    (venv / "lib" / f"python{py}" / "site-packages" / "venvonly.py").write_text("")
    shutil.copy(PROBE, app / "probe_lib.py")
    shutil.copy(PROBE, app / "scripts" / "probe_lib.py")
    return home, venv


def serve(home: Path, mode: str, venv: Path, port: int) -> Path:
    """The app's own httpd.conf in the WebFaction shape, in one of the modes mod_wsgi has."""
    app = home / "webapps" / "app"
    py_path = [app / "code", app / "lib" / app_lib_name(home), home / "lib" / app_lib_name(home)]
    apache.make_server(app, "app", port, py_path)
    conf = app / "apache2" / "conf" / "httpd.conf"
    text = conf.read_text()
    if mode == "embedded":
        daemon = next(line for line in text.splitlines() if line.startswith("WSGIDaemonProcess"))
        text = text.replace(daemon + "\n", "").replace("WSGIProcessGroup app\n", "")
        text = text.replace("WSGIRestrictEmbedded On\n", "")
        text += f"WSGIPythonPath {':'.join(map(str, py_path))}\n"
    elif mode == "python-home":
        text = text.replace("WSGIDaemonProcess app ", f"WSGIDaemonProcess app python-home={venv} ")
    conf.write_text(text)
    (app / "app.wsgi").write_text(REPORTER.format(names=NAMES, tail=WSGI_TAIL))
    return app / "app.wsgi"


def app_lib_name(home: Path) -> str:
    return next((home / "lib").iterdir()).name


def fetch(port: int) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def decoy_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> Iterator[Path]:
    """A standalone python3.X first on the operator's PATH, holding other versions of the
    account's distributions: nothing it has may show up in a result."""
    decoy = tmp_path / "decoy"
    virtualenv.cli_run([str(decoy), "--no-seed", "--quiet"], setup_logging=False)
    site = next(decoy.glob("lib/python*/site-packages"))
    write_files(site, {"shared/__init__.py": module("9.9"), "alpha.py": module("9.9")})
    bin_dir = tmp_path / "decoy-bin"
    bin_dir.mkdir()
    for name in (f"python{runtime.python}", "python3", "python"):
        (bin_dir / name).symlink_to(decoy / "bin" / "python")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert shutil.which(f"python{runtime.python}") == str(bin_dir / f"python{runtime.python}")
    yield site


@pytest.mark.parametrize("mode", ["daemon", "embedded", "python-home"])
def test_the_model_of_a_wsgi_app_is_what_real_mod_wsgi_builds(
    mode: str, tmp_path: Path, runtime: Runtime, decoy_first_on_path: Path
) -> None:
    root, _ = apache.account_root("concentric-oracle-")
    try:
        home, venv = build_account(root, runtime)
        port = apache.free_port()
        wsgi = serve(home, mode, venv, port)
        apache.open_up(root)
        apache.start(home / "webapps" / "app", home)
        try:
            real = observed(fetch(port))
        finally:
            apache.stop(home / "webapps" / "app")

        (entry,) = [e for e in find_entry_points(discover(home), None).entry_points]
        assert entry.path == wsgi and entry.daemon is (mode != "embedded")
        assert entry.executable == runtime.executable, "mod_wsgi's libpython, not the decoy"
        model = predicted(model_of(entry, home), NAMES)
        assert model[0] == real[0], f"sys.path in {mode} mode"
        assert model[1] == real[1], f"origins in {mode} mode"
        assert real[1]["shared"].endswith(
            f"webapps/app/lib/python{runtime.python}/shared/__init__.py"
        )
        assert (
            real[1]["alpha"].endswith(f"alpha-0.5-py{runtime.python}.egg/alpha.py")
            or mode == "python-home"
        )
        assert (real[1]["venvonly"] is not None) is (mode == "python-home")
        assert not any(str(decoy_first_on_path) in (o or "") for o in real[1].values())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cron_environment(home: Path, variables: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """What cron gives a job: HOME, LOGNAME, SHELL=/bin/sh, PATH=/usr/bin:/bin, then the
    crontab's own variables (its PATH= line included) over them."""
    env = {"HOME": str(home), "LOGNAME": "root", "SHELL": "/bin/sh", "PATH": CRON_PATH}
    env.update(variables)
    return env


@pytest.mark.parametrize("crontab_path", [None, "/usr/local/bin:/usr/bin:/bin"])
def test_the_model_of_cron_jobs_is_what_cron_s_shell_runs(
    crontab_path: str | None, tmp_path: Path, runtime: Runtime, decoy_first_on_path: Path
) -> None:
    py = runtime.python
    if which(f"python{py}", crontab_path or CRON_PATH) is None:
        pytest.skip(f"no python{py} on cron's PATH here")
    home, _ = build_account(tmp_path, runtime)
    app = home / "webapps" / "app"
    outputs = {name: tmp_path / f"{name}.json" for name in ("job", "tool", "module")}
    write_files(
        app / "scripts",
        {
            "job.py": REPORTER.format(
                names=NAMES, tail=SCRIPT_TAIL.format(out=str(outputs["job"]))
            ),
        },
    )
    write_files(
        home / "bin",
        {
            "tool": f"#!/usr/bin/env python{py}\n"
            + REPORTER.format(names=NAMES, tail=SCRIPT_TAIL.format(out=str(outputs["tool"]))),
            "probe_lib.py": PROBE.read_text(),
        },
    )
    os.chmod(home / "bin" / "tool", 0o755)
    lines = [
        f"PYTHONPATH={home / 'pp'}",
        f"*/5 * * * * cd {app} && python{py} scripts/job.py > /dev/null 2>&1",
        f"0 1 * * * PYTHONPATH= {home / 'bin' / 'tool'}",
    ]
    if crontab_path:
        lines.insert(0, f"PATH={crontab_path}")
    crontab = parse_crontab("\n".join(lines) + "\n")

    for job in crontab.jobs:
        done = subprocess.run(
            ["/bin/sh", "-c", job.command], env=cron_environment(home, job.environment),
            cwd=home, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    entries = {e.path.name: e for e in find_entry_points(discover(home), crontab).entry_points}
    assert {"job.py", "tool"} <= set(entries)
    for name, output in (("job.py", outputs["job"]), ("tool", outputs["tool"])):
        entry = entries[name]
        assert entry.executable is not None and "decoy" not in str(entry.executable)
        real = observed(json.loads(output.read_text()))
        model = predicted(model_of(entry, home), NAMES)
        assert model[0] == real[0], f"sys.path of {name}"
        assert model[1] == real[1], f"origins of {name}"
    job_real = json.loads(outputs["job"].read_text())
    assert job_real["origins"]["fromenv"].endswith("pp/fromenv.py"), "PYTHONPATH= from the crontab"
    tool_real = json.loads(outputs["tool"].read_text())
    assert tool_real["origins"]["fromenv"] is None, "emptied on its own line"
    facts = interpreter_at(entries["tool"].executable)
    assert facts is not None
    if not facts.upward_scan:  # a stock interpreter: ~/lib is not on a ~/bin script's path
        assert tool_real["origins"]["shared"] is None


def test_plan_probe_agrees_with_the_model_and_names_what_it_started(
    tmp_path: Path, runtime: Runtime, decoy_first_on_path: Path
) -> None:
    root, _ = apache.account_root("concentric-oracle-")
    try:
        home, venv = build_account(root, runtime)
        app = home / "webapps" / "app"
        serve(home, "daemon", venv, apache.free_port())
        (app / "app.wsgi").write_text("import shared, alpha, zegg, apponly\napplication = None\n")
        apache.open_up(root)
        crontab = parse_crontab(
            f"PYTHONPATH={home / 'pp'}\n0 1 * * * python{runtime.python} {app / 'scripts' / 'jobhelper.py'}\n"
        )
        (app / "scripts" / "jobhelper.py").write_text("import fromenv, alpha\n")
        from migrate.resolve.probe import probe_entry

        account = discover(home)
        plan = plan_account(account, take_inventory(account), crontab, prober=probe_entry)
        (app_plan,) = [a for a in plan.apps if a.name == "app"]
        outcomes = {p.entry.name: p for p in app_plan.probes}
        assert outcomes["app.wsgi"].agrees is True, outcomes["app.wsgi"].detail
        assert "mod_wsgi.so in daemon mode" in (outcomes["app.wsgi"].runtime or "")
        assert outcomes["jobhelper.py"].agrees is True, outcomes["jobhelper.py"].detail
        assert not [f for f in app_plan.findings if f.kind == "probe"]
        assert not list((app / "apache2" / "logs").iterdir()), "the probe wrote nothing there"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_probe_that_disagrees_is_an_error_finding_and_run_refuses(
    tmp_path: Path, runtime: Runtime
) -> None:
    """A .pth line in the interpreter's own site dir (not the account's: the probe may run
    it) adds a dir the model cannot know: the runtime says so, the plan reports it, run
    will not start."""
    home, _ = build_account(tmp_path, runtime)
    interpreter = tmp_path / "patched"
    virtualenv.cli_run(
        [str(interpreter), "--python", str(runtime.executable), "--no-seed", "--quiet"],
        setup_logging=False,
    )
    site = next(interpreter.glob("lib/python*/site-packages"))
    (site / "zz-extra.pth").write_text(f"import sys; sys.path.append({str(home / 'extra')!r})\n")
    script = home / "bin" / "tool"
    write_files(home / "bin", {"tool": f"#!{interpreter / 'bin' / 'python'}\nimport extramod\n"})
    script.chmod(0o755)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}

    done = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "plan", "--probe", "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (account_plan,) = [a for a in json.loads(done.stdout)["apps"] if a["name"] == "~"]
    findings = [f for f in account_plan["findings"] if f["kind"] == "probe"]
    assert findings and "sys.path differs" in findings[0]["message"]
    assert account_plan["probes"][0]["agrees"] is False

    refused = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "run", "--dry-run"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "the real runtime disagrees" in refused.stderr


def interpreter_kinds(tmp: Path, bare_python: Path, webfaction_python: Path) -> dict[str, Path]:
    """Every kind of installation an entry point may run on, as far as this machine has it."""
    kinds = {"venv (no system site)": bare_python, "WebFaction-style": webfaction_python}
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if base.is_file():
        kinds["this build (pyenv here)"] = base
    debian = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
    if debian.is_file():
        kinds["Debian's system Python"] = debian
    with_site = tmp / "with-system-site"
    virtualenv.cli_run(
        [str(with_site), "--system-site-packages", "--no-seed", "--quiet"], setup_logging=False
    )
    kinds["virtualenv with system site"] = with_site / "bin" / "python"
    return kinds


def test_each_kind_of_interpreter_is_modelled_as_it_really_starts(
    tmp_path: Path, bare_python: Path, webfaction_python: Path, decoy_on_path: Path
) -> None:
    """A script in an account, run directly by each kind of interpreter: the model of its
    path (the interpreter's facts: stdlib, site dirs and their .pth lines, user site,
    upward scan) is the path the interpreter really builds."""
    home = tmp_path / "home"
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    write_files(
        home,
        {
            f"lib/python{py}/shared.py": "",
            f"webapps/app/lib/python{py}/apponly.py": "",
            f".local/lib/python{py}/site-packages/usermod.py": "",
        },
    )
    shutil.copy(PROBE, home / "webapps" / "app" / "probe_lib.py")
    for kind, python in interpreter_kinds(tmp_path, bare_python, webfaction_python).items():
        out = tmp_path / "report.json"
        script = home / "webapps" / "app" / "job.py"
        script.write_text(
            f"#!{python}\n"
            + REPORTER.format(
                names=["shared", "apponly", "usermod", "json"],
                tail=SCRIPT_TAIL.format(out=str(out)),
            )
        )
        script.chmod(0o755)
        subprocess.run(
            [str(script)], check=True, cwd=home, timeout=60,
            env={"HOME": str(home), "PATH": CRON_PATH},
        )  # fmt: skip
        (entry,) = [
            e
            for e in find_entry_points(
                discover(home), parse_crontab(f"0 1 * * * {script}\n")
            ).entry_points
            if e.path == script
        ]
        assert entry.executable == python, kind
        model = predicted(model_of(entry, home), ["shared", "apponly", "usermod", "json"])
        real = observed(json.loads(out.read_text()))
        assert model[0][1:] == real[0][1:], f"{kind}: sys.path after the script's folder"
        assert model[1] == real[1], f"{kind}: where each name loads from"

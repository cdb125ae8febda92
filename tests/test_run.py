"""``run`` migrates a whole account: two mod_wsgi apps, a cron-run app, ~/bin scripts.

After ``run`` every entry point, started the way its (rewritten) configuration says,
imports each account package from its own venv — proved with ``~/lib`` and every app's
``lib/`` renamed away. After ``rollback`` every file under HOME and the crontab are
byte-identical (sha256, mode) to the snapshot taken before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, write_files
from journal_helper import snapshot

from migrate.build.wheelfile import WheelSpec
from migrate.discover.httpd import read_config
from migrate.layout import requirement_paths

# What an entry point prints: where each account package was imported from.
REPORT = """
import json, os, sys
def _report(names):
    found = {}
    for name in names:
        module = sys.modules.get(name) or __import__(name)
        found[name] = [getattr(module, "__version__", None), os.path.realpath(module.__file__)]
    with open(os.environ["REPORT_TO"], "a") as out:
        out.write(json.dumps({"argv0": sys.argv[0], "prefix": sys.prefix, "found": found}) + "\\n")
"""


def package(name: str, version: str, *requires: str) -> WheelSpec:
    body = f'__version__ = "{version}"\n'
    return WheelSpec(name, version, {f"{name}/__init__.py": body.encode()}, requires=requires)


def wsgi_file(app_dir: Path, imports: list[str]) -> str:
    names = ", ".join(imports)
    return (
        "import sys\n"
        f"sys.path.insert(0, '{app_dir}/lib/python{PY}')\n"
        f"import {names}\n" + REPORT + "\n"
        "def application(environ, start_response):\n"
        f"    _report({imports!r})\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )


MOD_WSGI = Path("/usr/lib/apache2/modules/mod_wsgi.so")

pytestmark = pytest.mark.skipif(
    not MOD_WSGI.exists(), reason="Debian's mod_wsgi is not installed (its Python runs the apps)"
)


def httpd_conf(app_dir: Path, name: str, port: int, home: Path) -> str:
    """The app's httpd.conf; its apache2/modules is Debian's, so mod_wsgi's Python is real."""
    (app_dir / "apache2").mkdir(parents=True, exist_ok=True)
    if not (app_dir / "apache2" / "modules").exists():
        (app_dir / "apache2" / "modules").symlink_to(MOD_WSGI.parent)
    path = f"{app_dir}:{app_dir}/lib/python{PY}:{home}/lib/python{PY}"
    return (
        f'ServerRoot "{app_dir}/apache2"\n'
        "LoadModule wsgi_module modules/mod_wsgi.so\n"
        f"Listen {port}\n"
        "# the app's own daemon\n"
        f"WSGIDaemonProcess {name} processes=2 threads=12 python-path={path}\n"
        f"WSGIProcessGroup {name}\n"
        f"WSGIScriptAlias / {app_dir}/{name}.wsgi\n"
    )


@pytest.fixture
def account(tmp_path: Path, webfaction_python: Path, decoy_on_path: Path) -> tuple[Path, Path]:
    """HOME with blog and shop (mod_wsgi), a cron-run app, ~/bin/report; and a crontab file.

    The crontab's PATH finds a python that scans upward as WebFaction's did (the jobs app's
    own lib dir reaches its cron job so); the operator's PATH starts with a decoy."""
    home = tmp_path / "home"
    wheels = tmp_path / "wheels"
    install_wheels(account_lib(home), [package("shared", "1.0"), package("helper", "2.0")], wheels)
    blog, shop, jobs = (home / "webapps" / name for name in ("blog", "shop", "jobs"))
    install_wheels(account_lib(home, "blog"), [package("blogcore", "3.1", "shared>=1")], wheels)
    install_wheels(account_lib(home, "shop"), [package("shared", "1.5")], wheels)
    install_wheels(account_lib(home, "jobs"), [package("worker", "0.7", "helper")], wheels)
    for app_dir, name, port, imports in (
        (blog, "blog", 18401, ["blogcore", "shared"]),
        (shop, "shop", 18402, ["shared"]),
    ):
        write_files(
            app_dir,
            {
                f"{name}.wsgi": wsgi_file(app_dir, imports),
                "apache2/conf/httpd.conf": httpd_conf(app_dir, name, port, home),
            },
        )
    write_files(
        jobs,
        {"manage.py": "import worker, helper\n" + REPORT + "\n_report(['worker', 'helper'])\n"},
    )
    write_files(
        home,
        {
            "bin/report": f"#!/usr/bin/env python{PY}\nimport helper\n"
            + REPORT
            + "\n_report(['helper'])\n"
        },
    )
    os.chmod(home / "bin" / "report", 0o750)
    crontab = tmp_path / "crontab"
    crontab.write_text(
        'MAILTO=""\n'
        f"PATH={webfaction_python.parent}:/usr/bin:/bin\n"
        f"PYTHONPATH={home}/lib/python{PY}\n"
        "# restarts, staggered\n"
        f"*/20 * * * * {blog}/apache2/bin/start\n"
        f"*/5 * * * * cd ~/webapps/jobs && python{PY} manage.py >> ~/jobs.log 2>&1\n"
        f"0 3 * * * {home}/bin/report\n",
        encoding="utf-8",
    )
    return home, crontab


def cli(home: Path, crontab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab), *args],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip


def serve_like_mod_wsgi(home: Path, conf: Path, report: Path) -> None:
    """Load the app as mod_wsgi does with this httpd.conf: python-home's interpreter,
    isolated, python-path added as site dirs, the WSGI file run and called once."""
    config = read_config(conf)
    (daemon,) = config.named("wsgidaemonprocess")
    (alias,) = config.named("wsgiscriptalias")
    python_home = daemon.option("python-home")
    assert python_home is not None
    site_dirs = [p for p in (daemon.option("python-path") or "").split(":") if p]
    loader = (
        "import site, sys, runpy\n"
        f"for d in {site_dirs!r}: site.addsitedir(d)\n"
        f"app = runpy.run_path({alias.args[1]!r})['application']\n"
        "app({}, lambda status, headers: None)\n"
    )
    subprocess.run(
        [f"{python_home}/bin/python", "-I", "-c", loader],
        check=True, cwd=home, env={"REPORT_TO": str(report), "HOME": str(home)},
    )  # fmt: skip


def run_cron_jobs(home: Path, crontab: Path, report: Path) -> None:
    """Each job's command as cron runs it: sh -c, the crontab's environment lines set."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "REPORT_TO": str(report)}
    for line in crontab.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep and " " not in name:
            env[name] = value.strip('"')
            continue
        command = line.split(None, 5)[5]
        if "apache2/bin" in command:
            continue  # no Apache here: the restarts are issue 7's end-to-end test
        subprocess.run(["sh", "-c", command], check=True, cwd=home, env=env)


def test_run_migrates_every_entry_point_and_rollback_restores_every_byte(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, crontab = account
    before, crontab_before = snapshot(home), crontab.read_bytes()

    dry = cli(home, crontab, "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "python-home=" in dry.stdout and "+# concentric-migrate:" in dry.stdout
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before

    done = cli(home, crontab, "run", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    venvs = {app["app"]: Path(app["venv"]) for app in result["apps"]}
    assert set(venvs) == {"blog", "shop", "jobs", "~"}

    # The concentric dirs are gone: only the venvs can serve the imports now.
    libs = [home / "lib", *(home / "webapps" / a / "lib" for a in ("blog", "shop", "jobs"))]
    for lib in libs:
        lib.rename(lib.with_name("lib.away"))
    report = tmp_path / "report.jsonl"
    for name in ("blog", "shop"):
        serve_like_mod_wsgi(
            home, home / "webapps" / name / "apache2" / "conf" / "httpd.conf", report
        )
    run_cron_jobs(home, crontab, report)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == 4  # blog, shop, the jobs cron job, ~/bin/report via cron
    expected = {
        "blog": {"blogcore": "3.1", "shared": "1.0"},
        "shop": {"shared": "1.5"},
        "jobs": {"worker": "0.7", "helper": "2.0"},
        "~": {"helper": "2.0"},
    }
    for line in lines:
        prefix = Path(line["prefix"])
        app = next(name for name, venv in venvs.items() if venv == prefix)
        assert {n: v for n, (v, _) in line["found"].items()} == expected[app]
        for _, file in line["found"].values():
            assert Path(file).is_relative_to(venvs[app]), file
    for lib in libs:
        lib.with_name("lib.away").rename(lib)
    (home / "jobs.log").unlink()  # the cron job's own output, not the migration's

    undone = cli(home, crontab, "rollback", result["transaction"])
    assert undone.returncode == 0, undone.stderr
    assert snapshot(home) == before
    assert crontab.read_bytes() == crontab_before


def test_run_refuses_and_writes_nothing_when_a_file_cannot_be_rewritten(
    account: tuple[Path, Path],
) -> None:
    home, crontab = account
    conf = home / "webapps" / "blog" / "apache2" / "conf" / "httpd.conf"
    conf.write_text(conf.read_text().replace("python-path=", "python-path=${APP_PATH}:"))
    before, crontab_before = snapshot(home), crontab.read_bytes()
    done = cli(home, crontab, "run", "--yes")
    assert done.returncode == 1
    assert "APP_PATH" in done.stderr and "httpd.conf" in done.stderr
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before
    assert not (home / ".concentric-migrate" / "journals").exists() or not any(
        (home / ".concentric-migrate" / "journals").iterdir()
    )


def test_a_failing_verify_rolls_everything_back(account: tuple[Path, Path]) -> None:
    home, crontab = account
    # A package whose import fails in a clean venv (it needs a module only ~/lib has).
    lib = home / "webapps" / "shop" / "lib" / f"python{PY}"
    (lib / "shared" / "__init__.py").write_text('__version__ = "1.5"\nimport only_on_old_path\n')
    (home / "webapps" / "shop" / "only_on_old_path.py").write_text("")
    before, crontab_before = snapshot(home), crontab.read_bytes()
    done = cli(home, crontab, "run", "--yes")
    assert done.returncode == 1, done.stdout
    assert "only_on_old_path" in done.stderr and "rolled back" in done.stderr
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before


def test_run_without_yes_on_a_pipe_asks_for_it(account: tuple[Path, Path]) -> None:
    home, crontab = account
    done = cli(home, crontab, "run")
    assert done.returncode == 2 and "--yes" in done.stderr


def test_a_migrated_account_is_not_migrated_twice(account: tuple[Path, Path]) -> None:
    home, crontab = account
    assert cli(home, crontab, "run", "--yes").returncode == 0
    migrated = snapshot(home), crontab.read_bytes()
    again = cli(home, crontab, "run", "--dry-run", "--json")
    assert again.returncode == 1
    problems = json.loads(again.stdout)["problems"]
    assert any("blog has a venv at ~/webapps/blog/venv already" in p for p in problems)
    refused = cli(home, crontab, "run", "--yes", "--json")
    assert refused.returncode == 1
    document = json.loads(refused.stdout)
    assert document["ok"] is False and document["error"]["kind"] == "refused"
    assert any("blog has a venv" in p for p in document["error"]["problems"])
    assert (snapshot(home), crontab.read_bytes()) == migrated


def test_a_failed_run_says_so_in_json_too(account: tuple[Path, Path]) -> None:
    home, crontab = account
    lib = home / "webapps" / "shop" / "lib" / f"python{PY}"
    (lib / "shared" / "__init__.py").write_text('__version__ = "1.5"\nimport only_on_old_path\n')
    done = cli(home, crontab, "run", "--yes", "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert (document["command"], document["ok"]) == ("run", False)
    error = document["error"]
    assert (error["kind"], error["exit_code"], error["rolled_back"]) == ("failed", 1, True)
    assert "only_on_old_path" in error["message"] and error["transaction"]


def test_run_refuses_a_python_home_mod_wsgi_cannot_use(tmp_path: Path) -> None:
    """Rule 5: the app's packages are for Python 2.7, the real mod_wsgi links another
    libpython: a venv for 2.7 could not be its python-home, so run stops and says why."""
    home = tmp_path / "home"
    app_dir = home / "webapps" / "old"
    lib = app_dir / "lib" / "python2.7"
    write_files(lib, {"oldpkg/__init__.py": '__version__ = "1.0"\n'})
    conf = (
        httpd_conf(app_dir, "old", 18499, home)
        .replace("modules/mod_wsgi.so", str(MOD_WSGI))
        .replace(f"python{PY}", "python2.7")
    )
    write_files(app_dir, {"old.wsgi": "import oldpkg\n", "apache2/conf/httpd.conf": conf})
    crontab = tmp_path / "crontab"
    crontab.write_text("")
    before = snapshot(home)
    done = cli(home, crontab, "run", "--yes")
    assert done.returncode == 1
    assert "mod_wsgi" in done.stderr and "2.7" in done.stderr
    assert "settle this `plan` finding first" in done.stderr
    assert snapshot(home) == before


def test_a_relative_crontab_path_means_the_file_where_the_user_is(
    account: tuple[Path, Path],
) -> None:
    home, crontab = account
    done = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", crontab.name,
         "run", "--yes"],
        capture_output=True, text=True, cwd=crontab.parent,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "venv/bin/python" in crontab.read_text()
    assert not (home / crontab.name).exists()  # not a new file in the home


def run_while_building(
    home: Path, crontab: Path, edit: Callable[[subprocess.Popen[str]], object]
) -> tuple[int, str]:
    """``run --yes`` in a subprocess; ``edit(process)`` is made once it has begun writing
    (the requirement files come first, then seconds of venv building): (exit code, stderr)."""
    first_write = requirement_paths(home / "webapps" / "blog")[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab),
         "run", "--yes", "--no-restart"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not first_write.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    edit(process)
    _out, err = process.communicate(timeout=600)
    return process.returncode, err


def test_a_crontab_edited_while_run_builds_is_not_overwritten(
    account: tuple[Path, Path],
) -> None:
    """The user edits the crontab after ``run`` read it (while the venvs are built): the
    rewrite planned from the old text is refused, everything is rolled back, and the
    user's edit stays."""
    home, crontab = account
    before = snapshot(home)
    edited = crontab.read_bytes() + b"# the user's own line, added while run builds\n"
    code, err = run_while_building(home, crontab, lambda _: crontab.write_bytes(edited))
    assert code == 1, err
    assert "crontab changed while the migration ran" in err
    assert crontab.read_bytes() == edited
    assert snapshot(home) == before


def test_code_edited_while_run_builds_stops_the_run(account: tuple[Path, Path]) -> None:
    """A source file the plan read (not one it rewrites) gets a new import while the venvs
    are built: the venvs were planned for the old code, so the run rolls back and says so."""
    home, crontab = account
    manage = home / "webapps" / "jobs" / "manage.py"
    before = snapshot(home)
    edited = b"import only_on_old_path\n" + manage.read_bytes()
    code, err = run_while_building(home, crontab, lambda _: manage.write_bytes(edited))
    assert code == 1, err
    assert "webapps/jobs/manage.py changed while the migration ran" in err
    assert manage.read_bytes() == edited
    after = snapshot(home)
    for state in (before, after):
        del state["webapps/jobs/manage.py"]
    assert after == before


def test_sigterm_while_run_builds_rolls_everything_back(account: tuple[Path, Path]) -> None:
    """A service manager or ``kill`` stops ``run`` as Ctrl-C does: the transaction is
    rolled back at once, not left open for a later ``rollback`` (issue 16)."""
    home, crontab = account
    before, crontab_before = snapshot(home), crontab.read_bytes()
    code, err = run_while_building(home, crontab, lambda process: process.terminate())
    assert code == 1, err
    assert "terminated (SIGTERM)" in err and "rolled back" in err
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before
    journal = cli(home, crontab, "journal", "--json")
    (transaction,) = json.loads(journal.stdout)["transactions"]
    assert transaction["state"] == "rolled-back", transaction


def test_a_wsgi_file_linked_into_two_apps_is_rewritten_once(
    tmp_path: Path, bare_python: Path
) -> None:
    """One file under two names (``b.wsgi -> ../a/a.wsgi``): one rewrite, not a second
    write that finds the first's bytes and stops the run forever (issue 16)."""
    home = tmp_path / "home"
    wheels = tmp_path / "wheels"
    install_wheels(account_lib(home), [package("shared", "1.0")], wheels)
    lib = home / "lib" / f"python{PY}"
    write_files(
        home / "webapps" / "a",
        {"a.wsgi": f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport shared\n"},
    )
    (home / "webapps" / "b").mkdir(parents=True)
    (home / "webapps" / "b" / "b.wsgi").symlink_to("../a/a.wsgi")
    crontab = tmp_path / "crontab"
    crontab.write_text("")
    python = f"--python={PY}={bare_python}"
    dry = cli(home, crontab, "run", "--dry-run", "--json", python)
    assert dry.returncode == 0, dry.stdout
    files = [f["path"] for a in json.loads(dry.stdout)["apps"] for f in a["files"]]
    assert files == [str(home / "webapps" / "a" / "a.wsgi")]
    done = cli(home, crontab, "run", "--yes", "--no-restart", python)
    assert done.returncode == 0, done.stderr
    assert "# concentric-migrate:" in (home / "webapps" / "b" / "b.wsgi").read_text()
    assert (home / "webapps" / "b" / "b.wsgi").is_symlink()

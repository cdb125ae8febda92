"""Apps started by the account's own sh scripts, ``-m`` jobs and scripts cron runs with an
inline ``PYTHONPATH`` (issue 15): modelled, migrated, and run for real afterwards.

The account: ``daemon``, WebFaction's "custom app listening on port" — cron starts
``bin/start`` at reboot and as a watchdog; the script exports ``PYTHONPATH`` with the
concentric dirs, changes folder and runs ``nohup python3.X app.py &`` with a pid file.
``jobs`` runs ``cd ~/webapps/jobs && python3.X -m tasks.nightly``; the account runs
``python3.X -m reports`` from the home, where an unrelated old script imports what nothing
provides; ``tool``'s ``bin/tool`` is run by cron with ``PYTHONPATH=$HOME/lib/…`` inline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import PY, account_lib, http_get, install_wheels, write_files
from journal_helper import snapshot

from migrate.build.wheelfile import WheelSpec
from migrate.discover.account import discover
from migrate.discover.crontab import parse_crontab
from migrate.inventory import take_inventory
from migrate.resolve.plan import AppPlan, plan_account

REPORT = """
import json, os, sys
def _report(names):
    found = {}
    for name in names:
        module = __import__(name)
        found[name] = [getattr(module, "__version__", None), os.path.realpath(module.__file__)]
    with open(os.environ["REPORT_TO"], "a") as out:
        out.write(json.dumps({"who": WHO, "prefix": sys.prefix, "found": found}) + "\\n")
"""


def package(name: str, version: str, *requires: str) -> WheelSpec:
    body = f'__version__ = "{version}"\n'
    return WheelSpec(name, version, {f"{name}/__init__.py": body.encode()}, requires=requires)


def reporting(who: str, names: list[str]) -> str:
    return f"import {', '.join(names)}\nWHO = {who!r}\n{REPORT}\n_report({names!r})\n"


# The page names the versions, a clock line that varies by itself, an optional extra that
# only a computed import finds, and links to a stable page.
SERVE = """
import http.server, time
try:
    extras = __import__("plugin" + "_x")
except ImportError:
    extras = None
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/about":
            body = b"a daemon"
        else:
            body = ("engine %s, shared %s\\nserved at %r\\nextras: %s\\n<a href='/about'>about</a>"
                    % (engine.__version__, shared.__version__, time.time(),
                       "yes" if extras else "no")).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""


START = """#!/bin/sh
# start the daemon unless it runs (cron's watchdog calls this every 10 minutes)
PIDFILE=$HOME/webapps/daemon/daemon.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    exit 0
fi
export PYTHONPATH=$HOME/webapps/daemon/lib/python{py}:$HOME/lib/python{py}
cd $HOME/webapps/daemon
nohup python{py} app.py > daemon.log 2>&1 &
echo $! > "$PIDFILE"
"""


@pytest.fixture
def account(tmp_path: Path, webfaction_python: Path, decoy_on_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    wheels = tmp_path / "wheels"
    install_wheels(account_lib(home), [package("shared", "1.0")], wheels)
    install_wheels(account_lib(home, "daemon"), [package("engine", "2.0", "shared")], wheels)
    install_wheels(account_lib(home, "jobs"), [package("worker", "0.7")], wheels)
    install_wheels(account_lib(home, "tool"), [package("toolkit", "3.0")], wheels)
    daemon, jobs, tool = (home / "webapps" / name for name in ("daemon", "jobs", "tool"))
    app = reporting("daemon", ["engine", "shared"]) + f"PORT = {free_port()}\n" + SERVE
    write_files(daemon, {"app.py": app, "bin/start": START.format(py=PY)})
    write_files(jobs, {"tasks/__init__.py": "", "tasks/nightly.py": reporting("jobs", ["worker"])})
    write_files(
        tool,
        {"bin/tool": f"#!/usr/bin/env python{PY}\n" + reporting("tool", ["toolkit", "shared"])},
    )
    write_files(
        home,
        {
            "reports.py": reporting("reports", ["shared"]),
            "attic/old.py": "import long_gone_package\n",
        },
    )
    for script in (daemon / "bin" / "start", tool / "bin" / "tool"):
        script.chmod(0o755)
    crontab = tmp_path / "crontab"
    crontab.write_text(
        f"PATH={webfaction_python.parent}:/usr/bin:/bin\n"
        f"REPORT_TO={tmp_path / 'report.jsonl'}\n"
        "@reboot ~/webapps/daemon/bin/start\n"
        "*/10 * * * * ~/webapps/daemon/bin/start\n"
        f"*/5 * * * * cd ~/webapps/jobs && python{PY} -m tasks.nightly\n"
        f"0 * * * * python{PY} -m reports\n"
        f"1 * * * * PYTHONPATH=$HOME/webapps/tool/lib/python{PY}:$HOME/lib/python{PY} "
        "~/webapps/tool/bin/tool\n",
        encoding="utf-8",
    )
    return home, crontab


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plan_of(home: Path, crontab: Path) -> dict[str, AppPlan]:
    account = discover(home)
    plan = plan_account(account, take_inventory(account), parse_crontab(crontab.read_text()))
    return {app.name: app for app in plan.apps}


def used(app: AppPlan) -> dict[str, str | None]:
    return {row.dist.name: row.dist.version for row in app.packages if row.used}


def test_the_plan_follows_cron_into_start_scripts_and_m_modules(
    account: tuple[Path, Path],
) -> None:
    home, crontab = account
    apps = plan_of(home, crontab)

    daemon = apps["daemon"]
    (entry,) = daemon.entry_points
    assert entry.kind == "process" and entry.path == home / "webapps/daemon/app.py"
    assert entry.launcher == home / "webapps/daemon/bin/start" and entry.launch_line == 9
    assert entry.pythonpath == (home / f"webapps/daemon/lib/python{PY}", home / f"lib/python{PY}")
    assert "bin/start line 9" in entry.source and "crontab line" in entry.source
    assert used(daemon) == {"engine": "2.0", "shared": "1.0"}
    assert not [f for f in daemon.findings if f.kind == "entry-point"], daemon.findings

    # -m: the module's own code is scanned, not the working folder's every file.
    assert used(apps["jobs"]) == {"worker": "0.7"}
    account_group = apps["~"]
    assert used(account_group) == {"shared": "1.0"}
    assert not [f for f in account_group.findings if f.kind == "missing"], account_group.findings
    assert used(apps["tool"]) == {"toolkit": "3.0", "shared": "1.0"}


def cli(home: Path, crontab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab), *args],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip


def cron_env(home: Path, crontab: Path) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh",
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    for line in crontab.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and " " not in name and not line.startswith("#"):
            env[name] = value
    return env


def run_like_cron(home: Path, crontab: Path) -> None:
    """Every job's command through ``sh -c`` with the crontab's environment, from the home."""
    env = cron_env(home, crontab)
    for line in crontab.read_text().splitlines():
        if not line or line.startswith("#") or "=" in line.split(None, 1)[0]:
            continue
        command = line.split(None, 1)[1] if line.startswith("@") else line.split(None, 5)[5]
        subprocess.run(["sh", "-c", command], check=True, cwd=home, env=env)


def reports(report: Path, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = report.read_text().splitlines() if report.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"only {report.read_text() if report.exists() else ''!r}")


def get(port: int) -> str:
    """The versions line of the daemon's page, once it answers."""
    return page(port).splitlines()[0]


def page(port: int) -> str:
    return http_get(port)


@contextlib.contextmanager
def daemon_running(home: Path, crontab: Path) -> Iterator[int]:
    """The daemon started as cron's @reboot line starts it (its port), stopped after."""
    port = int((home / "webapps/daemon/app.py").read_text().split("PORT = ")[1].split()[0])
    env = cron_env(home, crontab)
    subprocess.run(["sh", "-c", "~/webapps/daemon/bin/start"], check=True, cwd=home, env=env)
    try:
        yield port
    finally:
        stop_daemon(home)


def stop_daemon(home: Path) -> None:
    pid = home / "webapps/daemon/daemon.pid"
    if pid.exists():
        subprocess.run(["kill", pid.read_text().strip()], check=False)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid.read_text().strip()}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def test_run_migrates_the_daemon_its_start_script_and_the_cron_jobs(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, crontab = account
    before, crontab_before = snapshot(home), crontab.read_bytes()
    port = int((home / "webapps/daemon/app.py").read_text().split("PORT = ")[1].split()[0])
    report = tmp_path / "report.jsonl"
    # The daemon runs, started as cron's @reboot line starts it.
    env = cron_env(home, crontab)
    subprocess.run(["sh", "-c", "~/webapps/daemon/bin/start"], check=True, cwd=home, env=env)
    try:
        assert get(port) == "engine 2.0, shared 1.0"
        old_pid = (home / "webapps/daemon/daemon.pid").read_text().strip()

        done = cli(home, crontab, "run", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        venvs = {app["app"]: app["venv"] for app in result["apps"]}
        assert set(venvs) == {"daemon", "jobs", "tool", "~"}
        (process,) = next(a for a in result["apps"] if a["app"] == "daemon")["processes"]
        assert process["restarted"] and process["ports"] == [port]
        assert process["status_before"] == process["status_after"] == 200
        # run restarted it with the rewritten start script: the venv serves it now.
        assert get(port) == "engine 2.0, shared 1.0"
        new_pid = (home / "webapps/daemon/daemon.pid").read_text().strip()
        assert new_pid != old_pid and not Path(f"/proc/{old_pid}").exists()
        restarted = [line for line in reports(report, 2) if line["who"] == "daemon"][-1]
        assert os.path.realpath(restarted["prefix"]) == os.path.realpath(venvs["daemon"])

        start = (home / "webapps/daemon/bin/start").read_text()
        assert f"nohup {venvs['daemon']}/bin/python app.py" in start
        assert [
            line
            for line in start.splitlines()
            if "$HOME/lib/python" in line and not line.startswith("#")
        ] == []
        assert "PYTHONPATH=$HOME/webapps/tool" not in crontab.read_text()

        # Each entry point's runtime, as the rewritten files start it, with ~/lib hidden.
        hidden = cli(home, crontab, "verify", "--isolated", "--json")
        assert hidden.returncode == 0, hidden.stdout
        checked = {a["app"]: a for a in json.loads(hidden.stdout)["apps"]}
        (ran,) = checked["daemon"]["runtimes"]
        assert ran.startswith(f"{home}/webapps/daemon/app.py: {venvs['daemon']}/bin/python"), ran
        assert checked["jobs"]["isolation"] == checked["daemon"]["isolation"] != None  # noqa: E711

        # With every concentric dir gone, cron starts everything from the venvs.
        stop_daemon(home)
        report.unlink()
        libs = [home / "lib", *(home / "webapps" / a / "lib" for a in ("daemon", "jobs", "tool"))]
        for lib in libs:
            lib.rename(lib.with_name("lib.away"))
        run_like_cron(home, crontab)
        seen = {line["who"]: line for line in reports(report, 4)}
        assert get(port) == "engine 2.0, shared 1.0"
    finally:
        stop_daemon(home)
    expected = {
        "daemon": {"engine": "2.0", "shared": "1.0"},
        "jobs": {"worker": "0.7"},
        "reports": {"shared": "1.0"},
        "tool": {"toolkit": "3.0", "shared": "1.0"},
    }
    group = {"daemon": "daemon", "jobs": "jobs", "reports": "~", "tool": "tool"}
    for who, line in seen.items():
        assert os.path.realpath(line["prefix"]) == os.path.realpath(venvs[group[who]]), who
        assert {name: v for name, (v, _) in line["found"].items()} == expected[who]
    for lib in libs:
        lib.with_name("lib.away").rename(lib)
    for leftover in ("daemon.pid", "daemon.log"):
        (home / "webapps/daemon" / leftover).unlink()

    undone = cli(home, crontab, "rollback", result["transaction"])
    assert undone.returncode == 0, undone.stderr
    assert snapshot(home) == before
    assert crontab.read_bytes() == crontab_before


def test_an_app_left_on_the_concentric_dirs_stops_run_unless_skipped(
    account: tuple[Path, Path],
) -> None:
    """Every app is accounted for: Python code nothing known runs would stay on ``~/lib``
    (which the user then removes), so run refuses until the user says ``--skip``."""
    home, crontab = account
    write_files(home / "webapps" / "legacy", {"serve.py": "import shared\n"})
    write_files(home / "webapps" / "site", {"index.html": "<p>hi</p>\n"})
    before, crontab_before = snapshot(home), crontab.read_bytes()

    refused = cli(home, crontab, "run", "--yes")
    assert refused.returncode == 1
    assert "legacy: no WSGI file, script or cron job runs its Python" in refused.stderr
    assert "--skip legacy" in refused.stderr
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before

    dry = cli(home, crontab, "run", "--dry-run", "--json", "--skip", "legacy")
    assert dry.returncode == 0, dry.stdout
    accounted = {a["app"]: a["state"] for a in json.loads(dry.stdout)["accounted"]}
    assert accounted == {
        "daemon": "migrated", "jobs": "migrated", "legacy": "skipped", "site": "static",
        "tool": "migrated", "~": "migrated",
    }  # fmt: skip

    bad = cli(home, crontab, "run", "--yes", "--skip", "nosuch")
    assert bad.returncode == 2 and "--skip nosuch" in bad.stderr

    done = cli(home, crontab, "run", "--yes", "--skip", "legacy", "--skip", "jobs")
    assert done.returncode == 0, done.stderr
    assert "legacy: not migrated (--skip: left as it is)" in done.stdout
    assert "jobs: not migrated (--skip: left as it is)" in done.stdout
    assert "site: static (no Python code)" in done.stdout
    assert not (home / "webapps/jobs/venv").exists() and not (home / "webapps/legacy/venv").exists()
    assert not (home / "webapps/jobs/requirements.txt").exists()
    assert f"cd ~/webapps/jobs && python{PY} -m tasks.nightly" in crontab.read_text()


def test_a_daemon_that_does_not_come_back_rolls_the_run_back_and_runs_again_as_before(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    """An import no static reading can see (a computed name) is missing from the venv: the
    restarted daemon dies at once, so run rolls everything back and starts it again with
    the old start script, where it answers as before."""
    home, crontab = account
    wheels = tmp_path / "more-wheels"
    install_wheels(account_lib(home, "daemon"), [package("plugin_x", "1.1")], wheels)
    app = home / "webapps/daemon/app.py"
    app.write_text('__import__("plugin" + "_x")\n' + app.read_text())
    before, crontab_before = snapshot(home), crontab.read_bytes()
    with daemon_running(home, crontab) as port:
        assert get(port) == "engine 2.0, shared 1.0"
        failed = cli(home, crontab, "run", "--yes")
        assert failed.returncode == 1
        # Seen running for a moment, or gone before the first look: either way it ended.
        assert re.search(r"daemon: app.py (started and )?.*ended at once", failed.stderr)
        assert "rolled back" in failed.stderr
        assert get(port) == "engine 2.0, shared 1.0"
        pid = (home / "webapps/daemon/daemon.pid").read_text().strip()
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == f"python{PY}".encode()
    for leftover in ("daemon.pid", "daemon.log"):
        (home / "webapps/daemon" / leftover).unlink()
    # The old daemon, started again on the old lib dirs, wrote their bytecode as it did.
    unchanged = {k: v for k, v in snapshot(home).items() if "__pycache__" not in k}
    assert unchanged == before and crontab.read_bytes() == crontab_before


def test_a_daemon_answering_other_pages_after_the_restart_rolls_the_run_back(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    """Status 200 before and after, but the page lost its extras: the optional package a
    computed import loads is not in the venv. The clock line, which differs on every
    fetch, is not what stops the run."""
    home, crontab = account
    install_wheels(account_lib(home, "daemon"), [package("plugin_x", "1.1")], tmp_path / "w")
    with daemon_running(home, crontab) as port:
        assert "extras: yes" in page(port)
        failed = cli(home, crontab, "run", "--yes")
        assert failed.returncode == 1, failed.stderr
        assert "daemon answers differently after the restart" in failed.stderr
        assert "GET /: the page changed" in failed.stderr
        assert "-extras: yes" in failed.stderr and "+extras: no" in failed.stderr
        assert "served at" not in failed.stderr
        assert "extras: yes" in page(port)  # the old start script runs it again
        pid = (home / "webapps/daemon/daemon.pid").read_text().strip()
        assert failed.stderr.rstrip().endswith(
            f"Now:\n  daemon: ~/webapps/daemon/app.py running (pid {pid}) (as before)"
        ), failed.stderr


def test_rollback_starts_a_running_daemon_again_with_its_restored_start_script(
    account: tuple[Path, Path],
) -> None:
    """A rollback removes the venv the daemon runs from: it must not be left serving from
    a venv that is gone."""
    home, crontab = account
    with daemon_running(home, crontab) as port:
        done = cli(home, crontab, "run", "--yes")
        assert done.returncode == 0, done.stderr
        pid_file = home / "webapps/daemon/daemon.pid"
        venv_python = f"{home}/webapps/daemon/venv/bin/python".encode()
        assert (
            Path(f"/proc/{pid_file.read_text().strip()}/cmdline")
            .read_bytes()
            .startswith(venv_python)
        )
        undone = cli(home, crontab, "rollback", "--json")
        assert undone.returncode == 0, undone.stderr
        (health,) = json.loads(undone.stdout)["restarted"]
        assert health["app"] == "daemon" and health["status"] == 200, health
        argv0 = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes().split(b"\0")[0]
        assert argv0 == f"python{PY}".encode()
        assert get(port) == "engine 2.0, shared 1.0"

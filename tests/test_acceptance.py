"""Issue 15's acceptance, with real applications from the package index: Trac 1.6 (which
imports Babel and pytz optionally and highlights with Pygments) and a Flask app, both
"custom apps listening on port" started by cron through their own start scripts, with
``PYTHONPATH`` naming ``~/lib``. ``run`` migrates both, restarts them and finds their pages
unchanged; with ``~/lib`` gone they start from their venvs and answer the same pages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import PY, account_lib, http_get, pip_env, write_files

pytestmark = pytest.mark.network

START = """#!/bin/sh
export PYTHONPATH=$HOME/lib/python{py}
cd $HOME/webapps/{app}
nohup {command} > {app}.log 2>&1 &
echo $! > {app}.pid
"""

FLASK_APP = """\
from flask import Flask, render_template_string

app = Flask(__name__)


@app.route("/")
def index():
    return render_template_string(
        "<h1>{{ title }}</h1><a href='/about'>about</a>", title="orders"
    )


@app.route("/about")
def about():
    return "about orders"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def account(tmp_path: Path, webfaction_python: Path) -> Iterator[tuple[Path, Path, dict[str, int]]]:
    home = tmp_path / "home"
    lib = account_lib(home)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib),
         "Trac==1.6", "setuptools<80", "Babel", "pytz", "Pygments", "Flask>=3,<4"],
        check=True, env=pip_env(),
    )  # fmt: skip
    ports = {"trac": free_port(), "orders": free_port()}
    trac = home / "webapps" / "trac"
    trac.mkdir(parents=True)
    subprocess.run(
        [str(webfaction_python), "-m", "trac.admin.console", str(trac / "env"), "initenv",
         "Acceptance", "sqlite:db/trac.db"],
        check=True, capture_output=True, env={"PYTHONPATH": str(lib), "HOME": str(home)},
    )  # fmt: skip
    commands = {
        "trac": f"python{PY} -m trac.web.standalone --port {ports['trac']} -s "
        "$HOME/webapps/trac/env",
        "orders": f"python{PY} app.py",
    }
    write_files(home / "webapps" / "orders", {"app.py": f"PORT = {ports['orders']}\n" + FLASK_APP})
    for app, command in commands.items():
        start = home / "webapps" / app / "bin" / "start"
        write_files(start.parent, {"start": START.format(py=PY, app=app, command=command)})
        start.chmod(0o755)
    crontab = tmp_path / "crontab"
    crontab.write_text(
        f"PATH={webfaction_python.parent}:/usr/bin:/bin\n"
        "@reboot ~/webapps/trac/bin/start\n@reboot ~/webapps/orders/bin/start\n",
        encoding="utf-8",
    )
    try:
        yield home, crontab, ports
    finally:
        stop(home)


def cron_start(home: Path, crontab: Path) -> None:
    env = {"HOME": str(home), "SHELL": "/bin/sh"}
    for line in crontab.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and " " not in name:
            env[name] = value
        elif line.startswith("@reboot"):
            subprocess.run(["sh", "-c", line.split(None, 1)[1]], check=True, cwd=home, env=env)


def stop(home: Path) -> None:
    for app in ("trac", "orders"):
        pid_file = home / "webapps" / app / f"{app}.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)


def test_trac_and_flask_daemons_migrate_and_serve_the_same_pages_without_lib(
    account: tuple[Path, Path, dict[str, int]],
) -> None:
    home, crontab, ports = account
    cron_start(home, crontab)
    wiki = "/wiki/WikiStart?format=txt"
    before = {"trac": http_get(ports["trac"], wiki), "orders": http_get(ports["orders"])}
    assert "Welcome to Trac" in before["trac"] and "orders" in before["orders"]

    done = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab),
         "run", "--yes", "--json", "--url", wiki],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    apps = {a["app"]: a for a in result["apps"]}
    assert set(apps) == {"trac", "orders"}
    for app in apps.values():
        (process,) = app["processes"]
        assert process["restarted"] and process["status_before"] == process["status_after"]
    trac_venv = Path(apps["trac"]["venv"])
    site = next(trac_venv.glob("lib/python*/site-packages"))
    assert {"babel", "pytz", "pygments", "trac", "jinja2"} <= {p.name for p in site.iterdir()}
    assert http_get(ports["trac"], wiki) == before["trac"]

    # ~/lib away: started as cron starts them, the venvs alone serve the same pages.
    stop(home)
    (home / "lib").rename(home / "lib.away")
    try:
        cron_start(home, crontab)
        assert http_get(ports["trac"], wiki) == before["trac"]
        assert http_get(ports["orders"]) == before["orders"]
        for app in ("trac", "orders"):
            pid = (home / "webapps" / app / f"{app}.pid").read_text().strip()
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            assert argv0 == str(Path(apps[app]["venv"]) / "bin" / "python")
    finally:
        stop(home)
        (home / "lib.away").rename(home / "lib")

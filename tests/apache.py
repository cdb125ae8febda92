"""Private Apache + mod_wsgi instances in the WebFaction shape, for end-to-end tests.

Each app gets ``APP/apache2/{conf,logs,run,bin}`` and ``modules`` -> Debian's module dir,
an ``httpd.conf`` of its own (ServerRoot, PidFile, Listen on 127.0.0.1), and the
``start``/``stop``/``restart`` scripts WebFaction wrote. Never the system instance: every
server is started and stopped through its own pid file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from migrate.discover.entrypoints import mod_wsgi_python_version

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
MOD_WSGI = MODULES / "mod_wsgi.so"


def available() -> str | None:
    """Why the end-to-end tests cannot run here, or None."""
    if not os.path.exists(APACHE):
        return "apache2 is not installed (Debian: apt-get install apache2)"
    if not MOD_WSGI.exists():
        return "mod_wsgi is not installed (Debian: apt-get install libapache2-mod-wsgi-py3)"
    return None


def account_root(prefix: str) -> tuple[Path, str]:
    """A fresh folder for an account its Apache can serve — world-readable, as a home
    Apache's workers (www-data when the tests run as root) must read — and the Python
    mod_wsgi links (the X.Y of its lib dirs); skips when that cannot be told."""
    import pytest

    python = mod_wsgi_python_version(MOD_WSGI)
    if python is None:
        pytest.skip("cannot tell which Python mod_wsgi links")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root, python


def open_up(root: Path) -> None:
    """Every folder below ``root`` readable and searchable by the server's workers."""
    for folder, dirs, _files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def httpd_conf(app_dir: Path, name: str, port: int, python_path: list[Path]) -> str:
    server_root = app_dir / "apache2"
    user = ""
    if os.geteuid() == 0:  # Apache will not serve as root: the workers run as www-data
        user = "User www-data\nGroup www-data\n"
    return (
        f'ServerRoot "{server_root}"\n'
        "LoadModule mpm_event_module modules/mod_mpm_event.so\n"
        "LoadModule authz_core_module modules/mod_authz_core.so\n"
        "LoadModule wsgi_module modules/mod_wsgi.so\n"
        f"Listen 127.0.0.1:{port}\n"
        "ServerName localhost\n"
        f"{user}"
        f"PidFile {server_root}/run/httpd.pid\n"
        f"DefaultRuntimeDir {server_root}/run\n"
        f"ErrorLog {server_root}/logs/error_log\n"
        "LogLevel info\n"
        f"WSGISocketPrefix {server_root}/run/wsgi\n"
        f"WSGIDaemonProcess {name} processes=1 threads=4 "
        f"python-path={':'.join(map(str, python_path))}\n"
        f"WSGIProcessGroup {name}\n"
        "WSGIApplicationGroup %{GLOBAL}\n"
        "WSGIRestrictEmbedded On\n"
        f"WSGIScriptAlias / {app_dir}/{name}.wsgi\n"
        f'<Directory "{app_dir}">\n'
        "    Require all granted\n"
        "</Directory>\n"
    )


def make_server(app_dir: Path, name: str, port: int, python_path: list[Path]) -> None:
    """The app's apache2/ tree and scripts (start, stop, restart) as WebFaction made them."""
    server_root = app_dir / "apache2"
    for sub in ("conf", "logs", "run", "bin"):
        (server_root / sub).mkdir(parents=True, exist_ok=True)
    (server_root / "modules").symlink_to(MODULES)
    conf = server_root / "conf" / "httpd.conf"
    conf.write_text(httpd_conf(app_dir, name, port, python_path), encoding="utf-8")
    pid = server_root / "run" / "httpd.pid"
    scripts = {
        "start": f'#!/bin/sh\nexec {APACHE} -f "{conf}" -k start\n',
        # Waits for the whole process group (mod_wsgi daemons too) to be gone — zombies
        # aside, which a container's PID 1 may never reap — so a start finds the port free.
        "stop": (
            "#!/bin/sh\n"
            f'[ -f "{pid}" ] || exit 0\n'
            f'PID="$(cat "{pid}")"\n'
            'kill -TERM "$PID" 2>/dev/null || exit 0\n'
            "for i in $(seq 200); do\n"
            "  ps -e -o stat=,pgid= | awk -v g=\"$PID\" '$2 == g && $1 !~ /^Z/ {f=1} END {exit !f}' "
            "|| exit 0\n"
            "  sleep 0.1\n"
            "done\n"
            "exit 1\n"
        ),
        "restart": f'#!/bin/sh\n"{server_root}/bin/stop" && exec "{server_root}/bin/start"\n',
    }
    for script, body in scripts.items():
        path = server_root / "bin" / script
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)


def start(app_dir: Path, home: Path | None = None) -> None:
    """Run the app's start script; ``home``: the account's, as cron starts it (mod_wsgi's
    Python then finds the account's user site, as on the real host)."""
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    subprocess.run([str(app_dir / "apache2" / "bin" / "start")], check=True, timeout=60, env=env)


def stop(app_dir: Path) -> None:
    """Stop by pid file (SIGKILL the group if it will not go)."""
    pid_file = app_dir / "apache2" / "run" / "httpd.pid"
    subprocess.run([str(app_dir / "apache2" / "bin" / "stop")], check=False, timeout=60)
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def get(port: int, timeout: float = 30.0, path: str = "/") -> tuple[int, str]:
    """(status, body) of GET path once the server answers (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def error_log(app_dir: Path) -> str:
    try:
        return (app_dir / "apache2" / "logs" / "error_log").read_text(errors="replace")[-4000:]
    except OSError:
        return ""

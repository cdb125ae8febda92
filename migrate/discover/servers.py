"""Each app's private Apache as its ``httpd.conf`` describes it: what ``run`` restarts and
asks whether the app is healthy, and the Python its mod_wsgi dictates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.httpd import Config, read_config
from migrate.discover.interpreters import mod_wsgi_interpreter
from migrate.layout import app_httpd_conf

_LISTEN = re.compile(r"^(?:\[?[0-9A-Fa-f.:]*\]?:)?(\d+)$")
_LIBPYTHON = re.compile(rb"libpython(\d\.\d+)")


@dataclass(frozen=True)
class Server:
    """An app's private Apache: how to restart it and where to ask whether it is healthy."""

    app: str
    bin_dir: Path
    port: int | None
    mod_wsgi: Path | None
    """The ``mod_wsgi.so`` its httpd.conf loads, if any."""
    pid_file: Path | None = None
    mod_wsgi_python: str | None = None
    """The X.Y of the libpython that mod_wsgi.so links (read from the file)."""
    mod_wsgi_interpreter: Path | None = None
    """The ``pythonX.Y`` of the installation whose libpython it loads (``ldd``)."""

    @property
    def restart(self) -> tuple[Path, ...]:
        """``restart``, or ``stop`` then ``start``: what WebFaction's scripts offer."""
        restart = self.bin_dir / "restart"
        if restart.is_file():
            return (restart,)
        return tuple(self.bin_dir / name for name in ("stop", "start"))


def server_of(app_dir: Path, name: str, config: Config) -> Server:
    """The server an app's parsed ``httpd.conf`` describes (its mod_wsgi asked once)."""
    root = config.server_root or app_dir / "apache2"
    pid_files = config.named("pidfile")
    pid_file = Path(pid_files[-1].args[0]) if pid_files and pid_files[-1].args else None
    pid_file = root / (pid_file or Path("logs") / "httpd.pid")  # Apache's default
    so = mod_wsgi_so(config, root)
    return Server(
        name,
        app_dir / "apache2" / "bin",
        _port(config),
        so,
        pid_file,
        mod_wsgi_python_version(so) if so is not None else None,
        mod_wsgi_interpreter(so) if so is not None else None,
    )


def read_server(app_dir: Path, name: str) -> Server | None:
    """An app's server read afresh (after a rollback put its old config back); None without
    an ``httpd.conf``."""
    conf = app_httpd_conf(app_dir)
    return server_of(app_dir, name, read_config(conf)) if conf.is_file() else None


def mod_wsgi_so(config: Config, server_root: Path) -> Path | None:
    """The ``mod_wsgi.so`` an httpd.conf loads (relative paths from its ServerRoot)."""
    for load in config.named("loadmodule"):
        if len(load.args) >= 2 and load.args[0] == "wsgi_module":
            so = Path(load.args[1])
            return so if so.is_absolute() else server_root / so
    return None


def mod_wsgi_python_version(so: Path) -> str | None:
    """The X.Y of the ``libpythonX.Y`` named inside ``mod_wsgi.so``."""
    try:
        data = so.read_bytes()
    except OSError:
        return None
    match = _LIBPYTHON.search(data)
    return match.group(1).decode() if match else None


def _port(config: Config) -> int | None:
    for listen in config.named("listen"):
        if listen.args and (match := _LISTEN.match(listen.args[0])):
            return int(match.group(1))
    return None

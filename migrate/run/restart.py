"""Restart an app's private Apache with its own scripts and ask it for a status.

WebFaction-style apps come with ``apache2/bin/start|stop|restart``; those are run as
argument lists (never through a shell made from config text), with a timeout. Health is
the HTTP status of ``GET /`` on the app's ``Listen`` port on 127.0.0.1: a migration is
healthy when each app answers as it did before.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.servers import Server
from migrate.privilege import Owner, as_owner

RESTART_TIMEOUT = 120
HEALTH_TIMEOUT = 30.0
_PROBE_TIMEOUT = 10.0


class RestartError(Exception):
    """An app's restart script failed or its server did not come back as it was."""


@dataclass(frozen=True)
class Health:
    app: str
    port: int | None
    status: int | None
    """HTTP status of ``GET /``; None when nothing answered."""
    detail: str = ""


def probe(server: Server) -> Health:
    """``GET /`` once; a refused or failed connection is status None (not running)."""
    if server.port is None:
        return Health(server.app, None, None, "no Listen port in httpd.conf")
    return probe_port(server.app, server.port)


def probe_port(app: str, port: int) -> Health:
    """``GET /`` on 127.0.0.1:``port`` once."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT)
    try:
        connection.request("GET", "/", headers={"User-Agent": "concentric-migrate"})
        response = connection.getresponse()
        response.read()
        return Health(app, port, response.status)
    except (OSError, http.client.HTTPException) as exc:
        return Health(app, port, None, no_answer(exc, port))
    finally:
        connection.close()


def no_answer(exc: BaseException, port: int) -> str:
    """Why nothing answered on ``port``, in words a user can act on (never a bare errno)."""
    where = f"127.0.0.1:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens on {where} (connection refused): the server is not running"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {_PROBE_TIMEOUT:.0f} s"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError)):
        return f"the server on {where} closed the connection without an answer"
    if isinstance(exc, http.client.HTTPException):
        return f"the server on {where} did not answer in HTTP ({type(exc).__name__})"
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{where} could not be reached: {reason}"


def running(server: Server) -> bool:
    """Its pid file names a live process (whatever it answers: a server whose venv was just
    removed still runs, and answers nothing useful)."""
    if server.pid_file is None:
        return False
    try:
        pid = int(server.pid_file.read_text(encoding="ascii").strip())
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


def restart(server: Server, log: Path, owner: Owner | None = None) -> None:
    """Run the app's ``restart`` script (or ``stop`` then ``start``), its output in ``log``
    (which must exist); ``owner``: as the home's owner (the script is hers: never as root)."""
    for script in server.restart:
        if not script.is_file():
            raise RestartError(f"{server.app}: {script} does not exist, so it cannot restart")
        run_script(script, log, check=script.name != "stop", what=server.app, owner=owner)


def run_script(
    script: Path,
    log: Path,
    *,
    check: bool,
    what: str,
    environment: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    owner: Owner | None = None,
) -> None:
    """Run one of the app's own scripts, as a list of arguments (never a shell made from
    config text), detached, its output appended to ``log``: never a pipe, which a server it
    backgrounds without redirecting would inherit and hold open (a wait for its end would
    last as long as the server). ``log`` must exist: the caller makes it, owned by whom it is
    for, and it is never followed through a symlink. ``check``: a non-zero exit is a
    :class:`RestartError`, which quotes the end of what it printed."""
    argv = [str(script)] if os.access(script, os.X_OK) else ["/bin/sh", str(script)]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "ab") as out:
        start = out.tell()
        try:
            done = subprocess.run(
                argv, env=None if environment is None else dict(environment), cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                timeout=RESTART_TIMEOUT, check=False,
                **as_owner(owner),
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RestartError(
                f"{what}: {script} ran over {RESTART_TIMEOUT} s; {log} says why"
            ) from None
        except OSError as exc:
            raise RestartError(f"{what}: {script} cannot run: {exc.strerror}") from None
    if check and done.returncode != 0:
        with open(log, "rb") as written:
            written.seek(start)
            said = written.read()[-1500:].decode("utf-8", "replace").strip()
        raise RestartError(f"{what}: {script} exited {done.returncode}: {said} (in {log})")


def wait_for(
    server: Server,
    expected: int | None,
    timeout: float = HEALTH_TIMEOUT,
    *,
    any_answer: bool = False,
) -> Health:
    """Probe until the app answers ``expected`` (with ``any_answer``: anything at all), or
    ``timeout`` passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        health = probe(server)
        done = health.status is not None if any_answer else health.status == expected
        if done or time.monotonic() >= deadline:
            return health
        time.sleep(0.2)


def can_restart(server: Server) -> bool:
    return all(script.is_file() for script in server.restart)

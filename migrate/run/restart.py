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
from dataclasses import dataclass

from migrate.discover.servers import Server

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


def restart(server: Server) -> None:
    """Run the app's ``restart`` script (or ``stop`` then ``start``)."""
    for script in server.restart:
        if not script.is_file():
            raise RestartError(f"{server.app}: {script} does not exist, so it cannot restart")
        try:
            done = subprocess.run(
                [str(script)], capture_output=True, text=True, timeout=RESTART_TIMEOUT,
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RestartError(f"{server.app}: {script} ran over {RESTART_TIMEOUT} s") from None
        except OSError as exc:
            raise RestartError(f"{server.app}: {script} cannot run: {exc.strerror}") from None
        if done.returncode != 0 and script.name != "stop":
            said = (done.stderr or done.stdout).strip()[-1500:]
            raise RestartError(f"{server.app}: {script} exited {done.returncode}: {said}")


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

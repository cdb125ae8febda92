"""Restart a process app — a Python server its own sh script starts — and ask it if it is well.

The runtime is the oracle: which processes run an entry point is read from ``/proc``
(their argv and working folder, owned by the home's owner), and the TCP ports they listen
on from the sockets they hold. A restart runs the app's ``stop`` script beside its start
script when there is one, else sends the processes SIGTERM (SIGKILL after a grace time);
then it runs the start script as cron does: with the crontab's environment, detached, its
output in a log (never a pipe a backgrounded server would inherit), as the home's owner.
Healthy means a new process runs the entry point and, where the old one listened on a
port, ``GET /`` there answers as it did before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.crontab import parse_crontab
from migrate.discover.entrypoints import EntryPoint, script_argument
from migrate.discover.interpreters import CRON_PATH, PYTHON_NAME
from migrate.privilege import Owner
from migrate.run.restart import Health, RestartError, probe_port, run_script

STOP_GRACE = 10.0
START_TIMEOUT = 30.0
SETTLE = 1.0
"""How long a new process must stay up to count as started (an import error ends it sooner)."""


@dataclass(frozen=True)
class Daemon:
    """A Python server of an app, started by an sh script."""

    app: str
    launcher: Path
    entry: Path
    """Its script, or its working folder for ``-m``."""
    module: str | None = None

    @property
    def stop_script(self) -> Path | None:
        stop = self.launcher.parent / "stop"
        return stop if stop.is_file() and stop != self.launcher else None


@dataclass(frozen=True)
class DaemonState:
    daemon: Daemon
    pids: tuple[int, ...]
    ports: tuple[int, ...]
    health: Health | None = None
    """``GET /`` on its first port; None without a port."""

    @property
    def running(self) -> bool:
        return bool(self.pids)


def cron_environment(crontab: str | None, home: Path, uid: int) -> dict[str, str]:
    """What cron hands a job: its own variables, then the crontab's environment lines."""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    env = {"HOME": str(home), "LOGNAME": user, "USER": user, "SHELL": "/bin/sh"}
    env["PATH"] = CRON_PATH
    if crontab is not None:
        env.update((line.name, line.value) for line in parse_crontab(crontab).env)
    return env


def daemons_of(app: str, entries: Sequence[EntryPoint]) -> tuple[Daemon, ...]:
    """The servers among an app's entry points: each Python command of a start script."""
    found = {
        Daemon(app, entry.launcher, entry.path, entry.module)
        for entry in entries
        if entry.kind == "process" and entry.launcher is not None
    }
    return tuple(sorted(found, key=lambda d: (str(d.launcher), str(d.entry))))


def state(daemon: Daemon, uid: int) -> DaemonState:
    """Which processes of ``uid`` run the daemon's entry point now, and what they answer."""
    pids = tuple(pid for pid in _pids_of(uid) if _runs(pid, daemon))
    ports = tuple(sorted({port for pid in pids for port in _listening(pid)}))
    health = probe_port(daemon.app, ports[0]) if ports else None
    return DaemonState(daemon, pids, ports, health)


def restart_daemon(
    before: DaemonState,
    *,
    environment: Mapping[str, str],
    home: Path,
    log: Path,
    owner: Owner | None,
) -> DaemonState:
    """Stop the daemon's processes and run its start script; the state it comes back in.

    Raises :class:`RestartError` when it does not come back, or answers otherwise than
    ``before`` did; what it started is stopped again first, so a restart on the old
    configuration finds nothing of it (not even a zombie a pid file still names)."""
    daemon = before.daemon
    uid = owner.uid if owner else os.geteuid()
    script = functools.partial(
        run_script, log=log, what=daemon.app, environment=environment, cwd=home, owner=owner
    )
    if daemon.stop_script is not None:
        script(daemon.stop_script, check=False)
    _stop(before.pids)
    script(daemon.launcher, check=True)
    started: set[int] = set()
    try:
        return _came_back(before, uid, log, started)
    except RestartError:
        _stop(sorted(started))
        raise


def _came_back(before: DaemonState, uid: int, log: Path, started: set[int]) -> DaemonState:
    daemon = before.daemon
    deadline = time.monotonic() + START_TIMEOUT
    while not started:
        started.update(pid for pid in state(daemon, uid).pids if pid not in before.pids)
        if started:
            break
        if time.monotonic() >= deadline:
            # A server that dies at once (an import error) may be gone before it is seen.
            raise RestartError(
                f"{daemon.app}: {daemon.entry.name} is not running {START_TIMEOUT:.0f} s after "
                f"{daemon.launcher.name} ran (it did not start, or ended at once); {log} and "
                "its own log say why"
            )
        time.sleep(0.2)
    time.sleep(SETTLE)
    now = state(daemon, uid)
    started.update(pid for pid in now.pids if pid not in before.pids)
    if not [pid for pid in now.pids if pid not in before.pids]:
        raise RestartError(
            f"{daemon.app}: {daemon.entry.name} started and ended at once; {log} says why"
        )
    if before.health is None or before.health.port is None:
        return now
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        health = probe_port(daemon.app, before.health.port)
        if health.status == before.health.status or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if health.status != before.health.status:
        raise RestartError(
            f"{daemon.app} answered {health.status or health.detail} on port "
            f"{before.health.port} after the restart, {before.health.status} before; "
            f"{log} says why"
        )
    return DaemonState(daemon, now.pids, now.ports, health)


def _stop(pids: Sequence[int]) -> None:
    """SIGTERM what still runs, then SIGKILL what outlives the grace time; then wait (a
    grace time more) until each is reaped: a start script's ``kill -0 $(cat pidfile)``
    takes a zombie for a running server and would not start a new one."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 2.0)):
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            break
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
            time.sleep(0.1)
    deadline = time.monotonic() + STOP_GRACE
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _pids_of(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                continue
    return out


def _runs(pid: int, daemon: Daemon) -> bool:
    """The process runs Python on the daemon's script (or ``-m`` module in its folder)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            argv = [a.decode("utf-8", "surrogateescape") for a in raw.read().split(b"\0") if a]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if not argv or not _alive(pid):
        return False
    if not PYTHON_NAME.match(os.path.basename(argv[0])):
        # A script run by its shebang: the kernel puts the interpreter first.
        return len(argv) > 1 and _same(argv[1], cwd, daemon.entry) and not daemon.module
    script, module = script_argument(tuple(argv[1:]))
    if daemon.module is not None:
        return module == daemon.module and os.path.realpath(cwd) == os.path.realpath(daemon.entry)
    return script is not None and _same(script, cwd, daemon.entry)


def _same(path: str, cwd: str, entry: Path) -> bool:
    return os.path.realpath(os.path.join(cwd, path)) == os.path.realpath(entry)


def _listening(pid: int) -> set[int]:
    """TCP ports the process listens on: its socket inodes matched in ``/proc/net/tcp*``."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports

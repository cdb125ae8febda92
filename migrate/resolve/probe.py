"""Ground truth from the real runtime: start an entry point's own runtime privately and ask.

The static path model is checked against the runtime that really serves the entry point,
not against an emulation of it:

* a WSGI file served by mod_wsgi: a private Apache (this machine's ``apache2``, or the
  app's own ``apache2/bin/httpd``) loads the app's own ``mod_wsgi.so`` with the app's
  ``python-path`` / ``python-home`` (``WSGIDaemonProcess``, or ``WSGIPythonPath`` /
  ``WSGIPythonHome`` in embedded mode) on a free loopback port, from a config and a
  ServerRoot in a temporary folder, and serves :mod:`migrate.resolve._probe` as a WSGI file;
* a cron job or script: the interpreter its runtime starts runs :mod:`migrate.resolve._probe` in
  the job's environment (cron's ``PATH``, ``HOME``, ``SHELL``, the job's own
  ``PYTHONPATH``) from the job's working folder. The probe cannot sit where the script is
  (the home is not written), so it starts with ``-S`` and runs the interpreter's own site
  start-up itself once ``sys.argv[0]`` and ``sys.path[0]`` are the script's: what a patched
  site (WebFaction's upward scan) derives from the script's place comes out right.

Nothing is written into the home (logs, pid file and sockets stay in the temporary folder)
and the app's own entry file is not run: the report is the path the runtime builds before
the entry file's own ``sys.path`` edits, and where each name would load from (located,
not imported). Starting a runtime does run what it runs at start-up (``.pth`` import lines,
``sitecustomize``), so when root probes a user's home the runtime runs as that user.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.discover.entrypoints import EntryPoint
from migrate.discover.interpreters import CRON_PATH
from migrate.isolation import can_hide, isolated
from migrate.privilege import give, owner_of
from migrate.resolve import _probe
from migrate.resolve.syspath import PathModel

PROBE_TIMEOUT = 60.0


class ProbeUnavailable(Exception):
    """The entry point's runtime cannot be started privately here; the message says why."""


@dataclass(frozen=True)
class ProbeReport:
    """What the real runtime reported for one entry point."""

    entry: EntryPoint
    runtime: str
    """What was started, in words (``mod_wsgi /usr/lib/.../mod_wsgi.so in daemon mode``)."""
    executable: str
    sys_path: tuple[str, ...]
    origins: dict[str, str | None]


def probe_entry(
    entry: EntryPoint, home: Path, names: Sequence[str], hidden: Sequence[Path] = ()
) -> ProbeReport:
    """Start ``entry``'s runtime privately and report its path and where ``names`` load from.

    With ``hidden``, the runtime runs with those dirs covered (``verify --isolated``: the
    concentric dirs), in a private mount namespace; where none can be made it is not
    started. Raises ProbeUnavailable when it cannot be started (no mod_wsgi, no Apache, no
    interpreter, no namespace to hide the dirs in).
    """
    if hidden and not can_hide():
        raise ProbeUnavailable("no private mount namespace here to start it with the dirs hidden")
    with tempfile.TemporaryDirectory(prefix="concentric-probe-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # the runtime may run as the home's owner or Apache's user
        if entry.kind == "wsgi" and entry.source != "file":
            return _probe_mod_wsgi(entry, home, names, work, hidden)
        if entry.kind in ("cron", "script", "process"):
            return _probe_process(entry, home, names, work, hidden)
        raise ProbeUnavailable("no httpd.conf serves this WSGI file: there is no runtime to ask")


def disagreements(report: ProbeReport, model: PathModel) -> list[str]:
    """Where the static model and the real runtime differ: the path, then name by name."""
    found = []
    real = [os.path.normpath(p) for p in report.sys_path]
    modelled = [os.path.normpath(entry.path) for entry in model.entries]
    if real != modelled:
        index = next(
            (i for i, (a, b) in enumerate(zip(real, modelled, strict=False)) if a != b),
            min(len(real), len(modelled)),
        )
        found.append(
            f"sys.path differs from entry {index}: the runtime has "
            f"{real[index : index + 3] or 'nothing more'}, the model "
            f"{modelled[index : index + 3] or 'nothing more'}"
        )
    for name, origin in sorted(report.origins.items()):
        winner = model.resolve(name).winner
        predicted = None
        if winner is not None:
            predicted = "built-in" if winner.kind == "builtin" else str(winner.origin)
        if _same_file(origin, predicted):
            continue
        found.append(
            f"import {name} loads {origin or 'nothing'} there, {predicted or 'nothing'} "
            "in the model"
        )
    return found


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None or "built-in" in (a, b):
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


def _config(work: Path, names: Sequence[str], **extra: object) -> Path:
    path = work / "config.json"
    path.write_text(json.dumps({"names": list(names), **extra}), encoding="utf-8")
    path.chmod(0o644)
    return path


def _probe_source() -> str:
    return Path(_probe.__file__).read_text(encoding="utf-8")


def _probe_process(
    entry: EntryPoint, home: Path, names: Sequence[str], work: Path, hidden: Sequence[Path]
) -> ProbeReport:
    if entry.executable is None:
        raise ProbeUnavailable(f"no interpreter to start ({entry.executable_reason})")
    script = work / "probe.py"
    script.write_text(_probe_source(), encoding="utf-8")
    script.chmod(0o644)
    output = work / "report.json"
    front = entry.path if entry.module else entry.path.parent
    argv0 = "-m" if entry.module else str(entry.path)
    config = _config(work, names, output=str(output), script_dir=str(front), argv0=argv0)
    owner = owner_of(home)
    give(work, owner)
    env = {
        "HOME": str(home),
        "LOGNAME": owner.name if owner else _user_name(os.geteuid()),
        "SHELL": "/bin/sh",
        "PATH": CRON_PATH,
        "LC_ALL": "C.UTF-8",
        **({"PYTHONPATH": ":".join(map(str, entry.pythonpath))} if entry.pythonpath else {}),
    }
    cwd = (
        entry.path
        if entry.module
        else home
        if entry.kind in ("cron", "process")
        else entry.path.parent
    )
    try:
        done = subprocess.run(
            isolated([str(entry.executable), "-S", str(script), str(config)], hidden, owner)[0],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT, env=env, check=False,
            cwd=str(cwd) if cwd.is_dir() else str(home), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeUnavailable(f"{entry.executable} could not run the probe: {exc}") from None
    if done.returncode != 0 or not output.is_file():
        said = (done.stderr or done.stdout).strip()[-500:]
        raise ProbeUnavailable(f"{entry.executable} exited {done.returncode}: {said}")
    found = json.loads(output.read_text(encoding="utf-8"))
    return _report(entry, f"{entry.executable} as its {entry.kind} runs it", found)


def _report(entry: EntryPoint, runtime: str, found: dict[str, object]) -> ProbeReport:
    origins = found.get("origins")
    sys_path = found.get("sys_path")
    if not isinstance(origins, dict) or not isinstance(sys_path, list):
        raise ProbeUnavailable(f"{runtime}: the probe's report is malformed")
    return ProbeReport(
        entry, runtime, str(found.get("executable")), tuple(map(str, sys_path)), origins
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _apache(entry: EntryPoint) -> Path:
    """The Apache that serves the app: its own build (``APP/apache2/bin/httpd``, as
    WebFaction's installers left it) or this machine's."""
    assert entry.mod_wsgi is not None
    own = entry.path.parent / "apache2" / "bin" / "httpd"
    for candidate in (
        own if own.is_file() else None,
        shutil.which("apache2"),
        "/usr/sbin/apache2",
        shutil.which("httpd"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ProbeUnavailable("no Apache to start mod_wsgi with (apache2 or httpd)")


def _probe_mod_wsgi(
    entry: EntryPoint, home: Path, names: Sequence[str], work: Path, hidden: Sequence[Path]
) -> ProbeReport:
    so = entry.mod_wsgi
    if so is None or not so.is_file():
        raise ProbeUnavailable(f"mod_wsgi is not there ({so or 'its httpd.conf loads none'})")
    mpm = next((so.parent / f"mod_mpm_{k}.so" for k in ("event", "worker", "prefork")
                if (so.parent / f"mod_mpm_{k}.so").is_file()), None)  # fmt: skip
    apache = _apache(entry)
    wsgi = work / "probe.wsgi"
    config = _config(work, names)
    wsgi.write_text(f"CONFIG_FILE = {str(config)!r}\n" + _probe_source(), encoding="utf-8")
    wsgi.chmod(0o644)
    conf = work / "httpd.conf"
    mode = "daemon" if entry.daemon else "embedded"
    runtime = f"{apache} with {so} in {mode} mode"
    with _free_port() as port:
        conf.write_text(_httpd_conf(entry, work, home, so, mpm, port), encoding="utf-8")
        with _running(apache, conf, work, home, hidden):
            found = _fetch(port, work)
    return _report(entry, runtime, found)


def _httpd_conf(
    entry: EntryPoint, work: Path, home: Path, so: Path, mpm: Path | None, port: int
) -> str:
    path = ":".join(str(p) for p in entry.site_dirs)
    lines = [f'ServerRoot "{work}"']
    if mpm is not None:
        lines.append(f"LoadModule {mpm.stem.removeprefix('mod_')}_module {mpm}")
    authz = so.parent / "mod_authz_core.so"
    if authz.is_file():
        lines.append(f"LoadModule authz_core_module {authz}")
    lines += [
        f"LoadModule wsgi_module {so}",
        f"Listen 127.0.0.1:{port}",
        "ServerName localhost",
        f"PidFile {work}/httpd.pid",
        f"DefaultRuntimeDir {work}",
        f"ErrorLog {work}/error_log",
        f"WSGISocketPrefix {work}/wsgi",
        "WSGIApplicationGroup %{GLOBAL}",
    ]
    if os.geteuid() == 0:  # Apache will not serve as root: as the home's owner
        owner = owner_of(home)
        uid, gid = (owner.uid, owner.gid) if owner is not None else _world_reader(home)
        lines += [f"User {_user_name(uid)}", f"Group {_group_name(gid)}"]
    if entry.daemon:
        options = f" python-path={path}" if path else ""
        options += f" python-home={entry.python_home}" if entry.python_home else ""
        lines += [
            f"WSGIDaemonProcess probe processes=1 threads=1{options}",
            "WSGIProcessGroup probe",
        ]
    else:
        if path:
            lines.append(f"WSGIPythonPath {path}")
        if entry.python_home:
            lines.append(f"WSGIPythonHome {entry.python_home}")
    lines += [f"WSGIScriptAlias /probe {work}/probe.wsgi"]
    if authz.is_file():
        lines += [f'<Directory "{work}">', "    Require all granted", "</Directory>"]
    return "\n".join(lines) + "\n"


def _world_reader(home: Path) -> tuple[int, int]:
    """Who serves a home root owns: Apache will not run as root, so an unprivileged user
    who can read it — only when everyone may (else the probe would see less than the app)."""
    readable = home.stat().st_mode & 0o004 and all(
        os.stat(folder).st_mode & 0o001 for folder in (home, *home.parents)
    )
    if not readable:
        raise ProbeUnavailable(
            f"{home} belongs to root and others cannot read it: Apache will not serve as root"
        )
    try:
        nobody = pwd.getpwnam("www-data")
    except KeyError:
        nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


_PORTS_HELD: set[int] = set()
_PORTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _free_port() -> Iterator[int]:
    """A loopback port free now, and handed to no other probe of this process until the
    block ends (``run`` verifies apps at once: two probes must never get one port)."""
    with _PORTS_LOCK:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _PORTS_HELD:
                _PORTS_HELD.add(port)
                break
    try:
        yield port
    finally:
        with _PORTS_LOCK:
            _PORTS_HELD.discard(port)


@contextlib.contextmanager
def _running(
    apache: Path, conf: Path, work: Path, home: Path, hidden: Sequence[Path]
) -> Iterator[None]:
    """The probe server, started as the app's start script starts it (``HOME`` is the
    account's, so its Python finds the account's user site), stopped and reaped after."""
    started = subprocess.run(
        isolated([str(apache), "-f", str(conf), "-k", "start"], hidden)[0],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False,
        stdin=subprocess.DEVNULL, env={"PATH": CRON_PATH, "LANG": "C", "HOME": str(home)},
    )  # fmt: skip
    if started.returncode != 0:
        said = (started.stderr or started.stdout).strip()[-800:]
        raise ProbeUnavailable(f"{apache} would not start the probe server: {said}")
    try:
        yield
    finally:
        _stop(work / "httpd.pid")


def _stop(pid_file: Path) -> None:
    """Stop the probe server and every process of its group (the mod_wsgi daemons)."""
    deadline = time.monotonic() + 15
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _fetch(port: int, work: Path) -> dict[str, object]:
    deadline = time.monotonic() + PROBE_TIMEOUT
    url = f"http://127.0.0.1:{port}/probe"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
                found = json.loads(response.read().decode("utf-8"))
                if not isinstance(found, dict):
                    raise ProbeUnavailable("the probe server answered something else")
                return found
        except urllib.error.HTTPError as exc:
            log = _tail(work / "error_log")
            raise ProbeUnavailable(f"the probe server answered HTTP {exc.code}: {log}") from None
        except (OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise ProbeUnavailable(f"the probe server did not answer: {exc}") from None
            time.sleep(0.1)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-800:]
    except OSError:
        return "(no error log)"

"""Find every way Python code of the account gets run, and which interpreter runs it.

Sources: each app's ``apache2/conf/httpd.conf`` (and what it Includes), ``*.wsgi`` /
``wsgi.py`` files, scripts with a Python shebang in ``APP/bin``, ``APP/apache2/bin`` and
``HOME/bin``, and crontab jobs that run an interpreter or such a script. The interpreter is
the one each runtime starts: mod_wsgi's libpython installation (``ldd``), a cron job's
``pythonX.Y`` on cron's ``PATH`` (the crontab's ``PATH=``, else cron's default), the file
an absolute shebang names, an ``env`` shebang's program on the ``PATH`` of whoever starts
it. No code of the account is run (interpreters are asked their version).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from migrate.discover.account import Account, App
from migrate.discover.crontab import Crontab, shell_assignment
from migrate.discover.httpd import Config, read_config
from migrate.discover.interpreters import (
    CRON_PATH,
    LOGIN_PATH,
    PYTHON_NAME,
    mod_wsgi_interpreter,
    version_of,
    which,
)
from migrate.discover.processes import is_shell_script, launches
from migrate.discover.servers import Server, mod_wsgi_python_version, mod_wsgi_so, server_of
from migrate.discover.shell import expand_path
from migrate.discover.snapshot import FileRead, snapshot
from migrate.findings import Finding
from migrate.layout import ACCOUNT_GROUP, app_httpd_conf, app_start_scripts, webapps_dir
from migrate.paths import is_inside

EntryKind = Literal["wsgi", "script", "cron", "process"]
"""``process``: a Python command in one of the account's sh scripts (an app's start script)."""

_PY_OPTIONS_WITH_ARG = {"-W", "-X", "-Q"}
_SHEBANG_LIMIT = 256
CRON_EXPORTS = frozenset({"HOME", "LOGNAME", "PATH", "SHELL", "USER"})
"""What cron puts in every job's environment: assigning one in a job changes what the
commands after it get, ``export`` or not."""


@dataclass(frozen=True)
class EntryPoint:
    path: Path
    """The WSGI file or script that is run (for ``python -m``, the job's working dir)."""
    kind: EntryKind
    group: str
    """The app it belongs to, or ``~`` for the account's own scripts."""
    python: str | None
    python_reason: str
    source: str
    """Where it was found: ``httpd.conf line 12``, ``crontab line 4``, ``shebang``."""
    interpreter: str | None = None
    pythonpath: tuple[Path, ...] = ()
    site_dirs: tuple[Path, ...] = ()
    """mod_wsgi ``python-path`` / ``WSGIPythonPath``: added with ``site.addsitedir``."""
    python_home: Path | None = None
    upward_scan: bool = False
    """The WebFaction interpreter's scan of ancestors' ``lib/pythonX.Y`` applies, if the
    interpreter does it (scripts, cron jobs; WSGI files no httpd.conf names)."""
    module: str | None = None
    executable: Path | None = None
    """The interpreter its runtime starts; None when none can be found."""
    executable_reason: str = ""
    """Why that one (or why none): shown by ``plan``."""
    executable_named: bool = False
    """The runtime names this very file (a path in a shebang or a cron line, mod_wsgi's
    libpython): ``--python`` only fills in where a name was looked up or nothing found."""
    mod_wsgi: Path | None = None
    """The ``mod_wsgi.so`` that serves it (a WSGI file an httpd.conf names)."""
    daemon: bool = False
    """Served in a ``WSGIDaemonProcess`` (else embedded mode)."""
    launcher: Path | None = None
    """The sh script whose command starts it (``process``): the rewrite points that command
    at the venv's python."""
    launch_line: int = 0
    """The line of that command in the launcher."""


@dataclass(frozen=True)
class EntryPoints:
    entry_points: tuple[EntryPoint, ...]
    configs: Mapping[str, Config] = field(default_factory=dict)
    """Each app's parsed ``httpd.conf`` (with what it Includes)."""
    findings: tuple[Finding, ...] = field(default=())
    servers: Mapping[str, Server] = field(default_factory=dict)
    """Each app's private Apache, as its ``httpd.conf`` describes it."""
    files: Mapping[Path, FileRead] = field(default_factory=dict, compare=False, repr=False)
    """The bytes of every file a migration may rewrite: configs, start scripts, entry files."""

    def for_group(self, group: str) -> tuple[EntryPoint, ...]:
        return tuple(e for e in self.entry_points if e.group == group)


def find_entry_points(account: Account, crontab: Crontab | None) -> EntryPoints:
    found: list[EntryPoint] = []
    configs: dict[str, Config] = {}
    servers: dict[str, Server] = {}
    findings: list[Finding] = []
    cron = _cron_entries(crontab, account) if crontab is not None else []
    started_by_cron = {entry.launcher for entry in cron if entry.launcher is not None}
    for app in account.apps:
        for script in _shell_scripts(app.path / "bin"):
            if script not in started_by_cron:  # run by hand: a login shell's environment
                found.extend(_process_entries(script, account, {}, CRON_EXPORTS, app.path, ""))
        if not app.has_python:
            continue  # an app of no Python files may still run an installed one (above)
        lib_versions = _lib_versions(account, app.name)
        conf_path = app_httpd_conf(app.path)
        wsgi_seen: set[Path] = set()
        if os.path.lexists(conf_path) and not conf_path.is_file():
            findings.append(Finding(conf_path, "error", "not a regular file: cannot be read"))
        elif conf_path.is_file():
            config = configs[app.name] = read_config(conf_path, account.home)
            servers[app.name] = server_of(app.path, app.name, config)
            findings.extend(config.findings)
            for entry in _wsgi_entries(config, app, account.home, lib_versions):
                found.append(entry)
                wsgi_seen.add(entry.path)
        for path in _wsgi_files(app.path):
            if path not in wsgi_seen:
                # No httpd.conf names it: assume the app's lib dirs, as the scan would.
                python, reason = _from_lib_versions(lib_versions)
                runs = _assumed(python, "no httpd.conf serves it")
                entry = EntryPoint(
                    path, "wsgi", app.name, python, reason, "file", upward_scan=True, **runs
                )
                found.append(entry)
        for directory in (app.path / "bin", app.path / "apache2" / "bin"):
            found.extend(_shebang_scripts(directory, app.name, account))
    found.extend(_shebang_scripts(account.home / "bin", ACCOUNT_GROUP, account))
    found.extend(cron)
    if crontab is not None:
        findings.extend(
            Finding(crontab.source, "warning", f"line {number}: {message}")
            for number, message in crontab.problems
        )
    entries = tuple(_dedupe(found))
    known = {
        Path(os.path.abspath(file)): data
        for config in configs.values()
        for file, data in zip(config.files, config.data, strict=True)
    }
    runs = {entry.group for entry in found}
    scripts = [
        s
        for app in account.apps
        if app.has_python or app.name in runs
        for s in app_start_scripts(app.path)
    ]
    launchers = [entry.launcher for entry in entries if entry.launcher is not None]
    files = snapshot([*known, *scripts, *launchers, *(entry.path for entry in entries)], known)
    return EntryPoints(entries, configs, tuple(findings), servers, files)


def group_of(path: Path, home: Path) -> str:
    try:
        parts = path.relative_to(webapps_dir(home)).parts
    except ValueError:
        return ACCOUNT_GROUP
    return parts[0] if parts else ACCOUNT_GROUP


def _dedupe(entries: Iterable[EntryPoint]) -> list[EntryPoint]:
    """A cron job running a HOME/bin script already listed keeps the cron details."""
    by_key: dict[tuple[Path, str | None, Path | None, int], EntryPoint] = {}
    for entry in entries:
        key = (entry.path, entry.module, entry.launcher, entry.launch_line)
        if key in by_key and entry.kind != "cron":
            continue
        by_key[key] = entry
    return list(by_key.values())


def _lib_versions(account: Account, app: str | None) -> list[str]:
    """The X.Y of the app's own lib dirs; an app with none sees the account's (the upward
    ``lib/pythonX.Y`` scan reaches ``~/lib``)."""

    def versions(owner: str | None) -> list[str]:
        return sorted(
            {lib.python for lib in account.lib_dirs if lib.app == owner},
            key=lambda v: tuple(int(p) for p in v.split(".")),
        )

    return versions(app) or (versions(None) if app is not None else [])


def _named_or_lib_python(
    version: str | None, named_reason: str, account: Account, group: str
) -> tuple[str | None, str]:
    """The X.Y the command names, else the one the group's lib dirs are for."""
    if version:
        return version, named_reason
    return _from_lib_versions(_lib_versions(account, None if group == ACCOUNT_GROUP else group))


def _from_lib_versions(versions: list[str]) -> tuple[str | None, str]:
    if not versions:
        return None, "no lib/pythonX.Y dir to tell the Python version"
    if len(versions) == 1:
        return versions[0], f"the only lib dir is lib/python{versions[0]}"
    return versions[-1], f"newest of the lib dirs ({', '.join(versions)})"


# --------------------------------------------------------------------------- mod_wsgi


def _wsgi_entries(
    config: Config, app: App, home: Path, lib_versions: list[str]
) -> list[EntryPoint]:
    server_root = config.server_root or app.path / "apache2"
    mod_wsgi_python = _mod_wsgi_python(config, server_root)
    daemons = {d.args[0]: d for d in config.named("wsgidaemonprocess") if d.args}
    groups = config.named("wsgiprocessgroup")
    embedded_path = tuple(
        Path(p)
        for d in config.named("wsgipythonpath")
        for arg in d.args
        for p in arg.split(":")
        if p
    )
    embedded_home = next((Path(d.args[0]) for d in config.named("wsgipythonhome") if d.args), None)
    out = []
    for alias in config.named("wsgiscriptalias"):
        if len(alias.args) < 2:
            continue
        script = Path(alias.args[1])
        if not script.is_absolute():
            script = server_root / script
        group_name = (
            alias.option("process-group")
            or next((g.args[0] for g in groups if g.args and g.sections == alias.sections), None)
            or (groups[0].args[0] if groups and groups[0].args else None)
        )
        daemon = daemons.get(group_name) if group_name else None
        if daemon is not None:
            site_dirs = tuple(Path(p) for p in (daemon.option("python-path") or "").split(":") if p)
            python_home = daemon.option("python-home")
            source = f"{daemon.file} line {daemon.line}"
        else:
            site_dirs, python_home = embedded_path, str(embedded_home) if embedded_home else None
            source = f"{alias.file} line {alias.line}"
        python, reason = mod_wsgi_python or _python_from_dirs(site_dirs, python_home, lib_versions)
        runtime = _mod_wsgi_runtime(config, server_root, python)
        out.append(
            EntryPoint(
                path=script,
                kind="wsgi",
                group=app.name,
                python=python,
                python_reason=reason,
                source=source,
                site_dirs=site_dirs,
                python_home=Path(python_home) if python_home else None,
                mod_wsgi=mod_wsgi_so(config, server_root),
                daemon=daemon is not None,
                **runtime,
            )
        )
    return out


def _mod_wsgi_runtime(config: Config, server_root: Path, python: str | None) -> dict[str, Any]:
    """The installation whose libpython the app's mod_wsgi loads: what runs its WSGI files."""
    so = mod_wsgi_so(config, server_root)
    if so is None:
        return _assumed(python, "its httpd.conf loads no mod_wsgi")
    executable = mod_wsgi_interpreter(so)
    if executable is None:
        why = f"ldd cannot tell which libpython {so} loads (missing, static, or not mod_wsgi)"
        return {"executable": None, "executable_reason": why}
    why = f"mod_wsgi {so} loads the libpython of {executable} (ldd)"
    return {"executable": executable, "executable_reason": why, "executable_named": True}


def _assumed(python: str | None, why: str) -> dict[str, Any]:
    """No runtime says which interpreter: ``pythonX.Y`` on a login shell's default PATH."""
    if python is None:
        return {"executable": None, "executable_reason": f"{why}, and its Python is unknown"}
    executable = which(f"python{python}", LOGIN_PATH)
    if executable is None:
        reason = f"{why}; no python{python} on the default PATH ({LOGIN_PATH}) to assume"
    else:
        reason = f"{why}: assumed python{python} on the default PATH ({LOGIN_PATH})"
    return {"executable": executable, "executable_reason": reason}


def _named(interpreter: str, search_path: str, who: str) -> dict[str, Any]:
    """An interpreter as a command or shebang names it: a path is that file, a bare name
    (a command, or ``#!/usr/bin/env NAME``) the first one on ``search_path``."""
    if "/" in interpreter:
        path = Path(interpreter)
        if path.is_file() and os.access(path, os.X_OK):
            why = f"{who} names {path}"
            return {"executable": path, "executable_reason": why, "executable_named": True}
        why = f"{who} names {path}, which does not exist or cannot run here"
        return {"executable": None, "executable_reason": why}
    found = which(interpreter, search_path)
    if found is None:
        why = f"{who} runs {interpreter}, which is not on its PATH ({search_path})"
        return {"executable": None, "executable_reason": why}
    why = f"{who} runs {interpreter}: {found} on its PATH ({search_path})"
    return {"executable": found, "executable_reason": why}


def _python_of(
    runtime: dict[str, Any], named: str | None, named_reason: str, account: Account, group: str
) -> tuple[str | None, str]:
    """X.Y of an entry point: the interpreter's own, else the one its name or lib dirs say."""
    executable = runtime["executable"]
    version = version_of(executable) if executable is not None else None
    if version is not None:
        return version, f"{executable} is Python {version}"
    return _named_or_lib_python(named, named_reason, account, group)


def _mod_wsgi_python(config: Config, server_root: Path) -> tuple[str, str] | None:
    """The Python mod_wsgi.so was built for, read from the libpython name it links."""
    so = mod_wsgi_so(config, server_root)
    version = mod_wsgi_python_version(so) if so is not None else None
    return (version, f"mod_wsgi {so} links libpython{version}") if version else None


def _python_from_dirs(
    site_dirs: tuple[Path, ...], python_home: str | None, lib_versions: list[str]
) -> tuple[str | None, str]:
    for directory in site_dirs:
        match = re.search(r"/lib/python(\d\.\d+)(?:/|$)", str(directory))
        if match:
            return match.group(1), f"python-path names {directory}"
    if python_home:
        for candidate in sorted(Path(python_home, "lib").glob("python*")):
            match = re.fullmatch(r"python(\d\.\d+)", candidate.name)
            if match:
                return match.group(1), f"python-home {python_home} holds {candidate.name}"
    return _from_lib_versions(lib_versions)


def _wsgi_files(app_dir: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(app_dir):
        dirs[:] = [d for d in dirs if d not in ("lib", "apache2", "venv", "static", "node_modules")]
        if len(Path(root).relative_to(app_dir).parts) >= 3:
            dirs[:] = []
        out.extend(Path(root, n) for n in names if n.endswith(".wsgi") or n == "wsgi.py")
    return sorted(out)


# --------------------------------------------------------------------------- scripts


def shebang_python(path: Path) -> tuple[str, str | None] | None:
    """(interpreter as written, X.Y or None) when ``path`` starts with a Python shebang."""
    try:
        with open(path, "rb") as handle:
            return shebang_of(handle.read(_SHEBANG_LIMIT))
    except OSError:
        return None


def shebang_of(head: bytes) -> tuple[str, str | None] | None:
    """:func:`shebang_python` of a file's first bytes."""
    head = head[:_SHEBANG_LIMIT]
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if not words:
        return None
    match = PYTHON_NAME.match(os.path.basename(words[0]))
    if not match:
        return None
    version = match["version"]
    return words[0], version if version and "." in version else None


def _shebang_scripts(directory: Path, group: str, account: Account) -> list[EntryPoint]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        found = shebang_python(path)
        if found is None:
            continue
        interpreter, version = found
        runtime = _named(interpreter, LOGIN_PATH, "its shebang")
        venv = venv_of(Path(interpreter)) if interpreter.startswith("/") else None
        if venv is not None:
            home = Path(interpreter).parent.parent
            out.append(
                EntryPoint(
                    path,
                    "script",
                    group,
                    *venv,
                    "shebang",
                    interpreter,
                    python_home=home,
                    upward_scan=True,
                    **runtime,
                )
            )
            continue
        python, reason = _python_of(
            runtime, version, f"shebang names {interpreter}", account, group
        )
        out.append(
            EntryPoint(
                path,
                "script",
                group,
                python,
                reason,
                "shebang",
                interpreter,
                upward_scan=True,
                **runtime,
            )
        )
    return out


# --------------------------------------------------------------------------- crontab


def _cron_entries(crontab: Crontab, account: Account) -> list[EntryPoint]:
    out = []
    for job in crontab.jobs:
        cwd = account.home
        env = dict(job.environment)
        exported = set(env) | CRON_EXPORTS
        for command in job.commands:
            for name, value in (shell_assignment(w, account.home) for w in command.setting):
                if command.exports or name in env or name in CRON_EXPORTS:
                    env[name] = value
                    exported.add(name)
            if command.setting or command.exports:
                continue
            if command.argv[:1] == ("cd",) and len(command.argv) > 1:
                cwd = expand_path(command.argv[1], account.home, cwd)
                continue
            if not command.argv:
                continue
            inline = dict(shell_assignment(word, account.home) for word in command.assignments)
            source = f"crontab line {job.lineno}"
            entry = _command_entry(command.argv, {**env, **inline}, cwd, account, source, "cron")
            if entry is not None:
                out.append(entry)
                continue
            script = _shell_script(command.argv, account.home, cwd)
            if script is not None:
                environment = {k: v for k, v in {**env, **inline}.items() if k in exported}
                environment.update(inline)
                out.extend(
                    _process_entries(
                        script, account, environment, frozenset(exported | set(inline)), cwd,
                        f"run by {source}",
                    )
                )  # fmt: skip
    return out


def _shell_scripts(directory: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [directory / n for n in names if is_shell_script(directory / n)]


def _shell_script(argv: tuple[str, ...], home: Path, cwd: Path) -> Path | None:
    """The sh script of the home a command runs (``script``, ``sh script``), if any."""
    program = os.path.basename(argv[0])
    if program in ("sh", "bash", "dash") and len(argv) > 1 and not argv[1].startswith("-"):
        path = expand_path(argv[1], home, cwd)
    elif "/" in argv[0] or argv[0].startswith("~"):
        path = expand_path(argv[0], home, cwd)
        if not is_shell_script(path):
            return None
    else:
        return None
    return path if is_inside(path, home) and path.is_file() else None


def _process_entries(
    script: Path,
    account: Account,
    environment: Mapping[str, str],
    exported: frozenset[str],
    cwd: Path,
    how: str,
) -> list[EntryPoint]:
    """Each Python command the start script at ``script`` (and the scripts it runs) starts."""
    out = []
    for launch in launches(script, account.home, environment, exported, cwd):
        where = launch.script  # absolute, as every source: the text shows it as ~/…
        source = f"{where} line {launch.line} ({how})" if how else f"{where} line {launch.line}"
        env = {**launch.environment, **launch.inline}
        entry = _command_entry(launch.argv, env, launch.cwd, account, source, "process")
        if entry is not None:
            out.append(dataclasses.replace(entry, launcher=launch.script, launch_line=launch.line))
    return out


def _command_entry(
    argv: tuple[str, ...],
    environment: Mapping[str, str],
    cwd: Path,
    account: Account,
    source: str,
    kind: EntryKind,
) -> EntryPoint | None:
    """The entry point a command line starts (``pythonX.Y [-m] …`` or a script with a
    Python shebang), with the ``PATH`` and ``PYTHONPATH`` of ``environment``; else None."""
    raw_path = environment.get("PYTHONPATH")
    program = argv[0]
    search_path = environment.get("PATH") or CRON_PATH
    who = "cron" if kind == "cron" else "its start script"
    match = PYTHON_NAME.match(os.path.basename(program))
    if match:
        script, module = script_argument(argv[1:])
        if script is None and module is None:
            return None
        path = expand_path(script, account.home, cwd) if script else cwd
        group = group_of(path, account.home)
        runs = expand_path(program, account.home, cwd)
        runtime = _named(str(runs) if "/" in program else program, search_path, who)
        venv = venv_of(runs) if "/" in program else None
        if venv is not None:
            pythonpath = _pythonpath(raw_path, venv[0], cwd)
            return EntryPoint(
                path, kind, group, *venv, source, program, pythonpath,
                python_home=runs.parent.parent, module=module, upward_scan=True, **runtime,
            )  # fmt: skip
        version = match["version"] if match["version"] and "." in match["version"] else None
        python, reason = _python_of(runtime, version, f"{who} runs {program}", account, group)
        pythonpath = _pythonpath(raw_path, python, cwd)
        return EntryPoint(
            path, kind, group, python, reason, source, program, pythonpath,
            upward_scan=True, module=module, **runtime,
        )  # fmt: skip
    path = expand_path(program, account.home, cwd)
    shebang = shebang_python(path) if path.is_file() else None
    if shebang is None:
        return None
    interpreter, version = shebang
    group = group_of(path, account.home)
    runtime = _named(interpreter, search_path, f"its shebang, run by {who},")
    venv = venv_of(Path(interpreter)) if interpreter.startswith("/") else None
    if venv is not None:
        pythonpath = _pythonpath(raw_path, venv[0], cwd)
        return EntryPoint(
            path, kind, group, *venv, source, interpreter, pythonpath,
            python_home=Path(interpreter).parent.parent, upward_scan=True, **runtime,
        )  # fmt: skip
    python, reason = _python_of(runtime, version, f"shebang names {interpreter}", account, group)
    pythonpath = _pythonpath(raw_path, python, cwd)
    return EntryPoint(
        path, kind, group, python, reason, source, interpreter, pythonpath, upward_scan=True,
        **runtime,
    )  # fmt: skip


def _pythonpath(value: str | None, python: str | None, cwd: Path) -> tuple[Path, ...]:
    """``PYTHONPATH`` as the interpreter reads it: each part as it is (the shell expanded
    what it expands when it assigned it; cron's environment lines expand nothing), relative
    to the working folder; an empty part is the working folder; an empty value is ignored
    by Python 3 but is the working folder to Python 2."""
    if value is None or (value == "" and not (python or "").startswith("2.")):
        return ()
    return tuple(Path(os.path.normpath(cwd / part)) if part else cwd for part in value.split(":"))


def venv_of(python: Path) -> tuple[str, str] | None:
    """(X.Y, why) when ``python`` is a virtualenv's interpreter (``VENV/bin/python``, with
    ``VENV/pyvenv.cfg``): it sees its own site-packages, no ``lib/pythonX.Y`` scan."""
    venv = python.parent.parent
    if python.parent.name != "bin" or not (venv / "pyvenv.cfg").is_file():
        return None
    versions = sorted(p.name[len("python") :] for p in (venv / "lib").glob("python*.*"))
    if not versions:
        return None
    return versions[-1], f"the virtualenv {venv} is for Python {versions[-1]}"


def script_argument(args: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(script, module) of ``python [options] script|-m module ...``; ``-c`` runs neither."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m" and index + 1 < len(args):
            return None, args[index + 1]
        if arg.startswith("-m") and len(arg) > 2:
            return None, arg[2:]
        if arg == "-c" or arg.startswith("-c"):
            return None, None
        if arg in _PY_OPTIONS_WITH_ARG:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return arg, None
    return None, None

"""The interpreter that really runs each entry point, and its facts as it really starts.

An entry point is modelled with the interpreter its runtime starts — mod_wsgi's libpython
installation, the ``pythonX.Y`` on cron's ``PATH``, the file a shebang names — never the
operator's ``PATH`` or pyenv (:func:`find_interpreter` serves the tool's own helpers and the
tests' fixtures only). Its facts are read by running it, the way it starts: its stdlib, the
site dirs its own ``site`` adds (Debian's ``dist-packages`` and ``/usr/local`` included,
a venv's own), and whether it scans ancestors' ``lib/pythonX.Y`` as WebFaction's patched
interpreter did. Candidates are run, never trusted by name. Results are cached per process;
nothing here raises.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from migrate.privilege import as_owner, controller, give_tree

_TIMEOUT = 60
_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
_PYTHON_FILE = re.compile(r"^python(\d\.\d+)$")

PYTHON_NAME = re.compile(r"^python(?P<version>\d(?:\.\d+)?)?$")
"""A program name that starts Python (``python``, ``python3``, ``python2.7``): the one rule
the plan and the rewriters use to tell a Python command."""

CRON_PATH = "/usr/bin:/bin"
"""The ``PATH`` cron gives a job when the crontab sets none (Debian's cron, Vixie cron)."""
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"
"""What a script started by hand finds first: the head of a login shell's default ``PATH``."""

_SCAN_VERSIONS = [f"2.{m}" for m in range(4, 8)] + [f"3.{m}" for m in range(0, 21)]
"""Every X.Y an interpreter could scan ``lib/pythonX.Y`` for, to detect the scan by running it."""

# Runs under the target interpreter (2.7 included) with -S -E, from a script in a scratch
# account tree: records the stdlib path, then lets site do what it does at a normal start
# (site.main: .pth files, venvs, sitecustomize — a patched interpreter's scan included).
_FACTS_SCRIPT = r"""
import sys, json
stdlib = [p for p in sys.path[1:] if p]
script_dir = sys.path[0]
import site
site.main()
try:
    from importlib.machinery import EXTENSION_SUFFIXES as ext
except ImportError:
    import imp
    ext = [s for s, _, kind in imp.get_suffixes() if kind == imp.C_EXTENSION]
getsp = getattr(site, "getsitepackages", None)
json.dump({
    "version": "%d.%d" % sys.version_info[:2],
    "executable": sys.executable,
    "prefix": sys.prefix,
    "stdlib": stdlib,
    "script_dir": script_dir,
    "sys_path": [p for p in sys.path if p],
    "site_packages": getsp() if getsp else [],
    "builtins": sorted(sys.builtin_module_names),
    "extension_suffixes": list(ext),
}, sys.stdout)
"""


@dataclass(frozen=True)
class Interpreter:
    version: str
    executable: Path
    prefix: Path
    stdlib: tuple[Path, ...]
    site_packages: tuple[Path, ...]
    """The site dirs its ``site`` really adds, in order (each then processes its .pth files)."""
    builtins: frozenset[str]
    extension_suffixes: tuple[str, ...] = (".so",)
    upward_scan: bool = False
    """It adds every ancestor's ``lib/pythonX.Y`` of a script (WebFaction's patched site)."""
    scan_after_site: bool = False
    """Those scanned dirs come after its site dirs (else before them, after the stdlib)."""
    user_site: bool = True
    """Its ``site`` adds the user's ``~/.local/lib/pythonX.Y/site-packages`` (a venv without
    system site packages does not)."""
    site_before_user: int = 0
    """How many of its site dirs come before the user site (a venv's own: one)."""
    sys_path: tuple[Path, ...] = ()
    """``sys.path`` after its site ran, for a script outside any account: the proof the
    model of stdlib + site dirs must reproduce."""


def interpreter_at(executable: Path) -> Interpreter | None:
    """The facts of the interpreter at ``executable``, read by running it; None if it will
    not run (missing, not Python, broken)."""
    return _facts(os.path.abspath(executable))


def which(program: str, search_path: str) -> Path | None:
    """``program`` looked up on ``search_path`` the way a shell or ``env`` does (the first
    executable regular file), or None."""
    found = shutil.which(program, path=search_path)
    return Path(found) if found else None


def version_of(executable: Path) -> str | None:
    """X.Y of an interpreter: from its name (``python3.11``, or what a ``python3`` link
    points at), else by running it."""
    for candidate in (executable, Path(os.path.realpath(executable))):
        match = _PYTHON_FILE.match(candidate.name)
        if match:
            return match.group(1)
    facts = interpreter_at(executable)
    return facts.version if facts else None


def find_interpreter(
    version: str, overrides: Mapping[str, Path] | None = None
) -> Interpreter | None:
    """A working ``pythonX.Y`` for the tool's own use: an override, then PATH, then pyenv.

    Never the model of an app: an app runs on what its runtime starts (see the module
    docstring); this finds an interpreter to run the tool's helpers with.
    """
    if overrides and version in overrides:
        return _probe(str(overrides[version]), version)
    return _find_cached(version)


@functools.cache
def _find_cached(version: str) -> Interpreter | None:
    seen: set[str] = set()
    for candidate in _candidates(version):
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        seen.add(real)
        found = _probe(str(candidate), version)
        if found is not None:
            return found
    return None


def _candidates(version: str) -> Iterator[Path]:
    name = f"python{version}"
    on_path = shutil.which(name)
    # A pyenv shim runs pyenv before Python (slow, and fails for inactive versions): try the
    # real executables in pyenv's versions first, then the shim.
    if on_path and "/shims/" not in on_path:
        yield Path(on_path)
    for root in _pyenv_roots():
        versions = root / "versions"
        try:
            entries = sorted(versions.iterdir(), key=_version_key, reverse=True)
        except OSError:
            continue
        for entry in entries:
            match = _VERSION_DIR.match(entry.name)
            if match and f"{match[1]}.{match[2]}" == version:
                executable = entry / "bin" / name
                if executable.exists():
                    yield executable
    if on_path and "/shims/" in on_path:
        yield Path(on_path)
    for directory in ("/usr/local/bin", "/usr/bin"):
        path = Path(directory) / name
        if path.exists():
            yield path


def _pyenv_roots() -> list[Path]:
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    return [root for root in dict.fromkeys(roots) if root.is_dir()]


def _version_key(path: Path) -> tuple[int, ...]:
    match = _VERSION_DIR.match(path.name)
    return tuple(int(part or 0) for part in match.groups()) if match else (-1,)


def _probe(executable: str, version: str) -> Interpreter | None:
    found = _facts(executable)
    return found if found is not None and found.version == version else None


@functools.cache
def _facts(executable: str) -> Interpreter | None:
    """Run the interpreter once on the facts script, placed in a scratch account tree
    (``home/webapps/app/bin``, with ``lib/pythonX.Y`` dirs in the app and the home) so a
    scanning interpreter shows its scan."""
    with tempfile.TemporaryDirectory(prefix="concentric-facts-") as scratch:
        home = Path(scratch, "home")
        app = home / "webapps" / "app"
        for version in _SCAN_VERSIONS:
            for base in (app, home):
                (base / "lib" / f"python{version}").mkdir(parents=True)
            (home / ".local" / "lib" / f"python{version}" / "site-packages").mkdir(parents=True)
        script = app / "bin" / "facts.py"
        script.parent.mkdir()
        script.write_text(_FACTS_SCRIPT, encoding="utf-8")
        who = controller(Path(executable))  # a user's own build runs as that user
        give_tree(Path(scratch), who)
        try:
            result = subprocess.run(
                [executable, "-S", "-E", str(script)],
                capture_output=True, text=True, timeout=_TIMEOUT, check=False, cwd=scratch,
                env={"PATH": CRON_PATH, "LC_ALL": "C.UTF-8", "HOME": str(home)},
                **as_owner(who),
            )  # fmt: skip
            facts = json.loads(result.stdout) if result.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
        if not isinstance(facts, dict) or not isinstance(facts.get("version"), str):
            return None
    after_site = [p for p in facts["sys_path"] if p != facts["script_dir"]]
    real = [p for p in after_site if not p.startswith(scratch + os.sep)]
    stdlib = [p for p in facts["stdlib"] if p != facts["script_dir"]]
    declared = {os.path.normpath(p) for p in facts["site_packages"]}
    site_dirs = [p for p in real if p not in stdlib and _is_site_dir(p, declared)]
    # Only the scan puts the scratch tree's lib dirs on the path: where the first one lands.
    user = os.path.join(scratch, "home", ".local") + os.sep
    scanned = next(
        (i for i, p in enumerate(after_site) if p.startswith(scratch + os.sep) and user not in p),
        None,
    )
    at = next((i for i, p in enumerate(after_site) if p.startswith(user)), None)
    site_before_user = sum(1 for d in site_dirs if at is not None and after_site.index(d) < at)
    return Interpreter(
        version=facts["version"],
        executable=Path(executable),
        prefix=Path(facts["prefix"]),
        stdlib=tuple(Path(p) for p in stdlib),
        site_packages=tuple(Path(p) for p in site_dirs),
        builtins=frozenset(facts["builtins"]),
        extension_suffixes=tuple(facts["extension_suffixes"]),
        upward_scan=scanned is not None,
        scan_after_site=scanned is not None
        and bool(site_dirs)
        and scanned > after_site.index(site_dirs[0]),
        user_site=at is not None,
        site_before_user=site_before_user,  # only the scan adds the scratch lib dirs
        sys_path=tuple(Path(p) for p in real),
    )


def _is_site_dir(path: str, declared: set[str]) -> bool:
    """A dir ``site`` added as a site dir (not a line of one of its .pth files): one its
    ``getsitepackages`` names, or a ``site-packages``/``dist-packages`` (old virtualenvs'
    own site.py has no ``getsitepackages``)."""
    return os.path.normpath(path) in declared or os.path.basename(path) in (
        "site-packages",
        "dist-packages",
    )


_LDD_LIBPYTHON = re.compile(r"libpython(\d+\.\d+)\S*\s+=>\s+(\S+)")


@functools.cache
def mod_wsgi_interpreter(so: Path) -> Path | None:
    """The ``pythonX.Y`` of the installation whose libpython ``mod_wsgi.so`` loads.

    A ``python-home`` venv must come from that installation (same stdlib, same build):
    ``ldd`` names the libpython the dynamic linker picks; its installation's prefix is the
    nearest folder above it holding ``bin/pythonX.Y``. None for a mod_wsgi linked
    statically, or one ``ldd`` cannot read (or that is not there: ``ldd`` is not run).
    """
    if not os.path.isfile(so):
        return None
    try:
        done = subprocess.run(  # as whoever could change the module, never root for them
            ["ldd", str(so)], capture_output=True, text=True, timeout=_TIMEOUT, check=False,
            **as_owner(controller(so)),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _LDD_LIBPYTHON.search(done.stdout)
    if match is None:
        return None
    version, library = match.groups()
    for prefix in Path(os.path.realpath(library)).parents:
        candidate = prefix / "bin" / f"python{version}"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None

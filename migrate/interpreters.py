"""Find a real ``pythonX.Y`` on this machine and read its facts (stdlib dirs, site-packages).

Candidates are run, never trusted by name: a pyenv shim for an inactive version sits on
PATH and fails. Results are cached per process; discovery never raises.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_TIMEOUT = 60
_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")

# Runs under the target interpreter (2.7 included) with -S -E -s: sys.path is then the
# interpreter's own stdlib path, before any site processing.
_FACTS_SCRIPT = r"""
import sys, json
stdlib = [p for p in sys.path if p]
import site
try:
    from importlib.machinery import EXTENSION_SUFFIXES as ext
except ImportError:
    import imp
    ext = [s for s, _, kind in imp.get_suffixes() if kind == imp.C_EXTENSION]
getsp = getattr(site, "getsitepackages", None)
user = getattr(site, "getusersitepackages", None)
json.dump({
    "version": "%d.%d" % sys.version_info[:2],
    "executable": sys.executable,
    "prefix": sys.prefix,
    "stdlib": stdlib,
    "site_packages": getsp() if getsp else [],
    "user_site": user() if user else None,
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
    builtins: frozenset[str]
    extension_suffixes: tuple[str, ...] = (".so",)


def find_interpreter(
    version: str, overrides: Mapping[str, Path] | None = None
) -> Interpreter | None:
    """A working ``pythonX.Y``: an explicit override, then PATH, then pyenv's versions."""
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


@functools.cache
def _probe(executable: str, version: str) -> Interpreter | None:
    try:
        result = subprocess.run(
            [executable, "-S", "-E", "-s", "-c", _FACTS_SCRIPT],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        )
        facts = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not facts or facts.get("version") != version:
        return None
    return Interpreter(
        version=version,
        executable=Path(facts["executable"] or executable),
        prefix=Path(facts["prefix"]),
        stdlib=tuple(Path(p) for p in facts["stdlib"]),
        site_packages=tuple(Path(p) for p in facts["site_packages"]),
        builtins=frozenset(facts["builtins"]),
        extension_suffixes=tuple(facts["extension_suffixes"]),
    )


_LDD_LIBPYTHON = re.compile(r"libpython(\d+\.\d+)\S*\s+=>\s+(\S+)")


def mod_wsgi_interpreter(so: Path) -> Path | None:
    """The ``pythonX.Y`` of the installation whose libpython ``mod_wsgi.so`` loads.

    A ``python-home`` venv must come from that installation (same stdlib, same build):
    ``ldd`` names the libpython the dynamic linker picks; its installation's prefix is the
    nearest folder above it holding ``bin/pythonX.Y``. None for a mod_wsgi linked
    statically, or one ``ldd`` cannot read.
    """
    try:
        done = subprocess.run(
            ["ldd", str(so)], capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
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

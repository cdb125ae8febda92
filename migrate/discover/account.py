"""Find the lib dirs and apps of a WebFaction-style home, by layout alone."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from migrate.findings import Finding
from migrate.layout import webapps_dir
from migrate.paths import read_regular

Scope = Literal["account", "app", "user-site", "system"]
"""``system``: the interpreter's own site-packages, read only when an app resolves to it."""
_PYTHON_DIR = re.compile(r"^python(\d+\.\d+)$")
_PYTHON_SUFFIXES = (".py", ".wsgi")
_SCAN_DEPTH = 3
"""How deep to look for Python files when deciding whether an app holds Python."""


class AccountError(Exception):
    """The home cannot be inventoried at all (missing, not a directory)."""


@dataclass(frozen=True)
class LibDir:
    path: Path
    python: str
    scope: Scope
    app: str | None = None


@dataclass(frozen=True)
class App:
    name: str
    path: Path
    has_python: bool


@dataclass(frozen=True)
class Account:
    home: Path
    lib_dirs: tuple[LibDir, ...]
    apps: tuple[App, ...]
    findings: tuple[Finding, ...] = ()


def discover(home: Path) -> Account:
    """Lib dirs ``~/lib/pythonX.Y``, ``~/webapps/*/lib/pythonX.Y``, user site; apps."""
    home = Path(os.path.abspath(home))
    if not home.is_dir():
        raise AccountError(f"home {home} is not a directory")
    findings: list[Finding] = []
    lib_dirs = [
        LibDir(path, python, "account") for path, python in _python_dirs(home / "lib", findings)
    ]
    apps: list[App] = []
    for app_dir in _subdirs(webapps_dir(home), findings):
        app_libs = [
            LibDir(path, python, "app", app_dir.name)
            for path, python in _python_dirs(app_dir / "lib", findings)
        ]
        lib_dirs.extend(app_libs)
        apps.append(App(app_dir.name, app_dir, bool(app_libs) or _holds_python(app_dir)))
    for path, python in _python_dirs(home / ".local" / "lib", findings):
        site_packages = path / "site-packages"
        if site_packages.is_dir():
            lib_dirs.append(LibDir(site_packages, python, "user-site"))
    return Account(home, tuple(lib_dirs), tuple(apps), tuple(findings))


def _subdirs(path: Path, findings: list[Finding]) -> list[Path]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        findings.append(Finding(path, "error", f"cannot list directory: {exc.strerror}"))
        return []
    out = []
    for entry in entries:
        try:
            if entry.is_dir():
                out.append(Path(entry.path))
        except OSError as exc:
            findings.append(Finding(Path(entry.path), "error", f"cannot stat: {exc.strerror}"))
    return out


def _python_dirs(lib: Path, findings: list[Finding]) -> list[tuple[Path, str]]:
    out = []
    for path in _subdirs(lib, findings):
        match = _PYTHON_DIR.match(path.name)
        if match:
            out.append((path, match.group(1)))
    return sorted(out, key=lambda item: tuple(int(p) for p in item[1].split(".")))


def _holds_python(app_dir: Path) -> bool:
    """Any ``.py``/``.wsgi`` file near the top of the app, or a mod_wsgi config."""
    conf = app_dir / "apache2" / "conf" / "httpd.conf"
    try:
        if b"wsgi" in read_regular(conf).lower():
            return True
    except FileNotFoundError:
        pass
    except OSError:
        return True  # there but unreadable: it may serve Python; the plan says what is wrong
    base_depth = len(app_dir.parts)
    for root, dirs, names in os.walk(app_dir):
        if any(name.endswith(_PYTHON_SUFFIXES) for name in names):
            return True
        if len(Path(root).parts) - base_depth >= _SCAN_DEPTH:
            dirs[:] = []
    return False

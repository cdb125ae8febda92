"""Fixtures every test module may use: a home, the apps' runtime, and a decoy on PATH.

The host is a decoy: the ``python3`` first on the operator's PATH (pyenv's, here) and its
site-packages must never leak into a result or an expected value. Test accounts name the
interpreter their apps run on (``bare_python``: this Python with nothing installed), and
fidelity tests run with ``decoy_on_path``: a standalone python3.X first on PATH holding
other versions of the fixtures' distributions.
"""

from __future__ import annotations

import os
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

import migrate

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
DECOY_VERSION = "99.0"
"""What every distribution in the decoy interpreter's site-packages claims to be."""
DECOY_NAMES = (
    "shared", "alpha", "appcore", "helper", "greeter", "tinyhttp", "acme_utils", "webframe",
    "oldlib", "packaging", "click", "usertool",
)  # fmt: skip


def pytest_report_header() -> str:
    """Which copy of the tool is under test: the checkout (editable) or an installed wheel."""
    return f"migrate: {Path(migrate.__file__).parent}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter test accounts' apps run on: this Python's installation with nothing
    installed (a venv without pip), so no host package shows up in a result."""
    where = tmp_path_factory.mktemp("bare-python") / "python"
    venv.EnvBuilder(symlinks=True, with_pip=False).create(where)
    return where / "bin" / f"python{PY}"


@pytest.fixture(scope="session")
def decoy_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``pythonX.Y``, ``python3`` and ``python`` are a standalone interpreter
    (a venv of this one) with every fixture distribution at version 99.0."""
    root = tmp_path_factory.mktemp("decoy")
    venv.EnvBuilder(symlinks=True, with_pip=False).create(root / "python")
    site = next((root / "python").glob("lib/python*/site-packages"))
    for name in DECOY_NAMES:
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f'__version__ = "{DECOY_VERSION}"\n')
        info = site / f"{name}-{DECOY_VERSION}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {DECOY_VERSION}\n"
        )
        (info / "top_level.txt").write_text(f"{name}\n")
        (info / "RECORD").write_text("")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in (f"python{PY}", "python3", "python"):
        (bin_dir / name).symlink_to(root / "python" / "bin" / "python")
    return bin_dir


@pytest.fixture
def decoy_on_path(decoy_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The decoy first on PATH for this test (and the commands it starts)."""
    monkeypatch.setenv("PATH", f"{decoy_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    yield decoy_bin


WEBFACTION_SITECUSTOMIZE = '''\
"""WebFaction's interpreter, as a test fixture: every ancestor D of a script's folder (up to
$HOME) with D/lib/pythonX.Y joins sys.path as a site dir, nearest first, after the site
dirs; a module run with -m scans from the working folder."""
import os
import site
import sys


def _scan():
    argv0 = (getattr(sys, "argv", None) or [""])[0]
    if argv0 in ("", "-c"):
        return
    folder = os.getcwd() if argv0 == "-m" else os.path.dirname(os.path.abspath(argv0))
    home = os.environ.get("HOME")
    name = "python%d.%d" % sys.version_info[:2]
    while True:
        candidate = os.path.join(folder, "lib", name)
        if os.path.isdir(candidate):
            site.addsitedir(candidate)
        parent = os.path.dirname(folder)
        if folder == home or parent == folder:
            return
        folder = parent


_scan()
'''


@pytest.fixture(scope="session")
def webfaction_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that scans upward like WebFaction's (for accounts whose cron jobs and
    scripts rely on it): this Python, nothing installed, and a sitecustomize doing the scan."""
    where = tmp_path_factory.mktemp("webfaction-python") / "python"
    venv.EnvBuilder(symlinks=True, with_pip=False).create(where)
    site = next(where.glob("lib/python*/site-packages"))
    (site / "sitecustomize.py").write_text(WEBFACTION_SITECUSTOMIZE)
    return where / "bin" / f"python{PY}"

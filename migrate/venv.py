"""Build, fill, check and relocate one virtualenv, offline.

A venv is made with the app's own interpreter by virtualenv's Python API, seeded with pip
from virtualenv's embedded wheels (``--no-download``; no setuptools, no wheel: installing
wheels needs neither). Targets older than the installed virtualenv still seeds for (2.7 and
3.6 included) are made by ``virtualenv<20.22`` — the last releases that carry pip for
them — from an isolated helper environment this module builds once under
``HOME/.concentric-migrate/helpers`` (the only step that needs an index).

Packages go in with the venv's own pip, ``--no-index --no-deps`` from exactly the wheel
files given: the lock is already closed, and the wheelhouse may hold two different copies
of one name and version, so a name lookup in a folder could pick the wrong one.

A venv names its own absolute path in its activate scripts and in the shebangs of the
scripts pip writes, and in the ``.pyc`` files it compiles. It is built in a staging folder
and renamed into place, so :func:`relocate` rewrites those paths to the destination first
and compiles bytecode for the destination's paths; nothing in it names the staging folder.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.interpreters import Interpreter, find_interpreter

HELPERS = Path(".concentric-migrate") / "helpers"
LEGACY_VIRTUALENV = "virtualenv<20.22"
"""The last virtualenv releases that can still create (and seed pip into) 2.7 / 3.6 venvs."""
LEGACY_HELPER = "virtualenv-legacy"
_TIMEOUT = 600
_HELPER_PYTHONS = ("3.11", "3.10", "3.9", "3.8")
"""Interpreters ``virtualenv<20.22`` runs on, newest first, when this one is too new for it."""


class VenvError(Exception):
    """A venv could not be made, filled or checked; the message carries the tool's output."""


class HelperUnavailable(VenvError):
    """The legacy virtualenv helper could not be installed (it needs an index once)."""


@dataclass(frozen=True)
class Tool:
    """How a venv gets made: the installed virtualenv (in process) or the legacy helper."""

    legacy: bool
    helper: Path | None = None
    """The helper environment's python (legacy only)."""


def helpers_dir(home: Path) -> Path:
    return home / HELPERS


def needs_legacy(python: str) -> bool:
    """True when the installed virtualenv carries no pip for Python ``X.Y``."""
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    return _release(python) < min(_release(v) for v in BUNDLE_SUPPORT)


def create_venv(
    dest: Path, interpreter: Interpreter, *, helpers: Path, prompt: str | None = None
) -> Path:
    """Make a venv at ``dest`` (which must not exist) for ``interpreter``; returns its python.

    ``helpers`` holds virtualenv's app-data cache and the legacy helper: the tool's own
    state inside the home, so nothing is written elsewhere.
    """
    if os.path.lexists(dest):
        raise VenvError(f"{dest} exists already")
    helpers.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = [
        "--no-download",
        "--no-setuptools",
        "--no-periodic-update",
        "--no-vcs-ignore",
        "--prompt",
        prompt or dest.name,
    ]
    if needs_legacy(interpreter.version):
        helper = legacy_helper(helpers)
        command = [
            str(helper), "-m", "virtualenv", str(dest), "--python", str(interpreter.executable),
            "--no-wheel", "--app-data", str(helpers / "app-data-legacy"), *options,
        ]  # fmt: skip
        _run(command, f"virtualenv (legacy helper) for Python {interpreter.version}")
    else:
        import virtualenv

        args = [
            str(dest), "--python", str(interpreter.executable),
            "--app-data", str(helpers / "app-data"), "--quiet", *options,
        ]  # fmt: skip
        try:
            virtualenv.cli_run(args, setup_logging=False, env=clean_env())
        except (Exception, SystemExit) as exc:  # virtualenv exits on bad input
            raise VenvError(
                f"virtualenv could not create {dest} for {interpreter.executable}: {exc}"
            ) from None
    python = venv_python(dest)
    if not python.exists():
        raise VenvError(f"virtualenv made {dest} without {python}")
    return python


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install(venv: Path, wheels: Sequence[Path]) -> None:
    """Install exactly these wheel files with the venv's own pip, then ``pip check``.

    No index, no dependency resolution (the lock is closed), no bytecode yet (compiled by
    :func:`relocate` for the final path).
    """
    python = str(venv_python(venv))
    pip = [python, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-color"]
    if wheels:
        _run(
            [*pip, "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
             "--no-warn-script-location", *map(str, wheels)],
            f"pip install into {venv}",
        )  # fmt: skip
    check(venv)


def check(venv: Path) -> None:
    """``pip check``: every installed distribution's requirements are met, or VenvError."""
    python = str(venv_python(venv))
    _run(
        [python, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-color", "check"],
        f"pip check in {venv}",
    )


def relocate(staged: Path, dest: Path) -> None:
    """Make a venv built at ``staged`` correct at ``dest`` before it is renamed there.

    Rewrites the staging path in ``pyvenv.cfg`` and every file and symlink in ``bin/``
    (activate scripts, script shebangs, pip's ``exec`` trampolines for long paths), then
    compiles bytecode with the destination's paths in it (``compileall -d``).
    """
    old, new = os.fsencode(staged), os.fsencode(dest)
    candidates = [staged / "pyvenv.cfg"]
    bin_dir = staged / "bin"
    candidates += sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []
    for path in candidates:
        if path.is_symlink():
            target = os.readlink(path)
            if os.fsencode(target).startswith(old):
                path.unlink()
                os.symlink(os.fsdecode(new + os.fsencode(target)[len(old) :]), path)
        elif path.is_file():
            data = path.read_bytes()
            if old in data:
                _rewrite(path, data.replace(old, new))
    for site in _site_dirs(staged):
        # Exit status ignored as pip ignores it: a module that does not compile (a py2-only
        # test file) still installs; it is compiled, or not, on first import.
        parallel = ["-j", "0"] if _release(site.parent.name[len("python") :]) >= (3, 5) else []
        subprocess.run(
            [str(venv_python(staged)), "-m", "compileall", "-q", *parallel, "-d",
             str(dest / site.relative_to(staged)), str(site)],
            capture_output=True, timeout=_TIMEOUT, env=clean_env(), check=False,
        )  # fmt: skip


def _rewrite(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    temp = path.with_name(f".{path.name}.relocate")
    temp.write_bytes(data)
    os.chmod(temp, mode)
    os.replace(temp, path)


def _site_dirs(venv: Path) -> list[Path]:
    """``lib*/python*/site-packages`` of a venv: purelib and platlib, without duplicates."""
    found: dict[str, Path] = {}
    for site in sorted(venv.glob("lib*/python*/site-packages")):
        found.setdefault(os.path.realpath(site), site)
    return list(found.values())


# --------------------------------------------------------------------------- legacy helper


def legacy_helper(helpers: Path) -> Path:
    """The helper environment's python with ``virtualenv<20.22``, built once and cached.

    Built beside its place and renamed in, so an interrupted build is never mistaken for
    a finished one. Needs an index (``PIP_INDEX_URL`` is honoured; pip config files are not).
    """
    home = helpers / LEGACY_HELPER
    python = venv_python(home)
    if python.exists() and _helper_works(python):
        return python
    if os.path.lexists(home):
        shutil.rmtree(home)
    runner = _helper_runner()
    building = helpers / f".{LEGACY_HELPER}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        import virtualenv

        try:
            virtualenv.cli_run(
                [str(building), "--python", str(runner), "--no-download", "--no-setuptools",
                 "--no-periodic-update", "--no-vcs-ignore", "--quiet",
                 "--app-data", str(helpers / "app-data")],
                setup_logging=False, env=clean_env(),
            )  # fmt: skip
        except (Exception, SystemExit) as exc:
            raise HelperUnavailable(f"cannot create the helper environment: {exc}") from None
        done = subprocess.run(
            [str(venv_python(building)), "-m", "pip", "--disable-pip-version-check",
             "install", "--quiet", LEGACY_VIRTUALENV],
            capture_output=True, text=True, timeout=_TIMEOUT, env=clean_env(keep_pip=True),
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise HelperUnavailable(
                f"Python 2.7/3.6-era targets need {LEGACY_VIRTUALENV!r}, which could not be "
                f"installed into {home} (an index is needed once; set PIP_INDEX_URL for a "
                f"mirror): {_tail(done.stderr or done.stdout)}"
            )
        relocate(building, home)
        os.rename(building, home)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not _helper_works(python):
        raise HelperUnavailable(f"{home} was built but its virtualenv does not run")
    return python


def _helper_works(python: Path) -> bool:
    done = subprocess.run(
        [str(python), "-c", "import virtualenv; print(virtualenv.__version__)"],
        capture_output=True, text=True, timeout=_TIMEOUT, env=clean_env(), check=False,
    )  # fmt: skip
    version = done.stdout.strip()
    return done.returncode == 0 and bool(version) and _release(version)[:2] < (20, 22)


@functools.cache
def _helper_runner() -> Path:
    """A python ``virtualenv<20.22`` runs on: this one if old enough, else one found."""
    if sys.version_info < (3, 12):
        return Path(sys.executable)
    for version in _HELPER_PYTHONS:
        found = find_interpreter(version)
        if found is not None:
            return found.executable
    raise HelperUnavailable(
        f"{LEGACY_VIRTUALENV} needs Python {' or '.join(_HELPER_PYTHONS)} to run on; none found"
    )


# --------------------------------------------------------------------------- running tools


def clean_env(*, keep_pip: bool = False) -> dict[str, str]:
    """This process's environment without what would redirect Python, pip or virtualenv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUALENV_", "VIRTUAL_ENV", "__PYVENV"))
        and (keep_pip or not key.startswith("PIP_"))
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",  # bytecode naming the staging path: relocate compiles
    )
    return env


def _run(command: Sequence[str], what: str) -> str:
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=_TIMEOUT,
            env=clean_env(), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise VenvError(f"{what} did not finish within {_TIMEOUT} s") from None
    except OSError as exc:
        raise VenvError(f"{what} cannot run: {exc.strerror}") from None
    if done.returncode != 0:
        raise VenvError(
            f"{what} failed (exit {done.returncode}): {_tail(done.stdout + done.stderr)}"
        )
    return done.stdout


def _tail(output: str, lines: int = 15) -> str:
    kept = output.strip().splitlines()[-lines:]
    return "\n".join(kept) or "it said nothing"


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)

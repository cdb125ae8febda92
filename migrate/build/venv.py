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

import configparser
import csv
import errno
import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.build.depcheck import unmet_requirements
from migrate.build.wheelfile import record_digest
from migrate.discover.interpreters import Interpreter, find_interpreter

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


def needs_legacy(python: str) -> bool:
    """True when the installed virtualenv carries no pip for Python ``X.Y``."""
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    return _release(python) < min(_release(v) for v in BUNDLE_SUPPORT)


def create_venv(
    dest: Path,
    interpreter: Interpreter,
    *,
    helpers: Path,
    prompt: str | None = None,
    seed: bool = True,
    offline: bool = False,
) -> Path:
    """Make a venv at ``dest`` (which must not exist) for ``interpreter``; returns its python.

    ``offline``: never ask a package index (the legacy helper then fails if not yet built).

    ``seed=False`` leaves pip out (the store path: the tool's own pip checks the venv),
    which makes a venv in about 0.07 s instead of about 0.5 s; legacy targets are always
    seeded.

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
        helper = legacy_helper(helpers, offline=offline)
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
        if not seed:
            args.append("--no-seed")
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
    _run([*_pip_command(venv), "check"], f"pip check in {venv}")


def relocate(staged: Path, dest: Path, *, compile: bool = True) -> None:
    """Make a venv built at ``staged`` correct at ``dest`` before it is renamed there.

    Rewrites the staging path in ``pyvenv.cfg`` and every file and symlink in ``bin/``
    (activate scripts, script shebangs, pip's ``exec`` trampolines for long paths), then
    compiles bytecode with the destination's paths in it (``compileall -d``) unless
    ``compile`` is false (a venv filled from the store links the store's bytecode).

    Files are rewritten by write-temp + rename, never in place: a file hardlinked from the
    store is thereby replaced in this venv alone, and the store and every other venv keep
    their copy.
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
    for site in _site_dirs(staged) if compile else ():
        # Exit status ignored as pip ignores it: a module that does not compile (a py2-only
        # test file) still installs; it is compiled, or not, on first import.
        parallel = ["-j", "0"] if _release(site.parent.name[len("python") :]) >= (3, 5) else []
        subprocess.run(
            [str(venv_python(staged)), "-m", "compileall", "-q", *parallel, "-d",
             str(dest / site.relative_to(staged)), str(site)],
            capture_output=True, timeout=_TIMEOUT, env=clean_env(), check=False,
        )  # fmt: skip


def _rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` (a new inode; a hardlink to the store is left untouched)."""
    mode = path.stat().st_mode & 0o7777
    temp = path.with_name(f".{path.name}.relocate")
    if os.path.lexists(temp):
        os.unlink(temp)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temp, mode)
    os.replace(temp, path)


def _site_dirs(venv: Path) -> list[Path]:
    """``lib*/python*/site-packages`` of a venv: purelib and platlib, without duplicates."""
    found: dict[str, Path] = {}
    for site in sorted(venv.glob("lib*/python*/site-packages")):
        found.setdefault(os.path.realpath(site), site)
    return list(found.values())


# --------------------------------------------------------------------------- legacy helper


def legacy_helper(helpers: Path, *, offline: bool = False) -> Path:
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
        # pip (and what it runs, such as a rustup proxy asked for its version) may write
        # caches and settings under HOME: give it a home of its own, not the account's.
        private = building / "home"
        private.mkdir()
        env = {**clean_env(keep_pip=True), "HOME": str(private), "XDG_CACHE_HOME": str(private)}
        if offline:
            env["PIP_NO_INDEX"] = "1"
        done = subprocess.run(
            [str(venv_python(building)), "-m", "pip", "--disable-pip-version-check",
             "install", "--quiet", LEGACY_VIRTUALENV],
            capture_output=True, text=True, timeout=_TIMEOUT, env=env, check=False,
        )  # fmt: skip
        shutil.rmtree(private, ignore_errors=True)
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


# --------------------------------------------------------------------------- shared store

INSTALLER = "concentric-migrate"
_LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}
_DATA_KEYS = frozenset({"purelib", "platlib", "scripts", "headers", "data"})
_MAX_SHEBANG = 127


@dataclass(frozen=True)
class LinkResult:
    """What :func:`install_linked` did: files hardlinked from the store, files copied (the
    file system refused a link, ``copy_reason`` says why), wheels left to pip (and why)."""

    linked: int = 0
    copied: int = 0
    copy_reason: str | None = None
    by_pip: tuple[tuple[str, str], ...] = ()
    """(wheel file name, why it went to pip instead of the store)."""


def tool_pip_runner() -> Path | None:
    """pip's ``__pip-runner__.py`` of the pip this tool runs with, if it is >= 22.3.

    Run by a venv's python it is what ``pip --python VENV/bin/python`` does (one process
    less): pip imports only from its own tree and acts on that venv, which needs no pip.
    """
    try:
        import pip
    except ImportError:
        return None
    runner = Path(pip.__file__).parent / "__pip-runner__.py"
    if _release(pip.__version__)[:2] < (22, 3) or not runner.is_file():
        return None
    return runner


def can_link(interpreter: Interpreter) -> bool:
    """The store path serves this target: a modern venv (legacy ones get a seeded pip)."""
    return not needs_legacy(interpreter.version)


def _pip_command(venv: Path) -> list[str]:
    """Run pip for ``venv``: its own if seeded, else the tool's pip run by its python."""
    python = str(venv_python(venv))
    if (venv / "bin" / "pip").exists():
        prefix = [python, "-m", "pip"]
    else:
        runner = tool_pip_runner()
        if runner is None:
            raise VenvError(f"{venv} has no pip and this tool's pip is older than 22.3")
        prefix = [python, "-I", str(runner)]
    return [*prefix, "--isolated", "--disable-pip-version-check", "--no-color"]


def embedded_pip(python: str) -> tuple[Path, str] | None:
    """virtualenv's bundled pip wheel for Python ``X.Y`` and its sha256, if it has one."""
    from virtualenv.seed.wheels.embed import get_embed_wheel

    wheel = get_embed_wheel("pip", python)
    if wheel is None:
        return None
    return Path(wheel.path), hashlib.sha256(Path(wheel.path).read_bytes()).hexdigest()


def install_linked(
    venv: Path,
    wheels: Sequence[tuple[Path, str]],
    store: Path,
    *,
    python: str,
    bytecode: bool = True,
) -> LinkResult:
    """Install ``(wheel, sha256)`` pairs into ``venv`` from the shared store, then check them.

    Each wheel is unpacked once into ``store/<sha256>/`` (read-only files, bytecode compiled
    there once per Python version) and its files are hardlinked into the venv; only what
    names the venv is written per venv: ``RECORD``, ``INSTALLER``, console-script launchers
    and ``#!python`` scripts. A wheel the store cannot take as it is goes to pip.
    Without ``bytecode`` nothing is compiled now (as uv does by default): the app's Python
    writes ``__pycache__`` in the venv on first import.
    """
    site = _site_dirs(venv)
    if len(site) != 1:
        raise VenvError(f"{venv} has {len(site)} site-packages folders, expected one")
    counts = _Counts()
    by_pip: list[tuple[str, str]] = []
    trees = []
    for wheel, sha in wheels:
        try:
            trees.append(unpack_to_store(wheel, sha, store))
        except _Unusual as exc:
            by_pip.append((wheel.name, str(exc)))
    if bytecode:
        _compile_store(trees, store, venv, python)
    for tree in trees:
        _link_wheel(tree, venv, site[0], python, counts)
    if by_pip:
        pip_wheels = [str(w) for w, _ in wheels if w.name in {n for n, _ in by_pip}]
        _run(
            [*_pip_command(venv), "install", "--quiet", "--no-index", "--no-deps",
             "--no-compile", "--no-warn-script-location", *pip_wheels],
            f"pip install into {venv}",
        )  # fmt: skip
    unmet = unmet_requirements(site[0], python)
    if unmet:
        raise VenvError(f"requirements not met in {venv}:\n" + "\n".join(map(str, unmet)))
    return LinkResult(counts.linked, counts.copied, counts.reason, tuple(by_pip))


class _Unusual(Exception):
    """A wheel the store path does not take; pip installs it."""


@dataclass
class _Counts:
    linked: int = 0
    copied: int = 0
    reason: str | None = None


def unpack_to_store(wheel: Path, sha: str, store: Path) -> Path:
    """``store/<sha>``: the wheel's members as they are in it, each checked against RECORD,
    read-only. Unpacked aside and renamed in, so a present tree is a complete one."""
    tree = store / sha
    if tree.is_dir():
        return tree
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store))
    try:
        with zipfile.ZipFile(wheel) as archive:
            dist_info, record = _wheel_record(archive, wheel)
            _check_wheel_file(archive, dist_info, wheel)
            root, made = os.fspath(temp), {os.fspath(temp)}
            scripts = f"{dist_info[: -len('.dist-info')]}.data/scripts/"
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                target = f"{root}/{name}"
                parent = os.path.dirname(target)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                data = archive.read(info)
                if name != f"{dist_info}/RECORD":
                    expected = record.get(name)
                    if expected is None or expected[0] != record_digest(data):
                        raise _Unusual(f"{name} does not match the wheel's RECORD")
                # scripts are executable wherever they go (pip makes them so)
                executable = name.startswith(scripts) or (info.external_attr >> 16) & 0o111
                mode = 0o555 if executable else 0o444
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    os.fchmod(fd, mode)
        try:
            os.rename(temp, tree)
        except OSError:
            if not tree.is_dir():  # not another build winning the race
                raise
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise _Unusual(f"unreadable wheel: {exc}") from None
    finally:
        if temp.exists():
            _remove_tree(temp)
    return tree


def _wheel_record(archive: zipfile.ZipFile, wheel: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    infos = {n.split("/", 1)[0] for n in archive.namelist() if "/" in n}
    dist_infos = [d for d in infos if d.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise _Unusual(f"{len(dist_infos)} .dist-info folders")
    dist_info = dist_infos[0]
    rows = csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode("utf-8")))
    record: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not row:
            continue
        name, digest, size = [*row, "", ""][:3]
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name:
            raise _Unusual(f"{name!r} would leave the install folder")
        record[name] = (digest, size)
    for name in archive.namelist():
        if not name.endswith("/") and name not in record and name != f"{dist_info}/RECORD":
            raise _Unusual(f"{name} is not in RECORD")
    return dist_info, record


def _check_wheel_file(archive: zipfile.ZipFile, dist_info: str, wheel: Path) -> None:
    fields = dict(
        line.split(":", 1)
        for line in archive.read(f"{dist_info}/WHEEL").decode("utf-8").splitlines()
        if ":" in line
    )
    version = fields.get("Wheel-Version", "").strip()
    if _release(version)[:1] != (1,):
        raise _Unusual(f"Wheel-Version {version!r}")
    data = dist_info[: -len(".dist-info")] + ".data/"
    for name in archive.namelist():
        if name.startswith(data):
            key = name[len(data) :].split("/", 1)[0]
            if key not in _DATA_KEYS:
                raise _Unusual(f"unknown .data folder {key!r}")
        elif "/" in name and name.split("/", 1)[0].endswith(".data"):
            raise _Unusual(f"{name}: a .data folder of another name")


def _compile_store(trees: Sequence[Path], store: Path, venv: Path, python: str) -> None:
    """Bytecode in the store, once per Python version, linked into every venv with the
    sources. Valid there: a ``.pyc`` records its source's mtime and size, and a hardlink
    is the same inode. The ``.data`` scripts, headers and data are not modules."""
    markers = {tree: store / f"{tree.name}.compiled-{python}" for tree in trees}
    todo = [tree for tree, marker in markers.items() if not marker.exists()]
    if not todo:
        return
    data = re.escape(os.sep) + r"[^" + re.escape(os.sep) + r"]+\.data" + re.escape(os.sep)
    # One run for all the new trees; file names stored relative to the store.
    subprocess.run(
        [str(venv_python(venv)), "-m", "compileall", "-q", "-j", "0", "-s", str(store),
         "-x", data + "(scripts|headers|data)" + re.escape(os.sep), *map(str, todo)],
        capture_output=True, timeout=_TIMEOUT, env=_compile_env(), check=False,
    )  # fmt: skip
    for tree in todo:
        for cache in tree.rglob("__pycache__"):
            for pyc in cache.iterdir():
                os.chmod(pyc, 0o444)
        markers[tree].write_bytes(b"")


def _compile_env() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _link_wheel(tree: Path, venv: Path, site: Path, python: str, counts: _Counts) -> None:
    dist_info = next(p.name for p in tree.iterdir() if p.name.endswith(".dist-info"))
    data_prefix = dist_info[: -len(".dist-info")] + ".data/"
    record_name = f"{dist_info}/RECORD"
    rows = csv.reader(io.StringIO((tree / record_name).read_text(encoding="utf-8")))
    dist_name = dist_info[: -len(".dist-info")].rsplit("-", 1)[0]
    # Plain strings and one os.link per file: this loop runs for every file of every venv.
    root, site_text = os.fspath(tree), os.fspath(site)
    bin_dir = venv / "bin"
    places = {
        "purelib": site,
        "platlib": site,
        "scripts": bin_dir,
        "headers": venv / "include" / "site" / f"python{python}" / dist_name,
        "data": venv,
    }
    record: list[tuple[str, str, str]] = []
    made_dirs: set[str] = {site_text}
    source_dirs: dict[str, str] = {}
    python_path = os.fsdecode(venv_python(venv))
    for row in rows:
        if not row or row[0] in (record_name, f"{dist_info}/INSTALLER"):
            continue
        name, digest, size = [*row, "", ""][:3]
        source = f"{root}/{name}"
        if name.startswith(data_prefix):
            key, rest = name[len(data_prefix) :].split("/", 1)
            target = os.fspath(places[key] / rest)
            relative = os.path.relpath(target, site_text)
        else:
            key, target, relative = "", f"{site_text}/{name}", name
        parent = os.path.dirname(target)
        if parent not in made_dirs:
            os.makedirs(parent, exist_ok=True)
            made_dirs.add(parent)
        if key == "scripts" and _python_shebang(Path(source)):
            body = _with_shebang(Path(source).read_bytes(), python_path)
            _write_new(Path(target), body, 0o755)
            digest, size = record_digest(body), str(len(body))
        else:
            _link(source, target, counts)
            if not key and name.endswith(".py"):
                source_dirs[os.path.dirname(name)] = parent
        record.append((relative, digest, size))
    for directory, target_dir in source_dirs.items():
        cache = f"{root}/{directory}/__pycache__" if directory else f"{root}/__pycache__"
        try:
            compiled = os.listdir(cache)
        except FileNotFoundError:
            continue
        os.makedirs(f"{target_dir}/__pycache__", exist_ok=True)
        prefix = f"{directory}/__pycache__/" if directory else "__pycache__/"
        for pyc in compiled:
            _link(f"{cache}/{pyc}", f"{target_dir}/__pycache__/{pyc}", counts)
            record.append((prefix + pyc, "", ""))
    for script, body in _entry_point_scripts(tree / dist_info, python_path):
        target_path = bin_dir / script
        _write_new(target_path, body, 0o755)
        record.append((os.path.relpath(target_path, site), record_digest(body), str(len(body))))
    installer = INSTALLER.encode() + b"\n"
    _write_new(site / dist_info / "INSTALLER", installer, 0o644)
    record.append((f"{dist_info}/INSTALLER", record_digest(installer), str(len(installer))))
    record.append((record_name, "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(record)
    _write_new(site / record_name, out.getvalue().encode(), 0o644)


def _link(source: str, target: str, counts: _Counts) -> None:
    """Hardlink ``source`` to ``target`` (replacing what a wheel before put there, as pip
    does), or copy it when the file system refuses the link."""
    if counts.reason is None:
        try:
            os.link(source, target)
            counts.linked += 1
            return
        except FileExistsError:
            os.unlink(target)
            os.link(source, target)
            counts.linked += 1
            return
        except OSError as exc:
            if exc.errno not in _LINK_REFUSED:
                raise
            counts.reason = f"hardlinks refused ({exc.strerror}): files are copied"
    if os.path.lexists(target):
        os.unlink(target)
    shutil.copyfile(source, target)
    os.chmod(target, stat_mode(Path(source)) | 0o200)
    counts.copied += 1


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


def _python_shebang(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head.startswith(b"#!python") or head.startswith(b"#!pythonw")


def _with_shebang(data: bytes, python: str) -> bytes:
    _first, sep, rest = data.partition(b"\n")
    return _shebang(python) + rest if sep else _shebang(python)


def _shebang(python: str) -> bytes:
    """``#!python`` for this venv, or pip's ``/bin/sh`` trampoline when a kernel would not
    take the line (too long, or spaces)."""
    if len(python) + 2 <= _MAX_SHEBANG and " " not in python:
        return f"#!{python}\n".encode()
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n".encode()


_LAUNCHER = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def _entry_point_scripts(dist_info: Path, python: str) -> list[tuple[str, bytes]]:
    """Launchers for ``console_scripts`` and ``gui_scripts`` (what pip writes)."""
    path = dist_info / "entry_points.txt"
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise VenvError(f"{path}: {exc}") from None
    scripts = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            reference = value.split("[", 1)[0].strip()
            module, _, call = reference.partition(":")
            if not module.strip() or not call.strip() or "/" in name:
                raise VenvError(f"{path}: entry point {name} = {value} is not module:attr")
            call = call.strip()
            body = _LAUNCHER.format(module=module.strip(), head=call.split(".")[0], call=call)
            scripts.append((name.strip(), _shebang(python) + body.encode()))
    return scripts


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """A file of this venv alone: any link at ``path`` is replaced, never written through."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


def _remove_tree(path: Path) -> None:
    """rmtree for a tree of read-only files (their folders are writable)."""
    shutil.rmtree(path, ignore_errors=True)

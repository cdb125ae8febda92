"""Real legacy installs, made by the real installers of old interpreters (offline).

Nothing here fakes an install: each builder writes a tiny setuptools (or distutils)
project and runs the old interpreter's own ``setup.py bdist_egg``, ``easy_install``,
``setup.py develop``, ``setup.py install`` or ``pip install`` against a WebFaction-style
lib dir ``HOME/lib/pythonX.Y``. The index is never contacted: every command runs with
``--no-deps`` / ``--no-index`` and ``PIP_CONFIG_FILE=/dev/null``.

Installer commands that work with Python 2.7 (setuptools 41.2, pip 19.2) and 3.6
(setuptools 40.6, pip 18.1):

* ``setup.py -q bdist_egg`` then ``python -m easy_install --install-dir LIB --no-deps
  --zip-ok EGG`` (zipped ``.egg`` file) or ``--always-unzip`` (``.egg`` directory), with
  ``PYTHONPATH=LIB`` and ``SETUPTOOLS_SYS_PATH_TECHNIQUE=rewrite``: writes easy-install.pth
  with the ``sys.__plen`` wrapper and drops setuptools' ``site.py`` (``def __boot():``).
* ``setup.py develop --install-dir LIB --no-deps``: ``NAME.egg-link`` + easy-install.pth.
* ``setup.py install --single-version-externally-managed --record R --install-lib LIB``:
  an ``.egg-info`` directory without installed-files.txt.
* ``pip install --no-index --no-deps --no-binary :all: --install-option=--install-lib=LIB``
  (WebFaction's documented form) or ``--target LIB``: a legacy ``setup.py install`` that
  leaves installed-files.txt in the ``.egg-info`` directory (and ``-nspkg.pth`` files).
* distutils ``setup.py install --install-lib LIB``: the single-file ``.egg-info``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

_TIMEOUT = 120
_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


class InstallerFailed(RuntimeError):
    """A legacy installer command exited non-zero; the message carries its output."""


# --------------------------------------------------------------------------- interpreters


@functools.cache
def find_interpreter(version: str) -> Path | None:
    """A working ``pythonX.Y`` with setuptools: PATH first, then pyenv's versions.

    PATH candidates are run, not trusted: a pyenv shim for an inactive version exists
    on PATH but fails. ``None`` when no candidate runs as X.Y with setuptools.
    """
    name = f"python{version}"
    candidates: list[Path] = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for root in _pyenv_roots():
        candidates.extend(_pyenv_candidates(root, version, name))
    seen: set[Path] = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        if _runs_as(candidate, version):
            return candidate
    return None


def _pyenv_roots() -> list[Path]:
    roots: list[Path] = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def _pyenv_candidates(root: Path, version: str, name: str) -> list[Path]:
    """``ROOT/versions/X.Y*/bin/pythonX.Y``, newest patch release first."""

    def key(path: Path) -> tuple[int, ...]:
        match = _VERSION_DIR.match(path.parent.parent.name)
        return tuple(int(part or 0) for part in match.groups()) if match else ()

    found = [
        path
        for path in (root / "versions").glob(f"{version}*/bin/{name}")
        if key(path)[:2] == tuple(int(part) for part in version.split("."))
    ]
    return sorted(found, key=key, reverse=True)


def _runs_as(python: Path, version: str) -> bool:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False, env=clean_env(),
        )  # fmt: skip
        if out.returncode != 0:
            return False
        major, minor = version.split(".")
        if out.stdout.strip() != f"({major}, {minor})":
            return False
        has = subprocess.run(
            [str(python), "-c", "import setuptools"],
            capture_output=True, timeout=30, check=False, env=clean_env(),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return has.returncode == 0


@functools.cache
def has_pip(python: Path) -> bool:
    try:
        out = subprocess.run(
            [str(python), "-m", "pip", "--version"],
            capture_output=True, timeout=60, check=False, env=clean_env(),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def interpreter_version(python: Path) -> str:
    """``X.Y`` from the interpreter's file name (``python2.7``), as found above."""
    match = re.fullmatch(r"python(\d+\.\d+)", python.name)
    if not match:
        raise ValueError(f"{python}: not named pythonX.Y")
    return match.group(1)


# --------------------------------------------------------------------------- environment


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without Python/pip settings, offline, bytecode enabled.

    Bytecode writing stays on (old installers byte-compile, and Python 2 writes ``.pyc``
    files next to sources); HOME points at the account so no real ``~/.pydistutils.cfg``
    or ``~/.pip`` of this machine leaks in.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "PIP_", "SETUPTOOLS_", "VIRTUAL_ENV", "PYENV_VERSION"))
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONNOUSERSITE="1",
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
    )
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    """Run one installer command; raise :class:`InstallerFailed` with its output on failure."""
    argv = [str(arg) for arg in args]
    try:
        out = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallerFailed(f"{' '.join(argv)}: timed out after {_TIMEOUT}s") from exc
    if out.returncode != 0:
        raise InstallerFailed(
            f"{' '.join(argv)} (in {cwd}) exited {out.returncode}\n"
            f"--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
        )
    return out.stdout + out.stderr


def _installer_env(lib_dir: Path, home: Path | None) -> dict[str, str]:
    """easy_install refuses a non-site install dir that is not on PYTHONPATH."""
    return clean_env(home, PYTHONPATH=str(lib_dir), SETUPTOOLS_SYS_PATH_TECHNIQUE="rewrite")


def _check_lib_dir(python: Path, lib_dir: Path) -> None:
    version = interpreter_version(python)
    if lib_dir.name != f"python{version}":
        raise ValueError(f"lib dir {lib_dir} does not match {python} (python{version})")
    lib_dir.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- projects


def write_project(
    root: Path,
    name: str,
    version: str,
    package: str,
    *,
    install_requires: tuple[str, ...] = (),
    extras_require: dict[str, list[str]] | None = None,
    namespace: str | None = None,
    console_script: str | None = None,
    zip_safe: bool | None = None,
    use_distutils: bool = False,
) -> Path:
    """A tiny source tree in ``root``; ``package`` is a package, or with distutils a module.

    With ``namespace``, ``package`` is ``namespace.sub`` and the namespace is declared the
    pkg_resources way (``namespace_packages``), as projects did before PEP 420.
    """
    root.mkdir(parents=True, exist_ok=True)
    init = f"__version__ = {version!r}\n\n\ndef main():\n    return 0\n"
    if use_distutils:
        (root / f"{package}.py").write_text(init)
        setup = f"""\
            from distutils.core import setup

            setup(name={name!r}, version={version!r}, py_modules=[{package!r}])
            """
        (root / "setup.py").write_text(textwrap.dedent(setup))
        return root

    packages = [package]
    pkg_dir = root.joinpath(*package.split("."))
    pkg_dir.mkdir(parents=True, exist_ok=True)
    (pkg_dir / "__init__.py").write_text(init)
    if namespace is not None:
        packages.insert(0, namespace)
        (root / namespace / "__init__.py").write_text(
            "__import__('pkg_resources').declare_namespace(__name__)\n"
        )
    kwargs: dict[str, object] = {"name": name, "version": version, "packages": packages}
    if install_requires:
        kwargs["install_requires"] = list(install_requires)
    if extras_require:
        kwargs["extras_require"] = extras_require
    if namespace is not None:
        kwargs["namespace_packages"] = [namespace]
    if console_script is not None:
        kwargs["entry_points"] = {"console_scripts": [f"{console_script} = {package}:main"]}
    if zip_safe is not None:
        kwargs["zip_safe"] = zip_safe
    body = ",\n    ".join(f"{key}={value!r}" for key, value in kwargs.items())
    (root / "setup.py").write_text(f"from setuptools import setup\n\nsetup(\n    {body},\n)\n")
    return root


# --------------------------------------------------------------------------- builders


def build_egg(python: Path, project: Path) -> Path:
    """``setup.py -q bdist_egg``: the project's ``dist/NAME-VER-pyX.Y.egg``."""
    before = set((project / "dist").glob("*.egg"))
    run([python, "setup.py", "-q", "bdist_egg"], cwd=project, env=clean_env())
    made = sorted(set((project / "dist").glob("*.egg")) - before) or sorted(
        (project / "dist").glob("*.egg")
    )
    if len(made) != 1:
        raise InstallerFailed(f"bdist_egg in {project} made {made}")
    return made[0]


def easy_install_egg(
    python: Path,
    egg: Path,
    lib_dir: Path,
    *,
    zipped: bool,
    script_dir: Path | None = None,
    home: Path | None = None,
) -> Path:
    """``easy_install --zip-ok`` (a zipped .egg) or ``--always-unzip`` (an .egg directory)."""
    _check_lib_dir(python, lib_dir)
    args: list[str | Path] = [
        python, "-m", "easy_install", "--install-dir", lib_dir, "--no-deps",
        "--zip-ok" if zipped else "--always-unzip",
    ]  # fmt: skip
    if script_dir is not None:
        script_dir.mkdir(parents=True, exist_ok=True)
        args += ["--script-dir", script_dir]
    run([*args, egg], cwd=egg.parent, env=_installer_env(lib_dir, home))
    installed = lib_dir / egg.name
    if not installed.exists() or installed.is_dir() == zipped:
        raise InstallerFailed(f"easy_install did not leave {'a zipped' if zipped else 'an'} egg")
    return installed


def develop(python: Path, project: Path, lib_dir: Path, *, home: Path | None = None) -> Path:
    """``setup.py develop --install-dir LIB --no-deps``: the ``.egg-link`` it writes."""
    _check_lib_dir(python, lib_dir)
    before = set(lib_dir.glob("*.egg-link"))
    run(
        [python, "setup.py", "-q", "develop", "--install-dir", lib_dir, "--no-deps"],
        cwd=project,
        env=_installer_env(lib_dir, home),
    )
    made = sorted(set(lib_dir.glob("*.egg-link")) - before)
    if len(made) != 1:
        raise InstallerFailed(f"setup.py develop left {made} in {lib_dir}")
    return made[0]


def setup_install(
    python: Path, project: Path, lib_dir: Path, *, record: Path, home: Path | None = None
) -> Path:
    """``setup.py install`` into ``--install-lib LIB``: the ``.egg-info`` it leaves.

    setuptools projects are installed ``--single-version-externally-managed`` (what pip
    and system packagers did: an egg-info directory beside the package); distutils ones
    with a plain install, which writes the single-file ``NAME-VER-pyX.Y.egg-info``.
    """
    _check_lib_dir(python, lib_dir)
    before = set(lib_dir.glob("*.egg-info"))
    args: list[str | Path] = [python, "setup.py", "-q", "install", "--install-lib", lib_dir]
    if "setuptools" in (project / "setup.py").read_text():
        args += ["--single-version-externally-managed", "--record", record]
    else:
        args += ["--record", record]
    run(args, cwd=project, env=clean_env(home))
    return _one_new_egg_info(lib_dir, before, "setup.py install")


def pip_install_legacy(
    python: Path,
    project: Path,
    lib_dir: Path,
    *,
    target: bool = False,
    script_dir: Path | None = None,
    home: Path | None = None,
) -> Path:
    """The old pip's legacy ``setup.py install`` of a local source dir, offline.

    ``--install-option=--install-lib=LIB`` is the form WebFaction documented; ``--target``
    installs to a temporary home and moves the result. Both leave installed-files.txt.
    """
    _check_lib_dir(python, lib_dir)
    before = set(lib_dir.glob("*.egg-info"))
    args: list[str | Path] = [
        python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-cache-dir",
        "--no-binary", ":all:",
    ]  # fmt: skip
    if target:
        args += ["--target", lib_dir]
    else:
        args += [f"--install-option=--install-lib={lib_dir}"]
        if script_dir is not None:
            args += [f"--install-option=--install-scripts={script_dir}"]
    run([*args, project], cwd=project.parent, env=clean_env(home))
    return _one_new_egg_info(lib_dir, before, "pip install")


def _one_new_egg_info(lib_dir: Path, before: set[Path], what: str) -> Path:
    made = sorted(set(lib_dir.glob("*.egg-info")) - before)
    if len(made) != 1:
        raise InstallerFailed(f"{what} left {made} in {lib_dir}")
    return made[0]


# --------------------------------------------------------------------------- a whole home


ZIPPED_EXTRAS = {
    "fast": ["cspeed>=1"],
    ':python_version < "3"': ["futures>=3"],
    'fast:sys_platform == "win32"': ["winspeed"],
}


@dataclass(frozen=True)
class LegacyHome:
    """A WebFaction-style home whose lib dirs were filled by the real old installers."""

    python: Path
    version: str
    home: Path
    lib_dir: Path
    """``HOME/lib/pythonX.Y``: every kind below, all healthy."""
    zipped_egg: Path
    egg_dir: Path
    egg_link: Path
    develop_project: Path
    svem_egg_info: Path
    pip_egg_info: Path
    target_egg_info: Path
    nspkg_pth: Path
    distutils_egg_info: Path
    app_lib_dir: Path
    """``HOME/webapps/oldapp/lib/pythonX.Y``: a develop install whose source was deleted."""
    dangling_egg_link: Path
    dangling_target: Path
    pip: bool
    """False when the interpreter has no pip; the pip-made installs are then absent."""


def build_legacy_home(python: Path, home: Path, work: Path) -> LegacyHome:
    """Fill ``home`` with one install of every legacy kind; ``work`` holds build trees."""
    version = interpreter_version(python)
    lib_dir = home / "lib" / f"python{version}"
    bin_dir = home / "bin"

    zipped_src = write_project(
        work / "tiny-zipped",
        "tiny-zipped", "1.2.3", "tinyzipped",
        install_requires=("six>=1.0",), extras_require=ZIPPED_EXTRAS,
        console_script="tiny-zipped", zip_safe=True,
    )  # fmt: skip
    zipped_egg = easy_install_egg(
        python, build_egg(python, zipped_src), lib_dir,
        zipped=True, script_dir=bin_dir, home=home,
    )  # fmt: skip

    dir_src = write_project(
        work / "tiny-unzipped", "tiny-unzipped", "0.5", "tinyunzipped",
        install_requires=("six",), zip_safe=False,
    )  # fmt: skip
    egg_dir = easy_install_egg(
        python, build_egg(python, dir_src), lib_dir, zipped=False, script_dir=bin_dir, home=home
    )

    develop_project = write_project(
        home / "src" / "tiny-dev", "Tiny_Dev", "2.0.dev1", "tinydev",
        extras_require={"fast": ["cspeed>=1"]},
    )  # fmt: skip
    egg_link = develop(python, develop_project, lib_dir, home=home)

    svem_src = write_project(work / "tiny-svem", "tiny-svem", "3.1", "tinysvem")
    svem_egg_info = setup_install(
        python, svem_src, lib_dir, record=work / "svem-record.txt", home=home
    )

    distutils_src = write_project(
        work / "tinydistutils", "tinydistutils", "0.1", "tinydistutils", use_distutils=True
    )
    distutils_egg_info = setup_install(
        python, distutils_src, lib_dir, record=work / "distutils-record.txt", home=home
    )

    pip = has_pip(python)
    pip_egg_info = target_egg_info = nspkg_pth = lib_dir / "(no pip)"
    if pip:
        pip_src = write_project(
            work / "tiny-pip", "tiny-pip", "4.0", "tinypip",
            install_requires=("six",), console_script="tiny-pip",
        )  # fmt: skip
        pip_egg_info = pip_install_legacy(python, pip_src, lib_dir, script_dir=bin_dir, home=home)
        ns_src = write_project(
            work / "tinyns.leaf", "tinyns.leaf", "0.9", "tinyns.leaf", namespace="tinyns"
        )
        target_egg_info = pip_install_legacy(python, ns_src, lib_dir, target=True, home=home)
        found = sorted(lib_dir.glob("*-nspkg.pth"))
        if len(found) != 1:
            raise InstallerFailed(f"pip install of a namespace package left {found}")
        nspkg_pth = found[0]

    app_lib_dir = home / "webapps" / "oldapp" / "lib" / f"python{version}"
    dangling_target = write_project(
        home / "webapps" / "oldapp" / "src" / "gone", "gone-app", "1.0", "goneapp"
    )
    dangling_egg_link = develop(python, dangling_target, app_lib_dir, home=home)
    shutil.rmtree(dangling_target)

    return LegacyHome(
        python=python, version=version, home=home, lib_dir=lib_dir,
        zipped_egg=zipped_egg, egg_dir=egg_dir, egg_link=egg_link,
        develop_project=develop_project, svem_egg_info=svem_egg_info,
        pip_egg_info=pip_egg_info, target_egg_info=target_egg_info, nspkg_pth=nspkg_pth,
        distutils_egg_info=distutils_egg_info, app_lib_dir=app_lib_dir,
        dangling_egg_link=dangling_egg_link, dangling_target=dangling_target, pip=pip,
    )  # fmt: skip

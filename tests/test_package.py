"""What a user installs: the sdist and the wheel built from this tree, and the wheel at work.

The editable install the tests otherwise run against imports from the checkout, so a module
missing from the wheel goes unseen there. Here the sdist and the wheel are built the way
``python -m build`` builds them (the wheel from the unpacked sdist), their contents are
compared with the tree, and — with the package index, for the dependencies — the wheel is
installed into a fresh venv and the sdist's own tests run against it from a folder outside
the checkout (test_cli.py among them runs the whole demo). ``.ci/run`` also installs the
wheel and runs the demo before the suite.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1]
"""The project root these tests came with: a checkout or an unpacked sdist."""

pytestmark = pytest.mark.skipif(
    not (SOURCE / "pyproject.toml").is_file(), reason="the tests run without their project source"
)


def _built(out: Path) -> tuple[Path, Path]:
    """Build sdist and wheel (the wheel from the sdist) with this venv's setuptools, offline.

    setuptools stages the sdist and the egg-info inside the source tree: one build at a
    time (the test workers each build their own copy).
    """
    lock = Path(tempfile.gettempdir()) / f"concentric-build-{os.getuid()}.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(SOURCE)],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _built(tmp_path_factory.mktemp("dist"))


def _source_files(folder: str, pattern: str) -> set[str]:
    return {
        p.relative_to(SOURCE).as_posix()
        for p in (SOURCE / folder).rglob(pattern)
        if "__pycache__" not in p.parts
    }


def test_every_module_and_every_recipe_is_in_the_wheel(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    names = set(zipfile.ZipFile(wheel).namelist())

    modules = _source_files("migrate", "*.py")
    assert {"migrate/cli.py", "migrate/rewrite/httpd.py", "migrate/inventory/egg.py"} <= modules
    assert sorted(modules - names) == []
    recipes = {f"migrate/_recipes/{p.name}" for p in (SOURCE / "recipes").glob("*.toml")}
    assert "migrate/_recipes/django.toml" in recipes
    assert sorted(recipes - names) == []
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "recipes/"))]


def test_the_wheel_declares_the_command_and_its_pinned_dependencies(
    dists: tuple[Path, Path],
) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(n.split("/")[0] for n in archive.namelist() if n.endswith("/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert "concentric-migrate = migrate.cli:main" in entry_points
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for name in ("click", "packaging", "pip", "pip-tools", "virtualenv"):
        assert any(line.startswith(f"Requires-Dist: {name}") for line in requires), name
    assert "License-Expression: MIT" in metadata


def test_the_sdist_carries_the_whole_project_and_its_tests(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        names = {n.removeprefix(root + "/") for n in archive.getnames()}

    expected = {"pyproject.toml", "setup.py", "README.md", "LICENSE"}
    for folder, pattern in (
        ("migrate", "*.py"),
        ("recipes", "*.toml"),
        ("tests", "*"),
        ("docs", "*"),
        ("bench", "*.py"),
    ):
        expected |= {f for f in _source_files(folder, pattern) if (SOURCE / f).is_file()}
    assert sorted(expected - names) == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def _fresh_venv_with(wheel: Path, where: Path, *extra: str) -> Path:
    """A venv with the wheel installed the normal way (dependencies from the index)."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel), *extra],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return python


@pytest.mark.network
def test_the_sdists_tests_run_against_the_installed_wheel(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    """Unpack the sdist, install the wheel and the test tools, run tests from elsewhere."""
    sdist, wheel = dists
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "sdist", filter="data")
    (project,) = (tmp_path / "sdist").iterdir()
    python = _fresh_venv_with(wheel, tmp_path / "venv", "pytest", "hypothesis", "jsonschema")
    shutil.rmtree(project / "migrate")  # nothing to import from but the installed wheel
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_CONFIG_FILE"] = os.devnull

    done = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(project), str(project / "tests" / "test_cli.py"),
         str(project / "tests" / "test_json_schemas.py"),
         str(project / "tests" / "test_dependencies.py")],
        capture_output=True, text=True, cwd=elsewhere, env=env, timeout=900, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert f"migrate: {tmp_path / 'venv'}" in done.stdout, "the installed wheel was tested"
    assert " passed" in done.stdout and " failed" not in done.stdout

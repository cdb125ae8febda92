"""The internals of dependencies this tool relies on are where it expects them.

pyproject.toml pins pip and virtualenv to the ranges known to work because the tool uses
one internal of each. When an upgrade moves one, these tests fail first and say which;
the build tests would fail too, but far from the cause.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import virtualenv
from packaging.requirements import Requirement
from packaging.version import Version

from migrate.build.venv import embedded_pip, needs_legacy, tool_pip_runner


def _pinned(name: str) -> Requirement:
    found = [Requirement(r) for r in requires("concentric-migrate") or ()]
    (requirement,) = [r for r in found if r.name == name and r.marker is None]
    return requirement


def test_the_installed_pip_and_virtualenv_are_in_the_pinned_ranges() -> None:
    for name in ("pip", "virtualenv"):
        assert Version(version(name)) in _pinned(name).specifier, (
            f"{name} {version(name)} is outside {_pinned(name)}: the range in pyproject.toml "
            "is the one these tests were run with"
        )


def test_virtualenv_still_bundles_pip_wheels_where_the_tool_looks() -> None:
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT, get_embed_wheel

    assert "3.11" in BUNDLE_SUPPORT and "pip" in BUNDLE_SUPPORT["3.11"], (
        f"virtualenv {virtualenv.__version__}: BUNDLE_SUPPORT changed shape"
    )
    wheel = get_embed_wheel("pip", "3.11")
    assert wheel is not None and Path(wheel.path).is_file()
    found = embedded_pip("3.11")
    assert found is not None
    path, sha256 = found
    assert path.name.startswith("pip-") and path.suffix == ".whl" and len(sha256) == 64


def test_which_pythons_need_the_legacy_helper() -> None:
    assert needs_legacy("2.7") and needs_legacy("3.6")
    assert not needs_legacy("3.11") and not needs_legacy("3.13")


def test_pips_runner_installs_for_another_interpreter(tmp_path: Path) -> None:
    runner = tool_pip_runner()
    assert runner is not None, "pip's __pip-runner__.py moved: venvs without pip cannot be filled"
    venv = tmp_path / "venv"
    virtualenv.cli_run([str(venv), "--no-seed", "--quiet"], setup_logging=False)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-I", str(runner), "--isolated", "--disable-pip-version-check", "list",
         "--format", "freeze"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", "pip lists the target venv (empty), not its own environment"
    assert sys.prefix not in done.stdout

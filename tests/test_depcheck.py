"""The in-process check says what real ``pip check`` says, line for line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from accounts import PY

from migrate.build.depcheck import unmet_requirements
from migrate.build.venv import clean_env, create_venv, install
from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.discover.interpreters import find_interpreter


def spec(name: str, version: str, *requires: str) -> WheelSpec:
    module = name.replace("-", "_").lower()
    return WheelSpec(name, version, {f"{module}/__init__.py": b""}, requires=requires)


def test_unmet_requirements_agree_with_pip_check(tmp_path: Path) -> None:
    specs = [
        spec("Needy", "2.0", "absent-dep>=1", "Old_Dep>=2", "fine-dep"),
        spec("old.dep", "1.5"),
        spec("fine-dep", "3.0", "nowhere; python_version < '3'", "gone; extra == 'more'"),
        spec("marked", "1.0", f"only-here; python_version == '{PY}'", "pre>=1.0"),
        spec("pre", "1.1rc1"),
        spec("ranged", "1.0", "fine-dep>=2,<3"),
    ]
    wheels = [build_wheel(s, tmp_path / "wheels") for s in specs]
    venv = tmp_path / "venv"
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    create_venv(venv, interpreter, helpers=tmp_path / "helpers", seed=True)
    env = {**clean_env(), "PIP_CONFIG_FILE": os.devnull}
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps", *wheels],
        check=True, env=env,
    )  # fmt: skip
    pip = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "check"], capture_output=True, text=True, env=env
    )
    assert pip.returncode == 1
    site = venv / "lib" / f"python{PY}" / "site-packages"
    ours = sorted(str(u) for u in unmet_requirements(site, PY))
    assert ours == sorted(pip.stdout.splitlines())
    assert len(ours) == 4  # absent-dep, old-dep, only-here, ranged's fine-dep


def test_a_complete_venv_has_nothing_unmet(tmp_path: Path) -> None:
    wheels = [
        build_wheel(spec("top", "1.0", "base>=1; python_version >= '3'"), tmp_path),
        build_wheel(spec("base", "1.2"), tmp_path),
    ]
    venv = tmp_path / "venv"
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    create_venv(venv, interpreter, helpers=tmp_path / "helpers", seed=True)
    install(venv, wheels)  # runs the real pip check, which raises on a problem
    site = venv / "lib" / f"python{PY}" / "site-packages"
    assert unmet_requirements(site, PY) == ()

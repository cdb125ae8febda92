"""Builders for real fixture accounts: generated wheels installed with the real pip."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.demo import pip_install_target

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def module(version: str, body: str = "") -> bytes:
    return f'__version__ = "{version}"\n{body}'.encode()


def write_files(base: Path, files: Mapping[str, bytes | str]) -> None:
    for rel, data in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)


def install_wheels(lib_dir: Path, specs: list[WheelSpec], wheel_dir: Path) -> list[Path]:
    """Build each spec as a wheel and install them all with ``pip install --target``."""
    wheels = [build_wheel(spec, wheel_dir) for spec in specs]
    lib_dir.mkdir(parents=True, exist_ok=True)
    pip_install_target(lib_dir, wheels)
    return wheels


def account_lib(home: Path, app: str | None = None, python: str = PY) -> Path:
    base = home / "webapps" / app if app else home
    path = base / "lib" / f"python{python}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip_env() -> dict[str, str]:
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def http_get(port: int, path: str = "/", timeout: float = 60.0) -> str:
    """The body of ``GET path`` on 127.0.0.1 once the server answers (it may be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

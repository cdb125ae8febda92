"""Fill a venv with pip: the venv's own pip, ``--no-index --no-deps`` from exactly the wheel
files given (the lock is closed already, and two copies of one name and version may sit side
by side), then ``pip check``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from migrate.build.depcheck import unmet_requirements
from migrate.build.venv.relocate import site_dirs, venv_python
from migrate.build.venv.tools import VenvError, release, run_tool


def install(venv: Path, wheels: Sequence[Path]) -> None:
    """Install exactly these wheel files with the venv's own pip, then ``pip check``.

    No index, no dependency resolution (the lock is closed), no bytecode yet (compiled by
    :func:`relocate` for the final path).
    """
    python = str(venv_python(venv))
    pip = [python, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-color"]
    if wheels:
        run_tool(
            [*pip, "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
             "--no-warn-script-location", *map(str, wheels)],
            f"pip install into {venv}",
        )  # fmt: skip
    check(venv)


def check(venv: Path) -> None:
    """What ``pip check`` checks (every installed distribution's requirements are met, or
    VenvError), read here rather than by the venv's interpreter: that one would run the
    ``.pth`` lines of what was just installed — the account's code — as the caller."""
    for site in site_dirs(venv):
        unmet = unmet_requirements(site, site.parent.name[len("python") :])
        if unmet:
            raise VenvError(f"requirements not met in {venv}:\n" + "\n".join(map(str, unmet)))


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
    if release(pip.__version__)[:2] < (22, 3) or not runner.is_file():
        return None
    return runner


def pip_command(venv: Path) -> list[str]:
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

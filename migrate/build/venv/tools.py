"""Running the tools a venv is made with (pip, virtualenv): a clean environment, output kept
for the error.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from migrate.privilege import Owner, as_owner


class VenvError(Exception):
    """A venv could not be made, filled or checked; the message carries the tool's output."""


class HelperUnavailable(VenvError):
    """The legacy virtualenv helper could not be installed (it needs an index once)."""


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


def run_tool(command: Sequence[str], what: str, owner: Owner | None = None) -> str:
    """Run a build tool; ``owner``: as that user (a venv's python runs its ``.pth`` lines:
    the account's code, never run as root — see :mod:`migrate.privilege`)."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=TIMEOUT,
            env=clean_env(), check=False, **as_owner(owner),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise VenvError(f"{what} did not finish within {TIMEOUT} s") from None
    except OSError as exc:
        raise VenvError(f"{what} cannot run: {exc.strerror}") from None
    if done.returncode != 0:
        raise VenvError(
            f"{what} failed (exit {done.returncode}): {tail(done.stdout + done.stderr)}"
        )
    return done.stdout


def tail(output: str, lines: int = 15) -> str:
    kept = output.strip().splitlines()[-lines:]
    return "\n".join(kept) or "it said nothing"


def release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


TIMEOUT = 600

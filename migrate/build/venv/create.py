"""Create a venv with the app's own interpreter: virtualenv's Python API, or the legacy helper."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from migrate.build.venv.legacy import legacy_helper, needs_legacy
from migrate.build.venv.relocate import venv_python
from migrate.build.venv.tools import VenvError, clean_env, run_tool
from migrate.discover.interpreters import Interpreter
from migrate.privilege import controller, give_like_dir


@dataclass(frozen=True)
class Tool:
    """How a venv gets made: the installed virtualenv (in process) or the legacy helper."""

    legacy: bool
    helper: Path | None = None
    """The helper environment's python (legacy only)."""


_VIRTUALENV = threading.Lock()
"""One virtualenv session, and one build of the legacy helper, at a time: apps are staged
in threads, virtualenv does not say its sessions (interpreter discovery, app-data) may run
side by side in one process, and the helper is built in a folder named by the process."""


@contextlib.contextmanager
def _app_data(helpers: Path) -> Iterator[Path]:
    """virtualenv's cache: in the state folder's ``helpers``; as root for another user, a
    private scratch folder removed after (root's cache files would be root's in her home,
    and a cache she can write is one root would read)."""
    if os.geteuid() == 0 and os.stat(helpers).st_uid != 0:
        with tempfile.TemporaryDirectory(prefix="concentric-app-data-") as scratch:
            yield Path(scratch)
    else:
        yield helpers / "app-data"


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
    who = controller(interpreter.executable)
    if who is not None:
        raise VenvError(
            f"{interpreter.executable} can be changed by {who.name}, and making a venv runs "
            f"it: root will not; run concentric-migrate as {who.name} (see the guide's "
            "privilege model)"
        )
    if not helpers.is_dir():
        helpers.mkdir(parents=True, exist_ok=True, mode=0o700)
        give_like_dir(helpers)
    options = [
        "--no-download",
        "--no-setuptools",
        "--no-periodic-update",
        "--no-vcs-ignore",
        "--prompt",
        prompt or dest.name,
    ]
    if needs_legacy(interpreter.version):
        with _VIRTUALENV:  # one helper built, in one folder, whatever stages at once
            helper = legacy_helper(helpers, offline=offline)
        command = [
            str(helper), "-m", "virtualenv", str(dest), "--python", str(interpreter.executable),
            "--no-wheel", "--app-data", str(helpers / "app-data-legacy"), *options,
        ]  # fmt: skip
        run_tool(command, f"virtualenv (legacy helper) for Python {interpreter.version}")
    else:
        import virtualenv

        with _app_data(helpers) as app_data:
            args = [
                str(dest), "--python", str(interpreter.executable),
                "--app-data", str(app_data), "--quiet", *options,
            ]  # fmt: skip
            if not seed:
                args.append("--no-seed")
            try:
                with _VIRTUALENV:
                    virtualenv.cli_run(args, setup_logging=False, env=clean_env())
            except (Exception, SystemExit) as exc:  # virtualenv exits on bad input
                raise VenvError(
                    f"virtualenv could not create {dest} for {interpreter.executable}: {exc}"
                ) from None
    python = venv_python(dest)
    if not python.exists():
        raise VenvError(f"virtualenv made {dest} without {python}")
    return python

"""Run a check with the account's concentric dirs hidden, without touching them.

``verify --isolated`` (and ``run``, which ends with it) must prove a venv stands alone: the
old dirs are still on disk, so a leak through them — a ``.pth`` file, a ``sys.path`` edit, a
site hook — could pass a check that merely looks at ``sys.path``. Where the kernel allows,
the check runs in a private mount namespace (``unshare --mount``, with ``--map-root-user``
when not root) in which each dir is covered by an empty read-only tmpfs: the dirs really
are gone for that process, and for no other. Where it does not, the check audits instead
(:data:`AUDIT`): every file the interpreter opens under a hidden dir is an error.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from migrate.privilege import Owner

NAMESPACE = "mount namespace"
AUDIT = "sys.path audit"


def isolated(
    argv: Sequence[str], hidden: Sequence[Path], owner: Owner | None = None
) -> tuple[list[str], str]:
    """``argv`` run with ``hidden`` covered, and how: :data:`NAMESPACE` or :data:`AUDIT`
    (then the check must audit itself). ``owner``: ``argv`` runs as that user — root makes
    the namespace, then drops (``setpriv``) before the account's code starts."""
    command = [*_drop(owner), *argv]
    dirs = [str(d) for d in hidden if os.path.isdir(d)]
    prefix = _unshare() if dirs else None
    if prefix is None:
        return command, AUDIT if dirs else NAMESPACE
    return [*prefix, "sh", "-c", _runner(len(dirs)), "sh", *dirs, *command], NAMESPACE


def _drop(owner: Owner | None) -> list[str]:
    """The ``setpriv`` prefix that becomes ``owner`` (her groups only); none without one."""
    if owner is None:
        return []
    program = shutil.which("setpriv") or "/usr/bin/setpriv"
    groups = ",".join(map(str, owner.groups)) or str(owner.gid)
    return [program, f"--reuid={owner.uid}", f"--regid={owner.gid}", f"--groups={groups}", "--"]


def can_hide() -> bool:
    """A private mount namespace can be made here (else checks audit instead)."""
    return _unshare() is not None


def _runner(count: int) -> str:
    """sh text: cover the first ``count`` arguments, then exec the rest."""
    return (
        f"i=0; while [ $i -lt {count} ]; do "
        'mount -t tmpfs -o ro,size=4k,mode=755 none "$1" || exit 97; shift; i=$((i+1)); done; '
        'exec "$@"'
    )


@functools.cache
def _unshare() -> list[str] | None:
    """The ``unshare`` prefix that works here, tried once on a scratch dir; None if none."""
    program = shutil.which("unshare")
    if program is None:
        return None
    options = ["--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        options.append("--map-root-user")
    with tempfile.TemporaryDirectory(prefix="concentric-unshare-") as scratch:
        probe = Path(scratch, "probe")
        probe.mkdir()
        (probe / "seen").write_text("")
        try:
            done = subprocess.run(
                [program, *options, "sh", "-c", _runner(1), "sh", str(probe), "ls", str(probe)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0 or "seen" in done.stdout or not (probe / "seen").exists():
            return None
    return [program, *options]

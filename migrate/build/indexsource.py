"""``--source index``: the pinned version's wheel from a package index, where that is faithful.

Fidelity first (rule 3): an index copy replaces the installed files only when it can be
the same thing. A distribution keeps its repacked installed files when the index cannot
have it — a bare copy or a guessed/local version, a develop install — or when it differs
from any release — locally modified files — or when the index has no wheel of that
version for the app's Python (sdists are not built: that would need build tools and
could change the result). :func:`index_wheel` says which, per distribution.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from migrate.lock import LOCAL_VERSION, Pin

_TIMEOUT = 300


@dataclass(frozen=True)
class IndexChoice:
    """Where one pin's wheel comes from: ``path`` from the index, or why not (``reason``)."""

    path: Path | None
    sha256: str | None
    reason: str


def keeps_installed_files(pin: Pin) -> str | None:
    """Why this pin must be built from its installed files even with ``--source index``."""
    dist = pin.row.dist
    if dist.kind == "bare" or dist.version_guessed or pin.version == LOCAL_VERSION:
        return "no metadata: no index has this copy"
    if "+" in pin.version:
        return f"local version {pin.version}: no index has it"
    if dist.editable or dist.kind == "egg-link":
        return "a develop install: its source tree is the truth"
    if dist.modified:
        return f"locally modified ({len(dist.modified)} file(s) differ from RECORD): kept"
    return None


def index_wheel(pin: Pin, python: str, dest: Path) -> IndexChoice:
    """Download ``name==version`` as a wheel for Python ``python`` into ``dest`` with pip
    (the user's pip configuration applies: index URL, proxies); never builds an sdist."""
    reason = keeps_installed_files(pin)
    if reason is not None:
        return IndexChoice(None, None, reason)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary", ":all:", "--python-version", python,
            "--dest", scratch, f"{pin.name}=={pin.version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return IndexChoice(None, None, f"the index did not answer in {_TIMEOUT} s")
        wheels = sorted(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            said = (done.stderr or done.stdout).strip().splitlines()
            why = said[-1] if said else f"pip exited {done.returncode}"
            return IndexChoice(None, None, f"no wheel on the index for Python {python}: {why}")
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return IndexChoice(target, digest, "from the index")

"""What a writing command intends to change, as data: shown as diffs, applied by the journal.

Commands build a list of :class:`PlannedFile` (pure), then either print their diffs
(``--dry-run``) or hand them to :func:`apply`, which writes inside the home only through
:mod:`migrate.journal`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate import layout
from migrate.lock import compile_with_pip_tools, lock_app, pins_for, wheel_hashes
from migrate.resolve.plan import Plan

ACCOUNT_OUT_DIR = "_account"


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    content: bytes
    before: bytes | None
    """The file's bytes now; ``None`` when it does not exist yet."""
    mode: int = 0o644

    @property
    def changed(self) -> bool:
        return self.before != self.content

    @property
    def before_sha256(self) -> str | None:
        """What the journal must still find there to write it (compare-and-swap)."""
        return None if self.before is None else hashlib.sha256(self.before).hexdigest()

    def diff(self) -> str:
        old = (self.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = self.content.decode("utf-8", "replace").splitlines(keepends=True)
        source = str(self.path) if self.before is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, source, str(self.path)))


def planned(path: Path, text: str) -> PlannedFile:
    try:
        before: bytes | None = path.read_bytes()
    except FileNotFoundError:
        before = None
    return PlannedFile(path, text.encode("utf-8"), before)


def requirements_dir(home: Path, app: str, out: Path | None) -> Path:
    """Where an app's requirement files go: the app dir (``~``: HOME/.venvs), or DIR/APP."""
    if out is not None:
        return out / (ACCOUNT_OUT_DIR if app == "~" else app)
    return layout.app_folder(home, app)


def requirement_files(
    plan: Plan,
    *,
    out: Path | None,
    command: str,
    mode: str = "exact",
    find_links: Sequence[Path] = (),
    index: bool = True,
    hashes: bool = False,
) -> list[PlannedFile]:
    """requirements.in and requirements.txt of every Python app in the plan."""
    files: list[PlannedFile] = []
    wheel_dirs = [layout.wheelhouse_dir(plan.home), *find_links]
    for app in plan.apps:
        if not app.has_python or not app.entry_points:
            continue
        digests = wheel_hashes(pins_for(app, plan.home), wheel_dirs) if hashes else None
        lock = lock_app(app, plan.home, command=command, hashes=digests)
        text = lock.requirements_txt
        if mode == "compile":
            text = compile_with_pip_tools(lock, find_links=find_links, index=index)
        folder = requirements_dir(plan.home, app.name, out)
        files.append(planned(folder / "requirements.in", lock.requirements_in))
        files.append(planned(folder / "requirements.txt", text))
    return files


def write_outside(files: Sequence[PlannedFile]) -> None:
    """``--out DIR``: the user's own directory outside the home, so no journal is kept."""
    for item in files:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = item.path.with_name(f".{item.path.name}.tmp")
        temporary.write_bytes(item.content)
        os.replace(temporary, item.path)


def apply(home: Path, files: Sequence[PlannedFile], *, description: str) -> str | None:
    """Write the files into the home as one journaled transaction; returns its id."""
    if not files:
        return None
    from migrate.journal import home_lock, session

    with home_lock(home), session(home, description) as transaction:
        for item in files:
            mode = None if item.before is not None else item.mode
            transaction.write_file(item.path, item.content, mode, expect_sha256=item.before_sha256)
    return transaction.id

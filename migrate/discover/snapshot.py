"""The bytes of every file a migration may rewrite, read once while the account is discovered.

``run`` rewrites exactly these bytes and hands the journal their sha256, so a file edited
after it was read is never overwritten with a rewrite of its old text (compare-and-swap).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from migrate.paths import read_regular


@dataclass(frozen=True)
class FileRead:
    path: Path
    """Absolute, as named (not resolved)."""
    data: bytes | None
    """None when it could not be read (``error`` says why)."""
    real: Path
    """Where it really is (symlinks resolved): a file leading outside the home is not ours."""
    error: str | None = None

    @property
    def sha256(self) -> str | None:
        return None if self.data is None else hashlib.sha256(self.data).hexdigest()


def read_file(path: Path) -> FileRead:
    path = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    try:
        return FileRead(path, read_regular(path), real)
    except OSError as exc:
        return FileRead(path, None, real, exc.strerror or str(exc))


def snapshot(
    paths: Iterable[Path], known: Mapping[Path, bytes] | None = None
) -> dict[Path, FileRead]:
    """Each existing path's bytes (``known`` ones as already read), keyed by absolute path."""
    out: dict[Path, FileRead] = {}
    for path in paths:
        path = Path(os.path.abspath(path))
        if path in out or not os.path.lexists(path) or os.path.isdir(path):
            continue
        if known is not None and path in known:
            out[path] = FileRead(path, known[path], Path(os.path.realpath(path)))
        else:
            out[path] = read_file(path)
    return out

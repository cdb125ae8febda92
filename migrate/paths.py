"""Path predicates and formatting shared by every stage."""

from __future__ import annotations

import os
from pathlib import Path


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """``path`` is ``root`` or below it, lexically (resolve symlinks first where it matters)."""
    path_text = os.path.normcase(os.path.abspath(path))
    root_text = os.path.normcase(os.path.abspath(root))
    return path_text == root_text or path_text.startswith(root_text.rstrip(os.sep) + os.sep)


def home_relative(path: str | os.PathLike[str], home: Path) -> str:
    """``~/…`` for paths in the home, the absolute path otherwise: what messages show."""
    if is_inside(path, home) and os.path.abspath(path) != os.path.abspath(home):
        return "~/" + os.path.relpath(path, home)
    return str(path)

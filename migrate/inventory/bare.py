"""Packages and modules copied into a lib dir with no metadata at all.

Such copies are still imported, so they are inventoried as kind ``bare`` with a version
guessed from the source text (``__version__ = "..."``); nothing is imported to find it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from migrate.inventory._files import Unreadable, read_bytes, relative_to
from migrate.inventory.metadata import canonical, decode_text
from migrate.inventory.model import Distribution, Finding

EXTENSION_SUFFIXES = (".so", ".pyd")
MODULE_SUFFIXES = (".py", ".pyc", *EXTENSION_SUFFIXES)
_VERSION = re.compile(
    r"""^__version__\s*(?::\s*str\s*)?=\s*[ubrUBR]?(['"])(?P<version>[^'"\n]+)\1""", re.MULTILINE
)
_VERSION_FILES = ("__init__.py", "_version.py", "version.py", "__about__.py")
_SOURCE_LIMIT = 1024 * 1024


def module_name(filename: str) -> str | None:
    """The import name a lib-dir file provides (``foo.cpython-311-x86_64-linux-gnu.so`` -> foo)."""
    if not filename.endswith(MODULE_SUFFIXES):
        return None
    stem = filename.split(".", 1)[0]
    return stem if stem.isidentifier() else None


def is_package_dir(path: Path) -> bool:
    """A directory Python would import: ``__init__`` in any form, or a namespace with modules."""
    if not path.name.isidentifier() or path.name == "__pycache__":
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if any(name.startswith("__init__.") and name.endswith(MODULE_SUFFIXES) for name in names):
        return True
    return any(name.endswith(".py") for name in names)


def read_bare(path: Path, lib_dir: Path) -> tuple[Distribution, tuple[Finding, ...]]:
    """Record one package dir or module file that no distribution in its lib dir owns."""
    findings: list[Finding] = []
    if path.is_dir():
        name = path.name
        files = _walk(path, lib_dir, findings)
        sources = [path / candidate for candidate in _VERSION_FILES]
    else:
        name = module_name(path.name) or path.stem
        files = (path.name,)
        sources = [path] if path.suffix == ".py" else []
    version = _guess_version(sources)
    return (
        Distribution(
            name=canonical(name),
            display_name=name,
            version=version,
            kind="bare",
            path=path,
            lib_dir=lib_dir,
            top_level=(name,),
            files=files,
            version_guessed=version is not None,
        ),
        tuple(findings),
    )


def _guess_version(sources: list[Path]) -> str | None:
    for source in sources:
        try:
            data = read_bytes(source, _SOURCE_LIMIT)
        except Unreadable:
            continue
        match = _VERSION.search(decode_text(data)[0])
        if match:
            return match["version"]
    return None


def _walk(path: Path, lib_dir: Path, findings: list[Finding]) -> tuple[str, ...]:
    out: list[str] = []

    def on_error(exc: OSError) -> None:
        findings.append(
            Finding(Path(exc.filename or path), "warning", f"cannot list: {exc.strerror}")
        )

    start = str(lib_dir)
    for root, dirs, names in os.walk(str(path), onerror=on_error):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel_root = relative_to(root, start)
        out.extend(f"{rel_root}/{name}" for name in sorted(names))
    return tuple(out)

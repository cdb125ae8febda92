"""Reader for ``.pth`` files, following ``site.addpackage`` line by line but executing nothing."""

from __future__ import annotations

import os
from pathlib import Path

from migrate.inventory._files import Unreadable, read_bytes
from migrate.inventory.model import Finding, PthFile, PthLine, PthRole

SETUPTOOLS_SITE_PY_MARKER = b"def __boot():"


def read_pth(path: Path, site_dir: Path) -> tuple[PthFile | None, tuple[Finding, ...]]:
    """Classify every line of one ``.pth`` file as site.py would see it."""
    try:
        data = read_bytes(path)
    except Unreadable as exc:
        return None, (Finding(path, "error", f"cannot read .pth file: {exc}"),)
    if b"\x00" in data:
        return None, (
            Finding(path, "error", ".pth file is binary (contains NUL bytes); Python skips it"),
        )
    findings: list[Finding] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # site.py falls back to the locale encoding; Latin-1 keeps every byte.
        text = data.decode("latin-1")
        findings.append(Finding(path, "warning", ".pth file is not UTF-8; read as Latin-1"))
    lines = tuple(
        _classify(number, line, site_dir) for number, line in enumerate(text.splitlines(), 1)
    )
    joined_imports = "\n".join(line.text for line in lines if line.kind == "import")
    pth = PthFile(
        path=path,
        role=_role(path.name),
        lines=lines,
        plen_wrapper="sys.__plen" in joined_imports or "__egginsert" in joined_imports,
    )
    for line in pth.path_entries:
        if not line.exists:
            findings.append(
                Finding(path, "warning", f"line {line.lineno}: {line.path} does not exist")
            )
    return pth, tuple(findings)


def _classify(number: int, line: str, site_dir: Path) -> PthLine:
    if line.startswith("#"):
        return PthLine(number, line, "comment")
    if not line.strip():
        return PthLine(number, line, "blank")
    if line.startswith(("import ", "import\t")):
        return PthLine(number, line, "import")
    target = Path(os.path.normpath(os.path.join(site_dir, line.rstrip())))
    return PthLine(number, line, "path", target, target.exists())


def _role(name: str) -> PthRole:
    if name == "easy-install.pth":
        return "easy-install"
    if name.endswith("-nspkg.pth"):
        return "nspkg"
    return "plain"


def is_setuptools_site_py(path: Path) -> bool:
    """Old easy_install dropped a ``site.py`` starting ``def __boot():`` into install dirs."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SETUPTOOLS_SITE_PY_MARKER)) == SETUPTOOLS_SITE_PY_MARKER
    except OSError:
        return False

"""Reader for ``.egg-link`` files: develop installs (``setup.py develop``, old ``pip -e``)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from migrate.inventory._files import Unreadable, read_bytes
from migrate.inventory.egginfo import read_egg_info
from migrate.inventory.metadata import canonical, decode_text
from migrate.inventory.model import Distribution, Finding


def read_egg_link(path: Path, lib_dir: Path) -> tuple[Distribution, tuple[Finding, ...]]:
    display = path.name.removesuffix(".egg-link")
    base = Distribution(
        name=canonical(display), display_name=display, version=None, kind="egg-link",
        path=path, lib_dir=lib_dir, editable=True,
    )  # fmt: skip
    try:
        text, _ = decode_text(read_bytes(path))
    except Unreadable as exc:
        return base, (Finding(path, "error", f"cannot read egg-link: {exc}"),)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or "\x00" in text:
        return base, (Finding(path, "error", "egg-link names no target directory"),)
    target = Path(os.path.normpath(os.path.join(path.parent, lines[0])))
    if not target.is_dir():
        finding = Finding(path, "error", f"egg-link target {target} does not exist (dangling)")
        return replace(base, target=target, target_exists=False), (finding,)
    linked = replace(base, target=target, target_exists=True)
    egg_info = find_egg_info(target, linked.name)
    if egg_info is None:
        finding = Finding(path, "warning", f"no {display}.egg-info in {target}; version unknown")
        return linked, (finding,)
    meta, findings = read_egg_info(egg_info, target)
    return (
        replace(
            linked,
            display_name=meta.display_name,
            version=meta.version,
            top_level=meta.top_level,
            requires=meta.requires,
        ),
        findings,
    )


def find_egg_info(target: Path, name: str) -> Path | None:
    """The project's ``NAME.egg-info`` in the directory the egg-link names."""
    try:
        entries = sorted(target.iterdir())
    except OSError:
        return None
    for entry in entries:
        stem = entry.name.removesuffix(".egg-info")
        if stem != entry.name and entry.is_dir() and canonical(stem.split("-")[0]) == name:
            return entry
    return None

"""Contents of an ``.egg-info`` install (``setup.py install``, old pip): ``installed-
files.txt``, else the top-level packages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from migrate.build.repack.libfiles import lib_files, script_names
from migrate.build.repack.members import (
    EGG_META,
    Contents,
    Member,
    Names,
    RepackError,
    file_member,
    read_small,
    small_if_exists,
    tree_members,
)
from migrate.build.repack.metadata import converted_metadata
from migrate.inventory.metadata import text_lines
from migrate.inventory.model import Distribution


def from_egg_info(dist: Distribution, names: Names) -> Contents:
    if dist.path.is_dir():
        pkg_info = small_if_exists(dist.path / "PKG-INFO")
        meta = egg_meta_files(dist.path)
    else:
        pkg_info = read_small(dist.path)
        meta = ()
    metadata = converted_metadata(pkg_info, dist, names)
    if dist.files is not None:
        own = dist.path.name + "/"
        listed = [rel for rel in dist.files if not rel.startswith(own) and rel != dist.path.name]
        scripts = script_names(meta_bytes(meta, "entry_points.txt"))
        files = lib_files(dist, listed, names, scripts)
        return Contents(files, metadata, meta, required=bool(listed))
    files = top_level_files(dist, dist.lib_dir, dist.top_level, "no installed-files.txt")
    files += _nspkg_pth(dist)
    return Contents(files, metadata, meta, required=True)


def egg_meta_files(info_dir: Path) -> tuple[Member, ...]:
    out = []
    for name in EGG_META:
        member = file_member(name, info_dir / name)
        if member is not None:
            out.append(Member(name, 0o644, member.origin, data=member.read()))
    return tuple(out)


def meta_bytes(meta: Iterable[Member], name: str) -> bytes | None:
    return next((m.read() for m in meta if m.name == name), None)


def _nspkg_pth(dist: Distribution) -> tuple[Member, ...]:
    """setuptools' ``NAME-VER-pyX.Y-nspkg.pth`` beside an egg-info: wheels carry it at the root."""
    stem = dist.path.name.removesuffix(".egg-info")
    member = file_member(f"{stem}-nspkg.pth", dist.lib_dir / f"{stem}-nspkg.pth")
    return (member,) if member else ()


def top_level_files(
    dist: Distribution, root: Path, top_level: Iterable[str], why: str
) -> tuple[Member, ...]:
    """The packages and modules named by top_level.txt, found in ``root`` (the lib dir)."""
    wanted = [name for name in top_level if name.isidentifier()]
    if not wanted:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): {why} and no top_level.txt, so nothing says "
            "which files are its own; reinstall it with pip, or copy it in as a plain package"
        )
    children = _namespace_children(dist)
    out: list[Member] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError as exc:
        raise RepackError(f"cannot list {root}: {exc.strerror}") from exc
    for name in wanted:
        package = root / name
        if package.is_dir():
            only = children.get(name) if not (package / "__init__.py").exists() else None
            out.extend(tree_members(package, name, only))
        for entry in entries:
            if module_stem(entry) == name and (root / entry).is_file():
                member = file_member(entry, root / entry)
                if member is not None:
                    out.append(member)
    if not out:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): none of {', '.join(wanted)} (its top-level "
            f"names) is in {root}; it is not importable there, so it cannot be packed"
        )
    return tuple(out)


def _namespace_children(dist: Distribution) -> dict[str, frozenset[str]]:
    """For a namespace dir shared with other dists: the children SOURCES.txt names as ours."""
    if not dist.path.is_dir():
        return {}
    sources = small_if_exists(dist.path / "SOURCES.txt")
    if sources is None:
        return {}
    out: dict[str, set[str]] = {}
    for line in text_lines(sources):
        parts = line.replace("\\", "/").split("/")
        for top in dist.top_level:
            if top in parts[:-1]:
                index = parts.index(top)
                out.setdefault(top, set()).add(parts[index + 1])
    return {key: frozenset(value) for key, value in out.items()}


def module_stem(filename: str) -> str | None:
    if not filename.endswith((".py", ".pyc", ".so", ".pyd")):
        return None
    stem = filename.split(".", 1)[0]
    return stem if stem.isidentifier() else None

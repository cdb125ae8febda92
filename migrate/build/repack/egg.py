"""Contents of an egg (``easy_install``): a folder or a zip, metadata in ``EGG-INFO``."""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterable
from contextlib import ExitStack
from typing import BinaryIO

from migrate.build.repack.egginfo import meta_bytes
from migrate.build.repack.libfiles import relocatable_script, script_names
from migrate.build.repack.members import (
    EGG_META,
    Contents,
    Member,
    Names,
    RepackError,
    file_member,
    member_mode,
    walk_files,
)
from migrate.build.repack.metadata import converted_metadata
from migrate.inventory.metadata import text_lines
from migrate.inventory.model import Distribution


def from_egg(dist: Distribution, names: Names, stack: ExitStack) -> Contents:
    if dist.zipped:
        entries = _zip_entries(dist, stack)
    else:
        entries = [(rel, file_member(rel, path, st)) for rel, path, st in walk_files(dist.path)]
    files: list[Member] = []
    info: dict[str, Member] = {}
    for rel, member in entries:
        if member is None:
            continue
        if rel.startswith("EGG-INFO/"):
            info[rel.removeprefix("EGG-INFO/")] = member
        else:
            files.append(member)
    if "PKG-INFO" not in info:
        raise RepackError(
            f"{dist.path}: the egg has no EGG-INFO/PKG-INFO, so its name and version are "
            "unknown; reinstall it from an sdist or wheel"
        )
    meta = tuple(
        Member(name, 0o644, info[name].origin, data=info[name].read())
        for name in EGG_META
        if name in info
    )
    scripts = script_names(meta_bytes(meta, "entry_points.txt"))
    for rel, member in sorted(info.items()):
        script = rel.removeprefix("scripts/")
        if script != rel and "/" not in script and script not in scripts:
            data = relocatable_script(member.read())
            files.append(Member(names.data("scripts", script), 0o755, member.origin, data=data))
    native = text_lines(info["native_libs.txt"].read()) if "native_libs.txt" in info else ()
    files = _without_egg_stubs(files, native)
    metadata = converted_metadata(info["PKG-INFO"].read(), dist, names)
    return Contents(tuple(files), metadata, meta, required=True)


def _zip_entries(dist: Distribution, stack: ExitStack) -> list[tuple[str, Member | None]]:
    """Members of a zipped egg, streamed from the archive (never unpacked to disk)."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(dist.path))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RepackError(
            f"{dist.path}: the zipped egg cannot be read ({reason}); reinstall it"
        ) from exc
    out: list[tuple[str, Member | None]] = []
    for info in infos:
        rel = posixpath.normpath(info.filename)
        if info.is_dir() or rel.startswith(("/", "../")) or rel == "..":
            continue
        mode = member_mode(info.external_attr >> 16)

        def opener(info: zipfile.ZipInfo = info) -> BinaryIO:
            return archive.open(info)  # type: ignore[return-value]

        out.append((rel, Member(rel, mode, f"{dist.path}!{rel}", opener=opener)))
    return out


def _without_egg_stubs(files: list[Member], native_libs: Iterable[str]) -> list[Member]:
    """bdist_egg's ``foo.py`` loader stub beside ``foo.so`` unpacks it via pkg_resources: drop."""
    stubs = {
        posixpath.join(posixpath.dirname(lib), posixpath.basename(lib).split(".", 1)[0] + ".py")
        for lib in native_libs
    }
    out = []
    for member in files:
        if member.name in stubs and b"__bootstrap__" in member.read():
            continue
        out.append(member)
    return out

"""Files a distribution installed beside the lib dir (scripts, headers, data), relocated into
the wheel.
"""

from __future__ import annotations

import configparser
import os
import posixpath
import re
from collections.abc import Iterable
from pathlib import Path

from migrate.build.repack.members import Member, Names, file_member
from migrate.inventory.metadata import decode_text
from migrate.inventory.model import Distribution


def lib_files(
    dist: Distribution, listed: Iterable[str], names: Names, console: frozenset[str]
) -> tuple[Member, ...]:
    """Lib-dir-relative paths (RECORD, installed-files.txt) as members; outside ones mapped.

    Paths that leave the lib dir are the install's scripts, headers and data: they go to
    the wheel's ``.data`` dir when they exist (console-script wrappers are left out: pip
    writes them again from entry_points.txt for the new interpreter).
    """
    out: list[Member] = []
    base = os.path.join(dist.lib_dir, "")  # with its separator: thousands of plain joins
    for raw in listed:
        rel = posixpath.normpath(raw.replace("\\", "/"))
        if rel.startswith("/") or rel in (".", ""):
            continue
        if not rel.startswith("../"):
            member = file_member(rel, base + rel)
        else:
            member = _outside_member(dist, rel, names, console)
        if member is not None:
            out.append(member)
    return tuple(out)


_PLATLIB = re.compile(r"^lib(?:64)?/python\d\.\d+/(?:site-packages/)?(?P<rest>[^/].*)$")
_HEADERS = re.compile(r"^include/(?:site/)?python[^/]+/[^/]+/(?P<rest>.+)$")


def _outside_member(
    dist: Distribution, rel: str, names: Names, console: frozenset[str]
) -> Member | None:
    parts = rel.split("/")
    ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
    remainder = "/".join(parts[ups:])
    if not remainder or ups > _prefix_depth(dist.lib_dir):
        return None
    candidates = [dist.lib_dir / remainder] if ups == 2 else []  # pip --target moved it here
    candidates.append(Path(os.path.normpath(dist.lib_dir / rel)))
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return None
    first, _, rest = remainder.partition("/")
    if first in ("bin", "Scripts") and rest:
        if rest in console or rest.removesuffix(".exe") in console:
            return None
        member = file_member(names.data("scripts", rest), path)
        if member is None:
            return None
        return Member(member.name, 0o755, member.origin, data=relocatable_script(member.read()))
    if first == "include" and rest:
        match = _HEADERS.match(remainder)
        return file_member(names.data("headers", match["rest"] if match else rest), path)
    match = _PLATLIB.match(remainder)
    if match:
        return file_member(match["rest"], path)
    return file_member(names.data("data", remainder), path)


def _prefix_depth(lib_dir: Path) -> int:
    """How far below its install prefix a lib dir is: RECORD paths never climb higher.

    ``PREFIX/lib/pythonX.Y/site-packages`` is 3; ``~/lib/pythonX.Y`` (and what pip
    ``--target`` records, relative to its temporary ``lib/python``) is 2.
    """
    return 3 if lib_dir.name in ("site-packages", "dist-packages") else 2


def relocatable_script(data: bytes) -> bytes:
    """``#!python``: pip rewrites that first line to the venv's interpreter on install.

    Scripts are packed executable whatever their mode here: pip (23) only sets the bit
    from the archive, and a ``pip --target`` install leaves them 0644.
    """
    if not data.startswith(b"#!"):
        return data
    first, newline, rest = data.partition(b"\n")
    if b"python" not in first.lower():
        return data
    return b"#!python" + (b"\r" if first.endswith(b"\r") else b"") + newline + rest


def script_names(entry_points: bytes | None) -> frozenset[str]:
    if not entry_points:
        return frozenset()
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(decode_text(entry_points)[0])
    except configparser.Error:
        return frozenset()
    return frozenset(
        name.strip()
        for section in ("console_scripts", "gui_scripts")
        if parser.has_section(section)
        for name in parser.options(section)
    )

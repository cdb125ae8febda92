"""Contents of a ``.dist-info`` install (pip, uv, installer): its RECORD lists the files."""

from __future__ import annotations

from migrate.build.repack.egginfo import top_level_files
from migrate.build.repack.libfiles import lib_files, script_names
from migrate.build.repack.members import (
    Contents,
    Member,
    Names,
    file_member,
    read_small,
    walk_files,
)
from migrate.build.repack.metadata import synthesized_metadata, with_identity
from migrate.inventory.metadata import decode_text, header_fields
from migrate.inventory.model import Distribution

_NOT_CARRIED = frozenset(
    {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"}
)
"""dist-info files that describe one install (or are rewritten), not the distribution."""


def from_dist_info(dist: Distribution, names: Names) -> Contents:
    meta_files, metadata, wheel, entry_points = dist_info_dir(dist, names)
    wheel_fields = header_fields(decode_text(wheel)[0]) if wheel else {}
    tags = tuple(wheel_fields.get("tag", []))
    purelib = wheel_fields.get("root-is-purelib", ["true"])[0].lower() != "false"
    own = dist.path.name + "/"
    if dist.files is not None:
        listed = [rel for rel in dist.files if not rel.startswith(own)]
        files = lib_files(dist, listed, names, script_names(entry_points))
        required = bool(listed)
    else:
        files = top_level_files(dist, dist.lib_dir, dist.top_level, "no RECORD")
        required = True
    return Contents(files, metadata, meta_files, tags, purelib, required)


def dist_info_dir(
    dist: Distribution, names: Names
) -> tuple[tuple[Member, ...], bytes, bytes | None, bytes | None]:
    """(carried files, METADATA, original WHEEL, entry_points.txt) of a ``.dist-info`` dir."""
    carried: list[Member] = []
    metadata = wheel = entry_points = None
    for rel, path, st in walk_files(dist.path):
        if rel == "METADATA":
            metadata = read_small(path)
        elif rel == "WHEEL":
            wheel = read_small(path)
        elif rel in _NOT_CARRIED or rel.endswith((".pyc", ".pyo")):
            continue
        else:
            if rel == "entry_points.txt":
                entry_points = read_small(path)
            member = file_member(rel, path, st)
            if member is not None:
                carried.append(member)
    if metadata is None:
        text = synthesized_metadata(dist, names)
    else:
        text = with_identity(metadata, dist, names)
    return tuple(carried), text, wheel, entry_points

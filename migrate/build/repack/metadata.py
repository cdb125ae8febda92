"""The wheel's ``.dist-info``: metadata converted from what the install left, with the identity
the lock pins.

PKG-INFO headers are read by a small reader that keeps their order and their continuation
lines, not ``packaging.metadata.parse_email``: that one returns a dict (order lost) and
sets aside what it does not validate, while a repacked wheel must carry the same fields in
the same order every time (its sha256 is how an unchanged distribution is found again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from migrate.build.repack.members import Contents, Member, Names
from migrate.build.wheelfile import expand_tags
from migrate.inventory._files import top_level_from_files
from migrate.inventory.metadata import canonical, decode_text, header_fields
from migrate.inventory.model import Distribution

GENERATOR = "concentric-migrate (repacked from installed files)"


_KEPT_FIELDS = {
    name.lower(): name
    for name in (
        "Summary", "Home-page", "Download-URL", "Author", "Author-email", "Maintainer",
        "Maintainer-email", "License", "Keywords", "Platform", "Supported-Platform",
        "Classifier", "Project-URL", "Requires-Python", "Requires-External",
        "Description-Content-Type",
    )
}  # fmt: skip
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _identity_name(dist: Distribution) -> str:
    return dist.display_name if canonical(dist.display_name) == dist.name else dist.name


def synthesized_metadata(dist: Distribution, names: Names) -> bytes:
    """For a copy with no metadata at all: who it is, and that it is a local copy."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {_identity_name(dist)}",
        f"Version: {names.version}",
        "Summary: Local copy with no metadata, repacked by concentric-migrate",
        *_requirement_lines(dist.requires),
    ]
    return ("\n".join(lines) + "\n").encode()


def converted_metadata(pkg_info: bytes | None, dist: Distribution, names: Names) -> bytes:
    """PKG-INFO (metadata 1.x, maybe Latin-1) -> METADATA 2.1 with the record's requirements.

    Name and Version are the record's (so egg names ``wheel convert`` rejects still work);
    Requires-Dist comes from requires.txt as the inventory read it.
    """
    fields: list[tuple[str, str]] = []
    description = ""
    if pkg_info:
        headers, body = _header_block(decode_text(pkg_info)[0])
        for key, lines in headers:
            lower = key.lower()
            if lower == "description":
                description = _unindent_description(lines)
                continue
            if lower not in _KEPT_FIELDS:
                continue
            value = " ".join(" ".join(line.split()) for line in lines).strip()
            if not value or value == "UNKNOWN":
                continue
            if lower == "requires-python" and not _valid_specifier(value):
                continue
            fields.append((_KEPT_FIELDS[lower], value))
        description = body.strip("\n") or description
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {_identity_name(dist)}",
        f"Version: {names.version}",
        *(f"{key}: {value}" for key, value in fields),
        *_requirement_lines(dist.requires),
    ]
    text = "\n".join(lines) + "\n"
    if description.strip() and description.strip() != "UNKNOWN":
        text += "\n" + description.rstrip() + "\n"
    return text.encode("utf-8", "surrogateescape")


def _requirement_lines(requires: Iterable[str]) -> list[str]:
    requires = list(requires)
    extras = sorted({extra for r in requires for extra in _EXTRA.findall(r)})
    return [*(f"Provides-Extra: {e}" for e in extras), *(f"Requires-Dist: {r}" for r in requires)]


def _valid_specifier(value: str) -> bool:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return False
    return True


def _header_block(text: str) -> tuple[list[tuple[str, list[str]]], str]:
    """RFC 822 headers in order (continuation lines kept apart) and the body after them."""
    headers: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.strip():
            return headers, "\n".join(lines[index + 1 :])
        if line[0] in " \t" and headers:
            headers[-1][1].append(line)
            continue
        key, sep, value = line.partition(":")
        if sep:
            headers.append((key.strip(), [value.strip()]))
    return headers, ""


def _unindent_description(lines: list[str]) -> str:
    """setuptools wrote continuation lines as ``8 spaces|``, distutils as 8 spaces."""
    out = [lines[0]]
    for line in lines[1:]:
        if line.startswith("       |"):
            out.append(line[8:])
        else:
            out.append(line[8:] if line.startswith(" " * 8) else line.lstrip())
    return "\n".join(out)


def with_identity(metadata: bytes, dist: Distribution, names: Names) -> bytes:
    """A dist-info's METADATA kept byte for byte, unless Name/Version differ from the wheel's."""
    fields = header_fields(decode_text(metadata)[0])
    name = (fields.get("name") or [""])[0]
    version = (fields.get("version") or [""])[0]
    try:
        version_ok = str(Version(version)) == names.version
    except InvalidVersion:
        version_ok = False
    if canonical(name) == dist.name and version_ok:
        return metadata
    text, _ = decode_text(metadata)
    head, sep, body = text.partition("\n\n")
    kept = []
    for line in head.splitlines():
        key = line.partition(":")[0].strip().lower()
        if key == "name":
            line = f"Name: {_identity_name(dist)}"
        elif key == "version":
            line = f"Version: {names.version}"
        kept.append(line)
    if not name:
        kept.append(f"Name: {_identity_name(dist)}")
    if not version:
        kept.append(f"Version: {names.version}")
    return ("\n".join(kept) + "\n" + (sep[1:] + body if sep else "")).encode(
        "utf-8", "surrogateescape"
    )


def dist_info_members(
    names: Names,
    contents: Contents,
    payload: tuple[Member, ...],
    tag: str,
    purelib: bool,
    dist: Distribution,
) -> tuple[Member, ...]:
    prefix = names.dist_info + "/"
    wheel = [
        "Wheel-Version: 1.0",
        f"Generator: {GENERATOR}",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
        *(f"Tag: {t}" for t in expand_tags(tag)),
    ]
    members = {
        m.name: Member(prefix + m.name, m.mode, m.origin, m.path, m.data, m.opener, m.identity)
        for m in contents.meta_files
    }
    members["METADATA"] = Member(prefix + "METADATA", 0o644, "METADATA", data=contents.metadata)
    members["WHEEL"] = Member(
        prefix + "WHEEL", 0o644, "WHEEL", data=("\n".join(wheel) + "\n").encode()
    )
    if "top_level.txt" not in members:
        top = dist.top_level or top_level_from_files([m.name for m in payload])
        if top:
            data = ("\n".join(top) + "\n").encode()
            members["top_level.txt"] = Member(prefix + "top_level.txt", 0o644, "top", data=data)
    return tuple(members[key] for key in sorted(members))

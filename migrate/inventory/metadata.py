"""Parsing shared by the readers: core metadata, requires.txt, file names, text files.

Every function here is pure over bytes/str and reports problems as messages rather
than raising, because one broken file must never stop an inventory.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class CoreMetadata:
    name: str | None
    version: str | None
    requires: tuple[str, ...]
    problems: tuple[str, ...]


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Decode metadata bytes as UTF-8, falling back to Latin-1 (old distutils wrote it)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode(
            "latin-1"
        ), f"not UTF-8 ({exc.reason} at byte {exc.start}); read as Latin-1"


def parse_core_metadata(data: bytes) -> CoreMetadata:
    """Read Name, Version and Requires-Dist from METADATA / PKG-INFO bytes."""
    problems: list[str] = []
    if not data.strip():
        return CoreMetadata(None, None, (), ("metadata file is empty",))
    if b"\x00" in data:
        return CoreMetadata(None, None, (), ("metadata file is binary (contains NUL bytes)",))
    text, note = decode_text(data)
    if note:
        problems.append(note)
    fields = header_fields(text)
    name = _first(fields.get("name"))
    version = _first(fields.get("version"))
    if not name:
        problems.append("metadata has no Name field")
    if not version:
        problems.append("metadata has no Version field")
    requires, bad = valid_requirements(fields.get("requires-dist", []))
    problems.extend(f"invalid Requires-Dist {line!r}" for line in bad)
    return CoreMetadata(name, version, requires, tuple(problems))


def header_fields(text: str) -> dict[str, list[str]]:
    """The RFC 822 header block of core metadata, keys lower-cased, values in order.

    Hand-written on purpose: the inventory needs three fields from thousands of files, and
    ``packaging.metadata.parse_email`` (the email package's feed parser) costs about ten
    times as much per file. The header block ends at the first empty line; the body (a
    long description) is never looked at.
    """
    fields: dict[str, list[str]] = {}
    values: list[str] | None = None
    # The first blank line ends the header at or before the first "\n\n": split only up to
    # there, not the long description after it.
    end = text.find("\n\n")
    for line in (text if end < 0 else text[: end + 1]).splitlines():
        if not line:
            break
        if line[0] in " \t":
            if values:
                values[-1] = f"{values[-1]} {line.strip()}".strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            values = None
            continue
        values = fields.setdefault(key.strip().lower(), [])
        values.append(value.strip())
    return fields


def _first(values: list[str] | None) -> str | None:
    return values[0] if values and values[0] else None


def valid_requirements(lines: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split requirement strings into (valid, invalid), keeping extras and markers verbatim."""
    good: list[str] = []
    bad: list[str] = []
    for line in lines:
        normal = _normal_requirement(line)
        if normal is None:
            bad.append(line)
        else:
            good.append(normal)
    return tuple(good), tuple(bad)


@functools.lru_cache(maxsize=8192)
def _normal_requirement(line: str) -> str | None:
    """Pure and repeated across an account (``six>=1.9`` everywhere): cached."""
    try:
        return str(Requirement(line))
    except InvalidRequirement:
        return None


_SECTION = re.compile(r"^\[(?P<extra>[^:\]]*)(?::(?P<marker>.*))?\]$")


def requires_txt_to_pep508(text: str) -> list[str]:
    """setuptools' requires.txt (``[extra]``, ``[:marker]``, ``[extra:marker]``) as PEP 508."""
    out: list[str] = []
    extra = marker = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        section = _SECTION.match(line)
        if section:
            extra = (section.group("extra") or "").strip()
            marker = (section.group("marker") or "").strip()
            continue
        conditions = []
        if marker:
            conditions.append(f"({marker})" if extra else marker)
        if extra:
            conditions.append(f'extra == "{extra}"')
        out.append(f"{line}; {' and '.join(conditions)}" if conditions else line)
    return out


def text_lines(data: bytes) -> tuple[str, ...]:
    """Non-empty, stripped lines of a small text file such as top_level.txt."""
    text, _ = decode_text(data)
    return tuple(line.strip() for line in text.splitlines() if line.strip())


_DIST_INFO_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.(?:dist-info|egg-info)$")
_EGG_NAME = re.compile(
    r"^(?P<name>[^-]+)(?:-(?P<version>[^-]+)(?:-py(?P<python>[^-]+)(?:-(?P<plat>.+))?)?)?"
    r"\.(?:egg|egg-info)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NameFromFile:
    name: str
    version: str | None
    python: str | None = None


@functools.lru_cache(maxsize=8192)
def name_from_filename(filename: str) -> NameFromFile | None:
    """Name, version and Python tag encoded in a ``.dist-info``/``.egg-info``/``.egg`` name.

    Pure and repeated across an account (the same distribution in many apps): cached."""
    if filename.endswith(".dist-info"):
        match = _DIST_INFO_NAME.match(filename)
        if not match:
            return None
        return NameFromFile(match["name"], match["version"])
    match = _EGG_NAME.match(filename)
    if not match:
        return None
    # setuptools escapes '-' in versions as '_' in egg names.
    version = match["version"].replace("_", "-") if match["version"] else None
    return NameFromFile(match["name"].replace("_", "-"), version, match["python"])


@functools.lru_cache(maxsize=8192)
def canonical(name: str) -> str:
    """The PEP 503 name (cached, as :func:`name_from_filename`)."""
    return str(canonicalize_name(name))

"""Parsing shared by the readers: core metadata, requires.txt, file names, text files.

Every function here is pure over bytes/str and reports problems as messages rather
than raising, because one broken file must never stop an inventory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.metadata import parse_email
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
    # Only the header block matters here; bodies (long descriptions) are skipped unparsed.
    ends = [i for i in (data.find(b"\n\n"), data.find(b"\r\n\r\n")) if i >= 0]
    text, note = decode_text(data[: min(ends) + 1] if ends else data)
    if note:
        problems.append(note)
    raw, unparsed = parse_email(text)
    name = raw.get("name") or _first(unparsed.get("name"))
    version = raw.get("version") or _first(unparsed.get("version"))
    if not name:
        problems.append("metadata has no Name field")
    if not version:
        problems.append("metadata has no Version field")
    requires, bad = valid_requirements(raw.get("requires_dist", []))
    problems.extend(f"invalid Requires-Dist {line!r}" for line in bad)
    return CoreMetadata(name, version, requires, tuple(problems))


def _first(values: object) -> str | None:
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def valid_requirements(lines: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split requirement strings into (valid, invalid), keeping extras and markers verbatim."""
    good: list[str] = []
    bad: list[str] = []
    for line in lines:
        try:
            good.append(str(Requirement(line)))
        except InvalidRequirement:
            bad.append(line)
    return tuple(good), tuple(bad)


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


def name_from_filename(filename: str) -> NameFromFile | None:
    """Name, version and Python tag encoded in a ``.dist-info``/``.egg-info``/``.egg`` name."""
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


def canonical(name: str) -> str:
    return str(canonicalize_name(name))

"""Write valid wheel archives (PEP 427) from in-memory members, reproducibly.

Used to synthesize the demo's distributions offline and, later, to repack installed
distributions; RECORD is always computed from the bytes actually written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import stat
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

_EPOCH = (1980, 1, 1, 0, 0, 0)
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
GENERATOR = "concentric-migrate"


def record_form(digest: bytes, algorithm: str = "sha256") -> str:
    """A hash as RECORD writes it: ``<algorithm>=<urlsafe base64, no padding>``."""
    return f"{algorithm}=" + urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def record_digest(data: bytes) -> str:
    return record_form(hashlib.sha256(data).digest())


def write_wheel(path: Path, dist_info: str, members: Mapping[str, bytes]) -> Path:
    """Zip ``members`` into ``path`` and append ``<dist_info>/RECORD`` listing them all."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    record_name = f"{dist_info}/RECORD"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            data = members[name]
            _write_member(archive, name, data)
            writer.writerow([name, record_digest(data), str(len(data))])
        writer.writerow([record_name, "", ""])
        _write_member(archive, record_name, rows.getvalue().encode())
    return path


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = (stat.S_IFREG | (0o755 if name.endswith(".sh") else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


@dataclass(frozen=True)
class WheelSpec:
    """A small pure-Python distribution described as data."""

    name: str
    version: str
    files: Mapping[str, bytes]
    requires: tuple[str, ...] = ()
    summary: str = ""
    tag: str = "py3-none-any"
    extra_metadata: tuple[tuple[str, str], ...] = field(default=())
    entry_points: str = ""
    """The text of its ``entry_points.txt`` (none when empty)."""

    @property
    def filename(self) -> str:
        return f"{_escaped(self.name)}-{Version(self.version)}-{self.tag}.whl"

    @property
    def dist_info(self) -> str:
        return f"{_escaped(self.name)}-{Version(self.version)}.dist-info"


def build_wheel(spec: WheelSpec, out_dir: Path) -> Path:
    """Write ``spec`` as a wheel into ``out_dir`` and return its path."""
    for requirement in spec.requires:
        Requirement(requirement)
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {spec.name}",
        f"Version: {spec.version}",
    ]
    if spec.summary:
        metadata.append(f"Summary: {spec.summary}")
    metadata.extend(f"{key}: {value}" for key, value in spec.extra_metadata)
    extras = sorted({m for r in spec.requires for m in _EXTRA.findall(r)})
    metadata.extend(f"Provides-Extra: {extra}" for extra in extras)
    metadata.extend(f"Requires-Dist: {r}" for r in spec.requires)
    wheel = [
        "Wheel-Version: 1.0",
        f"Generator: {GENERATOR}",
        "Root-Is-Purelib: true",
        *(f"Tag: {tag}" for tag in expand_tags(spec.tag)),
    ]
    members = dict(spec.files)
    members[f"{spec.dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    members[f"{spec.dist_info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    top = sorted({name.split("/", 1)[0].split(".", 1)[0] for name in spec.files})
    members[f"{spec.dist_info}/top_level.txt"] = ("\n".join(top) + "\n").encode()
    if spec.entry_points:
        members[f"{spec.dist_info}/entry_points.txt"] = spec.entry_points.encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_wheel(out_dir / spec.filename, spec.dist_info, members)


def _escaped(name: str) -> str:
    return str(canonicalize_name(name)).replace("-", "_")


def expand_tags(tag: str) -> Iterator[str]:
    """Each tag a compressed one stands for (``py2.py3-none-any``), in the order written."""
    interpreters, abis, platforms = tag.split("-")
    for interpreter in interpreters.split("."):
        for abi in abis.split("."):
            for platform in platforms.split("."):
                yield f"{interpreter}-{abi}-{platform}"

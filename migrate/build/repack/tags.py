"""The wheel tag: ``pyN`` for pure code, the target CPython's for extensions (ABI and platform
read from the files).
"""

from __future__ import annotations

import re
import sysconfig
from collections.abc import Iterable

from packaging.tags import Tag, parse_tag

from migrate.build.repack.members import Contents, Member, RepackError
from migrate.inventory.metadata import decode_text, header_fields
from migrate.inventory.model import Distribution

_SOABI = re.compile(r"\.cpython-(?P<ver>\d)(?P<minor>\d+)(?P<flags>[dmu]*t?)-(?P<plat>[^./]+)\.so$")
_PYTHON_CLASSIFIER = re.compile(r"Programming Language :: Python :: ([23])(?:\.\d+)?(?: ::|$)")
_ELF_ARCH = {3: "i686", 62: "x86_64", 183: "aarch64", 40: "armv7l", 22: "s390x"}
_TRIPLET_ARCH = {"i386": "i686", "i486": "i686", "i586": "i686", "arm": "armv7l"}


def wheel_tag(
    payload: Iterable[Member], contents: Contents, target: tuple[int, int], dist: Distribution
) -> tuple[str, bool]:
    """(wheel tag, Root-Is-Purelib). Pure code: ``pyN``; extensions: the target's CPython."""
    extensions = [m for m in payload if m.name.endswith((".so", ".pyd")) and ".data/" not in m.name]
    if extensions:
        return _extension_tag(extensions, target, dist), False
    flat = [tag for text in contents.wheel_tags if text.count("-") == 2 for tag in parse_tag(text)]
    if flat and (not contents.purelib or any(t.platform != "any" for t in flat)):
        return _compressed(flat), False  # binary payload that is no extension module: as pip chose
    majors = {str(target[0])}
    majors.update(m[1] for t in flat if (m := re.match(r"(?:py|cp)([23])", t.interpreter)))
    classifiers = header_fields(decode_text(contents.metadata)[0]).get("classifier", [])
    majors.update(m[1] for c in classifiers if (m := _PYTHON_CLASSIFIER.match(c)))
    return f"{'.'.join(f'py{major}' for major in sorted(majors))}-none-any", True


def _compressed(tags: list[Tag]) -> str:
    parts = (sorted({getattr(t, key) for t in tags}) for key in ("interpreter", "abi", "platform"))
    return "-".join(".".join(part) for part in parts)


def _extension_tag(extensions: list[Member], target: tuple[int, int], dist: Distribution) -> str:
    specific: set[tuple[str, str]] = set()
    platforms: set[str] = set()
    abi3 = plain = False
    for member in extensions:
        match = _SOABI.search(member.name)
        if match:
            version = (int(match["ver"]), int(match["minor"]))
            if version != target:
                raise RepackError(
                    f"{dist.display_name} ({dist.path}): {member.name} is built for CPython "
                    f"{version[0]}.{version[1]}, but the target is Python {target[0]}."
                    f"{target[1]}; install a build for {target[0]}.{target[1]} from an index"
                )
            specific.add((f"{match['ver']}{match['minor']}", match["flags"]))
            platforms.add(_triplet_platform(match["plat"]))
        elif member.name.endswith(".abi3.so"):
            abi3 = True
            platforms.add(_elf_platform(member))
        elif re.search(r"\.(pypy|pp)[^/]*\.so$", member.name):
            raise RepackError(
                f"{dist.display_name} ({dist.path}): {member.name} is built for PyPy; "
                "only CPython extension modules can be repacked"
            )
        else:
            plain = True
            platforms.add(_elf_platform(member))
    if len(platforms) > 1:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): extension modules for several platforms "
            f"({', '.join(sorted(platforms))}); it cannot have worked here as installed"
        )
    platform = platforms.pop()
    python = f"cp{target[0]}{target[1]}"
    if specific:
        version, flags = sorted(specific)[0]
        return f"cp{version}-cp{version}{flags}-{platform}"
    if abi3 and not plain:
        return f"{python}-abi3-{platform}"
    if target[0] == 2:
        return f"{python}-{_py2_abi(extensions)}-{platform}"
    flags = "m" if (3, 3) <= target <= (3, 7) else ""
    return f"{python}-{python}{flags}-{platform}"


def _py2_abi(extensions: list[Member]) -> str:
    """A Python 2 ``.so`` names the unicode width it was built for in its symbols."""
    ucs4 = ucs2 = False
    for member in extensions:
        data = member.read()
        ucs4 = ucs4 or b"PyUnicodeUCS4_" in data
        ucs2 = ucs2 or b"PyUnicodeUCS2_" in data
    if ucs4 and not ucs2:
        return "cp27mu"
    if ucs2 and not ucs4:
        return "cp27m"
    return "none"


def _triplet_platform(triplet: str) -> str:
    """``x86_64-linux-gnu`` (from the SOABI suffix) -> ``linux_x86_64``."""
    arch, _, system = triplet.partition("-")
    if system.startswith("linux"):
        return f"linux_{_TRIPLET_ARCH.get(arch, arch)}"
    return _running_platform()


def _elf_platform(member: Member) -> str:
    header = member.head(20)
    if header[:4] == b"\x7fELF" and len(header) >= 20:
        order = "little" if header[5] == 1 else "big"
        machine = int.from_bytes(header[18:20], order)
        if machine == 21:
            return "linux_ppc64le" if order == "little" else "linux_ppc64"
        if machine in _ELF_ARCH:
            return f"linux_{_ELF_ARCH[machine]}"
    return _running_platform()


def _running_platform() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")

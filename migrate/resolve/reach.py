"""What an installed distribution's own code can import, and the plugin groups it loads.

``Requires-Dist`` says what a package needs, not what it uses: Trac imports Babel and
pytz inside ``try:`` blocks and loads Pygments support through entry points, none of them
required. A conservative used set (the default of ``plan``) adds, for every distribution an
app uses, what its code imports — at any depth, inside functions or ``try:``, Python 2
files included — and the installed plugins of the entry-point groups it loads.

The reader is a line scanner, not a parser: a distribution's files are only read for the
names they import (``import x``, ``from x import``, ``import_module("x")``, ``__import__``)
and the entry-point groups they name. It is ~50 times faster than :mod:`ast` (Django's
900 files in tens of milliseconds), reads any Python version, and errs on the side of
keeping: a name in a docstring line that starts with ``import`` counts. Results are kept
per distribution for the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from migrate.inventory.model import Distribution
from migrate.paths import read_regular

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 20_000

_IMPORT = re.compile(
    rb"^[ \t]*(?:import[ \t]+(?P<names>[^\n#;\\]+)"
    rb"|from[ \t]+(?P<module>[A-Za-z_][\w.]*)[ \t]+import\b)",
    re.M,
)
_DYNAMIC = re.compile(rb"""(?:import_module|__import__)\(\s*['"](?P<module>[A-Za-z_][\w.]*)['"]""")
_GROUP = re.compile(
    rb"""(?:iter_entry_points|entry_points|select|get_group_all)\(\s*(?:group\s*=\s*)?"""
    rb"""['"](?P<group>[A-Za-z_][\w.\-]*)['"]"""
)
_GROUP_WORDS = (b"entry_points", b"select", b"get_group_all")
"""What every match of ``_GROUP`` contains (``iter_entry_points`` too)."""
_TEST_DIRS = frozenset({"tests", "test", "testing", "_tests", "_testing", "__pycache__"})
"""Folders of a package's own tests: what they import is not what the package uses."""
INFRASTRUCTURE = frozenset({"setuptools", "pip", "wheel", "distribute"})
"""Installers: an app may import ``pkg_resources``, but what setuptools' commands import
and the build plugins it loads are not the app's."""
BUILD_GROUPS = frozenset(
    {
        "console_scripts",
        "gui_scripts",
        "distutils.commands",
        "distutils.setup_keywords",
        "egg_info.writers",
        "setuptools.file_finders",
        "setuptools.finalize_distribution_options",
        "setuptools.installation",
    }
)
"""Entry-point groups of launchers and build steps: no running app loads them."""
_SECTION = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]", re.M)
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Reach:
    imports: Mapping[str, tuple[Path, int]]
    """Top-level name -> the first file and line of the distribution that imports it."""
    groups: frozenset[str]
    """Entry-point groups its code names (``iter_entry_points("trac.plugins")``)."""


_CACHE: dict[tuple[str, int], Reach] = {}


def reach_of(dist: Distribution) -> Reach:
    """What ``dist``'s installed code (its tests aside) imports and which plugin groups it
    loads; nothing for an installer (:data:`INFRASTRUCTURE`)."""
    if dist.name in INFRASTRUCTURE:
        return Reach({}, frozenset())
    try:
        stamp = os.stat(dist.path).st_mtime_ns
    except OSError:
        stamp = 0
    key = (str(dist.path), stamp)
    if key not in _CACHE:
        _CACHE[key] = _read(dist)
    return _CACHE[key]


_GROUPS: dict[str, frozenset[str]] = {}


def declared_groups(dist: Distribution) -> frozenset[str]:
    """The entry-point groups ``dist`` declares plugins in (its ``entry_points.txt``)."""
    key = str(dist.path)
    if key not in _GROUPS:
        _GROUPS[key] = _declared(dist)
    return _GROUPS[key]


def _declared(dist: Distribution) -> frozenset[str]:
    base = str(dist.path)  # asked of every distribution an app sees: plain strings
    for candidate in (
        os.path.join(base, "entry_points.txt"),
        os.path.join(base, "EGG-INFO", "entry_points.txt"),
    ):
        try:
            text = read_regular(candidate, 1024 * 1024).decode("utf-8", "replace")
        except OSError:
            continue
        return frozenset(_SECTION.findall(text))
    return frozenset()


def loads_group(dist: Distribution, reach: Reach, group: str) -> bool:
    """``dist`` loads plugins of ``group``: its code names it, or the group is named after
    one of its packages (``trac.plugins``, ``pygments.lexers``); never a launcher or build
    group."""
    if group in BUILD_GROUPS:
        return False
    return group in reach.groups or group.split(".", 1)[0] in dist.top_level


def _read(dist: Distribution) -> Reach:
    imports: dict[str, tuple[Path, int]] = {}
    groups: set[str] = set()
    seen: set[bytes] = set()  # names as written: most files import what others did
    for path in _code_files(dist):
        try:
            data = read_regular(path, MAX_FILE_BYTES)
        except OSError:
            continue
        for match in _IMPORT.finditer(data):
            module = match["module"]
            if module is not None:
                names = [module]
            else:
                names = [part.strip().split(b" ", 1)[0] for part in match["names"].split(b",")]
            for name in names:
                if name not in seen:
                    seen.add(name)
                    _note(imports, name, path, data, match.start())
        if b"import_module" in data or b"__import__" in data:  # few files: no scan for the rest
            for match in _DYNAMIC.finditer(data):
                _note(imports, match["module"], path, data, match.start())
        if any(map(data.__contains__, _GROUP_WORDS)):
            groups.update(m["group"].decode("ascii", "replace") for m in _GROUP.finditer(data))
    return Reach(imports, frozenset(groups))


def _note(
    imports: dict[str, tuple[Path, int]], name: bytes, path: str, data: bytes, at: int
) -> None:
    top = name.split(b".", 1)[0].strip(b"() \t").decode("ascii", "replace")
    if _IDENTIFIER.match(top) and top not in imports:
        imports[top] = (Path(path), data.count(b"\n", 0, at) + 1)


def _code_files(dist: Distribution) -> Iterator[str]:
    """Its ``.py`` files: from its file list where it keeps one, else its top-level
    packages and modules beside its metadata (eggs: inside the egg). Zipped eggs are not
    read. Plain strings: thousands of files, each read once."""
    if dist.zipped:
        return
    base = str(dist.path if dist.kind == "egg" else dist.lib_dir)
    if dist.kind == "egg-link" and dist.target is not None:
        base = str(dist.target)
    count = 0
    if dist.files is not None and dist.kind != "egg-link":
        for name in dist.files:
            if name.endswith(".py") and count < MAX_FILES and not _is_test(name):
                count += 1
                yield os.path.join(base, name)
        return
    for top in dist.top_level:
        module = os.path.join(base, f"{top}.py")
        if Path(module).is_file():
            yield module
            continue
        for root, dirs, names in os.walk(os.path.join(base, top)):
            dirs[:] = [d for d in dirs if d not in _TEST_DIRS]
            for name in names:
                if name.endswith(".py") and count < MAX_FILES and not _is_test(name):
                    count += 1
                    yield os.path.join(root, name)


def _is_test(name: str) -> bool:
    """A test module or a file in a package's test folder (``pkg/tests/x.py``)."""
    parts = name.replace(os.sep, "/").split("/")
    base = parts[-1]
    return (
        any(part in _TEST_DIRS for part in parts[:-1])
        or base.startswith("test_")
        or base.endswith("_test.py")
        or base == "conftest.py"
    )

"""Immutable records the inventory produces; every later stage reads only these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from migrate.discover.account import App, Scope
from migrate.findings import Finding

Kind = Literal["dist-info", "egg-info", "egg", "egg-link", "bare"]
PthRole = Literal["easy-install", "nspkg", "plain"]
PthLineKind = Literal["path", "import", "comment", "blank"]


@dataclass(frozen=True)
class Distribution:
    """One installed distribution, whatever installed it.

    ``files`` are paths relative to ``lib_dir`` (or, for eggs, to the egg) and
    ``None`` when the install kind keeps no list. ``modified`` and ``missing``
    come from the RECORD integrity check and are empty where no RECORD exists.
    """

    name: str
    display_name: str
    version: str | None
    kind: Kind
    path: Path
    lib_dir: Path
    top_level: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    installer: str | None = None
    files: tuple[str, ...] | None = None
    modified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    python: str | None = None
    """Python X.Y an egg was built for (from its file name)."""
    zipped: bool = False
    target: Path | None = None
    """Where an egg-link points, or a direct_url.json file:// URL."""
    target_exists: bool | None = None
    editable: bool = False
    version_guessed: bool = False
    """True when the version was read from source (``__version__``) rather than metadata."""


@dataclass(frozen=True)
class PthLine:
    lineno: int
    text: str
    kind: PthLineKind
    path: Path | None = None
    """The absolute directory a path line names (``os.path.join(sitedir, line)``)."""
    exists: bool | None = None


@dataclass(frozen=True)
class PthFile:
    """A ``.pth`` file, read but never executed."""

    path: Path
    role: PthRole
    lines: tuple[PthLine, ...]
    plen_wrapper: bool = False
    """easy-install.pth's ``sys.__plen`` / ``__egginsert`` lines: its paths go to the front."""

    @property
    def path_entries(self) -> tuple[PthLine, ...]:
        return tuple(line for line in self.lines if line.kind == "path")

    @property
    def import_lines(self) -> tuple[PthLine, ...]:
        return tuple(line for line in self.lines if line.kind == "import")


@dataclass(frozen=True)
class LibDirInventory:
    """Everything installed in one lib dir."""

    path: Path
    python: str
    scope: Scope
    app: str | None
    distributions: tuple[Distribution, ...] = ()
    pth: tuple[PthFile, ...] = ()
    setuptools_site_py: Path | None = None
    """The ``site.py`` starting ``def __boot():`` that old easy_install left behind."""
    findings: tuple[Finding, ...] = field(default=())


@dataclass(frozen=True)
class Inventory:
    home: Path
    lib_dirs: tuple[LibDirInventory, ...]
    apps: tuple[App, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def all_findings(self) -> tuple[Finding, ...]:
        return self.findings + tuple(f for lib in self.lib_dirs for f in lib.findings)

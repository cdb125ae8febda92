"""Which inventory record lies behind a ``sys.path`` entry.

A path model names files; the plan needs distributions. An entry is a lib dir (its
distributions), an egg or a develop checkout (the one distribution that made it), or the
interpreter's own site-packages, read on demand for names and versions and never verified.
"""

from __future__ import annotations

import os
from pathlib import Path

from migrate.discover.account import LibDir
from migrate.inventory import inventory_lib_dir
from migrate.inventory.model import Distribution, Inventory, LibDirInventory
from migrate.resolve.syspath import DirCache, Provider


class DistIndex:
    """The inventory, keyed by the ``sys.path`` entries a path model yields."""

    def __init__(self, inventory: Inventory) -> None:
        self.lib_dirs: dict[str, LibDirInventory] = {
            str(lib.path): lib for lib in inventory.lib_dirs
        }
        self.real_lib_dirs = frozenset(os.path.realpath(lib.path) for lib in inventory.lib_dirs)
        self.eggs: dict[str, Distribution] = {}
        self.links: dict[str, Distribution] = {}
        self.cache = DirCache()
        """Listings shared by every app's path model: a plan reads, never writes."""
        for lib in inventory.lib_dirs:
            for dist in lib.distributions:
                if dist.kind == "egg":
                    self.eggs[str(dist.path)] = dist
                elif dist.kind == "egg-link" and dist.target is not None:
                    self.links[str(dist.target)] = dist

    def system(self, path: Path, python: str) -> LibDirInventory:
        key = str(path)
        if key not in self.lib_dirs:
            lib = LibDir(path, python, "system")
            self.lib_dirs[key] = inventory_lib_dir(lib, None, verify=False)
        return self.lib_dirs[key]

    def dists_on(self, entry: Path, rule: str, python: str) -> tuple[Distribution, ...]:
        """Distributions whose metadata lives on this sys.path entry."""
        key = str(entry)
        if key in self.eggs:
            return (self.eggs[key],)
        if key in self.links:
            return (self.links[key],)
        lib = self.lib_dirs.get(key)
        if lib is None and rule in ("site-packages", "python-home"):
            lib = self.system(entry, python)
        if lib is None:
            return ()
        return tuple(d for d in lib.distributions if d.kind not in ("egg", "egg-link"))

    def provider_dist(self, provider: Provider, python: str) -> Distribution | None:
        """The distribution that installed what an import loads, if an installer made it."""
        if provider.entry is None or provider.kind in ("builtin", "nspkg"):
            return None
        candidates = self.dists_on(provider.entry.path, provider.entry.rule, python)
        owners = [d for d in candidates if provider.name in d.top_level]
        if len(owners) > 1 and provider.origin is not None:
            rel = os.path.relpath(provider.origin, provider.entry.path)
            owners = [d for d in owners if d.files and rel in d.files] or owners
        if owners:
            return owners[0]
        if len(candidates) == 1 and candidates[0].kind in ("egg", "egg-link"):
            return candidates[0]
        return None

    def scope(self, dist: Distribution) -> str | None:
        """The scope of the lib dir it lives in (``account``, ``app``, ``system``, …)."""
        lib = self.lib_dirs.get(str(dist.lib_dir))
        return lib.scope if lib else None

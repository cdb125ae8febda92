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
        self._on_dir: dict[str, tuple[Distribution, ...]] = {}
        self._owners: dict[str, tuple[tuple[Distribution, ...], dict[str, list[Distribution]]]] = {}
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
        found = self._on_dir.get(key)
        if found is None:  # asked for every import of every app: kept
            found = tuple(d for d in lib.distributions if d.kind not in ("egg", "egg-link"))
            self._on_dir[key] = found
        return found

    def provider_dist(self, provider: Provider, python: str) -> Distribution | None:
        """The distribution that installed what an import loads, if an installer made it."""
        if provider.entry is None or provider.kind in ("builtin", "nspkg"):
            return None
        candidates = self.dists_on(provider.entry.path, provider.entry.rule, python)
        owners = self._by_top_level(str(provider.entry.path), candidates).get(provider.name, [])
        if len(owners) > 1 and provider.origin is not None:
            rel = os.path.relpath(provider.origin, provider.entry.path)
            owners = [d for d in owners if d.files and rel in d.files] or owners
        if owners:
            return owners[0]
        if len(candidates) == 1 and candidates[0].kind in ("egg", "egg-link"):
            return candidates[0]
        return None

    def _by_top_level(
        self, key: str, candidates: tuple[Distribution, ...]
    ) -> dict[str, list[Distribution]]:
        """The entry's distributions by the top-level names they provide, in their order."""
        index = self._owners.get(key)
        if index is None or index[0] is not candidates:
            names: dict[str, list[Distribution]] = {}
            for dist in candidates:
                for name in dist.top_level:
                    owners = names.setdefault(name, [])
                    if not owners or owners[-1] is not dist:
                        owners.append(dist)
            index = self._owners[key] = (candidates, names)
        return index[1]

    def scope(self, dist: Distribution) -> str | None:
        """The scope of the lib dir it lives in (``account``, ``app``, ``system``, …)."""
        lib = self.lib_dirs.get(str(dist.lib_dir))
        return lib.scope if lib else None

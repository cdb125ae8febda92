"""What is wrong with an app's concentric path, beyond what it needs: the findings a
migration fixes (``leaked``, ``shadowed``, ``unused``) and path entries it cannot judge.

Pure functions of a resolved app; each returns its findings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from migrate.discover.entrypoints import ACCOUNT_GROUP, EntryPoint
from migrate.findings import AppFinding
from migrate.paths import is_inside
from migrate.resolve.appcode import in_home
from migrate.resolve.distindex import DistIndex
from migrate.resolve.syspath import PathModel
from migrate.resolve.uses import PackageRow


def leaving_entries(entry: EntryPoint, home: Path) -> list[AppFinding]:
    """Path entries that look like the home's but lead out of it through a symlink: what
    they hold is neither inventoried nor moved, and a rewrite cannot judge them."""
    home_real = os.path.realpath(home)
    found = []
    for directory in (*entry.site_dirs, *entry.pythonpath):
        real = os.path.realpath(directory)
        if is_inside(directory, home) and not is_inside(real, home_real):
            found.append(
                AppFinding(
                    "entry-point",
                    str(directory),
                    f"leads outside the home (to {real}), named by {entry.source}: "
                    "put what it holds in the home, or drop it from the path",
                )
            )
    return found


def shadowing(
    models: Sequence[PathModel], used: set[str], index: DistIndex, home: Path
) -> list[AppFinding]:
    """Each name of the home that more than one entry provides, and which copy wins."""
    found = []
    reported: set[str] = set()
    for model in models:
        for name in sorted(model.names(inside=home)):
            if name in reported or not model.may_have_several(name):
                continue
            resolution = model.resolve(name)
            losers = [
                p for p in resolution.shadowed if p.entry is not None and p.entry.rule != "stdlib"
            ]
            if resolution.winner is None or not losers or name == "site":
                continue  # setuptools' boot site.py is meant to lose to the real one
            winner_dist = index.provider_dist(resolution.winner, model.python)
            loser_text = []
            for loser in losers:
                dist = index.provider_dist(loser, model.python)
                if dist is not None and winner_dist is not None and dist.path == winner_dist.path:
                    continue
                version = f" {dist.version}" if dist and dist.version else ""
                where = loser.origin or loser.entry.path  # type: ignore[union-attr]
                loser_text.append(f"{in_home(where, home)}{version}")
            if not loser_text:
                continue
            reported.add(name)
            win_version = f" {winner_dist.version}" if winner_dist and winner_dist.version else ""
            usage = "used" if name in used else "not used"
            winner = resolution.winner
            loads = in_home(winner.origin or Path("?"), home)
            rule = winner.entry.rule if winner.entry else "builtin"
            found.append(
                AppFinding(
                    "shadowed",
                    name,
                    f"{name} ({usage}) loads {loads}{win_version} [{rule}]; "
                    f"hidden: {', '.join(loser_text)}",
                )
            )
    return found


def scope_findings(
    app: str, packages: Sequence[PackageRow], index: DistIndex, home: Path
) -> list[AppFinding]:
    """Used packages that come from the account's dirs; visible ones nothing uses."""
    found = []
    for row in packages:
        scope = index.scope(row.dist)
        label = f"{row.dist.display_name} {row.dist.version or '?'}"
        if row.used and app != ACCOUNT_GROUP and scope in ("account", "user-site"):
            where = "account-wide" if scope == "account" else "user-site"
            found.append(
                AppFinding(
                    "leaked",
                    row.dist.name,
                    f"{label} is used but comes from the {where} dir "
                    f"{in_home(row.dist.lib_dir, home)}",
                )
            )
        if not row.used and scope != "system":
            found.append(AppFinding("unused", row.dist.name, f"{label} is visible but not used"))
    return found

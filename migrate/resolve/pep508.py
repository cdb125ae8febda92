"""The PEP 508 rules the tool applies, in one place: which requirements hold for an app's
Python, and whether a version satisfies one.

Two readers use them: the used set (:mod:`migrate.resolve.plan`, which closes an app's imports
over ``Requires-Dist``) and the in-process ``pip check`` (:mod:`migrate.build.depcheck`). Inputs
the rules cannot decide are decided one way for both, and the way is the safe one for
each question: a marker that cannot be evaluated *holds* (dropping a requirement an app may
load changes the app; keeping one costs a few MB), and a version that is not PEP 440
*satisfies* (nothing can prove otherwise, so nothing is reported).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from packaging.markers import (
    InvalidMarker,
    UndefinedComparison,
    UndefinedEnvironmentName,
    default_environment,
)
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version


@functools.cache
def marker_environment(python: str) -> dict[str, str]:
    """The PEP 508 environment of this machine, with the app's Python X.Y."""
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0")
    return env


@functools.lru_cache(maxsize=8192)
def parse(text: str) -> Requirement | None:
    """A ``Requires-Dist`` line, or None when it is not PEP 508 (it is then ignored).

    Kept: every app of an account follows the same lines (``six>=1.9`` everywhere), and
    parsing is the costly part. The result is shared: read it, never change it."""
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def applies(requirement: Requirement, python: str, extras: Iterable[str] = ()) -> bool:
    """The requirement's marker holds for Python ``python`` with any of ``extras`` asked
    for (none: the empty extra); a marker that cannot be evaluated holds."""
    if requirement.marker is None:
        return True
    env = marker_environment(python)
    try:
        return any(
            requirement.marker.evaluate({**env, "extra": extra})
            for extra in (sorted(extras) or [""])
        )
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def admits(requirement: Requirement, version: str | None) -> bool:
    """``version`` satisfies the requirement's specifier (pre-releases included, as pip's
    check counts them); an unknown or non-PEP 440 version satisfies it."""
    if version is None or not requirement.specifier:
        return True
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True

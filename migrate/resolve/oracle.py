"""``plan --probe``: the real runtime of an entry point asked, and compared with the model.

The runtime reports its path before the entry file runs, so it is compared with the model
of that moment (no file edits), name by name for what the app imports. The prober itself
(:mod:`migrate.resolve.probe`) starts servers and processes; it is imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migrate.discover.entrypoints import EntryPoint
from migrate.findings import AppFinding
from migrate.paths import home_relative
from migrate.resolve.syspath import PathModel

if TYPE_CHECKING:
    from migrate.resolve.probe import ProbeReport

Prober = Callable[[EntryPoint, Path, Sequence[str]], "ProbeReport"]
"""Starts an entry point's real runtime privately (:func:`migrate.resolve.probe.probe_entry`)."""


@dataclass(frozen=True)
class ProbeOutcome:
    """The real runtime of one entry point against the static model of it."""

    entry: Path
    runtime: str | None
    """What was started; None when it could not be (``detail`` says why)."""
    agrees: bool | None
    detail: str


def ask_runtime(
    prober: Prober, entry: EntryPoint, model: PathModel, home: Path, names: Sequence[str]
) -> tuple[ProbeOutcome, list[AppFinding]]:
    """Probe ``entry`` unless starting it would run the account's code; every disagreement
    with ``model`` (its path before the entry file runs) is a ``probe`` finding."""
    from migrate.resolve.probe import ProbeUnavailable, disagreements

    if model.account_code:
        shown = ", ".join(home_relative(p, home) for p in model.account_code)
        why = f"not probed: starting it would run import lines of {shown}"
        return ProbeOutcome(entry.path, None, None, why), []
    try:
        report = prober(entry, home, names)
    except ProbeUnavailable as exc:
        return ProbeOutcome(entry.path, None, None, f"not probed: {exc}"), []
    found = disagreements(report, model)
    detail = (
        f"agrees: {len(report.sys_path)} path entries, {len(names)} names"
        if not found
        else "; ".join(found)
    )
    findings = [
        AppFinding("probe", str(entry.path), f"the real runtime disagrees: {problem}")
        for problem in found
    ]
    return ProbeOutcome(entry.path, report.runtime, not found, detail), findings

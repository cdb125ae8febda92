"""What the stages report: a :class:`Finding` about a path (discovery, inventory), an
:class:`AppFinding` about an app (the plan)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["warning", "error"]


@dataclass(frozen=True)
class Finding:
    """Something the user should know about a path: unreadable, corrupt, suspicious."""

    path: Path
    severity: Severity
    message: str


FINDING_KINDS = (
    "interpreter",
    "probe",
    "missing",
    "conflict",
    "leaked",
    "shadowed",
    "unused",
    "entry-point",
)
"""Every kind of :class:`AppFinding`, most urgent first: the order plans list them in."""


@dataclass(frozen=True)
class AppFinding:
    """Something the plan found about one app: ``kind`` (one of :data:`FINDING_KINDS`),
    what it is about (a package, a file, an interpreter) and what to do."""

    kind: str
    name: str
    message: str

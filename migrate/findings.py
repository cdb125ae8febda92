"""The one type every stage uses to report what it could not read or does not like."""

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

"""Read Apache configuration as a flat list of directives, following Include.

Read-only and line-exact: each directive keeps the file and line range it came from, so
a rewriter can later edit exactly those lines. Directive names are case-insensitive.
"""

from __future__ import annotations

import glob
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from migrate.findings import Finding
from migrate.paths import read_regular

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True)
class Directive:
    name: str
    """Lower-cased directive name (``wsgidaemonprocess``)."""
    args: tuple[str, ...]
    file: Path
    line: int
    """First line (1-based); ``end_line`` differs when ``\\`` continuations join lines."""
    end_line: int
    sections: tuple[str, ...] = ()
    """Enclosing sections, outermost first, lower-cased (``virtualhost``)."""

    def option(self, key: str) -> str | None:
        """The value of a ``key=value`` argument (``python-path=...``), else ``None``."""
        prefix = key.lower() + "="
        for arg in self.args:
            if arg.lower().startswith(prefix):
                return arg[len(prefix) :]
        return None


@dataclass(frozen=True)
class Config:
    root: Path
    directives: tuple[Directive, ...]
    files: tuple[Path, ...]
    findings: tuple[Finding, ...] = ()

    def named(self, name: str) -> tuple[Directive, ...]:
        wanted = name.lower()
        return tuple(d for d in self.directives if d.name == wanted)

    @property
    def server_root(self) -> Path | None:
        roots = self.named("serverroot")
        return Path(roots[-1].args[0]) if roots and roots[-1].args else None


def read_config(path: Path) -> Config:
    """Parse ``path`` and every file it Includes; problems become findings, never raise."""
    state = _State()
    _read_file(Path(path), state, stack=(), sections=[])
    return Config(Path(path), tuple(state.directives), tuple(state.files), tuple(state.findings))


class _State:
    def __init__(self) -> None:
        self.directives: list[Directive] = []
        self.files: list[Path] = []
        self.findings: list[Finding] = []
        self.server_root: Path | None = None


def _read_file(path: Path, state: _State, stack: tuple[Path, ...], sections: list[str]) -> None:
    real = Path(os.path.realpath(path))
    if real in stack:
        chain = " -> ".join(str(p) for p in (*stack, real))
        state.findings.append(Finding(path, "error", f"Include loop: {chain}"))
        return
    if len(stack) >= MAX_INCLUDE_DEPTH:
        state.findings.append(Finding(path, "error", "Include nested too deeply"))
        return
    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        state.findings.append(Finding(path, "error", f"cannot read: {exc.strerror}"))
        return
    if len(data) > MAX_CONFIG_BYTES:
        state.findings.append(Finding(path, "error", f"larger than {MAX_CONFIG_BYTES} bytes"))
        return
    if b"\x00" in data:
        state.findings.append(Finding(path, "error", "binary file (contains NUL bytes)"))
        return
    text = data.decode("utf-8", errors="surrogateescape")
    state.files.append(path)
    depth_at_start = len(sections)
    for first, last, logical in _logical_lines(text):
        stripped = logical.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("</"):
            name = stripped[2:].rstrip(">").strip().lower()
            if len(sections) <= depth_at_start or sections[-1] != name:
                where = f"line {first}: closing </{name}> without a matching opening section"
                state.findings.append(Finding(path, "error", where))
            else:
                sections.pop()
            continue
        if stripped.startswith("<"):
            name = stripped[1:].rstrip(">").split(None, 1)[0].lower()
            sections.append(name)
            continue
        name, _, rest = stripped.partition(" ") if " " in stripped else stripped.partition("\t")
        try:
            args = tuple(shlex.split(rest, comments=False, posix=True))
        except ValueError as exc:
            state.findings.append(Finding(path, "error", f"line {first}: {exc}"))
            continue
        directive = Directive(name.lower(), args, path, first, last, tuple(sections))
        state.directives.append(directive)
        if directive.name == "serverroot" and args:
            state.server_root = Path(args[0])
        if directive.name in ("include", "includeoptional") and args:
            for included in _expand_include(args[0], path, state, directive.name == "include"):
                _read_file(included, state, (*stack, real), sections)
    if len(sections) > depth_at_start:
        unclosed = ", ".join(f"<{s}>" for s in sections[depth_at_start:])
        state.findings.append(
            Finding(path, "error", f"unclosed section(s) at end of file: {unclosed}")
        )
        del sections[depth_at_start:]


def _logical_lines(text: str) -> list[tuple[int, int, str]]:
    """Join ``\\``-continued physical lines: (first line, last line, joined text)."""
    out: list[tuple[int, int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        out.append((start, number, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        out.append((start, start + len(pending) - 1, " ".join(p.strip() for p in pending)))
    return out


def _expand_include(pattern: str, current: Path, state: _State, required: bool) -> list[Path]:
    base = state.server_root or current.parent
    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    if glob.has_magic(full):
        return [Path(p) for p in sorted(glob.glob(full)) if os.path.isfile(p)]
    if os.path.isdir(full):
        return [Path(full, name) for name in sorted(os.listdir(full))]
    if not os.path.exists(full):
        if required:
            state.findings.append(Finding(current, "warning", f"Include {full}: no such file"))
        return []
    return [Path(full)]

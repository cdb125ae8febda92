"""Run an entry point under its OLD path in the real target interpreter and see what loads.

Opt-in (``plan --trace``): this executes the app's code, exactly as mod_wsgi or cron
would (the WSGI file is loaded and serves one GET request; a script's module body runs
with ``__name__`` set so its ``__main__`` block does not). The same bootstrap also lets
tests ask the real interpreter which file each name imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migrate.discover.entrypoints import EntryPoint
from migrate.discover.interpreters import Interpreter
from migrate.privilege import as_owner, give_tree, owner_of
from migrate.resolve.syspath import upward_scan_dirs

TRACE_TIMEOUT = 120
BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
"""Run by the target interpreter as a script (it imports its sibling ``_probe`` so)."""
PROBE = Path(__file__).with_name("_probe.py")


class TraceError(Exception):
    """The bootstrap itself failed (not the app): the message says how."""


def bootstrap_config(entry: EntryPoint, interpreter: Interpreter, home: Path) -> dict[str, Any]:
    """The site steps for ``_bootstrap.py``, in the order the path model documents."""
    site_dirs: list[str] = []
    front = None
    scans = bool(entry.upward_scan and entry.python)
    if entry.kind != "wsgi":
        scans = scans and interpreter.upward_scan
    anchor = entry.path / "__main__" if entry.module else entry.path
    scanned = [str(d) for d in upward_scan_dirs(anchor, entry.python or "", home)] if scans else []
    late = interpreter.scan_after_site and entry.kind != "wsgi"
    if not late:
        site_dirs.extend(scanned)
    user_site = home / ".local" / "lib" / f"python{interpreter.version}" / "site-packages"
    in_venv = entry.python_home is not None and (entry.python_home / "pyvenv.cfg").is_file()
    if user_site.is_dir() and interpreter.user_site and not in_venv:
        site_dirs.append(str(user_site))
    if entry.python_home is not None:
        site_dirs.append(
            str(entry.python_home / "lib" / f"python{interpreter.version}" / "site-packages")
        )
    else:
        site_dirs.extend(str(d) for d in interpreter.site_packages)
    if late:
        site_dirs.extend(scanned)
    python_path: list[str] = []
    if entry.kind == "wsgi":
        python_path = [str(d) for d in entry.site_dirs]
    else:
        front = str(entry.path if entry.module else entry.path.parent)
    return {
        "site_dirs": site_dirs,
        "python_path": python_path,
        "front": front,
        "kind": entry.kind,
    }


def run_bootstrap(
    entry: EntryPoint,
    interpreter: Interpreter,
    home: Path,
    *,
    action: str,
    names: Sequence[str] = (),
    load_entry: bool = True,
    request: bool = False,
) -> dict[str, Any]:
    config = bootstrap_config(entry, interpreter, home)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if entry.kind != "wsgi" and entry.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in entry.pythonpath)
    with tempfile.TemporaryDirectory(prefix="concentric-trace-") as tmp:
        output = Path(tmp) / "result.json"
        config.update(
            action=action,
            names=list(names),
            entry_file=str(entry.path) if load_entry and entry.path.is_file() else None,
            request=request,
            output=str(output),
        )
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        for source in (BOOTSTRAP, PROBE):  # where the home's owner can read them
            (Path(tmp) / source.name).write_bytes(source.read_bytes())
        bootstrap = Path(tmp) / BOOTSTRAP.name
        owner = owner_of(home)  # it imports the app's code: as the home's owner
        give_tree(Path(tmp), owner)
        by_command = entry.kind in ("cron", "process")
        cwd = entry.path if entry.module else (home if by_command else entry.path.parent)
        try:
            result = subprocess.run(
                [str(interpreter.executable), "-S", "-s", str(bootstrap), str(config_path)],
                capture_output=True,
                text=True,
                timeout=TRACE_TIMEOUT,
                env=env,
                cwd=str(cwd) if Path(cwd).is_dir() else str(home),
                check=False,
                **as_owner(owner),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TraceError(f"cannot run {interpreter.executable}: {exc}") from exc
        if not output.exists():
            raise TraceError(
                f"bootstrap failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
            )
        return json.loads(output.read_text(encoding="utf-8"))


def trace_entry(
    entry: EntryPoint, interpreter: Interpreter, home: Path
) -> tuple[set[str], str | None]:
    """Top-level names the entry point loads at start-up and while serving one request."""
    try:
        result = run_bootstrap(
            entry, interpreter, home, action="trace", request=entry.kind == "wsgi"
        )
    except TraceError as exc:
        return set(), str(exc)
    names = {name.split(".", 1)[0] for name in result.get("modules", {})}
    names.discard("__main__")
    return names, result.get("error")

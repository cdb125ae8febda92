"""What a venv must provide, and the check that it does, in its own Python.

The build writes the app's pins and the top-level names to import into the venv
(:func:`write_manifest`), so ``verify`` still means something after ``~/lib`` is gone.
:func:`verify_app` proves the venv stands alone: isolated from ``PYTHONPATH`` and the
user site, every name imports from the venv (not the old lib dirs) and every pinned
distribution has the pinned version.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from migrate.build.venv import clean_env, venv_python
from migrate.build.venv.link import MAX_RECORD_BYTES
from migrate.build.venv.relocate import site_dirs
from migrate.build.wheelfile import record_digest
from migrate.discover.entrypoints import EntryPoint
from migrate.inventory.model import Distribution
from migrate.isolation import isolated
from migrate.lock import Pin, pins_for
from migrate.paths import is_inside, read_regular
from migrate.privilege import give, owner_of
from migrate.resolve.plan import AppPlan

MANIFEST = "concentric-migrate.json"
"""Written into each venv by the build: its pins and the names to import (what verify checks)."""
_VERIFY_TIMEOUT = 300


def write_manifest(venv: Path, app: AppPlan, pins: Sequence[Pin]) -> None:
    """Record in ``venv`` what it must provide."""
    manifest = {"app": app.name, "python": app.python, **_expectations(pins)}
    (venv / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class ImportCheck:
    name: str
    file: str | None
    error: str | None = None
    via: tuple[str, ...] = ()
    """For a namespace only a ``.pth`` file makes: the submodules imported instead."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class VersionCheck:
    name: str
    expected: str
    found: str | None

    @property
    def ok(self) -> bool:
        return self.found is not None and _same_version(self.found, self.expected)


@dataclass(frozen=True)
class VerifyReport:
    app: str
    venv: Path
    imports: tuple[ImportCheck, ...] = ()
    versions: tuple[VersionCheck, ...] = ()
    error: str | None = None
    """The check itself could not run (no venv, python broken)."""
    isolation: str = ""
    """How the concentric dirs were hidden (:mod:`migrate.isolation`); "" when not."""
    leaks: tuple[str, ...] = ()
    """What reached a hidden dir: a ``sys.path`` entry, a file opened or a module loaded."""
    runtimes: tuple[str, ...] = ()
    """With the dirs hidden: each entry point's runtime started (or why it could not be)."""
    runtime_errors: tuple[str, ...] = ()
    """What those runtimes could not import from the venv."""
    changed: tuple[str, ...] = ()
    """Installed files no longer as their RECORD says: edited in place — through the
    store's shared inode, every venv linking that file shows the same edit."""

    @property
    def ok(self) -> bool:
        checks = (*self.imports, *self.versions)
        clean = not self.leaks and not self.runtime_errors and not self.changed
        return self.error is None and clean and all(c.ok for c in checks)

    @property
    def problems(self) -> tuple[str, ...]:
        found = [self.error] if self.error else []
        found += [f"reaches a concentric dir: {leak}" for leak in self.leaks]
        found += list(self.runtime_errors)
        found += [f"changed since it was installed: {path}" for path in self.changed]
        found += [f"import {c.name}: {c.error}" for c in self.imports if not c.ok]
        found += [
            f"{c.name}: expected {c.expected}, found {c.found or 'not installed'}"
            for c in self.versions
            if not c.ok
        ]
        return tuple(found)


# Runs in the venv's python (2.7 included): reads {"imports": [[name, [children]]...],
# "dists": [...]} on stdin, prints what each import loaded and each distribution's version.
_VERIFY_SCRIPT = r"""
import importlib, io, json, os, re, sys

def load(name):
    try:
        module = importlib.import_module(name)
    except BaseException as exc:
        return None, "%s: %s" % (type(exc).__name__, exc)
    where = getattr(module, "__file__", None)
    if where is None:
        where = (list(getattr(module, "__path__", None) or []) or [None])[0]
    return where, None

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def version_header(path):
    try:
        with io.open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key.strip().lower() == "version":
                    return value.strip()
    except (IOError, OSError):
        pass
    return None

def scanned():
    # Each distribution's version where importlib.metadata finds it, without importing it
    # (a tenth of a second a venv): the first sys.path entry with a dist-info or egg-info
    # (folder or file) named for it, or that is its egg; named as importlib.metadata
    # names them, by the folder (within one folder, in name order where it takes the
    # listing's: two of one name there is a broken install anyway).
    found = {}
    for entry in sys.path:
        metas = []
        base = os.path.basename(entry.rstrip("/")).lower()
        if base.endswith(".egg"):
            metas.append((base, os.path.join(entry, "EGG-INFO", "PKG-INFO")))
        else:
            try:
                names = sorted(os.listdir(entry or "."))
            except OSError:
                continue
            for folder in names:
                path = os.path.join(entry, folder)
                low = folder.lower()
                if low.endswith(".dist-info"):
                    metas.append((low, os.path.join(path, "METADATA")))
                elif low.endswith(".egg-info"):
                    inside = os.path.isdir(path)
                    metas.append((low, os.path.join(path, "PKG-INFO") if inside else path))
        for low, meta in metas:
            name = canonical(low.rpartition(".")[0].partition("-")[0])
            if name and name not in found and os.path.exists(meta):
                found[name] = version_header(meta)
    return found

def version_of(name, found):
    if canonical(name) in found:
        return found[canonical(name)]
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None

spec = json.loads(sys.stdin.read())
hidden = [os.path.realpath(d) + os.sep for d in spec.get("hidden", ())]
leaks = []

def under_hidden(path):
    real = os.path.realpath(path)
    return any((real + os.sep).startswith(d) for d in hidden)

if hidden:
    leaks.extend("sys.path names %s" % p for p in sys.path if p and under_hidden(p))
    if hasattr(sys, "addaudithook"):
        def audit(event, args):
            if event == "open" and args and isinstance(args[0], str) and under_hidden(args[0]):
                leaks.append("opened %s" % args[0])
        sys.addaudithook(audit)
imports = {}
for name, children in spec["imports"]:
    where, error = load(name)
    via = []
    if error is not None and children:
        results = [(child, load(child)) for child in children]
        errors = ["%s: %s" % (child, e) for child, (_, e) in results if e is not None]
        if not errors:
            where, error, via = results[0][1][0], None, children
    imports[name] = {"file": where, "error": error, "via": via}
found = scanned()
versions = dict((name, version_of(name, found)) for name in spec["dists"])
base = getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", sys.prefix)
for module in list(sys.modules.values()):
    where = getattr(module, "__file__", None)
    if hidden and where and under_hidden(where):
        leaks.append("loaded %s from %s" % (module.__name__, where))
json.dump({"imports": imports, "versions": versions, "base": base, "leaks": leaks}, sys.stdout)
"""


def _expectations(pins: Sequence[Pin]) -> dict[str, Any]:
    """What a venv must provide: the pins, and the top-level names to import (with the
    submodules to try for namespaces)."""
    targets: dict[str, tuple[str, ...]] = {}
    for pin in pins:
        for top in pin.row.dist.top_level:
            if top.isidentifier():  # top_level.txt may hold what no import statement names
                targets.setdefault(top, _namespace_children(pin.row.dist, top))
    return {
        "pins": [[pin.name, pin.version] for pin in pins],
        "imports": [[name, list(children)] for name, children in sorted(targets.items())],
    }


def verify_app(
    venv: Path,
    app: AppPlan,
    home: Path,
    hidden: Sequence[Path] = (),
    runtimes: Sequence[EntryPoint] = (),
    *,
    files: bool = True,
) -> VerifyReport:
    """Import every used top-level name and compare every pinned version, inside ``venv``.

    What is expected comes from the manifest the build wrote into the venv (the lock as
    built), so verify still means something after ``~/lib`` is gone; a venv without one
    is checked against today's plan. Isolated (``-I``; ``-E -s`` on 2.7), from an empty
    working directory: nothing of the old concentric path can help. A module loaded from
    inside the home but outside the venv counts as an error: the venv did not carry it.

    With ``hidden`` (the concentric dirs), the check runs with those dirs hidden
    (:func:`migrate.isolation.isolated`): anything that still reaches one is a leak; and
    each entry point of ``runtimes`` (as its configuration reads now, pointing at the venv)
    has its real runtime started so (:func:`migrate.resolve.probe.probe_entry`), which must
    import every name from the venv.

    ``files``: also check the venv's files against their RECORD (:func:`changed_files`);
    a caller checking several venvs at once does that itself, in one thread.
    """
    python = venv_python(venv)
    if not python.exists():
        return VerifyReport(app.name, venv, error=f"{python} does not exist: build first")
    try:
        expected = json.loads((venv / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        expected = _expectations(pins_for(app, home))
    pins = [(str(name), str(version)) for name, version in expected["pins"]]
    targets = {str(name): tuple(children) for name, children in expected["imports"]}
    spec = {"imports": sorted(targets.items()), "dists": [name for name, _ in pins]}
    flags = ["-E", "-s"] if app.python and app.python.startswith("2.") else ["-I"]
    owner = owner_of(home)  # the venv's python runs its .pth lines: as the home's owner
    command, how = isolated([str(python), *flags, "-c", _VERIFY_SCRIPT], hidden, owner)
    spec["hidden"] = [str(d) for d in hidden]
    with tempfile.TemporaryDirectory(prefix="concentric-verify-") as empty:
        give(Path(empty), owner)
        try:
            done = subprocess.run(
                command,
                input=json.dumps(spec), capture_output=True, text=True, cwd=empty,
                env=clean_env(), timeout=_VERIFY_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return VerifyReport(app.name, venv, error=f"imports took over {_VERIFY_TIMEOUT} s")
        except OSError as exc:
            return VerifyReport(app.name, venv, error=f"{python} cannot run: {exc.strerror}")
    try:
        found = json.loads(done.stdout)
    except ValueError:
        said = (done.stderr or done.stdout).strip()[-2000:]
        return VerifyReport(app.name, venv, error=f"the check failed in {python}: {said}")
    base = Path(os.path.realpath(found["base"]))
    imports = []
    for name in sorted(targets):
        result = found["imports"][name]
        error = result["error"] or _leak(result["file"], venv, home, base)
        imports.append(ImportCheck(name, result["file"], error, tuple(result["via"])))
    versions = tuple(
        VersionCheck(name, version, found["versions"].get(name)) for name, version in pins
    )
    leaks = tuple(dict.fromkeys(map(str, found.get("leaks", ()))))
    ran, errors = _runtimes(venv, runtimes, sorted(targets), home, hidden, base)
    return VerifyReport(
        app.name, venv, tuple(imports), versions, isolation=how if hidden else "", leaks=leaks,
        runtimes=ran, runtime_errors=errors, changed=changed_files(venv) if files else (),
    )  # fmt: skip


VenvCheck = tuple[Path, AppPlan, Sequence[EntryPoint]]
"""What :func:`verify_venvs` checks: a venv, its app, the entry points whose runtimes start."""


def verify_venvs(
    checks: Sequence[VenvCheck], home: Path, hidden: Sequence[Path] = ()
) -> Iterator[VerifyReport]:
    """:func:`verify_app` of each venv, the reports in ``checks`` order, the checks run at
    once: one per CPU in threads (each is mostly its own processes: the venv's Python, the
    runtimes), while this thread compares the venvs' files with their RECORDs (hashing
    wants the interpreter lock; venvs linked from one store share their files, hashed
    once). Closing the iterator early cancels the checks not yet started."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="verify") as pool:
        futures = [
            pool.submit(verify_app, venv, app, home, hidden, entries, files=False)
            for venv, app, entries in checks
        ]
        try:
            changed = [changed_files(venv) for venv, _, _ in checks]
            for future, files in zip(futures, changed, strict=True):
                verified = future.result()
                yield replace(verified, changed=files) if verified.error is None else verified
        finally:
            for future in futures:
                future.cancel()


def changed_files(venv: Path) -> tuple[str, ...]:
    """Files of the venv's site-packages whose bytes differ from the hash their RECORD
    gives (bytecode has no hash to check; scripts in ``bin`` were rewritten for the venv's
    final path after RECORD was written)."""
    changed = []
    for site in site_dirs(venv):
        for entry in sorted(os.listdir(site)):
            if not entry.endswith(".dist-info"):
                continue
            try:
                text = read_regular(site / entry / "RECORD", MAX_RECORD_BYTES).decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for row in csv.reader(io.StringIO(text)):
                if len(row) < 2 or not row[1]:
                    continue
                name = posixpath.normpath(row[0])
                if name == ".." or name.startswith(("../", "/")):
                    continue  # scripts: relocated, their hashes are stale
                path = os.path.join(site, name)
                try:
                    if _digest(path) != row[1]:
                        changed.append(path)
                except OSError:
                    changed.append(path)
    return tuple(changed)


_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}
"""RECORD digests by inode, size, mtime and ctime: venvs linked from the store share
their files, so ten venvs' check reads each shared file once, not ten times."""


def _digest(path: str) -> str:
    info = os.stat(path)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = record_digest(read_regular(path))
        again = os.stat(path)
        if (again.st_dev, again.st_ino, again.st_size, again.st_mtime_ns, again.st_ctime_ns) == key:
            _DIGESTS[key] = digest
    return digest


def _runtimes(
    venv: Path,
    entries: Sequence[EntryPoint],
    names: Sequence[str],
    home: Path,
    hidden: Sequence[Path],
    base: Path,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Each entry point's runtime, started with ``hidden`` covered: what ran, what failed."""
    from migrate.resolve.probe import ProbeUnavailable, probe_entry

    ran, errors = [], []
    for entry in entries if hidden else ():
        where = str(entry.path)  # JSON keeps absolute paths; the text shows them as ~/…
        try:
            report = probe_entry(entry, home, names, hidden)
        except ProbeUnavailable as exc:
            ran.append(f"{where}: not started ({exc})")
            continue
        ran.append(f"{where}: {report.runtime}")
        for name, origin in sorted(report.origins.items()):
            if origin is None:
                errors.append(f"{where}: its runtime cannot import {name} without the lib dirs")
            elif origin != "built-in" and _leak(origin, venv, home, base):
                errors.append(f"{where}: its runtime loads {name} from {origin}, not the venv")
    return tuple(ran), tuple(errors)


def _leak(file: str | None, venv: Path, home: Path, base: Path) -> str | None:
    """Loaded from the home but not from the venv (nor the interpreter's own install)."""
    if file is None:
        return None
    real = os.path.realpath(file)
    if is_inside(real, os.path.realpath(venv)) or is_inside(real, base):
        return None
    if is_inside(real, os.path.realpath(home)):
        return f"loaded from {real}, outside the venv"
    return None


def _namespace_children(dist: Distribution, top: str) -> tuple[str, ...]:
    """Submodules to import instead of ``top`` when this dist gives ``top`` no module of its
    own (a namespace a ``-nspkg.pth`` or ``declare_namespace`` makes, which may not import
    alone on an old Python without setuptools)."""
    if dist.files is None:
        return ()
    children: set[str] = set()
    for rel in dist.files:
        parts = rel.replace(os.sep, "/").split("/")
        if parts[0] != top:
            if parts[0].split(".")[0] == top and len(parts) == 1:
                return ()  # top.py, top.so: a module of its own
            continue
        if len(parts) == 2 and parts[1].startswith("__init__."):
            return ()
        if len(parts) >= 2 and parts[1] != "__pycache__":
            child = parts[1] if len(parts) > 2 else parts[1].split(".")[0]
            if child.isidentifier():
                children.add(f"{top}.{child}")
    return tuple(sorted(children))


def _same_version(found: str, expected: str) -> bool:
    try:
        return Version(found) == Version(expected)
    except InvalidVersion:
        return found == expected

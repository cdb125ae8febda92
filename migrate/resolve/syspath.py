"""The ``sys.path`` an entry point really gets, and which file each import name loads.

A small simulation of what CPython does, step for step, each entry tagged with the rule
that put it there (see docs/how-it-works.md):

* scripts and cron jobs: ``PYTHONPATH``, the stdlib, then site processing — the upward
  scan where the interpreter does it (WebFaction's patched interpreter: every ancestor
  ``D`` of the script's folder with ``D/lib/pythonX.Y``, nearest first, as site dirs), the
  user site, the site dirs the interpreter's own ``site`` adds — and last the script's own
  folder at the front;
* mod_wsgi: the stdlib, user site, site-packages (of ``python-home`` if set), then each
  ``python-path`` / ``WSGIPythonPath`` dir through ``site.addsitedir`` — and what those
  added moves to the front, as mod_wsgi does (observed on Debian's mod_wsgi 4.9: the
  ``python-path`` dirs come before the stdlib); a WSGI file no httpd.conf names is modelled
  like a script, the upward scan included;
* then the entry file's own ``sys.path.insert/append`` and ``site.addsitedir`` calls.

Site dirs process their ``.pth`` files exactly like ``site.addpackage``: sorted order,
existing paths appended once, and easy-install.pth's ``sys.__plen`` wrapper moving its
entries to ``sys.__egginsert`` (the front). ``-nspkg.pth`` files put namespace modules in
``sys.modules`` before any search. Nothing is executed.
"""

from __future__ import annotations

import functools
import os
import stat
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from migrate.discover.entrypoints import EntryPoint
from migrate.discover.imports import PathEdit
from migrate.discover.interpreters import Interpreter
from migrate.findings import Finding
from migrate.paths import is_inside, read_regular

ProviderKind = Literal["package", "module", "namespace", "nspkg", "builtin"]

_PLEN_START = "sys.__plen = len(sys.path)"
_MODULE_ENDINGS = (".py", ".pyc", ".so", ".pyd")
"""Files :meth:`DirCache.names_in` counts as modules."""
_PLEN_END = "sys.__egginsert"


@dataclass(frozen=True)
class PathEntry:
    path: Path
    rule: str
    """``script-dir``, ``cwd``, ``PYTHONPATH``, ``stdlib``, ``upward-scan``, ``python-path``,
    ``pth``, ``easy-install``, ``file-edit``, ``user-site``, ``site-packages``, ``python-home``."""
    via: Path | None = None
    """The .pth file, config or source file responsible."""


@dataclass(frozen=True)
class Provider:
    """Where one top-level import name would be found on one path entry."""

    name: str
    entry: PathEntry | None
    kind: ProviderKind
    origin: Path | None
    """The file Python loads (``__init__.py``, module, extension); a dir for namespaces."""


@dataclass(frozen=True)
class Resolution:
    name: str
    winner: Provider | None
    candidates: tuple[Provider, ...]
    """Every provider in path order; the winner first unless it is a namespace merge."""

    @property
    def shadowed(self) -> tuple[Provider, ...]:
        if self.winner is None or self.winner.kind in ("namespace",):
            return ()
        return tuple(p for p in self.candidates if p is not self.winner and p.kind != "namespace")


@dataclass(frozen=True)
class PathModel:
    entry_point: EntryPoint
    python: str
    entries: tuple[PathEntry, ...]
    nspkg: tuple[tuple[str, Path, Path], ...] = ()
    """(name, portion dir, .pth file) for names ``-nspkg.pth`` files pre-load."""
    builtins: frozenset[str] = frozenset()
    extension_suffixes: tuple[str, ...] = (".so",)
    findings: tuple[Finding, ...] = field(default=())
    cache: DirCache = field(default_factory=lambda: DirCache(), compare=False, repr=False)
    stdlib_known: bool = True
    """False without an interpreter: no stdlib or site dirs, so a name found nowhere
    proves nothing."""
    account_code: tuple[Path, ...] = ()
    """The account's .pth files with import lines the model does not follow: code the
    runtime runs at start-up (so the probe will not start it)."""
    resolved: dict[str, Resolution] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    """What :meth:`resolve` answered, by name: a model reads its folders through
    :attr:`cache`, which a plan never sees change."""

    def resolve(self, name: str) -> Resolution:
        """What ``import name`` loads: builtins, nspkg modules, then the first entry.

        Kept per model: the plan asks the same names again (its imports, its packages'
        imports, then every name of the home for shadowing)."""
        resolution = self.resolved.get(name)
        if resolution is None:
            resolution = self.resolved[name] = self._resolve(name)
        return resolution

    def may_have_several(self, name: str) -> bool:
        """Whether more than one provider of ``name`` is possible: a ``-nspkg.pth`` module,
        or a name that the listings of two entries offer (what :meth:`resolve` can find on
        an entry, :meth:`DirCache.names_in` lists, for any interpreter whose suffixes it
        knows). False means at most one provider: nothing can be hidden."""
        if any(n == name for n, _, _ in self.nspkg):
            return True
        offered = self._offered
        return offered is None or offered[name] > 1

    @functools.cached_property
    def _offered(self) -> Counter[str] | None:
        """How many entries list each name; None when a suffix is one names_in misses."""
        if not all(s[:1] == "." and s.endswith(_MODULE_ENDINGS) for s in self._suffixes()):
            return None
        counts: Counter[str] = Counter()
        for entry in self.entries:
            counts.update(self.cache.names_in(str(entry.path)))
        return counts

    def _resolve(self, name: str) -> Resolution:
        if name in self.builtins:
            builtin = Provider(name, None, "builtin", None)
            return Resolution(name, builtin, (builtin,))
        candidates = [p for entry in self.entries if (p := self._find(name, entry)) is not None]
        portions = [(d, pth) for n, d, pth in self.nspkg if n == name]
        if portions:
            directory, pth = portions[0]
            winner = Provider(name, PathEntry(directory.parent, "nspkg", pth), "nspkg", directory)
            return Resolution(name, winner, (winner, *candidates))
        regular = next((p for p in candidates if p.kind != "namespace"), None)
        if regular is not None or not candidates:
            return Resolution(name, regular, tuple(candidates))
        if self.python.startswith("2."):
            return Resolution(name, None, tuple(candidates))
        return Resolution(name, candidates[0], tuple(candidates))

    def names(self, inside: Path | None = None) -> set[str]:
        """Every top-level name the entries provide (not the stdlib's); only from entries
        under ``inside`` when given."""
        out: set[str] = {name for name, _, _ in self.nspkg}
        prefix = _key(inside) + os.sep if inside is not None else ""
        for entry in self.entries:
            if entry.rule == "stdlib" or not _key(entry.path).startswith(prefix):
                continue
            out.update(self.cache.names_in(str(entry.path)))
        return out

    def _find(self, name: str, entry: PathEntry) -> Provider | None:
        found = self.cache.find(str(entry.path), name, self._suffixes(), self.python[:2] == "2.")
        return None if found is None else Provider(name, entry, found[0], found[1])

    def _suffixes(self) -> tuple[str, ...]:
        return (*self.extension_suffixes, ".py", ".pyc")


def build_path_model(
    entry_point: EntryPoint,
    interpreter: Interpreter | None,
    edits: Sequence[PathEdit] = (),
    home: Path | None = None,
    cache: DirCache | None = None,
) -> PathModel:
    python = entry_point.python or (interpreter.version if interpreter else "3")
    machine = _SitePath(python, home)
    findings: list[Finding] = []
    stdlib = interpreter.stdlib if interpreter else ()
    scans = entry_point.upward_scan and entry_point.python is not None
    # A module run with -m scans from its working folder as a script from its own folder.
    anchor = entry_point.path / "__main__" if entry_point.module else entry_point.path
    if entry_point.kind != "wsgi" and interpreter is not None:
        scans = scans and interpreter.upward_scan  # the runtime decides, not our assumption
    if entry_point.kind == "wsgi":
        machine.extend(stdlib, "stdlib")
        if scans:
            for directory in upward_scan_dirs(anchor, python, home):
                machine.addsitedir(directory, "upward-scan")
        _site_packages(machine, entry_point, interpreter, home)
        before = machine.mark()
        for directory in entry_point.site_dirs:
            machine.addsitedir(directory, "python-path", via=None)
        machine.to_front_since(before)
    else:
        machine.extend(entry_point.pythonpath, "PYTHONPATH")
        machine.extend(stdlib, "stdlib")
        scan_late = interpreter is not None and interpreter.scan_after_site
        if scans and not scan_late:
            for directory in upward_scan_dirs(anchor, python, home):
                machine.addsitedir(directory, "upward-scan")
        _site_packages(machine, entry_point, interpreter, home)
        if scans and scan_late:
            for directory in upward_scan_dirs(anchor, python, home):
                machine.addsitedir(directory, "upward-scan")
        first = entry_point.path if entry_point.module else entry_point.path.parent
        machine.insert(0, first, "cwd" if entry_point.module else "script-dir")
    for edit in edits:
        if edit.path is None:
            message = f"line {edit.line}: cannot read sys.path edit {edit.unresolved!r} statically"
            findings.append(Finding(edit.file, "warning", message))
            continue
        if edit.op == "addsitedir":
            machine.addsitedir(edit.path, "file-edit", via=edit.file, fresh_known=True)
        elif edit.op == "append":
            machine.append(edit.path, "file-edit", via=edit.file)
        else:
            machine.insert(
                edit.index if edit.index is not None else 0, edit.path, "file-edit", edit.file
            )
    if interpreter is None:
        findings.append(
            Finding(entry_point.path, "warning", "its interpreter is unknown (see the "
                    "interpreter finding): stdlib and site dirs not modelled")
        )  # fmt: skip
    findings.extend(machine.findings)
    return PathModel(
        entry_point,
        python,
        tuple(machine.entries),
        tuple(machine.nspkg),
        interpreter.builtins if interpreter else frozenset(),
        interpreter.extension_suffixes if interpreter else _default_suffixes(python),
        tuple(findings),
        cache or DirCache(),
        interpreter is not None,
        tuple(dict.fromkeys(machine.account_code)),
    )


def upward_scan_dirs(script: Path, python: str, home: Path | None = None) -> list[Path]:
    """``D/lib/pythonX.Y`` for every ancestor D of the script's folder, nearest first.

    The scan stops at the home when one is given: WebFaction's interpreter looked no
    higher, and nothing above a home belongs to the account.
    """
    out = []
    folder = script.parent
    for directory in (folder, *folder.parents):
        candidate = directory / "lib" / f"python{python}"
        if candidate.is_dir():
            out.append(candidate)
        if home is not None and directory == home:
            break
    return out


def _site_packages(
    machine: _SitePath, entry: EntryPoint, interpreter: Interpreter | None, home: Path | None
) -> None:
    """The user site and the site dirs: the interpreter's own as it really starts (a venv's
    python included); for mod_wsgi with ``python-home``, that home's."""
    if entry.kind == "wsgi" and entry.python_home is not None and entry.python:
        in_venv = (entry.python_home / "pyvenv.cfg").is_file()
        if not in_venv and (interpreter is None or interpreter.user_site):
            _user_site(machine, entry.python, home)
        machine.addsitedir(
            entry.python_home / "lib" / f"python{entry.python}" / "site-packages", "python-home"
        )
        return
    if interpreter is None:
        if entry.python_home is None and entry.python:
            _user_site(machine, entry.python, home)
        elif entry.python_home is not None and entry.python:
            site = entry.python_home / "lib" / f"python{entry.python}" / "site-packages"
            machine.addsitedir(site, "python-home")
        return
    for index, directory in enumerate(interpreter.site_packages):
        if index == interpreter.site_before_user and interpreter.user_site and entry.python:
            _user_site(machine, entry.python, home)
        machine.addsitedir(directory, "site-packages")
    if len(interpreter.site_packages) <= interpreter.site_before_user and interpreter.user_site:
        _user_site(machine, entry.python or interpreter.version, home)


def _user_site(machine: _SitePath, python: str, home: Path | None) -> None:
    if home is not None:
        user_site = home / ".local" / "lib" / f"python{python}" / "site-packages"
        if user_site.is_dir():
            machine.addsitedir(user_site, "user-site")


def _default_suffixes(python: str) -> tuple[str, ...]:
    if python.startswith("2."):
        return (".so", "module.so")
    digits = python.replace(".", "")
    return (f".cpython-{digits}-x86_64-linux-gnu.so", ".abi3.so", ".so")


class _SitePath:
    """``sys.path`` plus the bits of ``site`` state that .pth files touch."""

    def __init__(self, python: str, home: Path | None) -> None:
        self.python = python
        self.home = home
        self.entries: list[PathEntry] = []
        self.known: set[str] = set()
        self.egginsert = 0
        self.nspkg: list[tuple[str, Path, Path]] = []
        self.findings: list[Finding] = []
        self.account_code: list[Path] = []

    def mark(self) -> frozenset[int]:
        """The entries as they are now, for :meth:`to_front_since`."""
        return frozenset(id(entry) for entry in self.entries)

    def to_front_since(self, before: frozenset[int]) -> None:
        """mod_wsgi's reorder after its ``python-path`` addsitedir calls: every entry added
        since ``before`` goes to the front, in order."""
        new = [e for e in self.entries if id(e) not in before]
        self.entries = new + [e for e in self.entries if id(e) in before]

    def extend(self, paths: Iterable[Path], rule: str) -> None:
        """Start-up entries; ``site.removeduppaths`` keeps the first of duplicates."""
        for path in paths:
            if _key(path) not in self.known:
                self.append(path, rule)

    def append(self, path: Path, rule: str, via: Path | None = None) -> None:
        self.entries.append(PathEntry(Path(os.path.abspath(path)), rule, via))
        self.known.add(_key(path))

    def insert(self, index: int, path: Path, rule: str, via: Path | None = None) -> None:
        self.entries.insert(index, PathEntry(Path(os.path.abspath(path)), rule, via))
        self.known.add(_key(path))

    def addsitedir(
        self, sitedir: Path, rule: str, via: Path | None = None, fresh_known: bool = False
    ) -> None:
        """``site.addsitedir``: append the dir once, then run its .pth files in sorted order."""
        if fresh_known:  # site.addsitedir(d) with no known_paths: _init_pathinfo()
            self.known = {_key(e.path) for e in self.entries if os.path.exists(e.path)}
        key = _key(sitedir)
        if key not in self.known:
            self.entries.append(PathEntry(Path(os.path.abspath(sitedir)), rule, via))
            self.known.add(key)
        try:
            names = sorted(n for n in os.listdir(sitedir) if n.endswith(".pth"))
        except OSError:
            return
        hide_dotted = tuple(int(p) for p in self.python.split(".")[:2]) >= (3, 13)
        for name in names:
            if hide_dotted and name.startswith("."):
                continue
            self._addpackage(Path(sitedir), name)

    def _addpackage(self, sitedir: Path, name: str) -> None:
        pth = sitedir / name
        try:
            data = read_regular(pth)
        except OSError:
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        plen: int | None = None
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if "\x00" in line:
                return
            if line.startswith(("import ", "import\t")):
                if _PLEN_START in line:
                    plen = len(self.entries)
                elif _PLEN_END in line and plen is not None:
                    moved = self.entries[plen:]
                    del self.entries[plen:]
                    self.entries[self.egginsert : self.egginsert] = [
                        PathEntry(e.path, "easy-install", e.via) for e in moved
                    ]
                    self.egginsert += len(moved)
                    plen = None
                elif name.endswith("-nspkg.pth"):
                    self._nspkg(sitedir, pth, line)
                elif self.home is None or is_inside(pth, self.home):
                    message = f"import line runs code the path model does not follow: {line[:80]}"
                    self.findings.append(Finding(pth, "warning", message))
                    self.account_code.append(pth)
                continue
            target = os.path.normpath(os.path.join(sitedir, line.rstrip()))
            key = _key(Path(target))
            if key not in self.known and os.path.exists(target):
                self.entries.append(PathEntry(Path(target), "pth", pth))
                self.known.add(key)

    def _nspkg(self, sitedir: Path, pth: Path, line: str) -> None:
        """setuptools' nspkg line: ``p = os.path.join(sitedir, *('a', 'b'))`` -> module a."""
        start = line.find("*(")
        if start < 0:
            return
        inside = line[start + 2 : line.find(")", start)]
        parts = [p.strip().strip("'\"") for p in inside.split(",") if p.strip()]
        if parts:
            self.nspkg.append((parts[0], sitedir / parts[0], pth))


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


class DirCache:
    """Directory and zip listings, read once per plan (the model looks up names many times).

    What a name is on a path entry (:meth:`find`) and which names an entry offers
    (:meth:`names_in`) are kept too: every app's model shares the home's lib dirs and
    the interpreter's own, and a plan reads, never writes.
    """

    def __init__(self) -> None:
        self._listings: dict[str, frozenset[str]] = {}
        self._stems: dict[str, frozenset[str]] = {}
        self._zips: dict[str, frozenset[str] | None] = {}
        self._found: dict[tuple[str, str, tuple[str, ...], bool], _Found | None] = {}
        self._names: dict[str, frozenset[str]] = {}
        self._kinds: dict[str, tuple[bool, bool]] = {}

    def listing(self, path: str) -> frozenset[str]:
        found = self._listings.get(path)
        if found is None:
            try:
                found = frozenset(os.listdir(path))
            except OSError:
                found = frozenset()
            self._listings[path] = found
        return found

    def zip_names(self, path: str) -> frozenset[str] | None:
        """Member names when ``path`` is a zip file (an egg), else ``None``."""
        if path not in self._zips:
            names: frozenset[str] | None = None
            if os.path.isfile(path):
                try:
                    with zipfile.ZipFile(path) as archive:
                        names = frozenset(archive.namelist())
                except (zipfile.BadZipFile, OSError):
                    names = frozenset()
            self._zips[path] = names
        return self._zips[path]

    def find(self, path: str, name: str, suffixes: tuple[str, ...], py2: bool) -> _Found | None:
        """What ``import name`` finds on the entry ``path``: package, module or namespace
        portion, as FileFinder looks (``suffixes`` in its order), and the file it loads."""
        key = (path, name, suffixes, py2)
        if key not in self._found:
            self._found[key] = self._find(path, name, suffixes, py2)
        return self._found[key]

    def _find(self, path: str, name: str, suffixes: tuple[str, ...], py2: bool) -> _Found | None:
        zipped = self.zip_names(path)
        if zipped is not None:
            return _find_in_zip(name, path, zipped)
        listing = self.listing(path)
        if not listing:
            return None
        if "." not in name and all(s[:1] == "." for s in suffixes):
            # Every candidate file is ``name`` or ``name.<suffix>``: none is listed
            # unless its stem is (most names are on one entry of many).
            stems = self._stems.get(path)
            if stems is None:
                stems = self._stems[path] = frozenset(n.split(".", 1)[0] for n in listing)
            if name not in stems:
                return None
        if name in listing:
            package_dir = os.path.join(path, name)
            inner = self.listing(package_dir)
            for suffix in suffixes:
                if "__init__" + suffix in inner:
                    return "package", Path(package_dir, "__init__" + suffix)
        for suffix in suffixes:
            if name + suffix in listing and self._is_file(os.path.join(path, name + suffix)):
                return "module", Path(path, name + suffix)
        if name in listing and not py2 and self._is_dir(os.path.join(path, name)):
            return "namespace", Path(path, name)
        return None

    def _is_file(self, path: str) -> bool:
        return self._kind(path)[0]

    def _is_dir(self, path: str) -> bool:
        return self._kind(path)[1]

    def _kind(self, path: str) -> tuple[bool, bool]:
        """(is a file, is a folder), following links, as ``os.path.isfile`` / ``isdir``."""
        kind = self._kinds.get(path)
        if kind is None:
            try:
                mode = os.stat(path).st_mode
            except (OSError, ValueError):
                kind = (False, False)
            else:
                kind = (stat.S_ISREG(mode), stat.S_ISDIR(mode))
            self._kinds[path] = kind
        return kind

    def names_in(self, path: str) -> frozenset[str]:
        """Top-level import names a path entry offers (dir listing or zip members)."""
        names = self._names.get(path)
        if names is None:
            names = self._names[path] = frozenset(self._names_in(path))
        return names

    def _names_in(self, path: str) -> set[str]:
        zipped = self.zip_names(path)
        listing = {n.split("/", 1)[0] for n in zipped} if zipped is not None else self.listing(path)
        out = set()
        for item in listing:
            stem = item.split(".", 1)[0]
            if not stem.isidentifier() or stem == "__pycache__":
                continue
            if "." in item:
                if item.endswith(_MODULE_ENDINGS):
                    out.add(stem)
            elif zipped is not None or self._is_dir(os.path.join(path, item)):
                out.add(item)
        return out


_Found = tuple[ProviderKind, Path]
"""What a name is on one path entry, and the file (or folder) it loads."""


def _find_in_zip(name: str, path: str, names: frozenset[str]) -> _Found | None:
    for suffix in (".py", ".pyc"):
        if f"{name}/__init__{suffix}" in names:
            return "package", Path(path, name, "__init__" + suffix)
    for suffix in (".py", ".pyc"):
        if f"{name}{suffix}" in names:
            return "module", Path(path, name + suffix)
    return None

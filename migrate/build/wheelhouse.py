"""Repack installed distributions into wheels, offline, from the files installed today.

Fidelity (DESIGN rule 3): a venv built from these wheels gets the bytes that run now —
local patches included, and packages no index serves any more. Nothing is built and
nothing is fetched: each install kind's own file list (RECORD, installed-files.txt, the
egg, the develop tree) says what belongs to a distribution, and the metadata it left is
converted into the wheel's ``.dist-info``. ``.pyc`` files are not packed (pip compiles)
unless a module exists only as bytecode.

The wheelhouse ``HOME/.concentric-migrate/wheels`` is the tool's own state, written
directly (temp file + rename), not through the journal. Wheels sit there under their
normal names so the folder works as ``--find-links``; ``index/KEY.json`` maps the sha256
over every member a wheel holds (names, modes, bytes) to that wheel, so an unchanged
distribution is found and not packed again. Output is deterministic (sorted members,
fixed timestamps), so the same files always give the same wheel sha256. A second,
different copy of the same name and version (a patched one beside a pristine one) is
kept apart, in ``variants/KEY/``.
"""

from __future__ import annotations

import ast
import configparser
import csv
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import stat
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.version import InvalidVersion, Version

from migrate.build.wheelfile import record_form
from migrate.inventory._files import top_level_from_files
from migrate.inventory.egglink import find_egg_info
from migrate.inventory.metadata import canonical, decode_text, header_fields, text_lines
from migrate.inventory.model import Distribution
from migrate.lock import LOCAL_VERSION

FORMAT = 1
"""Bumped whenever the same installed files would be packed into different bytes."""
GENERATOR = "concentric-migrate (repacked from installed files)"

_EPOCH = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 16
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_PYTHON = re.compile(r"^(\d)\.(\d+)$")
_NOT_CARRIED = frozenset(
    {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"}
)
"""dist-info files that describe one install (or are rewritten), not the distribution."""
_EGG_META = ("entry_points.txt", "top_level.txt", "namespace_packages.txt")
"""What ``wheel convert`` keeps of an egg's metadata, besides PKG-INFO and requires.txt."""
_SKIP_TREE_DIRS = frozenset(
    {"__pycache__", "test", "tests", "testing", "doc", "docs", "build", "dist", "examples"}
)


class RepackError(Exception):
    """A distribution that cannot be made into a wheel; the message says why and what to do."""


@dataclass(frozen=True)
class RepackedWheel:
    dist: Distribution
    path: Path
    sha256: str
    """Hex sha256 of the wheel file (what ``--hash=sha256:`` wants)."""
    tag: str
    reused: bool
    """True when an identical wheel was already in the wheelhouse."""

    @property
    def filename(self) -> str:
        return self.path.name


def wheel_version(dist: Distribution) -> str:
    """The version the wheel carries: the installed one, normalised, else ``0+local``.

    The same rule as the lock's pins, so ``name==version`` in requirements.txt matches.
    """
    if not dist.version:
        return LOCAL_VERSION
    try:
        return str(Version(dist.version))
    except InvalidVersion:
        return LOCAL_VERSION


def repack(dist: Distribution, wheelhouse: Path, *, python: str) -> RepackedWheel:
    """Make (or find) the wheel of ``dist`` for Python ``python`` (``X.Y``) in ``wheelhouse``.

    Raises :class:`RepackError` for a distribution that cannot be packed; OSError only for
    a wheelhouse that cannot be written.
    """
    target = _PYTHON.match(python)
    if target is None:
        raise ValueError(f"python must be X.Y, not {python!r}")
    if not _NAME.match(dist.name):
        raise RepackError(
            f"{dist.display_name} ({dist.path}): {dist.name!r} is not a valid project name, "
            "so no wheel can carry it; rename its metadata or install it from source"
        )
    names = _Names(dist.name.replace("-", "_"), wheel_version(dist))
    with ExitStack() as stack:
        contents = _collect(dist, names, stack)
        payload = _drop_bytecode(contents.files)
        if not payload and contents.required:
            raise RepackError(
                f"{dist.display_name} {names.version} ({dist.path}): none of the files its "
                "metadata lists exists any more; reinstall it, or remove it if unused"
            )
        tag, purelib = _tag(payload, contents, (int(target[1]), int(target[2])), dist)
        members = _dist_info_members(names, contents, payload, tag, purelib, dist)
        return _store(dist, wheelhouse, names, tag, (*payload, *members))


# --------------------------------------------------------------------------- members


@dataclass(frozen=True)
class _Names:
    project: str
    """The escaped project name (``acme_utils``) used in file and directory names."""
    version: str

    @property
    def base(self) -> str:
        return f"{self.project}-{self.version}"

    @property
    def dist_info(self) -> str:
        return f"{self.base}.dist-info"

    def data(self, scheme: str, rest: str) -> str:
        return f"{self.base}.data/{scheme}/{rest}"


@dataclass(frozen=True)
class _Member:
    """One file of the wheel and where its bytes come from: a file, a zip member, or here."""

    name: str
    mode: int
    origin: str
    path: Path | None = None
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False)

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        try:
            with self._open() as handle:
                while block := handle.read(_CHUNK):
                    yield block
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RepackError(f"cannot read {self.origin}: {reason}") from exc

    def _open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        assert self.path is not None
        return open(self.path, "rb")

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def head(self, size: int) -> bytes:
        if self.data is not None:
            return self.data[:size]
        try:
            with self._open() as handle:
                return handle.read(size)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RepackError(f"cannot read {self.origin}: {reason}") from exc


@dataclass(frozen=True)
class _Contents:
    """What one install kind contributes before tagging: files and metadata pieces."""

    files: tuple[_Member, ...]
    metadata: bytes
    """The METADATA file, Name and Version already those of the wheel."""
    meta_files: tuple[_Member, ...] = ()
    """Other ``.dist-info`` files, named relative to it (entry_points.txt, licenses ...)."""
    wheel_tags: tuple[str, ...] = ()
    """Tags of the WHEEL file the distribution was installed from, when it was a wheel."""
    purelib: bool = True
    required: bool = False
    """True when the metadata listed payload files, so an empty payload means a broken install."""


def _file_member(name: str, path: Path, st: os.stat_result | None = None) -> _Member | None:
    """A regular file on disk (symlinks followed, as import does); ``None`` for anything else."""
    try:
        st = st or os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _Member(_check_name(name, path), _mode(st.st_mode), str(path), path=path)


def _mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def _check_name(name: str, where: object) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RepackError(
            f"{where}: the file name is not valid UTF-8, so no wheel can hold it; rename it"
        ) from exc
    return name


def _drop_bytecode(members: Iterable[_Member]) -> tuple[_Member, ...]:
    """No ``__pycache__`` and no ``.pyc`` beside its source; a sourceless module is kept."""
    by_name = {m.name: m for m in members}
    out = []
    for name, member in sorted(by_name.items()):
        if "__pycache__/" in name or name.startswith("__pycache__"):
            continue
        if name.endswith((".pyc", ".pyo")) and name[:-1] in by_name:
            continue
        out.append(member)
    return tuple(out)


def _collect(dist: Distribution, names: _Names, stack: ExitStack) -> _Contents:
    if dist.kind == "egg-link" or (dist.kind == "dist-info" and dist.editable and dist.target):
        return _from_source_tree(dist, names)
    if dist.kind == "dist-info":
        return _from_dist_info(dist, names)
    if dist.kind == "egg-info":
        return _from_egg_info(dist, names)
    if dist.kind == "egg":
        return _from_egg(dist, names, stack)
    if dist.kind == "bare":
        files = _lib_files(dist, dist.files or (), names, frozenset())
        return _Contents(files, _synthesized_metadata(dist, names), required=True)
    raise RepackError(f"{dist.path}: unknown install kind {dist.kind!r}")


# --------------------------------------------------------------------------- dist-info


def _from_dist_info(dist: Distribution, names: _Names) -> _Contents:
    meta_files, metadata, wheel, entry_points = _dist_info_dir(dist, names)
    wheel_fields = header_fields(decode_text(wheel)[0]) if wheel else {}
    tags = tuple(wheel_fields.get("tag", []))
    purelib = wheel_fields.get("root-is-purelib", ["true"])[0].lower() != "false"
    own = dist.path.name + "/"
    if dist.files is not None:
        listed = [rel for rel in dist.files if not rel.startswith(own)]
        files = _lib_files(dist, listed, names, _script_names(entry_points))
        required = bool(listed)
    else:
        files = _top_level_files(dist, dist.lib_dir, dist.top_level, "no RECORD")
        required = True
    return _Contents(files, metadata, meta_files, tags, purelib, required)


def _dist_info_dir(
    dist: Distribution, names: _Names
) -> tuple[tuple[_Member, ...], bytes, bytes | None, bytes | None]:
    """(carried files, METADATA, original WHEEL, entry_points.txt) of a ``.dist-info`` dir."""
    carried: list[_Member] = []
    metadata = wheel = entry_points = None
    for rel, path, st in _walk(dist.path):
        if rel == "METADATA":
            metadata = _small(path)
        elif rel == "WHEEL":
            wheel = _small(path)
        elif rel in _NOT_CARRIED or rel.endswith((".pyc", ".pyo")):
            continue
        else:
            if rel == "entry_points.txt":
                entry_points = _small(path)
            member = _file_member(rel, path, st)
            if member is not None:
                carried.append(member)
    if metadata is None:
        text = _synthesized_metadata(dist, names)
    else:
        text = _with_identity(metadata, dist, names)
    return tuple(carried), text, wheel, entry_points


# --------------------------------------------------------------------------- egg-info


def _from_egg_info(dist: Distribution, names: _Names) -> _Contents:
    if dist.path.is_dir():
        pkg_info = _small_if_exists(dist.path / "PKG-INFO")
        meta = _egg_meta_files(dist.path)
    else:
        pkg_info = _small(dist.path)
        meta = ()
    metadata = _converted_metadata(pkg_info, dist, names)
    if dist.files is not None:
        own = dist.path.name + "/"
        listed = [rel for rel in dist.files if not rel.startswith(own) and rel != dist.path.name]
        scripts = _script_names(_meta_bytes(meta, "entry_points.txt"))
        files = _lib_files(dist, listed, names, scripts)
        return _Contents(files, metadata, meta, required=bool(listed))
    files = _top_level_files(dist, dist.lib_dir, dist.top_level, "no installed-files.txt")
    files += _nspkg_pth(dist)
    return _Contents(files, metadata, meta, required=True)


def _egg_meta_files(info_dir: Path) -> tuple[_Member, ...]:
    out = []
    for name in _EGG_META:
        member = _file_member(name, info_dir / name)
        if member is not None:
            out.append(_Member(name, 0o644, member.origin, data=member.read()))
    return tuple(out)


def _meta_bytes(meta: Iterable[_Member], name: str) -> bytes | None:
    return next((m.read() for m in meta if m.name == name), None)


def _nspkg_pth(dist: Distribution) -> tuple[_Member, ...]:
    """setuptools' ``NAME-VER-pyX.Y-nspkg.pth`` beside an egg-info: wheels carry it at the root."""
    stem = dist.path.name.removesuffix(".egg-info")
    member = _file_member(f"{stem}-nspkg.pth", dist.lib_dir / f"{stem}-nspkg.pth")
    return (member,) if member else ()


def _top_level_files(
    dist: Distribution, root: Path, top_level: Iterable[str], why: str
) -> tuple[_Member, ...]:
    """The packages and modules named by top_level.txt, found in ``root`` (the lib dir)."""
    wanted = [name for name in top_level if name.isidentifier()]
    if not wanted:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): {why} and no top_level.txt, so nothing says "
            "which files are its own; reinstall it with pip, or copy it in as a plain package"
        )
    children = _namespace_children(dist)
    out: list[_Member] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError as exc:
        raise RepackError(f"cannot list {root}: {exc.strerror}") from exc
    for name in wanted:
        package = root / name
        if package.is_dir():
            only = children.get(name) if not (package / "__init__.py").exists() else None
            out.extend(_tree(package, name, only))
        for entry in entries:
            if _module_stem(entry) == name and (root / entry).is_file():
                member = _file_member(entry, root / entry)
                if member is not None:
                    out.append(member)
    if not out:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): none of {', '.join(wanted)} (its top-level "
            f"names) is in {root}; it is not importable there, so it cannot be packed"
        )
    return tuple(out)


def _namespace_children(dist: Distribution) -> dict[str, frozenset[str]]:
    """For a namespace dir shared with other dists: the children SOURCES.txt names as ours."""
    if not dist.path.is_dir():
        return {}
    sources = _small_if_exists(dist.path / "SOURCES.txt")
    if sources is None:
        return {}
    out: dict[str, set[str]] = {}
    for line in text_lines(sources):
        parts = line.replace("\\", "/").split("/")
        for top in dist.top_level:
            if top in parts[:-1]:
                index = parts.index(top)
                out.setdefault(top, set()).add(parts[index + 1])
    return {key: frozenset(value) for key, value in out.items()}


def _module_stem(filename: str) -> str | None:
    if not filename.endswith((".py", ".pyc", ".so", ".pyd")):
        return None
    stem = filename.split(".", 1)[0]
    return stem if stem.isidentifier() else None


# --------------------------------------------------------------------------- eggs


def _from_egg(dist: Distribution, names: _Names, stack: ExitStack) -> _Contents:
    if dist.zipped:
        entries = _zip_entries(dist, stack)
    else:
        entries = [(rel, _file_member(rel, path, st)) for rel, path, st in _walk(dist.path)]
    files: list[_Member] = []
    info: dict[str, _Member] = {}
    for rel, member in entries:
        if member is None:
            continue
        if rel.startswith("EGG-INFO/"):
            info[rel.removeprefix("EGG-INFO/")] = member
        else:
            files.append(member)
    if "PKG-INFO" not in info:
        raise RepackError(
            f"{dist.path}: the egg has no EGG-INFO/PKG-INFO, so its name and version are "
            "unknown; reinstall it from an sdist or wheel"
        )
    meta = tuple(
        _Member(name, 0o644, info[name].origin, data=info[name].read())
        for name in _EGG_META
        if name in info
    )
    scripts = _script_names(_meta_bytes(meta, "entry_points.txt"))
    for rel, member in sorted(info.items()):
        script = rel.removeprefix("scripts/")
        if script != rel and "/" not in script and script not in scripts:
            data = _relocatable_script(member.read())
            files.append(_Member(names.data("scripts", script), 0o755, member.origin, data=data))
    native = text_lines(info["native_libs.txt"].read()) if "native_libs.txt" in info else ()
    files = _without_egg_stubs(files, native)
    metadata = _converted_metadata(info["PKG-INFO"].read(), dist, names)
    return _Contents(tuple(files), metadata, meta, required=True)


def _zip_entries(dist: Distribution, stack: ExitStack) -> list[tuple[str, _Member | None]]:
    """Members of a zipped egg, streamed from the archive (never unpacked to disk)."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(dist.path))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RepackError(
            f"{dist.path}: the zipped egg cannot be read ({reason}); reinstall it"
        ) from exc
    out: list[tuple[str, _Member | None]] = []
    for info in infos:
        rel = posixpath.normpath(info.filename)
        if info.is_dir() or rel.startswith(("/", "../")) or rel == "..":
            continue
        mode = _mode(info.external_attr >> 16)

        def opener(info: zipfile.ZipInfo = info) -> BinaryIO:
            return archive.open(info)  # type: ignore[return-value]

        out.append((rel, _Member(rel, mode, f"{dist.path}!{rel}", opener=opener)))
    return out


def _without_egg_stubs(files: list[_Member], native_libs: Iterable[str]) -> list[_Member]:
    """bdist_egg's ``foo.py`` loader stub beside ``foo.so`` unpacks it via pkg_resources: drop."""
    stubs = {
        posixpath.join(posixpath.dirname(lib), posixpath.basename(lib).split(".", 1)[0] + ".py")
        for lib in native_libs
    }
    out = []
    for member in files:
        if member.name in stubs and b"__bootstrap__" in member.read():
            continue
        out.append(member)
    return out


# --------------------------------------------------------------------------- develop trees


def _from_source_tree(dist: Distribution, names: _Names) -> _Contents:
    """A develop install: pack its importable packages from the tree it points to."""
    target = dist.target
    if target is None or not target.is_dir():
        raise RepackError(
            f"develop install {dist.path.name}: its source tree {target} is gone, so there is "
            "nothing to pack; restore the tree, or install the package from an index"
        )
    if dist.kind == "dist-info":
        meta_files, metadata, _, _ = _dist_info_dir(dist, names)
        mapping, roots = _editable_locations(dist)
        top_level = dist.top_level or tuple(sorted(mapping))
        files = _tree_files(dist, top_level, mapping, [*roots, target, target / "src"])
        return _Contents(files, metadata, meta_files, required=True)
    egg_info = find_egg_info(target, dist.name)
    if egg_info is None and not any(
        (target / marker).is_file() for marker in ("setup.py", "setup.cfg", "pyproject.toml")
    ):
        raise RepackError(
            f"develop install {dist.path.name}: {target} has no {dist.display_name}.egg-info "
            "nor setup.py/pyproject.toml, so nothing says what it is; run `pip install -e .` "
            "there again, or install the package from an index"
        )
    pkg_info = _small_if_exists(egg_info / "PKG-INFO") if egg_info else None
    meta = _egg_meta_files(egg_info) if egg_info else ()
    top_level = dist.top_level or _tree_packages(target)
    files = _tree_files(dist, top_level, {}, [target])
    return _Contents(files, _converted_metadata(pkg_info, dist, names), meta, required=True)


def _tree_packages(target: Path) -> tuple[str, ...]:
    """Package dirs at the root of a tree with no top_level.txt (not tests, docs, builds)."""
    try:
        entries = sorted(target.iterdir())
    except OSError:
        return ()
    return tuple(
        entry.name
        for entry in entries
        if entry.name.isidentifier()
        and entry.name not in _SKIP_TREE_DIRS
        and (entry / "__init__.py").is_file()
    )


def _editable_locations(dist: Distribution) -> tuple[dict[str, Path], list[Path]]:
    """Where a PEP 660 editable install imports from: finder MAPPING and ``.pth`` path lines."""
    mapping: dict[str, Path] = {}
    roots: list[Path] = []
    for rel in dist.files or ():
        path = dist.lib_dir / rel
        if "/" in rel or not path.is_file():
            continue
        if rel.startswith("__editable__") and rel.endswith(".pth"):
            for line in decode_text(_small(path))[0].splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    roots.append(Path(line))
        elif rel.startswith("__editable__") and rel.endswith("_finder.py"):
            mapping.update(_finder_mapping(_small(path)))
    return mapping, roots


def _finder_mapping(source: bytes) -> dict[str, Path]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "MAPPING" and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            if isinstance(value, dict):
                return {str(k): Path(str(v)) for k, v in value.items()}
    return {}


def _tree_files(
    dist: Distribution, top_level: Iterable[str], mapping: dict[str, Path], roots: list[Path]
) -> tuple[_Member, ...]:
    out: list[_Member] = []
    wanted = [name for name in top_level if name.isidentifier()]
    for name in wanted:
        found = [mapping[name]] if name in mapping else []
        for root in roots:
            found += [root / name, *sorted(root.glob(f"{name}.*"))]
        for path in found:
            if path.is_dir() and path.name == name:
                out.extend(_tree(path, name, None))
                break
            if path.is_file() and _module_stem(path.name) == name:
                member = _file_member(path.name, path)
                if member is not None:
                    out.append(member)
                break
    if not out:
        raise RepackError(
            f"develop install {dist.path.name}: none of its packages "
            f"({', '.join(wanted) or 'no top_level.txt'}) is in {dist.target}; "
            "restore the tree, or install the package from an index"
        )
    return tuple(out)


# --------------------------------------------------------------------------- lib-dir files


def _lib_files(
    dist: Distribution, listed: Iterable[str], names: _Names, console: frozenset[str]
) -> tuple[_Member, ...]:
    """Lib-dir-relative paths (RECORD, installed-files.txt) as members; outside ones mapped.

    Paths that leave the lib dir are the install's scripts, headers and data: they go to
    the wheel's ``.data`` dir when they exist (console-script wrappers are left out: pip
    writes them again from entry_points.txt for the new interpreter).
    """
    out: list[_Member] = []
    for raw in listed:
        rel = posixpath.normpath(raw.replace("\\", "/"))
        if rel.startswith("/") or rel in (".", ""):
            continue
        if not rel.startswith("../"):
            member = _file_member(rel, dist.lib_dir / rel)
        else:
            member = _outside_member(dist, rel, names, console)
        if member is not None:
            out.append(member)
    return tuple(out)


_PLATLIB = re.compile(r"^lib(?:64)?/python\d\.\d+/(?:site-packages/)?(?P<rest>[^/].*)$")
_HEADERS = re.compile(r"^include/(?:site/)?python[^/]+/[^/]+/(?P<rest>.+)$")


def _outside_member(
    dist: Distribution, rel: str, names: _Names, console: frozenset[str]
) -> _Member | None:
    parts = rel.split("/")
    ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
    remainder = "/".join(parts[ups:])
    if not remainder or ups > _prefix_depth(dist.lib_dir):
        return None
    candidates = [dist.lib_dir / remainder] if ups == 2 else []  # pip --target moved it here
    candidates.append(Path(os.path.normpath(dist.lib_dir / rel)))
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return None
    first, _, rest = remainder.partition("/")
    if first in ("bin", "Scripts") and rest:
        if rest in console or rest.removesuffix(".exe") in console:
            return None
        member = _file_member(names.data("scripts", rest), path)
        if member is None:
            return None
        return _Member(member.name, 0o755, member.origin, data=_relocatable_script(member.read()))
    if first == "include" and rest:
        match = _HEADERS.match(remainder)
        return _file_member(names.data("headers", match["rest"] if match else rest), path)
    match = _PLATLIB.match(remainder)
    if match:
        return _file_member(match["rest"], path)
    return _file_member(names.data("data", remainder), path)


def _prefix_depth(lib_dir: Path) -> int:
    """How far below its install prefix a lib dir is: RECORD paths never climb higher.

    ``PREFIX/lib/pythonX.Y/site-packages`` is 3; ``~/lib/pythonX.Y`` (and what pip
    ``--target`` records, relative to its temporary ``lib/python``) is 2.
    """
    return 3 if lib_dir.name in ("site-packages", "dist-packages") else 2


def _relocatable_script(data: bytes) -> bytes:
    """``#!python``: pip rewrites that first line to the venv's interpreter on install.

    Scripts are packed executable whatever their mode here: pip (23) only sets the bit
    from the archive, and a ``pip --target`` install leaves them 0644.
    """
    if not data.startswith(b"#!"):
        return data
    first, newline, rest = data.partition(b"\n")
    if b"python" not in first.lower():
        return data
    return b"#!python" + (b"\r" if first.endswith(b"\r") else b"") + newline + rest


def _script_names(entry_points: bytes | None) -> frozenset[str]:
    if not entry_points:
        return frozenset()
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(decode_text(entry_points)[0])
    except configparser.Error:
        return frozenset()
    return frozenset(
        name.strip()
        for section in ("console_scripts", "gui_scripts")
        if parser.has_section(section)
        for name in parser.options(section)
    )


def _walk(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Files under ``root`` (``/``-relative names), without ``__pycache__``; sorted."""
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = os.path.relpath(current, root)
        for name in sorted(files):
            path = Path(current, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            yield (name if base == "." else f"{base}/{name}").replace(os.sep, "/"), path, st


def _tree(package: Path, name: str, only: frozenset[str] | None) -> list[_Member]:
    """A package dir as members named from its parent; ``only`` limits a namespace's children."""
    out = []
    for rel, path, st in _walk(package):
        if only is not None and rel.split("/", 1)[0] not in only:
            continue
        member = _file_member(f"{name}/{rel}", path, st)
        if member is not None:
            out.append(member)
    return out


def _small(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RepackError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _small_if_exists(path: Path) -> bytes | None:
    return _small(path) if path.is_file() else None


# --------------------------------------------------------------------------- metadata

_KEPT_FIELDS = {
    name.lower(): name
    for name in (
        "Summary", "Home-page", "Download-URL", "Author", "Author-email", "Maintainer",
        "Maintainer-email", "License", "Keywords", "Platform", "Supported-Platform",
        "Classifier", "Project-URL", "Requires-Python", "Requires-External",
        "Description-Content-Type",
    )
}  # fmt: skip
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _identity_name(dist: Distribution) -> str:
    return dist.display_name if canonical(dist.display_name) == dist.name else dist.name


def _synthesized_metadata(dist: Distribution, names: _Names) -> bytes:
    """For a copy with no metadata at all: who it is, and that it is a local copy."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {_identity_name(dist)}",
        f"Version: {names.version}",
        "Summary: Local copy with no metadata, repacked by concentric-migrate",
        *_requirement_lines(dist.requires),
    ]
    return ("\n".join(lines) + "\n").encode()


def _converted_metadata(pkg_info: bytes | None, dist: Distribution, names: _Names) -> bytes:
    """PKG-INFO (metadata 1.x, maybe Latin-1) -> METADATA 2.1 with the record's requirements.

    Name and Version are the record's (so egg names ``wheel convert`` rejects still work);
    Requires-Dist comes from requires.txt as the inventory read it.
    """
    fields: list[tuple[str, str]] = []
    description = ""
    if pkg_info:
        headers, body = _header_block(decode_text(pkg_info)[0])
        for key, lines in headers:
            lower = key.lower()
            if lower == "description":
                description = _unindent_description(lines)
                continue
            if lower not in _KEPT_FIELDS:
                continue
            value = " ".join(" ".join(line.split()) for line in lines).strip()
            if not value or value == "UNKNOWN":
                continue
            if lower == "requires-python" and not _valid_specifier(value):
                continue
            fields.append((_KEPT_FIELDS[lower], value))
        description = body.strip("\n") or description
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {_identity_name(dist)}",
        f"Version: {names.version}",
        *(f"{key}: {value}" for key, value in fields),
        *_requirement_lines(dist.requires),
    ]
    text = "\n".join(lines) + "\n"
    if description.strip() and description.strip() != "UNKNOWN":
        text += "\n" + description.rstrip() + "\n"
    return text.encode("utf-8", "surrogateescape")


def _requirement_lines(requires: Iterable[str]) -> list[str]:
    requires = list(requires)
    extras = sorted({extra for r in requires for extra in _EXTRA.findall(r)})
    return [*(f"Provides-Extra: {e}" for e in extras), *(f"Requires-Dist: {r}" for r in requires)]


def _valid_specifier(value: str) -> bool:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return False
    return True


def _header_block(text: str) -> tuple[list[tuple[str, list[str]]], str]:
    """RFC 822 headers in order (continuation lines kept apart) and the body after them."""
    headers: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.strip():
            return headers, "\n".join(lines[index + 1 :])
        if line[0] in " \t" and headers:
            headers[-1][1].append(line)
            continue
        key, sep, value = line.partition(":")
        if sep:
            headers.append((key.strip(), [value.strip()]))
    return headers, ""


def _unindent_description(lines: list[str]) -> str:
    """setuptools wrote continuation lines as ``8 spaces|``, distutils as 8 spaces."""
    out = [lines[0]]
    for line in lines[1:]:
        if line.startswith("       |"):
            out.append(line[8:])
        else:
            out.append(line[8:] if line.startswith(" " * 8) else line.lstrip())
    return "\n".join(out)


def _with_identity(metadata: bytes, dist: Distribution, names: _Names) -> bytes:
    """A dist-info's METADATA kept byte for byte, unless Name/Version differ from the wheel's."""
    fields = header_fields(decode_text(metadata)[0])
    name = (fields.get("name") or [""])[0]
    version = (fields.get("version") or [""])[0]
    try:
        version_ok = str(Version(version)) == names.version
    except InvalidVersion:
        version_ok = False
    if canonical(name) == dist.name and version_ok:
        return metadata
    text, _ = decode_text(metadata)
    head, sep, body = text.partition("\n\n")
    kept = []
    for line in head.splitlines():
        key = line.partition(":")[0].strip().lower()
        if key == "name":
            line = f"Name: {_identity_name(dist)}"
        elif key == "version":
            line = f"Version: {names.version}"
        kept.append(line)
    if not name:
        kept.append(f"Name: {_identity_name(dist)}")
    if not version:
        kept.append(f"Version: {names.version}")
    return ("\n".join(kept) + "\n" + (sep[1:] + body if sep else "")).encode(
        "utf-8", "surrogateescape"
    )


def _dist_info_members(
    names: _Names,
    contents: _Contents,
    payload: tuple[_Member, ...],
    tag: str,
    purelib: bool,
    dist: Distribution,
) -> tuple[_Member, ...]:
    prefix = names.dist_info + "/"
    wheel = [
        "Wheel-Version: 1.0",
        f"Generator: {GENERATOR}",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
        *(f"Tag: {t}" for t in _expand(tag)),
    ]
    members = {
        m.name: _Member(prefix + m.name, m.mode, m.origin, m.path, m.data, m.opener)
        for m in contents.meta_files
    }
    members["METADATA"] = _Member(prefix + "METADATA", 0o644, "METADATA", data=contents.metadata)
    members["WHEEL"] = _Member(
        prefix + "WHEEL", 0o644, "WHEEL", data=("\n".join(wheel) + "\n").encode()
    )
    if "top_level.txt" not in members:
        top = dist.top_level or top_level_from_files([m.name for m in payload])
        if top:
            data = ("\n".join(top) + "\n").encode()
            members["top_level.txt"] = _Member(prefix + "top_level.txt", 0o644, "top", data=data)
    return tuple(members[key] for key in sorted(members))


# --------------------------------------------------------------------------- tags

_SOABI = re.compile(r"\.cpython-(?P<ver>\d)(?P<minor>\d+)(?P<flags>[dmu]*t?)-(?P<plat>[^./]+)\.so$")
_PYTHON_CLASSIFIER = re.compile(r"Programming Language :: Python :: ([23])(?:\.\d+)?(?: ::|$)")
_ELF_ARCH = {3: "i686", 62: "x86_64", 183: "aarch64", 40: "armv7l", 22: "s390x"}
_TRIPLET_ARCH = {"i386": "i686", "i486": "i686", "i586": "i686", "arm": "armv7l"}


def _tag(
    payload: Iterable[_Member], contents: _Contents, target: tuple[int, int], dist: Distribution
) -> tuple[str, bool]:
    """(wheel tag, Root-Is-Purelib). Pure code: ``pyN``; extensions: the target's CPython."""
    extensions = [m for m in payload if m.name.endswith((".so", ".pyd")) and ".data/" not in m.name]
    if extensions:
        return _extension_tag(extensions, target, dist), False
    flat = [tag for text in contents.wheel_tags if text.count("-") == 2 for tag in parse_tag(text)]
    if flat and (not contents.purelib or any(t.platform != "any" for t in flat)):
        return _compressed(flat), False  # binary payload that is no extension module: as pip chose
    majors = {str(target[0])}
    majors.update(m[1] for t in flat if (m := re.match(r"(?:py|cp)([23])", t.interpreter)))
    classifiers = header_fields(decode_text(contents.metadata)[0]).get("classifier", [])
    majors.update(m[1] for c in classifiers if (m := _PYTHON_CLASSIFIER.match(c)))
    return f"{'.'.join(f'py{major}' for major in sorted(majors))}-none-any", True


def _compressed(tags: list[Tag]) -> str:
    parts = (sorted({getattr(t, key) for t in tags}) for key in ("interpreter", "abi", "platform"))
    return "-".join(".".join(part) for part in parts)


def _extension_tag(extensions: list[_Member], target: tuple[int, int], dist: Distribution) -> str:
    specific: set[tuple[str, str]] = set()
    platforms: set[str] = set()
    abi3 = plain = False
    for member in extensions:
        match = _SOABI.search(member.name)
        if match:
            version = (int(match["ver"]), int(match["minor"]))
            if version != target:
                raise RepackError(
                    f"{dist.display_name} ({dist.path}): {member.name} is built for CPython "
                    f"{version[0]}.{version[1]}, but the target is Python {target[0]}."
                    f"{target[1]}; install a build for {target[0]}.{target[1]} from an index"
                )
            specific.add((f"{match['ver']}{match['minor']}", match["flags"]))
            platforms.add(_triplet_platform(match["plat"]))
        elif member.name.endswith(".abi3.so"):
            abi3 = True
            platforms.add(_elf_platform(member))
        elif re.search(r"\.(pypy|pp)[^/]*\.so$", member.name):
            raise RepackError(
                f"{dist.display_name} ({dist.path}): {member.name} is built for PyPy; "
                "only CPython extension modules can be repacked"
            )
        else:
            plain = True
            platforms.add(_elf_platform(member))
    if len(platforms) > 1:
        raise RepackError(
            f"{dist.display_name} ({dist.path}): extension modules for several platforms "
            f"({', '.join(sorted(platforms))}); it cannot have worked here as installed"
        )
    platform = platforms.pop()
    python = f"cp{target[0]}{target[1]}"
    if specific:
        version, flags = sorted(specific)[0]
        return f"cp{version}-cp{version}{flags}-{platform}"
    if abi3 and not plain:
        return f"{python}-abi3-{platform}"
    if target[0] == 2:
        return f"{python}-{_py2_abi(extensions)}-{platform}"
    flags = "m" if (3, 3) <= target <= (3, 7) else ""
    return f"{python}-{python}{flags}-{platform}"


def _py2_abi(extensions: list[_Member]) -> str:
    """A Python 2 ``.so`` names the unicode width it was built for in its symbols."""
    ucs4 = ucs2 = False
    for member in extensions:
        data = member.read()
        ucs4 = ucs4 or b"PyUnicodeUCS4_" in data
        ucs2 = ucs2 or b"PyUnicodeUCS2_" in data
    if ucs4 and not ucs2:
        return "cp27mu"
    if ucs2 and not ucs4:
        return "cp27m"
    return "none"


def _triplet_platform(triplet: str) -> str:
    """``x86_64-linux-gnu`` (from the SOABI suffix) -> ``linux_x86_64``."""
    arch, _, system = triplet.partition("-")
    if system.startswith("linux"):
        return f"linux_{_TRIPLET_ARCH.get(arch, arch)}"
    return _running_platform()


def _elf_platform(member: _Member) -> str:
    header = member.head(20)
    if header[:4] == b"\x7fELF" and len(header) >= 20:
        order = "little" if header[5] == 1 else "big"
        machine = int.from_bytes(header[18:20], order)
        if machine == 21:
            return "linux_ppc64le" if order == "little" else "linux_ppc64"
        if machine in _ELF_ARCH:
            return f"linux_{_ELF_ARCH[machine]}"
    return _running_platform()


def _running_platform() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _expand(tag: str) -> Iterator[str]:
    interpreters, abis, platforms = tag.split("-")
    for interpreter in interpreters.split("."):
        for abi in abis.split("."):
            for platform in platforms.split("."):
                yield f"{interpreter}-{abi}-{platform}"


# --------------------------------------------------------------------------- writing + cache


@dataclass(frozen=True)
class _Digest:
    hexdigest: str
    record: str
    size: int


def _digest(member: _Member) -> _Digest:
    hasher = hashlib.sha256()
    size = 0
    for block in member.chunks():
        hasher.update(block)
        size += len(block)
    return _Digest(hasher.hexdigest(), record_form(hasher.digest()), size)


def _order(name: str, dist_info: str) -> tuple[bool, str]:
    """Payload first, ``.dist-info`` last (what installers expect), each sorted."""
    return name.startswith(dist_info + "/"), name


def _store(
    dist: Distribution, wheelhouse: Path, names: _Names, tag: str, members: tuple[_Member, ...]
) -> RepackedWheel:
    filename = f"{names.base}-{tag}.whl"
    dist_info = names.dist_info
    ordered = sorted(members, key=lambda m: _order(m.name, dist_info))
    digests = {m.name: _digest(m) for m in ordered}
    key = _source_key(filename, ordered, digests)
    entry_path = wheelhouse / "index" / f"{key}.json"
    cached = _cached(wheelhouse, entry_path, filename)
    if cached is not None:
        return RepackedWheel(dist, cached[0], cached[1], tag, True)
    _make_wheelhouse(wheelhouse)
    handle, temp_name = tempfile.mkstemp(prefix=".repack-", suffix=".whl", dir=wheelhouse)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _write_wheel(out, dist_info, ordered, digests)
            out.flush()
            os.fsync(out.fileno())
        sha = _file_sha256(temp)
        final, reused = _place(wheelhouse, key, filename, temp, sha)
    finally:
        if temp.exists():
            temp.unlink()
    entry = {
        "format": FORMAT, "wheel": final.relative_to(wheelhouse).as_posix(), "sha256": sha,
        "name": dist.name, "version": names.version, "tag": tag,
    }  # fmt: skip
    _write_atomic(entry_path, (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode())
    return RepackedWheel(dist, final, sha, tag, reused)


def _make_wheelhouse(wheelhouse: Path) -> None:
    """Private folders (0700, like the journal's); a symlink could lead out of the home."""
    for folder in (wheelhouse.parent, wheelhouse):
        if folder.is_symlink():
            raise OSError(f"{folder} is a symlink: refusing to write the wheelhouse through it")
    wheelhouse.parent.mkdir(0o700, parents=True, exist_ok=True)
    wheelhouse.mkdir(0o700, exist_ok=True)


def _source_key(filename: str, ordered: list[_Member], digests: dict[str, _Digest]) -> str:
    hasher = hashlib.sha256(f"concentric-migrate wheelhouse {FORMAT}\n{filename}\n".encode())
    for member in ordered:
        digest = digests[member.name]
        hasher.update(f"{member.name}\t{member.mode:o}\t{digest.hexdigest}\n".encode())
    return hasher.hexdigest()


def _cached(wheelhouse: Path, entry_path: Path, filename: str) -> tuple[Path, str] | None:
    try:
        entry = json.loads(entry_path.read_bytes())
        path = wheelhouse / entry["wheel"]
        expected = entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if entry.get("format") != FORMAT or path.name != filename:
        return None
    try:
        actual = _file_sha256(path)
    except OSError:
        return None
    return (path, actual) if actual == expected else None


def _place(wheelhouse: Path, key: str, filename: str, temp: Path, sha: str) -> tuple[Path, bool]:
    """Under its normal name when free (or already these bytes), else in ``variants/KEY/``."""
    flat = wheelhouse / filename
    try:
        _create_exclusive(temp, flat)
        return flat, False
    except FileExistsError:
        pass
    if _file_sha256(flat) == sha:
        return flat, True
    variant = wheelhouse / "variants" / key / filename
    variant.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, variant)
    return variant, False


def _create_exclusive(source: Path, destination: Path) -> None:
    """``destination`` made from ``source`` only if it does not exist yet (atomic with links)."""
    try:
        os.link(source, destination)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system
        with open(source, "rb") as src, open(destination, "xb") as dest:
            shutil.copyfileobj(src, dest)


def _write_wheel(
    out: BinaryIO, dist_info: str, ordered: list[_Member], digests: dict[str, _Digest]
) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in ordered:
            expected = digests[member.name]
            info = _zip_info(member.name, member.mode, expected.size)
            hasher = hashlib.sha256()
            with archive.open(info, "w") as dest:
                for block in member.chunks():
                    hasher.update(block)
                    dest.write(block)
            if hasher.hexdigest() != expected.hexdigest:
                raise RepackError(
                    f"{member.origin} changed while it was being packed; run the command again"
                )
            writer.writerow([member.name, expected.record, str(expected.size)])
        record = f"{dist_info}/RECORD"
        writer.writerow([record, "", ""])
        data = rows.getvalue().encode()
        with archive.open(_zip_info(record, 0o644, len(data)), "w") as dest:
            dest.write(data)


def _zip_info(name: str, mode: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.file_size = size
    return info


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)

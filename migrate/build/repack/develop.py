"""Contents of a develop install (``setup.py develop``, ``pip install -e``): the source tree
the egg-link or finder names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from migrate.build.repack.distinfo import dist_info_dir
from migrate.build.repack.egginfo import egg_meta_files, module_stem
from migrate.build.repack.members import (
    Contents,
    Member,
    Names,
    RepackError,
    file_member,
    read_small,
    small_if_exists,
    tree_members,
)
from migrate.build.repack.metadata import converted_metadata
from migrate.inventory.egglink import find_egg_info
from migrate.inventory.metadata import decode_text
from migrate.inventory.model import Distribution

_SKIP_TREE_DIRS = frozenset(
    {"__pycache__", "test", "tests", "testing", "doc", "docs", "build", "dist", "examples"}
)


def from_source_tree(dist: Distribution, names: Names) -> Contents:
    """A develop install: pack its importable packages from the tree it points to."""
    target = dist.target
    if target is None or not target.is_dir():
        raise RepackError(
            f"develop install {dist.path.name}: its source tree {target} is gone, so there is "
            "nothing to pack; restore the tree, or install the package from an index"
        )
    if dist.kind == "dist-info":
        meta_files, metadata, _, _ = dist_info_dir(dist, names)
        mapping, roots = _editable_locations(dist)
        top_level = dist.top_level or tuple(sorted(mapping))
        files = _tree_files(dist, top_level, mapping, [*roots, target, target / "src"])
        return Contents(files, metadata, meta_files, required=True)
    egg_info = find_egg_info(target, dist.name)
    if egg_info is None and not any(
        (target / marker).is_file() for marker in ("setup.py", "setup.cfg", "pyproject.toml")
    ):
        raise RepackError(
            f"develop install {dist.path.name}: {target} has no {dist.display_name}.egg-info "
            "nor setup.py/pyproject.toml, so nothing says what it is; run `pip install -e .` "
            "there again, or install the package from an index"
        )
    pkg_info = small_if_exists(egg_info / "PKG-INFO") if egg_info else None
    meta = egg_meta_files(egg_info) if egg_info else ()
    top_level = dist.top_level or _tree_packages(target)
    files = _tree_files(dist, top_level, {}, [target])
    return Contents(files, converted_metadata(pkg_info, dist, names), meta, required=True)


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
            for line in decode_text(read_small(path))[0].splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    roots.append(Path(line))
        elif rel.startswith("__editable__") and rel.endswith("_finder.py"):
            mapping.update(_finder_mapping(read_small(path)))
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
) -> tuple[Member, ...]:
    out: list[Member] = []
    wanted = [name for name in top_level if name.isidentifier()]
    for name in wanted:
        found = [mapping[name]] if name in mapping else []
        for root in roots:
            found += [root / name, *sorted(root.glob(f"{name}.*"))]
        for path in found:
            if path.is_dir() and path.name == name:
                out.extend(tree_members(path, name, None))
                break
            if path.is_file() and module_stem(path.name) == name:
                member = file_member(path.name, path)
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

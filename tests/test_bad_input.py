"""Broken and hostile input becomes findings; everything else is still inventoried."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, module, write_files
from click.testing import CliRunner

from migrate.build.wheelfile import WheelSpec
from migrate.cli import cli
from migrate.demo import write_zipped_egg
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.inventory.model import Inventory


def findings_for(inv: Inventory, name: str) -> list[str]:
    return [f"{f.severity}: {f.message}" for f in inv.all_findings if name in str(f.path)]


def names(inv: Inventory) -> dict[str, str | None]:
    return {d.name: d.version for lib in inv.lib_dirs for d in lib.distributions}


@pytest.fixture
def broken_home(home: Path, tmp_path: Path) -> Path:
    """One lib dir holding every bad input of the issue, next to a healthy distribution."""
    lib = account_lib(home)
    install_wheels(
        lib,
        [
            WheelSpec("healthy", "1.0", {"healthy/__init__.py": module("1.0")}),
            WheelSpec("emptymeta", "2.0", {"emptymeta.py": b""}),
            WheelSpec("corruptmeta", "3.0", {"corruptmeta.py": b""}),
        ],
        tmp_path / "wheels",
    )
    (lib / "emptymeta-2.0.dist-info" / "METADATA").write_bytes(b"")
    (lib / "corruptmeta-3.0.dist-info" / "METADATA").write_bytes(b"\x00\x01\xff garbage \x00")
    write_files(
        lib,
        {
            "latin-1.0-py2.7.egg-info/PKG-INFO": "Metadata-Version: 1.0\nName: latin\nVersion: 1.0\nAuthor: José Müller\n".encode(
                "latin-1"
            ),
            "binary.pth": b"\x00\x01\x02\xff\xfe",
            "dangling.egg-link": f"{tmp_path / 'gone'}\n.",
        },
    )
    egg = write_zipped_egg(
        lib / f"trunc-0.1-py{PY}.egg", "trunc", "0.1", {"trunc/__init__.py": b"x" * 5000}
    )
    egg.write_bytes(egg.read_bytes()[:200])
    os.symlink("loop", lib / "loop")
    locked = lib / "locked"
    locked.mkdir()
    (locked / "__init__.py").write_text("")
    return home


def test_each_bad_input_is_a_finding_and_the_rest_is_inventoried(broken_home: Path) -> None:
    inv = take_inventory(discover(broken_home))
    found = names(inv)

    assert found["healthy"] == "1.0"
    assert found["emptymeta"] == "2.0", "name and version fall back to the directory name"
    assert found["corruptmeta"] == "3.0"
    assert found["latin"] == "1.0"
    assert found["trunc"] == "0.1", "a broken egg is still listed from its file name"
    assert found["dangling"] is None

    assert "error: metadata file is empty" in findings_for(inv, "emptymeta")
    assert "error: metadata file is binary (contains NUL bytes)" in findings_for(inv, "corruptmeta")
    assert [m for m in findings_for(inv, "latin") if "Latin-1" in m]
    assert [
        m for m in findings_for(inv, "trunc") if m.startswith("error: zipped egg cannot be read")
    ]
    assert [m for m in findings_for(inv, "binary.pth") if "binary" in m]
    assert [m for m in findings_for(inv, "dangling.egg-link") if "dangling" in m]
    assert [m for m in findings_for(inv, "loop") if "symbolic links" in m]


def test_cli_exits_0_and_reports_findings_in_json(broken_home: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(broken_home), "inventory", "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {f["severity"] for f in doc["findings"]} == {"warning", "error"}
    assert all(Path(f["path"]).is_absolute() for f in doc["findings"])
    assert "healthy" in {d["name"] for lib in doc["lib_dirs"] for d in lib["distributions"]}


@pytest.fixture
def world_readable_home() -> Iterator[Path]:
    """A home outside pytest's 0700 tmp dir, so an unprivileged child can traverse it."""
    root = Path(tempfile.mkdtemp(prefix="concentric-perm-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        for path in root.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        import shutil

        shutil.rmtree(root)


def _inventory_as_unprivileged(home: Path) -> Inventory:
    """Run the inventory in a forked child that drops to ``nobody`` when we are root.

    Root ignores permission bits, so the real kernel check needs a real other user.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            data = pickle.dumps(take_inventory(discover(home)))
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_unreadable_directories_become_findings(world_readable_home: Path) -> None:
    home = world_readable_home
    lib = account_lib(home)
    write_files(
        lib,
        {
            "fine.py": module("1"),
            "secret/__init__.py": "",
            "private-1.0.dist-info/METADATA": "Name: private\nVersion: 1.0\n",
        },
    )
    other_lib = account_lib(home, "closed")
    write_files(other_lib, {"hidden.py": ""})
    for path in home.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o644)
    (lib / "private-1.0.dist-info" / "METADATA").chmod(0)
    other_lib.chmod(0o311)  # traversable but not listable

    inv = _inventory_as_unprivileged(home)

    assert names(inv)["fine"] == "1"
    assert names(inv)["private"] == "1.0"
    assert [
        m for m in findings_for(inv, "private-1.0.dist-info/METADATA") if "Permission denied" in m
    ]
    assert [m for m in findings_for(inv, "webapps/closed") if "Permission denied" in m]


def test_egg_info_that_cannot_be_listed_is_read_file_by_file(world_readable_home: Path) -> None:
    """Egg-info folders are listed first (no failing open per absent file); one that can be
    entered but not listed is still read file by file, and an unreadable SOURCES.txt (only
    checked, never read) is still reported."""
    home = world_readable_home
    lib = account_lib(home)
    write_files(
        lib,
        {
            "closed-1.0.egg-info/PKG-INFO": "Name: closed\nVersion: 1.0\n",
            "closed-1.0.egg-info/top_level.txt": "closed\n",
            "closed-1.0.egg-info/requires.txt": "six\n",
            "closed-1.0.egg-info/SOURCES.txt": "closed/__init__.py\n",
            "closed/__init__.py": "",
            "secret-2.0.egg-info/PKG-INFO": "Name: secret\nVersion: 2.0\n",
            "secret-2.0.egg-info/SOURCES.txt": "secret.py\n",
            "secret.py": "",
        },
    )
    for path in home.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (lib / "closed-1.0.egg-info").chmod(0o311)  # traversable but not listable
    (lib / "secret-2.0.egg-info" / "SOURCES.txt").chmod(0)

    inv = _inventory_as_unprivileged(home)
    closed = {d.name: d for d in inv.lib_dirs[0].distributions}["closed"]

    assert (closed.version, closed.top_level, closed.requires) == ("1.0", ("closed",), ("six",))
    assert findings_for(inv, "closed") == []
    assert findings_for(inv, "secret-2.0.egg-info/SOURCES.txt") == [
        "warning: cannot read: Permission denied"
    ]


def test_lib_dir_symlinked_outside_home_is_not_followed(home: Path) -> None:
    (home / "lib").mkdir()
    os.symlink("/", home / "lib" / f"python{PY}")

    inv = take_inventory(discover(home))

    assert names(inv) == {}
    assert [m for m in findings_for(inv, f"python{PY}") if "outside the home" in m]


def test_nothing_from_the_account_is_executed(home: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    payload = f"open({str(canary)!r}, 'w').write('ran')\n"
    lib = account_lib(home)
    write_files(
        lib,
        {
            "evil.pth": f"import os; {payload}",
            "evilpkg/__init__.py": payload + "__version__ = '1'\n",
            "evilmod.py": payload,
            "sitecustomize.py": payload,
            "usercustomize.py": payload,
        },
    )
    zipfile.ZipFile(lib / f"evilegg-1-py{PY}.egg", "w").writestr(
        "EGG-INFO/PKG-INFO", "Name: evilegg\nVersion: 1\n"
    )

    result = CliRunner().invoke(cli, ["--home", str(home), "inventory", "--json"])

    assert result.exit_code == 0
    assert not canary.exists()
    assert stat.S_ISDIR(os.stat(lib).st_mode)


def test_a_zipped_egg_bomb_is_read_up_to_the_metadata_cap(tmp_path: Path) -> None:
    """A 300 MB ``requires.txt`` compresses to a few hundred kilobytes: the inventory reads
    zip members with the cap on-disk metadata has, so memory stays small (issue 16)."""
    home = tmp_path / "home"
    lib = account_lib(home)
    egg = lib / f"bomb-1.0-py{PY}.egg"
    with zipfile.ZipFile(egg, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("EGG-INFO/PKG-INFO", "Metadata-Version: 1.1\nName: bomb\nVersion: 1.0\n")
        archive.writestr("bomb/__init__.py", "")
        with archive.open("EGG-INFO/requires.txt", "w", force_zip64=True) as member:
            line = b"six>=1.0\n" * 100_000
            for _ in range(300 * 1024 * 1024 // len(line)):
                member.write(line)
    assert egg.stat().st_size < 2 * 1024 * 1024
    script = (
        "import json, resource, sys\n"
        "from migrate.discover.account import discover\n"
        "from migrate.inventory import take_inventory\n"
        "inv = take_inventory(discover(__import__('pathlib').Path(sys.argv[1])))\n"
        "found = [(d.name, d.version) for lib in inv.lib_dirs for d in lib.distributions]\n"
        "messages = [f.message for f in inv.all_findings]\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "print(json.dumps({'found': found, 'messages': messages, 'peak_mb': peak}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert ["bomb", "1.0"] in result["found"]
    assert any("EGG-INFO/requires.txt decompresses to over" in m for m in result["messages"])
    assert result["peak_mb"] < 200, result["peak_mb"]

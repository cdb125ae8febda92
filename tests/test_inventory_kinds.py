"""Every install kind, installed for real, read back by the inventory."""

from __future__ import annotations

import importlib.util
import logging
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, module, write_files

from migrate.build.wheelfile import WheelSpec
from migrate.demo import write_zipped_egg
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.inventory._files import MAX_METADATA_BYTES
from migrate.inventory.model import Distribution, LibDirInventory


def inventory_of(home: Path) -> dict[str, LibDirInventory]:
    return {str(lib.path): lib for lib in take_inventory(discover(home)).lib_dirs}


def by_name(lib: LibDirInventory) -> dict[str, Distribution]:
    return {d.name: d for d in lib.distributions}


def test_discovers_account_app_and_user_site_lib_dirs(home: Path) -> None:
    account_lib(home)
    account_lib(home, "blog")
    account_lib(home, "blog", "2.7")
    (home / ".local/lib/python3.9/site-packages").mkdir(parents=True)
    write_files(home / "webapps/static", {"index.html": "<p>hi</p>"})
    write_files(home / "webapps/api", {"deep/er/app.wsgi": "application = None\n"})
    (home / "lib" / "pythonX").mkdir()

    account = discover(home)

    assert [
        (lib.path.relative_to(home).as_posix(), lib.python, lib.scope, lib.app)
        for lib in account.lib_dirs
    ] == [
        (f"lib/python{PY}", PY, "account", None),
        ("webapps/blog/lib/python2.7", "2.7", "app", "blog"),
        (f"webapps/blog/lib/python{PY}", PY, "app", "blog"),
        (".local/lib/python3.9/site-packages", "3.9", "user-site", None),
    ]
    assert {app.name: app.has_python for app in account.apps} == {
        "api": True,
        "blog": True,
        "static": False,
    }


def test_dist_info_from_real_pip_target(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(
        lib,
        [
            WheelSpec(
                "Alpha.Pkg",
                "1.0.post1",
                {"alpha_pkg/__init__.py": module("1.0.post1"), "alpha_pkg/sub.py": b""},
            ),
            WheelSpec(
                "beta",
                "2.0",
                {"beta.py": module("2.0")},
                requires=(
                    "alpha.pkg>=1",
                    'gamma[fast]>=3; python_version < "3.8"',
                    'delta; extra == "x"',
                ),
            ),
        ],
        tmp_path / "wheels",
    )
    dists = by_name(inventory_of(home)[str(lib)])

    alpha, beta = dists["alpha-pkg"], dists["beta"]
    assert (alpha.kind, alpha.display_name, alpha.version) == (
        "dist-info",
        "Alpha.Pkg",
        "1.0.post1",
    )
    assert alpha.top_level == ("alpha_pkg",)
    assert alpha.installer == "pip"
    assert "alpha_pkg/sub.py" in (alpha.files or ())
    assert alpha.modified == () and alpha.missing == ()
    assert beta.top_level == ("beta",)
    assert beta.requires == (
        "alpha.pkg>=1",
        'gamma[fast]>=3; python_version < "3.8"',
        'delta; extra == "x"',
    )
    assert set(dists) == {"alpha-pkg", "beta"}, "nothing pip installed may show up as bare"


def test_dist_info_integrity_reports_modified_and_missing_files(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(
        lib,
        [
            WheelSpec(
                "patched",
                "1.0",
                {
                    "patched/__init__.py": module("1.0"),
                    "patched/util.py": b"X = 1\n",
                    "patched/same.py": b"X = 1\n",
                },
            )
        ],
        tmp_path / "wheels",
    )
    (lib / "patched" / "__init__.py").write_text('__version__ = "1.0"  # hotfix\n')
    (lib / "patched" / "util.py").unlink()
    same_size = lib / "patched" / "same.py"
    assert same_size.read_bytes() == b"X = 1\n"
    same_size.write_bytes(b"X = 2\n")

    lib_inv = inventory_of(home)[str(lib)]
    dist = by_name(lib_inv)["patched"]

    assert dist.modified == ("patched/__init__.py", "patched/same.py")
    assert dist.missing == ("patched/util.py",)
    messages = [f.message for f in lib_inv.findings]
    assert any("differ from RECORD" in m for m in messages)
    assert any("missing" in m for m in messages)


def test_dist_info_files_the_inventory_reads_are_still_checked_against_record(
    home: Path, tmp_path: Path
) -> None:
    """METADATA, top_level.txt and INSTALLER are read and checked with one ``fstat``: an
    edit after the install is still seen, both in what is reported and as a modification."""
    lib = account_lib(home)
    install_wheels(lib, [WheelSpec("edited", "1.0", {"edited/__init__.py": b""})], tmp_path / "w")
    info = lib / "edited-1.0.dist-info"
    (info / "INSTALLER").write_text("by hand\n")  # another size
    top_level = info / "top_level.txt"
    same_size = "e" * (len(top_level.read_bytes()) - 1) + "\n"
    top_level.write_text(same_size)  # the same size, newer than RECORD: hashed
    (info / "METADATA").write_bytes((info / "METADATA").read_bytes())  # same bytes, newer

    dist = by_name(inventory_of(home)[str(lib)])["edited"]

    assert dist.installer == "by hand"
    assert dist.top_level == (same_size.strip(),)
    assert dist.modified == ("edited-1.0.dist-info/INSTALLER", "edited-1.0.dist-info/top_level.txt")
    assert dist.missing == ()


def test_record_rows_are_read_as_csv_reads_them(home: Path) -> None:
    """RECORD is CSV: quoted paths, CRLF line ends (pip writes them) and blank lines read as
    the csv module reads them, whichever way the inventory parses the file."""
    lib = account_lib(home)
    record = (
        'odd/"quoted".py,,\r\n'
        '"odd/a,b.py",sha256=x,3\r\n'
        "\r\n"
        "odd/__init__.py,,\r\n"
        "odd-1.0.dist-info/RECORD,,\r\n"
    )
    plain = "odd/__init__.py,,\r\nodd/x.py,,\r\n\r\nodd-1.0.dist-info/RECORD,,\r\n"
    write_files(
        lib,
        {
            "odd-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: odd\nVersion: 1.0\n",
            "odd-1.0.dist-info/RECORD": record,
            "plain-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: plain\nVersion: 1.0\n",
            "plain-1.0.dist-info/RECORD": plain,
        },
    )

    dists = by_name(inventory_of(home)[str(lib)])

    assert dists["odd"].files == (
        'odd/"quoted".py',
        "odd/a,b.py",
        "odd/__init__.py",
        "odd-1.0.dist-info/RECORD",
    )
    assert dists["plain"].files == ("odd/__init__.py", "odd/x.py", "odd-1.0.dist-info/RECORD")


def test_dist_info_without_top_level_txt_derives_names_from_record(
    home: Path, tmp_path: Path
) -> None:
    lib = account_lib(home)
    install_wheels(
        lib, [WheelSpec("mods", "1", {"one.py": b"", "two/__init__.py": b""})], tmp_path / "w"
    )
    (lib / "mods-1.dist-info" / "top_level.txt").unlink()

    assert by_name(inventory_of(home)[str(lib)])["mods"].top_level == ("one", "two")


def test_egg_info_directory_and_single_file_forms(home: Path) -> None:
    lib = account_lib(home)
    write_files(
        lib,
        {
            "setuptools_made-3.1-py3.11.egg-info/PKG-INFO": "Metadata-Version: 1.1\nName: setuptools-made\nVersion: 3.1\n",
            "setuptools_made-3.1-py3.11.egg-info/requires.txt": (
                'six>=1.0\n\n[:python_version < "3"]\nfutures\n\n[fast]\ncspeed\n\n[tls:sys_platform == "win32"]\nwintls\n'
            ),
            "setuptools_made-3.1-py3.11.egg-info/top_level.txt": "smade\n",
            "setuptools_made-3.1-py3.11.egg-info/installed-files.txt": "../smade/__init__.py\nPKG-INFO\n",
            "smade/__init__.py": "",
            "distutils_made-0.5-py3.11.egg-info": "Metadata-Version: 1.0\nName: distutils_made\nVersion: 0.5\n",
            "distutils_made/__init__.py": "",
        },
    )
    dists = by_name(inventory_of(home)[str(lib)])

    made = dists["setuptools-made"]
    assert (made.kind, made.version, made.top_level) == ("egg-info", "3.1", ("smade",))
    assert made.requires == (
        "six>=1.0",
        'futures; python_version < "3"',
        'cspeed; extra == "fast"',
        'wintls; sys_platform == "win32" and extra == "tls"',
    )
    assert "smade/__init__.py" in (made.files or ())
    single = dists["distutils-made"]
    assert (single.kind, single.version, single.top_level, single.files) == (
        "egg-info",
        "0.5",
        ("distutils_made",),
        None,
    )
    assert not [d for d in dists.values() if d.kind == "bare"]


def test_sources_txt_is_not_read_but_a_broken_one_is_still_reported(home: Path) -> None:
    """Nothing in an inventory uses SOURCES.txt (the steps that need it read it), so it is
    only checked: a healthy one costs no read, a broken one is reported where it was."""
    lib = account_lib(home)
    write_files(
        lib,
        {
            "fine-1.0.egg-info/PKG-INFO": "Name: fine\nVersion: 1.0\n",
            "fine-1.0.egg-info/top_level.txt": "fine\n",
            "fine-1.0.egg-info/SOURCES.txt": "setup.py\nfine/__init__.py\n",
            "fine/__init__.py": "",
            "piped-2.0.egg-info/PKG-INFO": "Name: piped\nVersion: 2.0\n",
            "piped-2.0.egg-info/requires.txt": "six\n",
            "piped-2.0.egg-info/top_level.txt": "piped\n",
            "piped/__init__.py": "",
            "huge-3.0.egg-info/PKG-INFO": "Name: huge\nVersion: 3.0\n",
            f"eggdir-1.0-py{PY}.egg/EGG-INFO/PKG-INFO": "Name: eggdir\nVersion: 1.0\n",
            f"eggdir-1.0-py{PY}.egg/EGG-INFO/SOURCES.txt/inside": "a folder, not a file\n",
            f"eggdir-1.0-py{PY}.egg/eggdir.py": "",
        },
    )
    os.mkfifo(lib / "piped-2.0.egg-info" / "SOURCES.txt")  # reading it would block
    with open(lib / "huge-3.0.egg-info" / "SOURCES.txt", "wb") as sparse:
        sparse.truncate(MAX_METADATA_BYTES + 1)

    lib_inv = inventory_of(home)[str(lib)]
    dists = by_name(lib_inv)

    assert (dists["piped"].version, dists["piped"].requires, dists["piped"].top_level) == (
        "2.0",
        ("six",),
        ("piped",),
    )
    assert (dists["huge"].version, dists["eggdir"].version) == ("3.0", "1.0")
    assert {
        (f.path.relative_to(lib).as_posix(), f.severity, f.message) for f in lib_inv.findings
    } == {
        ("piped-2.0.egg-info/SOURCES.txt", "warning", "cannot read: not a regular file"),
        (
            "huge-3.0.egg-info/SOURCES.txt",
            "warning",
            f"cannot read: larger than {MAX_METADATA_BYTES} bytes",
        ),
        (
            f"eggdir-1.0-py{PY}.egg/EGG-INFO/SOURCES.txt",
            "warning",
            "cannot read: not a regular file",
        ),
    }


def test_zipped_and_directory_eggs_are_read_without_unpacking(home: Path) -> None:
    lib = account_lib(home)
    egg = write_zipped_egg(
        lib / f"zegg-0.4-py{PY}.egg",
        "zegg",
        "0.4",
        {"zegg/__init__.py": module("0.4")},
        requires="dep\n[x]\nextra-dep\n",
    )
    write_files(
        lib / "degg-1.0_beta-py2.7-linux-x86_64.egg",
        {
            "EGG-INFO/PKG-INFO": "Name: degg\nVersion: 1.0-beta\n",
            "degg.py": "",
            "EGG-INFO/top_level.txt": "degg\n",
        },
    )
    before = sorted(p.name for p in lib.iterdir())

    dists = by_name(inventory_of(home)[str(lib)])

    zipped = dists["zegg"]
    assert (zipped.kind, zipped.zipped, zipped.version, zipped.python) == ("egg", True, "0.4", PY)
    assert zipped.top_level == ("zegg",)
    assert zipped.requires == ("dep", 'extra-dep; extra == "x"')
    assert "zegg/__init__.py" in (zipped.files or ())
    directory = dists["degg"]
    assert (directory.kind, directory.zipped, directory.version, directory.python) == (
        "egg",
        False,
        "1.0-beta",
        "2.7",
    )
    assert sorted(p.name for p in lib.iterdir()) == before, "reading must not unpack anything"
    assert egg.is_file()


def test_egg_link_develop_install_from_real_setuptools(home: Path, tmp_path: Path) -> None:
    # Only look: importing setuptools here would fight an already imported stdlib distutils.
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("the current interpreter has no setuptools for `setup.py develop`")
    lib = account_lib(home)
    project = tmp_path / "src" / "devpkg"
    write_files(
        project,
        {
            "setup.py": "from setuptools import setup\nsetup(name='devpkg', version='0.3.dev0', packages=['devpkg'], "
            "install_requires=['six'], extras_require={'fast': ['cspeed']})\n",
            "devpkg/__init__.py": module("0.3.dev0"),
        },
    )
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "develop", "--install-dir", str(lib), "--no-deps"],
        cwd=project,
        env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"setup.py develop unavailable here: {result.stderr.strip().splitlines()[-1:]}")

    lib_inv = inventory_of(home)[str(lib)]
    dev = by_name(lib_inv)["devpkg"]

    assert (dev.kind, dev.version, dev.editable) == ("egg-link", "0.3.dev0", True)
    assert dev.target == project and dev.target_exists
    assert dev.top_level == ("devpkg",)
    assert dev.requires == ("six", 'cspeed; extra == "fast"')
    easy = {p.path.name: p for p in lib_inv.pth}["easy-install.pth"]
    assert [line.path for line in easy.path_entries] == [project]


def test_pth_files_are_classified_never_run(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    canary = tmp_path / "canary"
    (tmp_path / "abs").mkdir()
    (lib / "rel").mkdir()
    write_files(
        lib,
        {
            "easy-install.pth": (
                "import sys; sys.__plen = len(sys.path)\n./rel\n"
                "import sys; new=sys.path[sys.__plen:]; del sys.path[sys.__plen:]; "
                "p=getattr(sys,'__egginsert',0); sys.path[p:p]=new; sys.__egginsert = p+len(new)\n"
            ),
            "extra.pth": f"# comment\n\n{tmp_path / 'abs'}\n../../nowhere\nimport os; open({str(canary)!r}, 'w')\n",
            "zope.interface-4.0-py3.11-nspkg.pth": "import sys, types, os;has_mfs = sys.version_info > (3, 5)\n",
            "site.py": "def __boot():\n    pass\n__boot()\n",
        },
    )

    lib_inv = inventory_of(home)[str(lib)]
    pths = {p.path.name: p for p in lib_inv.pth}

    easy, extra = pths["easy-install.pth"], pths["extra.pth"]
    assert (easy.role, easy.plen_wrapper) == ("easy-install", True)
    assert [(line.path, line.exists) for line in easy.path_entries] == [(lib / "rel", True)]
    assert len(easy.import_lines) == 2
    assert (extra.role, extra.plen_wrapper) == ("plain", False)
    assert [(line.path, line.exists) for line in extra.path_entries] == [
        (tmp_path / "abs", True),
        (home / "nowhere", False),
    ]
    assert [line.kind for line in extra.lines] == ["comment", "blank", "path", "path", "import"]
    assert pths["zope.interface-4.0-py3.11-nspkg.pth"].role == "nspkg"
    assert lib_inv.setuptools_site_py == lib / "site.py"
    assert "site" not in by_name(lib_inv), "setuptools' site.py is not a bare module"
    assert not canary.exists()
    assert any("does not exist" in f.message for f in lib_inv.findings)


def test_bare_packages_and_modules(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    write_files(
        lib,
        {
            "copied/__init__.py": "__version__ = '1.4.2'\n",
            "copied/helpers.py": "",
            "versioned/__init__.py": "from ._version import __version__\n",
            "versioned/_version.py": '__version__: str = "0.9"\n',
            "single.py": '"""doc"""\n__version__ = u"3.0"\n',
            "noversion.py": "X = 1\n",
            "native.cpython-311-x86_64-linux-gnu.so": b"\x7fELF",
            "nsonly/mod.py": "",
            "bin/script": "#!/bin/sh\n",
            "data-files/readme.txt": "",
        },
    )
    source = tmp_path / "compiled.py"
    source.write_text("__version__ = '5'\n")
    py_compile.compile(str(source), cfile=str(lib / "compiled.pyc"))

    dists = by_name(inventory_of(home)[str(lib)])

    versions = {
        name: (d.kind, d.version, d.version_guessed, d.top_level) for name, d in dists.items()
    }
    assert versions == {
        "copied": ("bare", "1.4.2", True, ("copied",)),
        "versioned": ("bare", "0.9", True, ("versioned",)),
        "single": ("bare", "3.0", True, ("single",)),
        "noversion": ("bare", None, False, ("noversion",)),
        "native": ("bare", None, False, ("native",)),
        "compiled": ("bare", None, False, ("compiled",)),
        "nsonly": ("bare", None, False, ("nsonly",)),
    }
    assert dists["copied"].files == (
        "copied/__init__.py",
        "copied/helpers.py",
    )


def test_copied_distribution_owned_by_its_metadata_is_not_bare(home: Path) -> None:
    lib = account_lib(home)
    from migrate.demo import copy_installed_distribution

    copy_installed_distribution("click", lib)
    dists = by_name(inventory_of(home)[str(lib)])

    assert set(dists) == {"click"}
    assert dists["click"].modified == () and dists["click"].missing == ()


def test_user_site_and_app_dirs_are_inventoried(home: Path, tmp_path: Path) -> None:
    user = home / ".local" / "lib" / f"python{PY}" / "site-packages"
    install_wheels(user, [WheelSpec("usertool", "0.1", {"usertool.py": b""})], tmp_path / "w")
    app_lib = account_lib(home, "blog")
    shutil.copytree(user / "usertool-0.1.dist-info", app_lib / "usertool-0.1.dist-info")
    (app_lib / "usertool.py").write_text("")

    inv = take_inventory(discover(home))

    found = {(lib.scope, lib.app): [d.name for d in lib.distributions] for lib in inv.lib_dirs}
    assert found == {("app", "blog"): ["usertool"], ("user-site", None): ["usertool"]}


def test_parallel_inventory_equals_serial(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from migrate.inventory import PARALLEL_MIN_LIB_DIRS

    wheels = tmp_path / "w"
    for n in range(PARALLEL_MIN_LIB_DIRS + 2):
        lib = account_lib(home, f"app{n:02}")
        write_files(lib, {f"mod{n}.py": module(str(n)), "shared/__init__.py": ""})
    install_wheels(account_lib(home, "app00"), [WheelSpec("real", "1.0", {"real.py": b""})], wheels)
    project = tmp_path / "devproject"
    write_files(project, {"dev.egg-info/PKG-INFO": "Name: dev\nVersion: 0.1\n"})
    (account_lib(home, "app01") / "dev.egg-link").write_text(f"{project}\n.\n")
    serial = take_inventory(discover(home), jobs=1)
    with caplog.at_level(logging.DEBUG, logger="migrate"):
        parallel = take_inventory(discover(home), jobs=2)
    seen = [r.lib_dir.app or "" for r in caplog.records if hasattr(r, "lib_dir")]

    assert parallel == serial
    [linked] = [d for d in parallel.lib_dirs[1].distributions if d.kind == "egg-link"]
    assert linked.target == project
    assert seen == sorted(seen) and len(seen) == PARALLEL_MIN_LIB_DIRS + 2
    assert {d.name for d in serial.lib_dirs[0].distributions} == {"mod0", "real", "shared"}

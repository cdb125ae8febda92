"""Inventory of homes filled by the REAL installers of old interpreters (2.7, 3.6).

Each interpreter builds one home (module-scoped, see ``tests/legacy.py``): a zipped
egg and an egg directory from ``easy_install``, an egg-link from ``setup.py develop``,
egg-info directories from ``setup.py install --single-version-externally-managed`` and
from the old pip (with installed-files.txt and a ``-nspkg.pth``), distutils' single-file
egg-info, and an app lib dir whose develop source was deleted. Tests skip, never fail,
when the interpreter is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

import legacy
import pytest
from packaging.requirements import Requirement

from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.inventory.model import Distribution, Inventory, LibDirInventory, PthFile

pytestmark = pytest.mark.legacy

VERSIONS = ("2.7", "3.6")
REPO = Path(__file__).resolve().parent.parent


class Case(NamedTuple):
    built: legacy.LegacyHome
    inventory: Inventory

    @property
    def lib(self) -> LibDirInventory:
        return _lib(self.inventory, self.built.lib_dir)

    @property
    def app_lib(self) -> LibDirInventory:
        return _lib(self.inventory, self.built.app_lib_dir)


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"py{v}" for v in VERSIONS])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    version: str = request.param
    python = legacy.find_interpreter(version)
    if python is None:
        pytest.skip(
            f"no working python{version} with setuptools on PATH or in pyenv versions; "
            "legacy installer tests need the real old interpreter"
        )
    root = tmp_path_factory.mktemp(f"legacy-py{version}")
    built = legacy.build_legacy_home(python, root / "home", root / "work")
    return Case(built, take_inventory(discover(built.home)))


def _lib(inventory: Inventory, path: Path) -> LibDirInventory:
    matches = [lib for lib in inventory.lib_dirs if lib.path == path]
    assert len(matches) == 1, [lib.path for lib in inventory.lib_dirs]
    return matches[0]


def _dist(lib: LibDirInventory, name: str) -> Distribution:
    matches = [d for d in lib.distributions if d.name == name]
    assert len(matches) == 1, sorted((d.name, d.kind) for d in lib.distributions)
    return matches[0]


def _pth(lib: LibDirInventory, path: Path) -> PthFile:
    matches = [p for p in lib.pth if p.path == path]
    assert len(matches) == 1, [p.path for p in lib.pth]
    return matches[0]


def _needs_pip(case: Case) -> None:
    if not case.built.pip:
        pytest.skip(f"{case.built.python} has no pip; pip-made installs not built")


# --------------------------------------------------------------------------- interpreters


def test_find_interpreter_rejects_a_broken_path_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyenv shim for an inactive version is on PATH but fails: it must be skipped."""
    shim = tmp_path / "python2.7"
    shim.write_text("#!/bin/sh\necho 'pyenv: python2.7: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    found = legacy.find_interpreter.__wrapped__("2.7")
    assert found != shim
    if found is not None:
        assert found.name == "python2.7"
    assert legacy.find_interpreter.__wrapped__("9.9") is None


def test_lib_dirs_are_discovered_with_their_python(case: Case) -> None:
    assert case.lib.python == case.built.version
    assert case.lib.scope == "account"
    assert case.app_lib.python == case.built.version
    assert (case.app_lib.scope, case.app_lib.app) == ("app", "oldapp")


# --------------------------------------------------------------------------- eggs


def test_zipped_egg_from_easy_install(case: Case) -> None:
    built = case.built
    assert built.zipped_egg.is_file()
    with zipfile.ZipFile(built.zipped_egg) as archive:
        assert "EGG-INFO/PKG-INFO" in archive.namelist()

    egg = _dist(case.lib, "tiny-zipped")
    assert egg.kind == "egg"
    assert egg.zipped is True
    assert egg.editable is False
    assert egg.path == built.zipped_egg
    assert (egg.display_name, egg.version) == ("tiny-zipped", "1.2.3")
    assert egg.python == built.version
    assert egg.top_level == ("tinyzipped",)
    assert "EGG-INFO/PKG-INFO" in (egg.files or ())
    assert "tinyzipped/__init__.py" in (egg.files or ())


def test_zipped_egg_requires_become_pep508(case: Case) -> None:
    egg = _dist(case.lib, "tiny-zipped")
    assert "six>=1.0" in egg.requires
    assert 'cspeed>=1; extra == "fast"' in egg.requires
    parsed = {Requirement(line).name: Requirement(line) for line in egg.requires}
    assert set(parsed) == {"six", "futures", "cspeed", "winspeed"}

    futures = parsed["futures"].marker
    assert futures is not None
    assert futures.evaluate({"python_version": "2.7", "extra": ""})
    assert not futures.evaluate({"python_version": "3.6", "extra": ""})

    winspeed = parsed["winspeed"].marker
    assert winspeed is not None
    assert winspeed.evaluate({"sys_platform": "win32", "extra": "fast"})
    assert not winspeed.evaluate({"sys_platform": "win32", "extra": ""})
    assert not winspeed.evaluate({"sys_platform": "linux", "extra": "fast"})


def test_egg_directory_from_easy_install_always_unzip(case: Case) -> None:
    built = case.built
    assert (built.egg_dir / "EGG-INFO" / "PKG-INFO").is_file()
    egg = _dist(case.lib, "tiny-unzipped")
    assert egg.kind == "egg"
    assert egg.zipped is False
    assert egg.path == built.egg_dir
    assert egg.version == "0.5"
    assert egg.python == built.version
    assert egg.top_level == ("tinyunzipped",)
    assert egg.requires == ("six",)
    assert "tinyunzipped/__init__.py" in (egg.files or ())


# --------------------------------------------------------------------------- egg-links


def test_egg_link_from_setup_py_develop(case: Case) -> None:
    built = case.built
    first_line = built.egg_link.read_text().splitlines()[0]
    assert Path(first_line) == built.develop_project
    assert (built.develop_project / "Tiny_Dev.egg-info" / "PKG-INFO").is_file()

    link = _dist(case.lib, "tiny-dev")
    assert link.kind == "egg-link"
    assert link.editable is True
    assert link.path == built.egg_link
    assert link.target == built.develop_project
    assert link.target_exists is True
    assert (link.display_name, link.version) == ("Tiny-Dev", "2.0.dev1")
    assert link.top_level == ("tinydev",)
    assert link.requires == ('cspeed>=1; extra == "fast"',)


def test_dangling_egg_link_in_app_lib_dir(case: Case) -> None:
    built = case.built
    assert built.dangling_egg_link.is_file()
    assert not built.dangling_target.exists()

    link = _dist(case.app_lib, "gone-app")
    assert link.kind == "egg-link"
    assert link.target == built.dangling_target
    assert link.target_exists is False
    assert link.version is None
    errors = [f for f in case.app_lib.findings if f.severity == "error"]
    assert [f.path for f in errors] == [built.dangling_egg_link]
    assert "dangling" in errors[0].message

    pth = _pth(case.app_lib, built.app_lib_dir / "easy-install.pth")
    assert pth.role == "easy-install"
    assert [(line.path, line.exists) for line in pth.path_entries] == [
        (built.dangling_target, False)
    ]


# --------------------------------------------------------------------------- egg-info


def test_egg_info_from_old_pip_lists_installed_files(case: Case) -> None:
    _needs_pip(case)
    built = case.built
    listing = built.pip_egg_info / "installed-files.txt"
    assert listing.is_file()
    expected = {
        os.path.relpath(os.path.normpath(built.pip_egg_info / line), built.lib_dir)
        for line in listing.read_text().splitlines()
        if line.strip()
    }

    info = _dist(case.lib, "tiny-pip")
    assert info.kind == "egg-info"
    assert info.path == built.pip_egg_info
    assert info.version == "4.0"
    assert info.python == built.version
    assert info.top_level == ("tinypip",)
    assert info.requires == ("six",)
    assert info.files is not None
    assert set(info.files) == expected
    assert "tinypip/__init__.py" in info.files
    assert f"{built.pip_egg_info.name}/PKG-INFO" in info.files
    assert all((built.lib_dir / rel).exists() for rel in info.files)


def test_egg_info_from_setup_py_install_svem(case: Case) -> None:
    built = case.built
    assert built.svem_egg_info.is_dir()
    assert not (built.svem_egg_info / "installed-files.txt").exists()

    info = _dist(case.lib, "tiny-svem")
    assert info.kind == "egg-info"
    assert info.version == "3.1"
    assert info.python == built.version
    assert info.top_level == ("tinysvem",)
    assert info.files is None


def test_single_file_egg_info_from_distutils_claims_its_module(case: Case) -> None:
    built = case.built
    assert built.distutils_egg_info.is_file()
    assert (built.lib_dir / "tinydistutils.py").is_file()

    info = _dist(case.lib, "tinydistutils")
    assert info.kind == "egg-info"
    assert info.path == built.distutils_egg_info
    assert info.version == "0.1"
    assert info.top_level == ("tinydistutils",)
    assert info.files is None


def test_namespace_package_from_pip_target_and_its_nspkg_pth(case: Case) -> None:
    _needs_pip(case)
    built = case.built
    assert not (built.lib_dir / "tinyns" / "__init__.py").exists()

    info = _dist(case.lib, "tinyns-leaf")
    assert info.kind == "egg-info"
    assert (info.display_name, info.version) == ("tinyns.leaf", "0.9")
    assert info.top_level == ("tinyns",)
    assert built.nspkg_pth.name in (info.files or ())
    assert "tinyns/leaf/__init__.py" in (info.files or ())

    pth = _pth(case.lib, built.nspkg_pth)
    assert pth.role == "nspkg"
    assert pth.plen_wrapper is False
    assert pth.path_entries == ()
    assert len(pth.import_lines) == 1
    assert "'tinyns'" in pth.import_lines[0].text


# --------------------------------------------------------------------------- lib dir files


def test_easy_install_pth_with_plen_wrapper(case: Case) -> None:
    built = case.built
    pth = _pth(case.lib, built.lib_dir / "easy-install.pth")
    assert pth.role == "easy-install"
    assert pth.plen_wrapper is True
    assert [line.path for line in pth.path_entries] == [
        built.zipped_egg,
        built.egg_dir,
        built.develop_project,
    ]
    assert all(line.exists for line in pth.path_entries)
    imports = [line.text for line in pth.import_lines]
    assert len(imports) == 2
    assert "sys.__plen = len(sys.path)" in imports[0]
    assert "__egginsert" in imports[1]
    assert pth.lines[0].kind == "import"
    assert pth.lines[-1].kind == "import"


def test_setuptools_site_py_left_by_easy_install_is_recognised(case: Case) -> None:
    for lib in (case.lib, case.app_lib):
        site_py = lib.path / "site.py"
        assert site_py.read_bytes().startswith(b"def __boot():")
        assert lib.setuptools_site_py == site_py


def test_nothing_an_installer_owns_is_reported_bare(case: Case) -> None:
    for lib in (case.lib, case.app_lib):
        # site.pyc (Python 2 compiles the setuptools site.py) is covered separately below.
        bare = [d.path for d in lib.distributions if d.kind == "bare" and d.name != "site"]
        assert bare == []


def test_compiled_setuptools_site_py_is_not_reported_bare(case: Case) -> None:
    """Python 2 writes site.pyc beside easy_install's site.py whenever LIB is on PYTHONPATH."""
    bare_site = [
        d.path
        for lib in (case.lib, case.app_lib)
        for d in lib.distributions
        if d.kind == "bare" and d.name == "site"
    ]
    assert bare_site == []


def test_real_installs_raise_no_findings_in_the_account_lib_dir(case: Case) -> None:
    assert case.lib.findings == ()
    assert case.inventory.findings == ()


def test_expected_kinds_and_nothing_else(case: Case) -> None:
    kinds = {d.name: d.kind for d in case.lib.distributions}
    expected = {
        "tiny-zipped": "egg",
        "tiny-unzipped": "egg",
        "tiny-dev": "egg-link",
        "tiny-svem": "egg-info",
        "tinydistutils": "egg-info",
    }
    if case.built.pip:
        expected |= {"tiny-pip": "egg-info", "tinyns-leaf": "egg-info"}
    assert kinds == expected


# --------------------------------------------------------------------------- CLI


def test_cli_inventory_json(case: Case) -> None:
    built = case.built
    out = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(built.home), "inventory", "--json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    libs = {lib["path"]: lib for lib in doc["lib_dirs"]}
    lib = libs[str(built.lib_dir)]
    assert lib["python"] == built.version
    assert lib["setuptools_site_py"] == str(built.lib_dir / "site.py")

    dists = {d["name"]: d for d in lib["distributions"]}
    assert {d["kind"] for d in dists.values()} >= {"egg", "egg-link", "egg-info"}
    assert dists["tiny-zipped"]["kind"] == "egg"
    assert dists["tiny-zipped"]["zipped"] is True
    assert 'cspeed>=1; extra == "fast"' in dists["tiny-zipped"]["requires"]
    assert dists["tiny-unzipped"]["zipped"] is False
    assert dists["tiny-dev"]["kind"] == "egg-link"
    assert dists["tiny-dev"]["target"] == str(built.develop_project)
    assert dists["tiny-dev"]["target_exists"] is True
    assert dists["tiny-dev"]["version"] == "2.0.dev1"
    assert dists["tiny-svem"]["kind"] == "egg-info"
    if built.pip:
        assert dists["tiny-pip"]["kind"] == "egg-info"
        assert "tinypip/__init__.py" in dists["tiny-pip"]["files"]

    (easy,) = [p for p in lib["pth"] if p["role"] == "easy-install"]
    assert easy["plen_wrapper"] is True
    assert [p["exists"] for p in easy["paths"]] == [True, True, True]

    app = libs[str(built.app_lib_dir)]
    gone = {d["name"]: d for d in app["distributions"]}["gone-app"]
    assert (gone["kind"], gone["target_exists"]) == ("egg-link", False)
    assert any("dangling" in f["message"] for f in doc["findings"])

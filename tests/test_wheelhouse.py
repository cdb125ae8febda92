"""Repacked wheels install with the REAL pip and carry the bytes installed today.

Every install kind is repacked from a real install (pip --target, easy_install, setup.py
develop and install, pip -e), then installed with the real pip: into a ``--target`` dir
(the old pip of 2.7/3.6 for legacy homes) and into one fresh venv where ``pip check``
must pass and ``importlib.metadata`` must report the pinned version.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import sysconfig
import textwrap
import time
import venv
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import legacy
import pytest
from accounts import PY, account_lib, install_wheels, module, pip_env, write_files

from migrate.build.repack import RepackedWheel, RepackError, repack, wheel_version
from migrate.build.wheelfile import WheelSpec, write_wheel
from migrate.demo import build_demo_account, pip_install_target, write_zipped_egg
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.inventory.model import Distribution, Inventory
from migrate.layout import wheelhouse_dir
from migrate.lock import LOCAL_VERSION

KINDS = {"dist-info", "egg-info", "egg", "egg-link", "bare"}
_IMPORT = """\
import sys, site, json
sys.path.insert(0, sys.argv[1])
site.addsitedir(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    mod = __import__(name)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    out[name] = [getattr(mod, "__version__", None), mod.__file__]
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- helpers


def dists_of(inventory: Inventory) -> list[tuple[str, Distribution]]:
    return [(lib.python, d) for lib in inventory.lib_dirs for d in lib.distributions]


def dist_named(home: Path, name: str, python: str = PY) -> Distribution:
    found = [
        d for py, d in dists_of(take_inventory(discover(home))) if d.name == name and py == python
    ]
    assert len(found) == 1, found
    return found[0]


def members(wheel: RepackedWheel) -> dict[str, tuple[bytes, int]]:
    with zipfile.ZipFile(wheel.path) as archive:
        return {
            info.filename: (archive.read(info), (info.external_attr >> 16) & 0o777)
            for info in archive.infolist()
        }


def payload(wheel: RepackedWheel) -> list[str]:
    return [name for name in members(wheel) if ".dist-info/" not in name and ".data/" not in name]


def pip_target(python: str | Path, target: Path, wheels: Sequence[Path]) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--target", str(target), *map(str, wheels)],
        check=True, env=legacy.clean_env(), capture_output=True,
    )  # fmt: skip


def import_from(python: str | Path, target: Path, modules: Sequence[str]) -> dict[str, list]:
    out = subprocess.run(
        [str(python), "-c", _IMPORT, str(target), *modules],
        check=True, capture_output=True, text=True, env=legacy.clean_env(),
    )  # fmt: skip
    return json.loads(out.stdout)


def source_bytes(dist: Distribution, name: str) -> bytes:
    """The bytes a wheel member was packed from, read where the install keeps them."""
    if dist.kind == "egg" and dist.zipped:
        with zipfile.ZipFile(dist.path) as archive:
            return archive.read(name)
    if dist.kind == "egg":
        return (dist.path / name).read_bytes()
    if dist.kind == "egg-link" or dist.editable:
        assert dist.target is not None
        return (dist.target / name).read_bytes()
    return (dist.lib_dir / name).read_bytes()


def assert_carries_installed_bytes(wheel: RepackedWheel, target: Path) -> None:
    """Every payload file, installed from the wheel, equals the file installed today."""
    names = payload(wheel)
    assert names, wheel
    for name in names:
        assert (target / name).read_bytes() == source_bytes(wheel.dist, name), name


class Venv(NamedTuple):
    python: Path
    site: Path

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "pip", "--disable-pip-version-check", *args],
            check=check, capture_output=True, text=True, env=pip_env(),
        )  # fmt: skip

    def install(self, wheels: Sequence[Path]) -> None:
        self.pip("install", "-q", "--no-index", "--no-deps", *map(str, wheels))

    def run(self, code: str) -> str:
        out = subprocess.run(
            [str(self.python), "-c", code], check=True, capture_output=True, text=True
        )
        return out.stdout

    def versions(self, names: Sequence[str]) -> dict[str, str]:
        code = "import importlib.metadata as m, json, sys; "
        code += "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
        out = subprocess.run(
            [str(self.python), "-c", code, *names], check=True, capture_output=True, text=True
        )
        return json.loads(out.stdout)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """One real venv (with pip) for the whole file: every test installs different names."""
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.create(root, with_pip=True, symlinks=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    return Venv(python, site)


# --------------------------------------------------------------------------- the demo account


class Demo(NamedTuple):
    home: Path
    inventory: Inventory
    wheels: dict[tuple[Path, str], RepackedWheel]

    def wheel(self, lib: Path, name: str) -> RepackedWheel:
        return self.wheels[(lib, name)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    account = build_demo_account(tmp_path_factory.mktemp("demo") / "account")
    inventory = take_inventory(discover(account.home))
    wheelhouse = wheelhouse_dir(account.home)
    wheels = {
        (dist.lib_dir, dist.name): repack(dist, wheelhouse, python=python)
        for python, dist in dists_of(inventory)
    }
    return Demo(account.home, inventory, wheels)


def test_every_demo_distribution_repacks_and_installs_with_the_same_bytes(
    demo: Demo, tmp_path: Path
) -> None:
    assert {w.dist.kind for w in demo.wheels.values()} == KINDS
    for lib in demo.inventory.lib_dirs:
        wheels = [demo.wheel(lib.path, d.name) for d in lib.distributions]
        target = tmp_path / lib.path.relative_to(demo.home)
        pip_target(sys.executable, target, [w.path for w in wheels])
        tops = sorted({top for w in wheels for top in w.dist.top_level})
        loaded = import_from(sys.executable, target, tops)
        for wheel in wheels:
            assert wheel.tag == "py3-none-any", wheel
            assert_carries_installed_bytes(wheel, target)
            for top in wheel.dist.top_level:
                version, where = loaded[top]
                assert where.startswith(str(target)), (top, where)
                if version is not None:
                    assert version == wheel.dist.version, (top, version)


def test_demo_wheels_install_into_a_venv_where_pip_check_passes(
    demo: Demo, fresh_venv: Venv
) -> None:
    lib = demo.home / "lib" / f"python{PY}"
    shop = demo.home / "webapps" / "shop" / "lib" / f"python{PY}"
    devtool = demo.wheel(lib, "devtool")
    fresh_venv.install([devtool.path])
    broken = fresh_venv.pip("check", check=False)
    assert broken.returncode == 1 and "acme-utils" in broken.stdout, broken.stdout

    account = [w for (where, _), w in demo.wheels.items() if where == lib]
    fresh_venv.install([w.path for w in account] + [demo.wheel(shop, "webframe").path])
    check = fresh_venv.pip("check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    pinned = {w.dist.name: wheel_version(w.dist) for w in account}
    assert fresh_venv.versions(sorted(pinned)) == pinned
    assert pinned["legacy-cfg"] == "2011.1" and pinned["devtool"] == "0.3.dev0"
    # The hotfix appended to acme_utils after pip installed it is what the venv runs.
    hotfixed = (fresh_venv.site / "acme_utils" / "__init__.py").read_text()
    assert "# hotfix 2019-03-02" in hotfixed
    assert demo.wheel(lib, "acme-utils").dist.modified == ("acme_utils/__init__.py",)
    out = fresh_venv.run(
        "import acme_utils, oldlib, eggpkg, devtool, legacy_cfg, oldstyle, webframe, tinyhttp\n"
        "print(acme_utils.__file__, oldlib.__version__, oldstyle.VERSION)"
    )
    assert out.startswith(str(fresh_venv.site)) and "0.4 (2, 0)" in out


def test_repacking_again_reuses_the_wheel_and_output_is_deterministic(
    demo: Demo, tmp_path: Path
) -> None:
    wheelhouse = wheelhouse_dir(demo.home)
    for (lib, _), first in sorted(demo.wheels.items()):
        python = lib.name.removeprefix("python") if lib.name.startswith("python") else PY
        again = repack(first.dist, wheelhouse, python=python)
        assert again.reused and (again.path, again.sha256) == (first.path, first.sha256)
        elsewhere = repack(first.dist, tmp_path / "other", python=python)
        assert not elsewhere.reused and elsewhere.sha256 == first.sha256
        assert elsewhere.path.name == first.path.name


def test_a_file_edited_in_place_since_is_packed_again_even_with_its_mtime_set_back(
    home: Path, tmp_path: Path
) -> None:
    """Finding a wheel again reads no installed file (their inodes, sizes and times say
    they are the ones packed); a same-size edit whose mtime was set back still changes the
    ctime, which nothing can set back, so it is packed again."""
    lib = account_lib(home)
    install_wheels(lib, [WheelSpec("quickly", "1.0", {"quickly/__init__.py": b"VALUE = 1\n"})],
                   tmp_path / "built")  # fmt: skip
    wheelhouse = wheelhouse_dir(home)
    first = repack(dist_named(home, "quickly"), wheelhouse, python=PY)
    assert len(list((wheelhouse / "index" / "quick").glob("*.json"))) == 1
    again = repack(dist_named(home, "quickly"), wheelhouse, python=PY)
    assert again.reused and (again.path, again.sha256) == (first.path, first.sha256)

    source = lib / "quickly" / "__init__.py"
    before = os.stat(source)
    time.sleep(0.05)  # past the clock tick of the install, so the edit's ctime differs
    with open(source, "r+b") as out:
        out.write(b"VALUE = 2\n")
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(source).st_size, os.stat(source).st_mtime_ns) == (
        before.st_size, before.st_mtime_ns,
    )  # fmt: skip
    edited = repack(dist_named(home, "quickly"), wheelhouse, python=PY)
    assert edited.sha256 != first.sha256
    with zipfile.ZipFile(edited.path) as archive:
        assert archive.read("quickly/__init__.py") == b"VALUE = 2\n"


# --------------------------------------------------------------------------- dist-info


def test_a_patched_copy_of_one_version_is_kept_apart_from_the_pristine_one(
    home: Path, tmp_path: Path
) -> None:
    spec = WheelSpec("patchme", "1.0", {"patchme/__init__.py": module("1.0")})
    lib = account_lib(home)
    install_wheels(lib, [spec], tmp_path / "built")
    wheelhouse = wheelhouse_dir(home)
    pristine = repack(dist_named(home, "patchme"), wheelhouse, python=PY)
    source = lib / "patchme" / "__init__.py"
    original = source.read_bytes()
    source.write_bytes(original + b"PATCHED = True\n")

    patched = repack(dist_named(home, "patchme"), wheelhouse, python=PY)

    assert not patched.reused and patched.sha256 != pristine.sha256
    assert patched.path.name == pristine.path.name == "patchme-1.0-py3-none-any.whl"
    assert pristine.path.parent == wheelhouse
    assert patched.path.parent.parent == wheelhouse / "variants"
    assert members(patched)["patchme/__init__.py"][0].endswith(b"PATCHED = True\n")
    record = members(patched)["patchme-1.0.dist-info/RECORD"][0].decode()
    assert "patchme/__init__.py,sha256=" in record and "dist-info/INSTALLER" not in record
    source.write_bytes(original)
    back = repack(dist_named(home, "patchme"), wheelhouse, python=PY)
    assert back.reused and back.path == pristine.path


def _toolbox_wheel(out: Path) -> Path:
    data, info = "toolbox-1.0.data", "toolbox-1.0.dist-info"
    files = {
        "toolbox/__init__.py": module("1.0", "\ndef main():\n    print('cli', __version__)\n"),
        "toolbox/run.sh": b"#!/bin/sh\necho run\n",
        f"{data}/scripts/toolbox-tool": b"#!python\nimport toolbox\nprint('tool', toolbox.__version__)\n",
        f"{data}/headers/toolbox.h": b"int toolbox;\n",
        f"{data}/data/share/toolbox/readme.txt": b"read me\n",
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: toolbox\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": b"[console_scripts]\ntoolbox-cli = toolbox:main\n",
    }
    out.mkdir(parents=True, exist_ok=True)
    return write_wheel(out / "toolbox-1.0-py2.py3-none-any.whl", info, files)


def test_scripts_headers_data_and_modes_survive(
    home: Path, tmp_path: Path, fresh_venv: Venv
) -> None:
    lib = account_lib(home)
    pip_install_target(lib, [_toolbox_wheel(tmp_path / "built")])
    assert (lib / "bin" / "toolbox-cli").exists()  # pip --target keeps scripts in LIB/bin
    os.chmod(lib / "toolbox" / "run.sh", 0o755)  # chmod +x here, after the install
    wheelhouse = wheelhouse_dir(home)

    wheel = repack(dist_named(home, "toolbox"), wheelhouse, python=PY)

    assert wheel.tag == "py2.py3-none-any"
    got = members(wheel)
    script, mode = got["toolbox-1.0.data/scripts/toolbox-tool"]
    assert script.startswith(b"#!python\n") and mode == 0o755
    assert got["toolbox/run.sh"][1] == 0o755 and got["toolbox/__init__.py"][1] == 0o644
    assert got["toolbox-1.0.data/headers/toolbox.h"][0] == b"int toolbox;\n"
    assert got["toolbox-1.0.data/data/share/toolbox/readme.txt"][0] == b"read me\n"
    assert not any("toolbox-cli" in name for name in got)  # pip writes it again
    assert not any(name.endswith(("INSTALLER", "REQUESTED", "direct_url.json")) for name in got)

    # The layout pip --install-option / easy_install leave: scripts in ~/bin, as RECORD says.
    shutil.move(lib / "bin", home / "bin")
    shutil.move(lib / "include", home / "include")
    shutil.move(lib / "share", home / "share")
    moved = repack(dist_named(home, "toolbox"), wheelhouse, python=PY)
    assert moved.reused and moved.sha256 == wheel.sha256

    fresh_venv.install([wheel.path])
    bin_dir = fresh_venv.python.parent
    tool = subprocess.run([bin_dir / "toolbox-tool"], capture_output=True, text=True, check=True)
    cli = subprocess.run([bin_dir / "toolbox-cli"], capture_output=True, text=True, check=True)
    assert (tool.stdout, cli.stdout) == ("tool 1.0\n", "cli 1.0\n")
    assert os.stat(fresh_venv.site / "toolbox" / "run.sh").st_mode & stat.S_IXUSR


def test_record_paths_that_leave_the_prefix_are_not_packed(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(lib, [WheelSpec("nosy", "1.0", {"nosy.py": module("1.0")})], tmp_path)
    (tmp_path / "secret.txt").write_text("not yours\n")
    depth = len(lib.relative_to(tmp_path).parts)
    record = next(lib.glob("nosy-1.0.dist-info")) / "RECORD"
    with record.open("a") as handle:
        handle.write("../" * depth + "secret.txt,,\n/etc/hostname,,\n")

    wheel = repack(dist_named(home, "nosy"), wheelhouse_dir(home), python=PY)

    assert sorted(members(wheel)) == [
        "nosy-1.0.dist-info/METADATA", "nosy-1.0.dist-info/RECORD",
        "nosy-1.0.dist-info/WHEEL", "nosy-1.0.dist-info/top_level.txt", "nosy.py",
    ]  # fmt: skip


def test_editable_pip_install_packs_the_source_tree(
    home: Path, tmp_path: Path, fresh_venv: Venv
) -> None:
    project = home / "src" / "edpkg"
    write_files(project, {
        "edpkg/__init__.py": module("1.5"),
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n'
        '[project]\nname = "edpkg"\nversion = "1.5"\n[tool.setuptools]\npackages = ["edpkg"]\n',
    })  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
         "--no-deps", "--prefix", str(home / ".local"), "-e", str(project)],
        check=True, capture_output=True, env=pip_env(),
    )  # fmt: skip
    dist = dist_named(home, "edpkg")
    assert dist.editable and dist.kind == "dist-info"

    wheel = repack(dist, wheelhouse_dir(home), python=PY)

    assert payload(wheel) == ["edpkg/__init__.py"]
    fresh_venv.install([wheel.path])
    assert fresh_venv.versions(["edpkg"]) == {"edpkg": "1.5"}
    out = fresh_venv.run("import edpkg; print(edpkg.__file__)")
    assert out.startswith(str(fresh_venv.site))


# --------------------------------------------------------------------------- eggs, bare, develop


def test_other_kinds_repack_with_the_records_name_and_version(home: Path, fresh_venv: Venv) -> None:
    lib = account_lib(home)
    # An egg name `wheel convert` rejects (no python tag), an invalid version, a script.
    egg = write_zipped_egg(
        lib / "Odd.Name_pkg-1.0-beta-custom.egg",
        "Odd.Name-pkg", "1.0-beta-custom", {"oddname/__init__.py": module("1.0-beta-custom")},
        requires="acme-utils>=1\n",
    )  # fmt: skip
    with zipfile.ZipFile(egg, "a") as archive:
        script = zipfile.ZipInfo("EGG-INFO/scripts/odd-report", date_time=(2001, 1, 1, 0, 0, 0))
        script.external_attr = 0o100755 << 16
        archive.writestr(script, "#!/usr/local/bin/python2.4\nprint('odd')\n")
    write_files(lib, {
        "noversion.py": "VALUE = 1\n",
        "compiledpkg/__init__.py": "from compiledpkg.secret import ANSWER\n",
        "compiled_src/secret.py": "ANSWER = 42\n",
    })  # fmt: skip
    py_compile.compile(
        str(lib / "compiled_src" / "secret.py"), str(lib / "compiledpkg" / "secret.pyc")
    )
    shutil.rmtree(lib / "compiled_src")
    py_compile.compile(str(lib / "compiledpkg" / "__init__.py"))  # -> __pycache__
    # Develop installs: one whose tree has setup.py but lost its egg-info, one with neither.
    write_files(home / "src" / "noinfo", {"setup.py": "", "noinfo/__init__.py": module("3")})
    write_files(home / "src" / "bare-tree", {"baretree/__init__.py": module("4")})
    (lib / "noinfo.egg-link").write_text(f"{home / 'src' / 'noinfo'}\n.")
    (lib / "bare-tree.egg-link").write_text(f"{home / 'src' / 'bare-tree'}\n.")
    wheelhouse = wheelhouse_dir(home)

    odd = repack(dist_named(home, "odd-name-pkg"), wheelhouse, python=PY)
    noversion = repack(dist_named(home, "noversion"), wheelhouse, python=PY)
    compiled = repack(dist_named(home, "compiledpkg"), wheelhouse, python=PY)
    noinfo = repack(dist_named(home, "noinfo"), wheelhouse, python=PY)
    with pytest.raises(RepackError, match=r"bare-tree.*has no bare-tree\.egg-info nor setup\.py"):
        repack(dist_named(home, "bare-tree"), wheelhouse, python=PY)

    assert odd.path.name == f"odd_name_pkg-{LOCAL_VERSION}-py3-none-any.whl"
    odd_script = members(odd)[f"odd_name_pkg-{LOCAL_VERSION}.data/scripts/odd-report"]
    assert odd_script == (b"#!python\nprint('odd')\n", 0o755)
    metadata = members(odd)[f"odd_name_pkg-{LOCAL_VERSION}.dist-info/METADATA"][0].decode()
    assert "Name: Odd.Name-pkg\n" in metadata and "Requires-Dist: acme-utils>=1\n" in metadata
    assert noversion.path.name == f"noversion-{LOCAL_VERSION}-py3-none-any.whl"
    assert payload(compiled) == ["compiledpkg/__init__.py", "compiledpkg/secret.pyc"]
    assert payload(noinfo) == ["noinfo/__init__.py"]

    fresh_venv.install([w.path for w in (odd, noversion, compiled, noinfo)])
    assert fresh_venv.versions(["odd-name-pkg", "noversion", "compiledpkg", "noinfo"]) == {
        "odd-name-pkg": LOCAL_VERSION, "noversion": LOCAL_VERSION,
        "compiledpkg": LOCAL_VERSION, "noinfo": LOCAL_VERSION,
    }  # fmt: skip
    assert fresh_venv.run("import compiledpkg, oddname; print(compiledpkg.ANSWER)") == "42\n"
    ran = subprocess.run(
        [fresh_venv.python.parent / "odd-report"], capture_output=True, text=True, check=True
    )
    assert ran.stdout == "odd\n"


# --------------------------------------------------------------------------- extension modules

_EXT3 = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "NAME", NULL, -1, methods};
PyMODINIT_FUNC PyInit_NAME(void) { return PyModule_Create(&def); }
"""
_EXT2 = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyUnicode_FromString("42"); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
PyMODINIT_FUNC initNAME(void) { Py_InitModule("NAME", methods); }
"""


def compile_extension(source: str, name: str, include: str, out: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("extension module tests need gcc")
    c_file = out.with_name(f"{name}.c")
    c_file.parent.mkdir(parents=True, exist_ok=True)
    c_file.write_text(source.replace("NAME", name))
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O0", f"-I{include}", "-o", str(out), str(c_file)],
        check=True, capture_output=True,
    )  # fmt: skip
    c_file.unlink()
    return out


def test_extension_modules_get_the_interpreters_tag(
    home: Path, tmp_path: Path, fresh_venv: Venv
) -> None:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")  # .cpython-311-x86_64-linux-gnu.so
    include = sysconfig.get_paths()["include"]
    build = tmp_path / "build"
    so = compile_extension(_EXT3, "_speedy", include, build / f"_speedy{suffix}")
    plain = compile_extension(_EXT3, "plainext", include, build / "plainext.so")
    native = compile_extension(_EXT3, "_zfast", include, build / f"_zfast{suffix}")
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    interp = f"cp{PY.replace('.', '')}"
    lib = account_lib(home)
    spec = WheelSpec(
        "speedy", "1.0",
        {"speedy/__init__.py": module("1.0", "from speedy._speedy import answer\n"),
         f"speedy/_speedy{suffix}": so.read_bytes()},
        tag=f"{interp}-{interp}-{platform}",
    )  # fmt: skip
    install_wheels(lib, [spec], tmp_path / "wheels")
    shutil.copy(plain, lib / "plainext.so")
    stub = "def __bootstrap__():\n    import pkg_resources\n__bootstrap__()\n"
    egg = write_zipped_egg(
        lib / f"zfast-2.0-py{PY}-linux-x86_64.egg", "zfast", "2.0",
        {"zfast/__init__.py": module("2.0", "from zfast._zfast import answer\n"),
         f"zfast/_zfast{suffix}": native.read_bytes(), "zfast/_zfast.py": stub},
    )  # fmt: skip
    with zipfile.ZipFile(egg, "a") as archive:
        archive.writestr("EGG-INFO/native_libs.txt", f"zfast/_zfast{suffix}\n")
    (lib / f"stale{suffix.replace(PY.replace('.', ''), '310')}").write_bytes(b"\x7fELF")
    wheelhouse = wheelhouse_dir(home)

    wheels = [
        repack(dist_named(home, name), wheelhouse, python=PY)
        for name in ("speedy", "plainext", "zfast")
    ]
    with pytest.raises(RepackError, match=r"built for CPython 3\.10, but the target is Python"):
        repack(dist_named(home, "stale"), wheelhouse, python=PY)

    assert [w.tag for w in wheels] == [f"{interp}-{interp}-{platform}"] * 3
    assert f"zfast/_zfast{suffix}" in payload(wheels[2])
    assert "zfast/_zfast.py" not in payload(wheels[2])  # the pkg_resources loader stub
    wheel_file = members(wheels[0])["speedy-1.0.dist-info/WHEEL"][0].decode()
    assert "Root-Is-Purelib: false" in wheel_file
    fresh_venv.install([w.path for w in wheels])
    out = fresh_venv.run(
        "import speedy, plainext, zfast; print(speedy.answer(), plainext.answer(), zfast.answer())"
    )
    assert out == "42 42 42\n"


def test_python27_extension_module_is_tagged_for_its_unicode_width(
    tmp_path: Path, home: Path
) -> None:
    python = legacy.find_interpreter("2.7")
    if python is None:
        pytest.skip("no python2.7 with setuptools on PATH or in pyenv versions")
    include = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    lib = account_lib(home, python="2.7")
    compile_extension(_EXT2, "fast27", include, lib / "fast27.so")
    width = subprocess.run(
        [str(python), "-c", "import sys; print(sys.maxunicode > 65535)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip

    wheel = repack(dist_named(home, "fast27", "2.7"), wheelhouse_dir(home), python="2.7")

    abi = "cp27mu" if width == "True" else "cp27m"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.tag == f"cp27-{abi}-{platform}"
    target = tmp_path / "target"
    pip_target(python, target, [wheel.path])
    assert subprocess.run(
        [str(python), "-c", f"import sys; sys.path.insert(0, {str(target)!r}); "
         "import fast27; print(fast27.answer())"],
        check=True, capture_output=True, text=True, env=legacy.clean_env(),
    ).stdout == "42\n"  # fmt: skip


# --------------------------------------------------------------------------- legacy installers

LEGACY = ("2.7", "3.6")


class LegacyCase(NamedTuple):
    built: legacy.LegacyHome
    wheels: list[RepackedWheel]
    refused: dict[str, str]


@pytest.fixture(scope="module", params=LEGACY, ids=[f"py{v}" for v in LEGACY])
def legacy_case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LegacyCase:
    version: str = request.param
    python = legacy.find_interpreter(version)
    if python is None:
        pytest.skip(f"no python{version} with setuptools on PATH or in pyenv versions")
    root = tmp_path_factory.mktemp(f"legacy-py{version}")
    built = legacy.build_legacy_home(python, root / "home", root / "work")
    wheels: list[RepackedWheel] = []
    refused: dict[str, str] = {}
    for python_version, dist in dists_of(take_inventory(discover(built.home))):
        try:
            wheels.append(repack(dist, wheelhouse_dir(built.home), python=python_version))
        except RepackError as exc:
            refused[dist.name] = str(exc)
    return LegacyCase(built, wheels, refused)


@pytest.mark.legacy
def test_legacy_installs_repack_and_install_with_the_old_pip(
    legacy_case: LegacyCase, tmp_path: Path
) -> None:
    built = legacy_case.built
    kinds = {w.dist.kind for w in legacy_case.wheels}
    assert kinds == {"egg", "egg-info", "egg-link"}
    assert {w.dist.zipped for w in legacy_case.wheels if w.dist.kind == "egg"} == {True, False}
    assert set(legacy_case.refused) == {"gone-app"}
    assert "source tree" in legacy_case.refused["gone-app"]
    assert "is gone" in legacy_case.refused["gone-app"]
    major = built.version.split(".")[0]
    assert {w.tag for w in legacy_case.wheels} == {f"py{major}-none-any"}
    by_name = {w.dist.name: w for w in legacy_case.wheels}
    assert f"tinyns.leaf-0.9-py{built.version}-nspkg.pth" in payload(by_name["tinyns-leaf"])
    assert not any(".data/" in n for n in members(by_name["tiny-pip"]))  # console wrapper

    target = tmp_path / "target"
    pip_target(built.python, target, [w.path for w in legacy_case.wheels])
    for wheel in legacy_case.wheels:
        assert_carries_installed_bytes(wheel, target)
    tops = sorted({top for w in legacy_case.wheels for top in w.dist.top_level} - {"tinyns"})
    loaded = import_from(built.python, target, [*tops, "tinyns.leaf"])
    for wheel in legacy_case.wheels:
        for top in wheel.dist.top_level:
            name = "tinyns.leaf" if top == "tinyns" else top
            version, where = loaded[name]
            assert where.startswith(str(target)), where
            assert version == wheel.dist.version
    versions = subprocess.run(
        [str(built.python), "-c", textwrap.dedent("""\
            import sys, json
            sys.path.insert(0, sys.argv[1])
            import pkg_resources
            print(json.dumps(dict((n, pkg_resources.get_distribution(n).version)
                                  for n in sys.argv[2:])))
            """), str(target), *by_name],
        check=True, capture_output=True, text=True, env=legacy.clean_env(),
    )  # fmt: skip
    assert json.loads(versions.stdout) == {n: wheel_version(w.dist) for n, w in by_name.items()}

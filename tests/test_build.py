"""Real venvs from real fixture accounts: built offline, verified isolated, rolled back exactly.

The demo account's apps are built once for the module (inside one journal transaction),
then each test looks at the result; the rollback test is last and undoes it all.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import importlib.util
import json
import marshal
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from accounts import PY, install_wheels, write_files
from journal_helper import snapshot

from migrate.build.app import BuildError, BuiltVenv, build_app, build_apps
from migrate.build.repack import RepackError
from migrate.build.venv import (
    HelperUnavailable,
    StoreFill,
    bytecode,
    check,
    create_venv,
    fill_store,
    install,
    install_linked,
    legacy_helper,
    needs_legacy,
    relocate,
)
from migrate.build.venv.storetree import note_files, note_path, store_mtime_ns, unchanged
from migrate.build.verify import MANIFEST, verify_app
from migrate.build.wheelfile import WheelSpec, build_wheel, record_digest
from migrate.demo import build_demo_account
from migrate.discover.account import discover
from migrate.discover.crontab import parse_crontab
from migrate.discover.interpreters import find_interpreter
from migrate.inventory import take_inventory
from migrate.journal import begin, home_lock, rollback, tree
from migrate.layout import STATE_DIR, store_dir, venv_dir
from migrate.paths import is_inside
from migrate.resolve.plan import AppPlan, Plan, plan_account

GREETER = WheelSpec(
    "greeter",
    "1.0",
    {
        "greeter/__init__.py": b'__version__ = "1.0"\n\ndef main():\n    print("hello from greeter")\n',
        "greeter-1.0.dist-info/entry_points.txt": b"[console_scripts]\ngreet = greeter:main\n",
    },
    tag="py2.py3-none-any",
)


def plan_of(home: Path, python: Path, crontab: Path | None = None, version: str = PY) -> Plan:
    """The plan of a test account whose apps run on ``python`` (no server names theirs)."""
    account = discover(home)
    parsed = parse_crontab(crontab.read_text(), crontab) if crontab else None
    return plan_account(account, take_inventory(account), parsed, interpreters={version: python})


def buildable(plan: Plan) -> list[AppPlan]:
    return [app for app in plan.apps if app.has_python and app.entry_points]


def run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# --------------------------------------------------------------------------- relocation


def test_a_relocated_venv_works_after_the_rename_and_names_no_staging_path(
    tmp_path: Path,
) -> None:
    interpreter = find_interpreter(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert interpreter is not None
    wheel = build_wheel(GREETER, tmp_path / "wheels")
    staged = tmp_path / "staging" / "tmp-abc"
    dest = tmp_path / "home" / "webapps" / "app" / "venv"
    create_venv(staged, interpreter, helpers=tmp_path / "helpers", prompt="app")
    install(staged, [wheel])
    relocate(staged, dest)
    dest.parent.mkdir(parents=True)
    staged.rename(dest)
    staged.parent.rmdir()  # the staging dir is gone, nothing can fall back on it

    assert "hello from greeter" in run(dest / "bin" / "greet")
    assert run(dest / "bin" / "python", "-c", "import sys; print(sys.prefix)").strip() == str(dest)
    assert str(dest) in run(dest / "bin" / "pip", "--version")
    assert str(dest) in (dest / "bin" / "activate").read_text()
    mentions = [
        path
        for path in dest.rglob("*")
        if path.is_file() and not path.is_symlink() and os.fsencode(staged) in path.read_bytes()
    ]
    assert mentions == []  # scripts, activate files and bytecode all name the destination


def _store_install(tmp_path: Path, spec: WheelSpec, staged: Path) -> tuple[Path, Path]:
    """``spec`` installed from a store under ``tmp_path`` into an unseeded venv at ``staged``."""
    interpreter = find_interpreter(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert interpreter is not None
    wheel = build_wheel(spec, tmp_path / "wheels")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    create_venv(staged, interpreter, helpers=tmp_path / "helpers", seed=False)
    result = install_linked(staged, [(wheel, sha)], tmp_path / "store", python=interpreter.version)
    assert result.by_pip == ()
    return tmp_path / "store" / sha, wheel


def test_relocating_a_linked_venv_replaces_files_and_never_writes_through_to_the_store(
    tmp_path: Path,
) -> None:
    staged = tmp_path / "staging" / "tmp-abc"
    dest = tmp_path / "home" / "webapps" / "app" / "venv"
    # A script the store links (no #!python line to rewrite) that names the staging path,
    # as a script written for the venv would: relocate must rewrite it in this venv only.
    tool = f"#!/bin/sh\necho {staged}/bin/python\n".encode()
    dist_info = "linked-1.0.dist-info"
    spec = WheelSpec("linked", "1.0", {
        "linked/__init__.py": b"def main():\n    print('hello from linked')\n",
        "linked-1.0.data/scripts/tool": tool,
        "linked-1.0.data/scripts/hello": b"#!python\nimport linked\nlinked.main()\n",
        f"{dist_info}/entry_points.txt": b"[console_scripts]\nlinked-hi = linked:main\n",
    })  # fmt: skip
    tree, _ = _store_install(tmp_path, spec, staged)
    stored = tree / "linked-1.0.data" / "scripts" / "tool"
    assert os.stat(staged / "bin" / "tool").st_ino == os.stat(stored).st_ino
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}

    relocate(staged, dest, compile=False)
    dest.parent.mkdir(parents=True)
    staged.rename(dest)

    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before
    assert stored.read_bytes() == tool  # the store (and every other venv) kept its bytes
    assert (dest / "bin" / "tool").read_bytes() == tool.replace(
        os.fsencode(staged), os.fsencode(dest)
    )
    assert os.stat(dest / "bin" / "tool").st_ino != os.stat(stored).st_ino
    assert os.stat(dest / "bin" / "tool").st_mode & 0o111  # still executable
    # console script and #!python script name the destination's python and run
    assert "hello from linked" in run(dest / "bin" / "linked-hi")
    assert "hello from linked" in run(dest / "bin" / "hello")
    assert (dest / "bin" / "hello").read_bytes().startswith(f"#!{dest}/bin/python\n".encode())
    assert str(dest / "bin" / "python") in run(dest / "bin" / "tool")
    check(dest)


def test_without_bytecode_the_store_compiles_nothing_and_the_venv_compiles_its_own(
    tmp_path: Path,
) -> None:
    interpreter = find_interpreter(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert interpreter is not None
    wheel = build_wheel(GREETER, tmp_path / "wheels")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    venv = tmp_path / "venv"
    create_venv(venv, interpreter, helpers=tmp_path / "helpers", seed=False)
    install_linked(venv, [(wheel, sha)], tmp_path / "store", python=PY, bytecode=False)

    store = tmp_path / "store"
    assert not list(store.rglob("*.pyc")) and not list(store.glob("*.compiled-*"))
    assert "hello from greeter" in run(venv / "bin" / "greet")
    written = list((venv / "lib").rglob("*.pyc"))
    assert written and all(not is_inside(p, store) for p in written)
    assert not list(store.rglob("*.pyc"))  # Python wrote bytecode into the venv, not the store


def test_the_store_compiles_each_module_once_read_only_in_chunks_past_one_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bytecode, "CHUNK", 3)  # one tree, several compiling processes
    files = {f"many/m{i}.py": f"X = {i}\n".encode() for i in range(10)}
    files |= {
        "many/__init__.py": b"",
        "many/py2only.py": b"print 'a Python 2 test file'\n",
        "many-1.0.data/scripts/tool.py": b"#!/bin/sh\necho not a module\n",
    }
    tree, _ = _store_install(tmp_path, WheelSpec("many", "1.0", files), tmp_path / "venv")

    cache = tree / "many" / "__pycache__"
    tag = sys.implementation.cache_tag
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"m{i}.{tag}.pyc" for i in range(10)] + [f"__init__.{tag}.pyc"]
    )  # py2only.py does not compile and still installs; .data scripts are not modules
    assert not list((tree / "many-1.0.data").rglob("*.pyc"))
    for pyc in cache.iterdir():
        assert stat.S_IMODE(os.stat(pyc).st_mode) == 0o444, pyc
    code = marshal.loads((cache / f"m7.{tag}.pyc").read_bytes()[16:])
    assert code.co_filename == f"{tree.name}/many/m7.py"  # relative to the store
    assert bytecode.marker(tree, PY).exists()
    (linked,) = (tmp_path / "venv").glob(f"lib/python*/site-packages/many/__pycache__/m7.{tag}.pyc")
    assert os.stat(linked).st_ino == os.stat(cache / f"m7.{tag}.pyc").st_ino
    assert run(tmp_path / "venv" / "bin" / "python", "-c", "import many.m7; print(many.m7.X)") == (
        "7\n"
    )


def test_bytecode_of_a_compile_cut_short_is_never_linked_and_is_compiled_again(
    tmp_path: Path,
) -> None:
    tree, wheel = _store_install(tmp_path, GREETER, tmp_path / "venv")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pyc = tree / "greeter" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    good = pyc.read_bytes()
    os.chmod(pyc, 0o644)  # as a compile killed midway leaves it: half a file, no marker
    pyc.write_bytes(good[:10])
    os.unlink(bytecode.marker(tree, PY))
    interpreter = find_interpreter(PY)
    assert interpreter is not None

    lean = tmp_path / "lean"
    create_venv(lean, interpreter, helpers=tmp_path / "helpers", seed=False)
    install_linked(lean, [(wheel, sha)], tmp_path / "store", python=PY, bytecode=False)
    assert not list(lean.glob("lib/python*/site-packages/greeter/__pycache__/*"))

    full = tmp_path / "full"
    create_venv(full, interpreter, helpers=tmp_path / "helpers", seed=False)
    install_linked(full, [(wheel, sha)], tmp_path / "store", python=PY)
    assert pyc.read_bytes() == good and bytecode.marker(tree, PY).exists()
    (linked,) = full.glob(f"lib/python*/site-packages/greeter/__pycache__/{pyc.name}")
    assert os.stat(linked).st_ino == os.stat(pyc).st_ino
    assert "hello from greeter" in run(full / "bin" / "greet")


def test_bytecode_that_cannot_be_written_leaves_no_short_file_and_the_tree_unmarked(
    tmp_path: Path,
) -> None:
    """A full disk or a quota while compiling (here a file-size limit the compiling
    processes inherit): no truncated ``.pyc`` under its name, no marker, so nothing links
    bytecode from the tree; the next build compiles it."""
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    wheel = build_wheel(GREETER, tmp_path / "wheels")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    store = tmp_path / "store"
    # The same wheel twice (a seed pip an app also pins) is one tree, unpacked once.
    trees = fill_store([(wheel, sha), (wheel, sha)], store, interpreter=interpreter.executable,
                       python=PY, bytecode=False)  # fmt: skip
    assert trees == [store / sha, store / sha]
    script = (
        "import resource, sys; from pathlib import Path; from migrate.build.venv import "
        "fill_store\nresource.setrlimit(resource.RLIMIT_FSIZE, (40, 40))\n"
        "fill_store([(Path(sys.argv[1]), sys.argv[2])], Path(sys.argv[3]), "
        "interpreter=Path(sys.argv[4]), python=sys.argv[5])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(wheel), sha, str(store),
         str(interpreter.executable), PY],
        check=True, capture_output=True,
    )  # fmt: skip
    assert not list((store / sha).rglob("*.pyc"))
    assert not bytecode.marker(store / sha, PY).exists()

    fill_store([(wheel, sha)], store, interpreter=interpreter.executable, python=PY)
    assert list((store / sha).rglob("*.pyc")) and bytecode.marker(store / sha, PY).exists()


def test_a_store_fill_stopped_by_an_error_kills_its_compiles_and_marks_no_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``build`` feeds the store each wheel as it is repacked: a repack that fails then
    stops the compiles under way (none outlives the build) and the tree they were
    compiling stays unmarked, so no venv links its half-made bytecode."""
    monkeypatch.setattr(bytecode, "CHUNK", 1)  # a process per module: still busy below
    files = {f"slow/m{i}.py": f"X = {i}\n".encode() for i in range(60)}
    wheel = build_wheel(WheelSpec("slow", "1.0", {"slow/__init__.py": b"", **files}), tmp_path)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    store = tmp_path / "store"

    filling = StoreFill(store, interpreter=interpreter.executable, python=PY)
    with pytest.raises(RepackError, match="a later repack failed"), filling:
        filling.add(wheel, sha)
        while sha not in filling.trees:  # unpacked, and its compiles started
            filling.add(wheel, sha)
        raise RepackError("a later repack failed")

    tree = store / sha
    assert tree.is_dir() and not bytecode.marker(tree, PY).exists()
    assert len(list(tree.rglob("*.pyc"))) < len(files) + 1, "the compiles were cut short"
    assert _live_children() == []
    trees = fill_store([(wheel, sha)], store, interpreter=interpreter.executable, python=PY)
    assert trees == [tree] and bytecode.marker(tree, PY).exists()
    assert len(list(tree.rglob("*.pyc"))) == len(files) + 1


def _slow_python(tmp_path: Path, seconds: int) -> Path:
    """The real interpreter, but a chunk naming ``slow`` only sleeps: a compile held up
    by the disk, say."""
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    wrapper = tmp_path / "python-slow"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *slow*) exec sleep {seconds};; esac\nexec {interpreter.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_a_chunk_that_ends_is_followed_at_once_though_an_older_one_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bytecode, "CHUNK", 1)
    names = ["a_slow", *(f"fast{i}" for i in range(6))]
    files = {f"pkg/{name}.py": b"X = 1\n" for name in names}
    wheel = build_wheel(WheelSpec("pkg", "1.0", {"pkg/__init__.py": b"", **files}), tmp_path)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    tree = fill_store([(wheel, sha)], tmp_path / "store", interpreter=Path(sys.executable),
                      python=PY, bytecode=False)[0]  # fmt: skip
    assert isinstance(tree, Path)
    compiler = bytecode.StoreCompiler(_slow_python(tmp_path, 20), tmp_path / "store", PY, None, 2)
    cache = tree / "pkg" / "__pycache__"
    try:
        compiler.add(tree)  # __init__ first, then a_slow beside the fast ones
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            compiler.poll()
            done = {p.name.split(".")[0] for p in cache.iterdir()} if cache.exists() else set()
            if {"__init__", *names[1:]} <= done:
                break
            time.sleep(0.05)
        assert {"__init__", *names[1:]} <= done, "the other CPU waited for the slow chunk"
    finally:
        compiler.kill()
    assert not bytecode.marker(tree, PY).exists()


def test_a_chunk_past_the_time_limit_is_killed_and_its_tree_left_unmarked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bytecode, "TIMEOUT", 1.0)
    files = {"slow/__init__.py": b"", "slow/m.py": b"X = 1\n"}
    wheel = build_wheel(WheelSpec("slow", "1.0", files), tmp_path)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    store = tmp_path / "store"

    started = time.monotonic()
    trees = fill_store([(wheel, sha)], store, interpreter=_slow_python(tmp_path, 60), python=PY)

    assert time.monotonic() - started < 30
    assert trees == [store / sha] and not bytecode.marker(store / sha, PY).exists()
    assert _live_children() == []


def _live_children() -> list[int]:
    """This process's live children: after a store fill, its compiles must all be gone."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ValueError):
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields.get("PPid", "0")) == os.getpid() and not fields["State"].startswith("Z"):
            found.append(int(entry))
    return found


def test_a_store_tree_is_unchanged_until_a_file_is_edited_swapped_or_added(
    tmp_path: Path,
) -> None:
    tree, _ = _store_install(tmp_path, GREETER, tmp_path / "venv")
    assert unchanged(tree) is True
    member = tree / "greeter" / "__init__.py"
    data = member.read_bytes()
    own_mtime = store_mtime_ns(hashlib.sha256(data).digest())
    assert os.stat(member).st_mtime_ns == own_mtime
    os.chmod(member, 0o644)  # the same size, in place, at once: as through a venv's link
    with open(member, "r+b") as out:
        out.write(data.replace(b"hello", b"HELLO"))
    assert unchanged(tree) is False
    member.write_bytes(data)
    os.utime(member, ns=(own_mtime, own_mtime))
    assert unchanged(tree) is True  # its bytes and times back: nothing to tell
    # `cp -p` from another store file of the same size, through the link: its times too
    other = next(p for p in tree.rglob("*") if p.is_file() and p != member)
    with open(member, "r+b") as out:
        out.write(data.replace(b"hello", b"HELLO"))
    os.utime(member, ns=(os.stat(other).st_mtime_ns, os.stat(other).st_mtime_ns))
    assert unchanged(tree) is False
    member.write_bytes(data)
    os.utime(member, ns=(own_mtime, own_mtime))
    member.unlink()
    member.write_bytes(data)  # a new file in its place
    os.utime(member, ns=(own_mtime, own_mtime))
    assert unchanged(tree) is False
    note_files(tree)
    (tree / "greeter" / "extra.py").write_bytes(b"")
    assert unchanged(tree) is False
    (tree / "greeter" / "extra.py").unlink()
    (tree / "greeter" / "link.py").symlink_to("/etc/hostname")
    assert unchanged(tree) is False
    (tree / "greeter" / "link.py").unlink()
    os.unlink(note_path(tree))
    assert unchanged(tree) is None  # an older store: hashed against RECORD instead


def test_an_older_store_tree_without_a_note_is_hashed_and_a_damaged_one_replaced(
    tmp_path: Path,
) -> None:
    """Trees unpacked before the note existed are checked by their RECORD hashes, in a new
    process (this one remembers what it checked): an edit whose mtime was set back is
    found that way, and the next venv gets the wheel's bytes."""
    tree, wheel = _store_install(tmp_path, GREETER, tmp_path / "venv")
    os.unlink(note_path(tree))
    member = tree / "greeter" / "__init__.py"
    data = member.read_bytes()
    mtime = os.stat(member).st_mtime_ns
    os.chmod(member, 0o644)
    member.write_bytes(data.replace(b"hello", b"HELLO"))
    os.utime(member, ns=(mtime, mtime))
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    script = (
        "import sys; from pathlib import Path; from migrate.build.venv import unpack_to_store\n"
        "print(unpack_to_store(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(wheel), sha, str(tmp_path / "store")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(tree)
    assert member.read_bytes() == data  # replaced by a fresh tree from the wheel
    assert unchanged(tree) is True  # and noted


def test_a_file_system_that_refuses_hardlinks_gets_copies_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    interpreter = find_interpreter(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert interpreter is not None
    wheel = build_wheel(GREETER, tmp_path / "wheels")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    venv = tmp_path / "venv"
    create_venv(venv, interpreter, helpers=tmp_path / "helpers", seed=False)
    monkeypatch.setattr(os, "link", refuse)
    result = install_linked(venv, [(wheel, sha)], tmp_path / "store", python=interpreter.version)
    assert result.linked == 0 and result.copied > 0
    assert result.copy_reason is not None and "copied" in result.copy_reason
    (copy,) = venv.glob("lib/python*/site-packages/greeter/__init__.py")
    assert os.stat(copy).st_nlink == 1
    assert "hello from greeter" in run(venv / "bin" / "greet")


# --------------------------------------------------------------------------- the demo account


@dataclass(frozen=True)
class Built:
    home: Path
    crontab: Path
    plan: Plan
    before: dict[str, tuple[object, ...]]
    venvs: dict[str, BuiltVenv]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    demo = build_demo_account(tmp_path_factory.mktemp("build") / "demo")
    plan = plan_of(demo.home, demo.python, demo.crontab)
    before = snapshot(demo.home)
    with home_lock(demo.home):
        transaction = begin(demo.home, "build")
        venvs = {v.app: v for v in build_apps(demo.home, buildable(plan), transaction)}
        transaction.commit()
    yield Built(demo.home, demo.crontab, plan, before, venvs)


def test_every_python_app_gets_its_venv_at_its_place_and_it_verifies(built: Built) -> None:
    home = built.home
    assert set(built.venvs) == {"blog", "shop", "~"}
    assert built.venvs["blog"].path == home / "webapps" / "blog" / "venv"
    assert built.venvs["~"].path == home / ".venvs" / "account"
    assert not list((home / STATE_DIR).glob("tmp-*"))  # every staging dir renamed in
    for app in buildable(built.plan):
        venv = built.venvs[app.name]
        assert (venv.path / "bin" / "python").exists()
        report = verify_app(venv.path, app, home)
        assert report.ok, report.problems
        assert {c.name for c in report.versions} == {p.name for p in venv.pins}
    blog_report = verify_app(built.venvs["blog"].path, app_named(built, "blog"), home)
    blog = {c.name: c for c in blog_report.versions}
    assert blog["tinyhttp"].found == "1.8"  # the blog's own shadowing copy, not the account's
    assert blog["oldlib"].found == "0.4"


def test_each_distribution_the_apps_share_is_packed_once_per_run(built: Built) -> None:
    by_copy: dict[tuple[Path, str], list[object]] = {}
    for venv in built.venvs.values():
        for wheel in venv.wheels:
            by_copy.setdefault((wheel.dist.path, wheel.dist.name), []).append(wheel)
    shared = {key: wheels for key, wheels in by_copy.items() if len(wheels) > 1}
    assert any(name == "acme-utils" for _, name in shared)  # ~/lib's, used by every app
    for wheels in shared.values():
        # One wheel per copy for the whole run, packed here: no app found it in the
        # wheelhouse after another app had packed it again.
        assert all(wheel is wheels[0] for wheel in wheels)
        assert not wheels[0].reused  # type: ignore[attr-defined]


def test_the_locally_patched_file_is_in_the_venv_patched(built: Built) -> None:
    for name in ("blog", "shop", "~"):
        venv = built.venvs[name].path
        patched = next(venv.glob("lib/python*/site-packages/acme_utils/__init__.py"))
        assert "# hotfix 2019-03-02: strip whitespace too" in patched.read_text()


def test_a_second_build_of_a_built_app_is_refused(built: Built) -> None:
    with home_lock(built.home):
        transaction = begin(built.home, "again")
        with pytest.raises(BuildError, match="exists already"):
            build_app(built.home, app_named(built, "shop"), transaction)
        transaction.commit()
        rollback(built.home)  # the empty transaction; the build one stays


def test_the_venvs_stand_alone_without_the_concentric_lib_dirs(built: Built) -> None:
    home = built.home
    moved = [lib for lib in (home / "lib", *home.glob("webapps/*/lib")) if lib.is_dir()]
    for lib in moved:
        lib.rename(lib.with_name("lib.away"))
    try:
        for app in buildable(built.plan):
            report = verify_app(built.venvs[app.name].path, app, home)
            assert report.ok, (app.name, report.problems)
            assert all(str(home / "lib") not in (c.file or "") for c in report.imports)
    finally:
        for lib in moved:
            lib.with_name("lib.away").rename(lib)


def test_verify_reports_what_a_venv_lacks(built: Built, tmp_path: Path) -> None:
    shop = app_named(built, "shop")
    interpreter = find_interpreter(shop.python or "")
    assert interpreter is not None
    empty = tmp_path / "empty"
    create_venv(empty, interpreter, helpers=built.home / STATE_DIR / "helpers")
    install(empty, [built.venvs["shop"].wheels[0].path])  # acme-utils only
    report = verify_app(empty, shop, built.home)
    assert not report.ok
    failed = {c.name for c in report.imports if not c.ok}
    assert failed == {"tinyhttp", "webframe"}
    assert {c.name: c.found for c in report.versions if not c.ok} == {
        "tinyhttp": None,
        "webframe": None,
    }


def test_verify_finds_each_version_where_importlib_metadata_finds_it(
    built: Built, tmp_path: Path
) -> None:
    """The check reads versions from the metadata files on ``sys.path`` rather than
    importing ``importlib.metadata`` in every venv: dist-info, egg-info folders and files,
    eggs, each named by its folder, the first on ``sys.path`` winning — as the venv's own
    importlib.metadata says. Checked with importlib.metadata made unimportable in the
    venv, so no answer comes from it."""
    shop = app_named(built, "shop")
    interpreter = find_interpreter(shop.python or "")
    assert interpreter is not None
    venv = tmp_path / "kinds"
    create_venv(venv, interpreter, helpers=built.home / STATE_DIR / "helpers", seed=False)
    site = next(venv.glob("lib/python*/site-packages"))
    later = tmp_path / "later"
    write_files(site, {
        "alpha-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n\n",
        "Beta_Pkg-2.0.egg-info/PKG-INFO": "Metadata-Version: 1.1\nName: Beta-Pkg\nVersion: 2.0\n",
        "gamma-3.0.egg-info": "Metadata-Version: 1.1\nName: gamma\nVersion: 3.0\n",
        "omega-1.0.egg-info/PKG-INFO": "Metadata-Version: 1.1\nName: omega\nVersion: 1.0\n",
        "delta-4.0-py3.egg/EGG-INFO/PKG-INFO": "Metadata-Version: 1.1\nName: delta\nVersion: 4.0\n",
        "folded_name-5.0.dist-info/METADATA": "Name: Something-Else\nVersion: 5.0\n",
        "lower-6.0.dist-info/METADATA": "name: lower\nversion: 6.0\n",
        "paths.pth": f"{site}/delta-4.0-py3.egg\n{later}\n",
    })  # fmt: skip
    write_files(later, {  # after site-packages on sys.path: shadowed
        "omega-2.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: omega\nVersion: 2.0\n",
        "alpha-0.5.dist-info/METADATA": "Metadata-Version: 2.1\nName: alpha\nVersion: 0.5\n",
    })  # fmt: skip
    names = ["alpha", "beta-pkg", "gamma", "omega", "delta", "folded-name", "lower"]
    asked = "import importlib.metadata as m, json, sys; print(json.dumps([m.version(n) for n in sys.argv[1:]]))"
    runtime = json.loads(run(venv / "bin" / "python", "-I", "-c", asked, *names))
    assert runtime == ["1.0", "2.0", "3.0", "1.0", "4.0", "5.0", "6.0"]
    (site / "no_metadata.pth").write_text('import sys; sys.modules["importlib.metadata"] = None\n')
    pins = [[name, "9"] for name in names]
    (venv / MANIFEST).write_text(json.dumps({"pins": pins, "imports": []}), encoding="utf-8")

    report = verify_app(venv, shop, built.home)

    assert [check.found for check in report.versions] == runtime


def test_apps_sharing_a_wheel_share_its_files_with_the_store(built: Built) -> None:
    store = store_dir(built.home)
    for venv in built.venvs.values():
        assert venv.linked is not None and venv.linked.by_pip == ()
        assert venv.linked.linked > 0 and venv.linked.copied == 0
    files = [
        next(built.venvs[name].path.glob("lib/python*/site-packages/acme_utils/__init__.py"))
        for name in ("blog", "shop", "~")
    ]
    (stored,) = store.glob("*/acme_utils/__init__.py")
    inodes = {os.stat(path).st_ino for path in (*files, stored)}
    assert inodes == {os.stat(stored).st_ino}
    assert os.stat(stored).st_nlink >= 4  # the store and three venvs: one copy on disk
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # read-only: no edit in place


def test_the_journal_lists_a_linked_venv_exactly_without_a_stat_per_link(built: Built) -> None:
    """What the link step vouches for (each store file's inode, size and mtime) gives the
    listing a full walk gives: the journal may skip the stat of every link."""
    for venv in built.venvs.values():
        assert venv.linked is not None and len(venv.linked.known) > 100
        assert tree.listing(venv.path, venv.linked.known) == tree.listing(venv.path)
        vouched_wrong = dict.fromkeys(venv.linked.known, (0, 0))  # taken, not stat'ed
        assert tree.listing(venv.path, vouched_wrong) != tree.listing(venv.path)


def test_the_journal_lists_every_path_of_a_venv_but_its_bytecode(built: Built) -> None:
    """The listing is what ``os.walk`` and ``lstat`` see, bytecode files left out (rollback
    never keeps them aside, so listing them would only double a compiled venv's listing);
    ``__pycache__`` folders stay."""
    for venv in built.venvs.values():
        expected: dict[str, tuple[str, ...]] = {}
        bytecode = 0
        for top, folders, files in os.walk(venv.path):
            rel_top = os.path.relpath(top, venv.path)
            for name in folders + files:
                path = os.path.join(top, name)
                rel = name if rel_top == "." else f"{rel_top}/{name}"
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    expected[rel] = ("l", os.readlink(path))
                elif stat.S_ISDIR(info.st_mode):
                    expected[rel] = ("d",)
                elif name.endswith((".pyc", ".pyo")):
                    bytecode += 1
                else:
                    expected[rel] = ("f", str(info.st_size), str(info.st_mtime_ns))
        assert bytecode > 100 and any(rel.endswith("/__pycache__") for rel in expected)
        assert tree.listing(venv.path, venv.linked.known if venv.linked else None) == expected


def test_linked_venvs_have_their_own_record_and_installer_and_pass_pip_check(
    built: Built,
) -> None:
    for venv in built.venvs.values():
        check(venv.path)  # the tool's pip, run by the venv's python
        own_pip = subprocess.run(
            [str(venv.path / "bin" / "pip"), "--version"], capture_output=True, text=True
        )
        assert own_pip.returncode == 0 and str(venv.path) in own_pip.stdout, (
            "each venv keeps its pip"
        )
        (site,) = venv.path.glob("lib/python*/site-packages")
        infos = sorted(i for i in site.glob("*.dist-info") if not i.name.startswith("pip-"))
        assert len(infos) == len(venv.pins)
        for info in infos:
            assert (info / "INSTALLER").read_text() == "concentric-migrate\n"
            rows = list(csv.reader((info / "RECORD").read_text().splitlines()))
            assert [info.name + "/RECORD", "", ""] in rows
            for name, digest, size in rows:
                path = site / name
                assert path.is_file(), name
                if digest:
                    data = path.read_bytes()
                    assert (record_digest(data), str(len(data))) == (digest, size), name
        # bytecode compiled once in the store, linked, and valid for the linked source
        source = next(site.glob("acme_utils/__init__.py"))
        pyc = Path(importlib.util.cache_from_source(str(source)))
        assert pyc.is_file() and os.stat(pyc).st_nlink >= 2
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        if flags == 0:  # timestamp-based: the source's mtime and size, as the link has them
            assert int.from_bytes(pyc.read_bytes()[8:12], "little") == int(os.stat(source).st_mtime)


def test_rollback_removes_the_venvs_and_restores_the_home_byte_for_byte(built: Built) -> None:
    """Last in the module: it undoes the build the other tests look at."""
    with home_lock(built.home):
        result = rollback(built.home)
    assert not result.already
    for venv in built.venvs.values():
        assert not os.path.lexists(venv.path)
    assert snapshot(built.home) == built.before


def app_named(built: Built, name: str) -> AppPlan:
    return next(app for app in built.plan.apps if app.name == name)


def test_a_failed_pip_check_leaves_nothing_behind(tmp_path: Path, bare_python: Path) -> None:
    home = tmp_path / "home"
    app_dir = home / "webapps" / "needy"
    needy = WheelSpec(
        "needy", "2.0", {"needy/__init__.py": b'__version__ = "2.0"\n'}, requires=("absent-dep>=1",)
    )
    install_wheels(app_dir / "lib" / f"python{PY}", [needy], tmp_path / "wheels")
    write_files(
        app_dir,
        {
            "needy.wsgi": f"import sys\nsys.path.insert(0, '{app_dir}/lib/python{PY}')\nimport needy\n"
        },
    )
    (app,) = buildable(plan_of(home, bare_python))
    before = snapshot(home)
    with home_lock(home):
        transaction = begin(home, "build")
        with pytest.raises(
            BuildError, match=r"needy 2.0 requires absent-dep, which is not installed"
        ):
            build_app(home, app, transaction)
        transaction.commit()
        assert not list((home / STATE_DIR).glob("tmp-*"))
        assert not venv_dir(home, app.name).exists()
        rollback(home)
    assert snapshot(home) == before


# --------------------------------------------------------------------------- old interpreters


@pytest.mark.legacy
@pytest.mark.parametrize("version", ["3.6", "2.7"])
def test_an_old_python_app_builds_verifies_and_rolls_back(
    version: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    interpreter = find_interpreter(version)
    if interpreter is None:
        pytest.skip(f"no python{version} on PATH or in pyenv versions")
    assert needs_legacy(version)
    helpers = Path(request.config.cache.mkdir("concentric-build-helpers"))
    try:
        legacy_helper(helpers)  # built once, then cached across runs
    except HelperUnavailable as exc:
        pytest.skip(f"the legacy virtualenv helper cannot be fetched: {exc}")

    home = tmp_path / "home"
    app_dir = home / "webapps" / "old"
    install_wheels(app_dir / "lib" / f"python{version}", [GREETER], tmp_path / "wheels")
    write_files(app_dir, {
        "old.wsgi": textwrap.dedent(f"""\
            import sys
            sys.path.insert(0, '{app_dir}/lib/python{version}')
            import greeter

            def application(environ, start_response):
                start_response('200 OK', [])
                return [greeter.__version__.encode()]
            """),
    })  # fmt: skip
    plan = plan_of(home, interpreter.executable, version=version)
    (app,) = buildable(plan)
    assert app.python == version
    before = snapshot(home)
    # A copy of the cached helper (and virtualenv's app data) for this fresh home: a
    # symlink would be refused (the tool's folders are the home's own, issue 16).
    (home / STATE_DIR).mkdir(mode=0o700)
    shutil.copytree(helpers, home / STATE_DIR / "helpers", symlinks=True)
    with home_lock(home):
        transaction = begin(home, "build")
        result = build_app(home, app, transaction)
        transaction.commit()
    venv = venv_dir(home, app.name)
    assert result.path == venv
    report = verify_app(venv, app, home)
    assert report.ok, report.problems
    assert "hello from greeter" in run(venv / "bin" / "greet")
    assert run(venv / "bin" / "python", "-c", "import sys; print(sys.version[:3])").strip() == (
        version
    )

    with home_lock(home):
        rollback(home)
    assert not venv.exists()
    assert snapshot(home) == before


def test_a_venv_gets_its_app_folders_mode_and_owner(tmp_path: Path, bare_python: Path) -> None:
    home = tmp_path / "home"
    app_dir = home / "webapps" / "private"
    install_wheels(app_dir / "lib" / f"python{PY}", [GREETER], tmp_path / "wheels")
    write_files(app_dir, {"private.wsgi": "import greeter\n"})
    app_dir.chmod(0o750)
    owner = (4321, 4321) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(app_dir, *owner)
    (app,) = buildable(plan_of(home, bare_python))
    with home_lock(home):
        transaction = begin(home, "build")
        venv = build_app(home, app, transaction).path
        transaction.commit()
    info = os.stat(venv)
    assert oct(info.st_mode & 0o7777) == oct(0o750)
    assert (info.st_uid, info.st_gid) == owner
    python = venv / "lib" / f"python{PY}" / "site-packages" / "greeter" / "__init__.py"
    assert (os.stat(python).st_uid, os.stat(python).st_gid) == owner

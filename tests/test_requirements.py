"""`requirements`: pinned files that plain pip installs, offline, to the same versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, module, write_files
from click.testing import CliRunner

from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.cli import cli

SPECS = {
    "blogengine": WheelSpec(
        "BlogEngine",
        "2.3.1",
        {"blogengine/__init__.py": module("2.3.1", "import markup\n")},
        requires=("markup>=1.0", "legacy-extra; python_version < '3'", "typo-fix[speed]"),
    ),
    "markup": WheelSpec("markup", "1.4", {"markup/__init__.py": module("1.4")}),
    "typo-fix": WheelSpec(
        "typo-fix",
        "0.2.post1",
        {"typo_fix/__init__.py": module("0.2.post1")},
        requires=("fastpath; extra == 'speed'",),
    ),
    "fastpath": WheelSpec("fastpath", "3.0", {"fastpath.py": module("3.0")}),
    "unusedlib": WheelSpec("unusedlib", "9.9", {"unusedlib.py": module("9.9")}),
    "shopkit": WheelSpec(
        "shopkit", "1.0", {"shopkit/__init__.py": module("1.0")}, requires=("markup<2",)
    ),
}


@pytest.fixture
def account(home: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two apps with dist-info installs in app and account lib dirs; returns (home, wheelhouse)."""
    wheelhouse = tmp_path / "wheelhouse"
    for spec in SPECS.values():
        build_wheel(spec, wheelhouse)
    install_wheels(
        account_lib(home),
        [SPECS["markup"], SPECS["typo-fix"], SPECS["fastpath"], SPECS["unusedlib"]],
        tmp_path / "w1",
    )
    blog_lib = account_lib(home, "blog")
    install_wheels(blog_lib, [SPECS["blogengine"]], tmp_path / "w2")
    install_wheels(account_lib(home, "shop"), [SPECS["shopkit"]], tmp_path / "w3")
    for app, imports in (("blog", "blogengine, typo_fix"), ("shop", "shopkit, markup")):
        write_files(
            home / "webapps" / app,
            {
                f"{app}.wsgi": f"import {imports}\napplication = None\n",
                "apache2/conf/httpd.conf": (
                    f"WSGIDaemonProcess {app} python-path={home}/webapps/{app}/lib/python{PY}:{home}/lib/python{PY}\n"
                    f"WSGIProcessGroup {app}\nWSGIScriptAlias / {home}/webapps/{app}/{app}.wsgi\n"
                ),
            },
        )
    return home, wheelhouse


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True)


def test_exact_files_pin_what_is_installed(account: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = account
    out = tmp_path / "out"
    result = run("--home", str(home), "requirements", "--out", str(out))

    assert result.returncode == 0, result.stderr
    blog_txt = (out / "blog" / "requirements.txt").read_text()
    pins = [line for line in blog_txt.splitlines() if "==" in line]
    assert pins == ["blogengine==2.3.1", "fastpath==3.0", "markup==1.4", "typo-fix==0.2.post1"]
    assert "    # via\n    #   -r requirements.in\n    #   blogengine\n" in blog_txt, (
        "typo-fix is both"
    )
    assert "fastpath==3.0\n    # via typo-fix\n" in blog_txt, "pulled in through the [speed] extra"
    assert "unusedlib" not in blog_txt and "legacy-extra" not in blog_txt
    blog_in = (out / "blog" / "requirements.in").read_text()
    assert [
        line
        for line in blog_in.splitlines()
        if line and not line.startswith(" ") and not line.startswith("#")
    ] == ["blogengine", "typo-fix"]
    assert "# import blogengine in ~/webapps/blog/blog.wsgi:1" in blog_in
    assert not list(home.rglob("requirements.*")), "--out never touches the home"


@pytest.mark.parametrize("app", ["blog", "shop"])
def test_plain_pip_installs_the_file_offline_and_imports_match(
    account: tuple[Path, Path], tmp_path: Path, app: str
) -> None:
    home, wheelhouse = account
    out = tmp_path / "out"
    assert run("--home", str(home), "requirements", "--out", str(out)).returncode == 0
    env_dir = tmp_path / f"venv-{app}"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip_env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "-r",
            str(out / app / "requirements.txt"),
        ],
        check=True,
        env=pip_env,
    )
    modules = {
        "blog": ["blogengine", "typo_fix", "markup", "fastpath"],
        "shop": ["shopkit", "markup"],
    }[app]
    probe = (
        "import json, sys; print(json.dumps({m: __import__(m).__version__ for m in sys.argv[1:]}))"
    )

    in_venv = json.loads(
        subprocess.run(
            [str(python), "-I", "-c", probe, *modules], capture_output=True, text=True, check=True
        ).stdout
    )
    today_path = [
        str(home / "webapps" / app / "lib" / f"python{PY}"),
        str(home / "lib" / f"python{PY}"),
    ]
    today = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-S",
                "-c",
                f"import sys; sys.path[:0] = {today_path!r}\n{probe}",
                *modules,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert in_venv == today
    check = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, env=pip_env
    )
    assert check.returncode == 0, check.stdout


def test_compile_mode_lets_pip_tools_prove_the_set(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, wheelhouse = account
    out = tmp_path / "out"
    result = run(
        "--home",
        str(home),
        "requirements",
        "--out",
        str(out),
        "--mode",
        "compile",
        "--find-links",
        str(wheelhouse),
        "--no-index",
    )

    assert result.returncode == 0, result.stderr
    text = (out / "shop" / "requirements.txt").read_text()
    assert "mode: compile; pip's resolver agrees" in text
    assert [line for line in text.splitlines() if "==" in line] == ["markup==1.4", "shopkit==1.0"]


def test_compile_mode_fails_clearly_when_the_index_lacks_a_version(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, wheelhouse = account
    (wheelhouse / "markup-1.4-py3-none-any.whl").unlink()
    build_wheel(WheelSpec("markup", "1.5", {"markup/__init__.py": module("1.5")}), wheelhouse)
    out = tmp_path / "out"

    result = run(
        "--home",
        str(home),
        "requirements",
        "--out",
        str(out),
        "--mode",
        "compile",
        "--find-links",
        str(wheelhouse),
        "--no-index",
        "--app",
        "shop",
    )

    assert result.returncode == 1
    assert "pip-compile could not resolve shop" in result.stderr
    assert not out.exists()


def test_hashes_from_a_wheelhouse_install_in_hash_checking_mode(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, wheelhouse = account
    out = tmp_path / "out"
    result = run(
        "--home",
        str(home),
        "requirements",
        "--out",
        str(out),
        "--hashes",
        "--find-links",
        str(wheelhouse),
        "--app",
        "shop",
    )
    assert result.returncode == 0, result.stderr
    text = (out / "shop" / "requirements.txt").read_text()
    assert text.count("--hash=sha256:") == 2
    target = tmp_path / "target"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--require-hashes",
            "--target",
            str(target),
            "-r",
            str(out / "shop" / "requirements.txt"),
        ],
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    assert (target / "shopkit" / "__init__.py").is_file()


def test_hashes_without_wheels_is_a_clear_failure(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, _ = account
    result = run("--home", str(home), "requirements", "--out", str(tmp_path / "out"), "--hashes")
    assert result.returncode == 1
    assert "--hashes needs a wheel for every pin" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_usage_is_exit_2_and_writes_nothing(account: tuple[Path, Path]) -> None:
    home, _ = account
    inside = run("--home", str(home), "requirements", "--out", str(home / "reqs"))
    no_index = run("--home", str(home), "requirements", "--no-index")
    assert inside.returncode == 2 and "inside the home" in inside.stderr
    assert no_index.returncode == 2
    assert not (home / "reqs").exists()


def test_dry_run_prints_diffs_and_writes_nothing(account: tuple[Path, Path]) -> None:
    home, _ = account
    before = sorted(p for p in home.rglob("*"))
    result = run("--home", str(home), "requirements", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert f"+++ {home / 'webapps' / 'blog' / 'requirements.txt'}" in result.stdout
    assert "+blogengine==2.3.1" in result.stdout
    assert "nothing was written" in result.stderr
    assert sorted(p for p in home.rglob("*")) == before


def test_demo_marks_what_no_index_can_provide(tmp_path: Path) -> None:
    from migrate.demo import build_demo_account

    demo = build_demo_account(tmp_path / "demo")
    result = CliRunner().invoke(
        cli,
        [
            "--home",
            str(demo.home),
            "--crontab",
            str(demo.crontab),
            "requirements",
            "--out",
            str(tmp_path / "out"),
        ],
    )

    assert result.exit_code == 0, result.output
    blog = (tmp_path / "out" / "blog" / "requirements.txt").read_text()
    assert (
        "tinyhttp==1.8\n    # via -r requirements.in\n    # bare copy in ~/webapps/blog/lib/"
        in blog
    )
    assert (
        "acme-utils==1.2.0" in blog and "# locally modified: 1 file(s) differ from RECORD" in blog
    )
    assert (tmp_path / "out" / "_account" / "requirements.txt").is_file()


# --------------------------------------------------------------------------- the journal path


def snapshot(home: Path) -> dict[str, tuple[str, int]]:
    """sha256 (or "dir") and mode of everything under HOME except the tool's own state."""
    import hashlib

    out = {}
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home)
        if rel.parts[0] == ".concentric-migrate":
            continue
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(rel)] = (digest, path.stat().st_mode)
    return out


def test_written_through_the_journal_and_rolled_back(account: tuple[Path, Path]) -> None:
    home, _ = account
    existing = home / "webapps" / "blog" / "requirements.txt"
    existing.write_text("Django==1.4\n")
    existing.chmod(0o640)
    before = snapshot(home)

    written = run("--home", str(home), "requirements")
    listed = json.loads(run("--home", str(home), "journal", "--json").stdout)["transactions"]

    assert written.returncode == 0, written.stderr
    assert "undo with: concentric-migrate" in written.stdout
    assert (
        "blogengine==2.3.1" in existing.read_text() and (existing.stat().st_mode & 0o777) == 0o640
    )
    assert [t["state"] for t in listed] == ["committed"]
    assert str(existing) in listed[0]["files"]

    undone = run("--home", str(home), "rollback")
    assert undone.returncode == 0, undone.stderr
    assert snapshot(home) == before
    again = run("--home", str(home), "rollback", "--json")
    assert json.loads(again.stdout)["already"] is True
    assert (
        json.loads(run("--home", str(home), "journal", "--json").stdout)["transactions"][0]["state"]
        == "rolled-back"
    )


def test_rollback_never_overwrites_an_edit_made_since(account: tuple[Path, Path]) -> None:
    home, _ = account
    assert run("--home", str(home), "requirements", "--app", "shop").returncode == 0
    edited = home / "webapps" / "shop" / "requirements.txt"
    edited.write_text("my own pins\n")

    refused = run("--home", str(home), "rollback")
    assert refused.returncode == 1
    assert "~/webapps/shop/requirements.txt" in refused.stderr and "--force" in refused.stderr
    assert edited.read_text() == "my own pins\n"
    assert (home / "webapps" / "shop" / "requirements.in").exists(), "a refusal changes nothing"

    forced = run("--home", str(home), "rollback", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert not edited.exists()
    [aside] = json.loads(forced.stdout)["kept_aside"]
    assert Path(aside).read_text() == "my own pins\n"


def test_crash_at_every_journal_step_then_rollback_restores_the_home(
    account: tuple[Path, Path],
) -> None:
    from migrate.journal import CRASH_ENV

    home, _ = account
    existing = home / "webapps" / "blog" / "requirements.txt"
    existing.write_text("old pins\n")
    existing.chmod(0o600)
    before = snapshot(home)
    step = 1
    while True:
        crashed = subprocess.run(
            [sys.executable, "-m", "migrate", "--home", str(home), "requirements"],
            capture_output=True, text=True, env={**os.environ, CRASH_ENV: str(step)},
        )  # fmt: skip
        if crashed.returncode == 0:
            break
        assert crashed.returncode == -9, (step, crashed.stderr)
        undone = run("--home", str(home), "rollback")
        assert undone.returncode == 0, (step, undone.stderr)
        assert snapshot(home) == before, f"not restored after a crash at step {step}"
        step += 1
    assert step > 10, "every write is several journal steps"
    assert run("--home", str(home), "rollback").returncode == 0
    assert snapshot(home) == before


def test_two_writers_never_both_proceed(account: tuple[Path, Path]) -> None:
    home, _ = account
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom migrate.journal import home_lock\n"
         "with home_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(30)\n", str(home)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = run("--home", str(home), "requirements")
        assert second.returncode == 1
        assert str(holder.pid) in second.stderr
        assert not (home / "webapps" / "blog" / "requirements.txt").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run("--home", str(home), "requirements").returncode == 0, (
        "free again once the holder is gone"
    )

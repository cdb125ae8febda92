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

from migrate.cli import cli
from migrate.wheelfile import WheelSpec, build_wheel

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
    assert f"# import blogengine in ~/webapps/blog/blog.wsgi:1" in blog_in
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

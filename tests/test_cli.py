"""The command line as a user and a script see it: exit codes, one-line errors, JSON, demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from accounts import PY, account_lib, install_wheels, module
from click.testing import CliRunner

from migrate import __version__
from migrate.build.wheelfile import WheelSpec
from migrate.cli import cli


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True)


def test_python_dash_m_and_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"concentric-migrate, version {__version__}"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "inventory" in result.stdout and "demo" in result.stdout and "--home" in result.stdout


def test_missing_home_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("--home", str(tmp_path / "nope"), "inventory")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: --home {tmp_path / 'nope'}: no such directory"
    ]


def test_home_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("--home", str(tmp_path / "file"), "inventory")
    assert result.returncode == 2
    assert "not a directory" in result.stderr and "Traceback" not in result.stderr


def test_missing_crontab_file_is_exit_2(home: Path, tmp_path: Path) -> None:
    result = run("--home", str(home), "--crontab", str(tmp_path / "none"), "inventory")
    assert result.returncode == 2
    assert "--crontab" in result.stderr


def test_unknown_command_is_exit_2() -> None:
    assert run("frobnicate").returncode == 2


def test_inventory_json_schema(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(
        lib,
        [WheelSpec("one", "1.0", {"one.py": module("1.0")}, requires=("two>=2",))],
        tmp_path / "w",
    )
    (lib / "two.py").write_text('__version__ = "2.5"\n')
    (lib / "x.pth").write_text("./missing\n")

    result = run("--home", str(home), "inventory", "--json")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["home"] == str(home)
    [lib_doc] = doc["lib_dirs"]
    assert {k: lib_doc[k] for k in ("path", "python", "scope", "app")} == {
        "path": str(lib),
        "python": PY,
        "scope": "account",
        "app": None,
    }
    dists = {d["name"]: d for d in lib_doc["distributions"]}
    assert {
        k: dists["one"][k] for k in ("version", "kind", "top_level", "requires", "modified")
    } == {
        "version": "1.0",
        "kind": "dist-info",
        "top_level": ["one"],
        "requires": ["two>=2"],
        "modified": [],
    }
    assert dists["one"]["path"] == str(lib / "one-1.0.dist-info")
    assert (dists["two"]["kind"], dists["two"]["version"]) == ("bare", "2.5")
    assert lib_doc["pth"][0]["paths"] == [
        {"line": 1, "path": str(lib / "missing"), "exists": False}
    ]
    assert doc["findings"] == [
        {
            "path": str(lib / "x.pth"),
            "severity": "warning",
            "message": f"line 1: {lib / 'missing'} does not exist",
        }
    ]


def test_inventory_table_names_every_lib_dir_and_distribution(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(lib, [WheelSpec("one", "1.0", {"one.py": b""})], tmp_path / "w")
    account_lib(home, "empty")

    result = CliRunner().invoke(cli, ["--home", str(home), "inventory"])

    assert result.exit_code == 0
    assert f"~/lib/python{PY}  (python {PY}, account)" in result.output
    assert "one" in result.output and "dist-info" in result.output
    assert "(no distributions)" in result.output


def test_demo_builds_an_account_and_inventories_every_kind(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = run("demo", str(target))

    assert result.returncode == 0, result.stderr
    for kind in ("dist-info", "egg-info", "egg", "egg-link", "bare"):
        assert f" {kind} " in result.stdout
    assert "__plen wrapper" in result.stdout
    assert "static_site (no Python)" in result.stdout
    assert "leaked    acme-utils" in result.stdout, "the demo also plans the account"
    assert "+tinyhttp==1.8" in result.stdout, "run --dry-run shows the requirements as a diff"
    assert "+WSGIDaemonProcess blog python-home=" in result.stdout, "and every rewrite"
    assert "blog: venv ~/webapps/blog/venv (Python" in result.stdout, "run's summary"
    assert "  rewrote ~/webapps/blog/blog.wsgi" in result.stdout
    assert "shop         ok" in result.stdout, "verify"
    assert result.stdout.count("rolled back ") == 1
    assert f"restored  {target / 'crontab'}" in result.stdout
    assert not (target / "home" / "webapps" / "blog" / "venv").exists()
    assert not list((target / "home" / "webapps").glob("*/requirements.*")), "and undone"
    assert (target / "home" / "webapps" / "blog" / "apache2" / "conf" / "httpd.conf").is_file()
    assert (target / "crontab").is_file()

    again = run("--quiet", "demo", str(target))
    assert again.returncode == 0, "a directory made by the demo is rebuilt"


def test_demo_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    result = run("demo", str(tmp_path))

    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_verbose_inventory_names_modified_files_and_pth_lines(home: Path, tmp_path: Path) -> None:
    lib = account_lib(home)
    install_wheels(lib, [WheelSpec("one", "1.0", {"one.py": b"X = 1\n"})], tmp_path / "w")
    (lib / "one.py").write_text("X = 2  # patched\n")
    (lib / "a.pth").write_text("import os\n./one\n")

    quiet = CliRunner().invoke(cli, ["--home", str(home), "inventory"])
    loud = CliRunner().invoke(cli, ["--home", str(home), "-v", "inventory"])

    assert "1 file(s) modified" in quiet.output and "modified: one: one.py" not in quiet.output
    assert "modified: one: one.py" in loud.output
    assert "import  import os" in loud.output


def test_build_verify_and_rollback_from_the_command_line(tmp_path: Path) -> None:
    from migrate.demo import build_demo_account

    demo = build_demo_account(tmp_path / "demo")
    base = ["--home", str(demo.home), "--crontab", str(demo.crontab)]
    python = ["--python", f"{PY}={demo.python}"]
    runner = CliRunner()

    built = runner.invoke(cli, [*base, "build", *python, "--json"])
    assert built.exit_code == 0, built.output
    venvs = {a["app"]: Path(a["venv"]) for a in json.loads(built.output)["apps"]}
    assert venvs == {
        "blog": demo.home / "webapps/blog/venv",
        "shop": demo.home / "webapps/shop/venv",
        "~": demo.home / ".venvs/account",
    }
    again = runner.invoke(cli, [*base, "build", *python])
    assert again.exit_code == 1 and "exists already" in again.output, "nothing is built twice"
    journal = json.loads(runner.invoke(cli, [*base, "journal", "--json"]).output)
    assert len(journal["transactions"]) == 1, "the refusal began no transaction"

    for lib in [demo.home / "lib", *demo.home.glob("webapps/*/lib")]:
        lib.rename(lib.with_name("lib.away"))
    verified = runner.invoke(cli, [*base, "verify", *python, "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["ok"] is True, "the venvs need none of the concentric dirs"

    site = next((venvs["shop"] / "lib").glob("python*/site-packages"))
    for path in site.glob("webframe*"):
        shutil.rmtree(path)
    broken = runner.invoke(cli, [*base, "verify", *python, "--app", "shop"])
    assert broken.exit_code == 1 and "import webframe" in broken.output

    undone = runner.invoke(cli, [*base, "rollback", "--force"])
    assert undone.exit_code == 0, undone.output
    assert not any(path.exists() for path in venvs.values())

"""The command line's rough edges: bad input writes nothing, empty work says so, failures
speak in words, paths are written one way, and long work shows progress on a terminal."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import pwd
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, module

from migrate.build.wheelfile import WheelSpec
from migrate.demo import build_demo_account
from migrate.discover.servers import Server
from migrate.run.restart import probe


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``, the tool's state included: (mode, size, mtime_ns)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(Path(folder, name))
            found[os.path.relpath(Path(folder, name), root)] = (
                st.st_mode, st.st_size, st.st_mtime_ns
            )  # fmt: skip
    return found


@pytest.fixture
def small_account(home: Path, tmp_path: Path) -> Path:
    """An account with one WSGI app on one pinned package: quick to plan and build."""
    lib = account_lib(home)
    install_wheels(
        lib, [WheelSpec("tinylib", "1.0", {"tinylib.py": module("1.0")})], tmp_path / "w"
    )
    app = home / "webapps" / "site"
    (app / "apache2" / "conf").mkdir(parents=True)
    (app / "site.wsgi").write_text("import tinylib\napplication = None\n")
    (app / "apache2" / "conf" / "httpd.conf").write_text(
        f"WSGIDaemonProcess site python-path={app}:{lib}\nWSGIScriptAlias / {app / 'site.wsgi'}\n"
    )
    return home


def test_rollback_of_an_unknown_transaction_writes_nothing(small_account: Path) -> None:
    home = small_account
    before = tree(home)

    done = cli("--home", str(home), "rollback", "NO-SUCH-ID")

    assert done.returncode == 2
    assert "no transaction 'NO-SUCH-ID'" in done.stderr and "Traceback" not in done.stderr
    assert tree(home) == before, "not even the state dir or its lock"
    assert not (home / ".concentric-migrate").exists()

    assert cli("--home", str(home), "requirements").returncode == 0
    with_journal = tree(home)
    again = cli("--home", str(home), "rollback", "NO-SUCH-ID", "--json")
    assert again.returncode == 2
    assert json.loads(again.stdout)["error"]["kind"] == "bad-input"
    assert tree(home) == with_journal, "the lock file is not touched either"


def test_rollback_with_no_transaction_says_so_and_writes_nothing(home: Path) -> None:
    done = cli("--home", str(home), "rollback")
    assert done.returncode == 0 and "nothing to roll back" in done.stdout
    document = json.loads(cli("--home", str(home), "rollback", "--json").stdout)
    assert (document["ok"], document["transaction"], document["restored"]) == (True, None, [])
    assert list(home.iterdir()) == []


def test_verify_and_build_with_nothing_to_do_say_so_and_write_nothing(home: Path) -> None:
    (home / "webapps" / "static_site").mkdir(parents=True)
    (home / "webapps" / "static_site" / "index.html").write_text("<p>hello</p>\n")
    before = tree(home)

    verify = cli("--home", str(home), "verify")
    build = cli("--home", str(home), "build")
    build_json = cli("--home", str(home), "build", "--json")
    run_dry = cli("--home", str(home), "run", "--dry-run")
    run = cli("--home", str(home), "run", "--yes")
    run_json = cli("--home", str(home), "run", "--yes", "--json")

    assert verify.returncode == 0 and "nothing to verify" in verify.stdout
    assert build.returncode == 0 and "nothing to build" in build.stdout
    assert build_json.returncode == 0
    assert json.loads(build_json.stdout)["transaction"] is None
    for done in (run_dry, run):
        assert done.returncode == 0 and "nothing to migrate" in done.stdout, done.stderr
    assert json.loads(run_json.stdout)["transaction"] is None
    assert tree(home) == before, "no transaction was begun, no state dir made"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_said_in_words(tmp_path: Path) -> None:
    port = _free_port()
    health = probe(Server("blog", tmp_path / "bin", port, None))

    assert health.status is None
    assert health.detail == (
        f"nothing listens on 127.0.0.1:{port} (connection refused): the server is not running"
    )
    assert "Errno" not in health.detail


def _on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal: (exit code, stdout, terminal output)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal, text=True,
    )  # fmt: skip
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the other side closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(controller)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_run_shows_each_venv_build_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    base = ["--home", str(demo.home), "--crontab", str(demo.crontab)]
    python = ["--python", f"{PY}={demo.python}"]

    code, stdout, terminal = _on_a_terminal([*base, "run", *python, "--yes", "--no-restart"])

    assert code == 0, terminal
    for app in ("blog", "shop"):
        assert re.search(rf"{app}: (repack|venv|install|relocate|rename)", terminal), app
    assert "- build 3 venv(s)" in terminal, "the step lines are still there"
    assert "blog: venv ~/webapps/blog/venv" in stdout

    undone = cli(*base, "rollback")
    assert undone.returncode == 0, undone.stderr
    restored = [line for line in undone.stdout.splitlines() if line.startswith("restored")]
    assert "restored  ~/webapps/blog/blog.wsgi" in restored
    assert f"restored  {demo.crontab}" in restored, "a file outside the home stays absolute"
    assert all(str(demo.home) not in line for line in undone.stdout.splitlines())

    piped = cli(*base, "run", *python, "--yes", "--no-restart")
    assert piped.returncode == 0, piped.stderr
    assert not re.search(r"(blog|shop): (repack|venv|install|relocate|rename)", piped.stderr)
    assert "- build 3 venv(s)" in piped.stderr


def test_human_output_writes_paths_in_the_home_as_tilde(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    base = ["--home", str(demo.home), "--crontab", str(demo.crontab)]

    outputs = {}
    python = f"--python={PY}={demo.python}"
    for command in (["inventory"], ["-v", "inventory"], ["plan", python], ["requirements"]):
        done = cli(*base, *command)
        assert done.returncode == 0, done.stderr
        outputs[command[0]] = done.stdout
        lines = [line for line in done.stdout.splitlines() if "--home" not in line]
        if command[-1] == "inventory":
            assert lines[0].startswith(f"{demo.home}: "), "the header names the home once"
            lines = lines[1:]
        quoted = re.compile(r"^ +\d+ (path|import) ")  # -v quotes .pth lines verbatim
        leaking = [line for line in lines if str(demo.home) in line and not quoted.match(line)]
        assert leaking == [], command
    assert f"~/lib/python{PY}  (python {PY}, account)" in outputs["inventory"]
    assert "written   ~/webapps/blog/requirements.txt" in outputs["requirements"]


def test_errors_are_json_only_for_a_command_asked_for_json(home: Path, tmp_path: Path) -> None:
    misused = cli("--home", str(home), "inventory", "--json", "--bogus")
    assert misused.returncode == 2
    error = json.loads(misused.stdout)["error"]
    assert (error["kind"], error["exit_code"]) == ("bad-input", 2)
    assert "--bogus" in error["message"] and "--bogus" in misused.stderr

    no_json = cli("demo", "--json", str(tmp_path / "demo"))
    assert no_json.returncode == 2 and no_json.stdout == "", "demo has no --json"
    plain = cli("--home", str(home), "rollback", "NO-SUCH-ID")
    assert plain.returncode == 2 and plain.stdout == ""


def test_python_overrides_are_checked_before_anything_runs(home: Path, tmp_path: Path) -> None:
    other = "3.12" if PY != "3.12" else "3.11"
    (tmp_path / "not-python").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "not-python").chmod(0o755)
    for value, says in (
        ("3.11", "expected X.Y=/path"),
        ("abc=/usr/bin/env", "expected X.Y=/path"),
        (f"{PY}={tmp_path / 'missing'}", "is not an executable file"),
        (f"{PY}={tmp_path}", "is not an executable file"),
        (f"{PY}={tmp_path / 'not-python'}", "does not run as a Python"),
        (f"{other}={sys.executable}", f"is Python {PY}"),
    ):
        done = cli("--home", str(home), "plan", "--python", value)
        assert done.returncode == 2, value
        assert says in done.stderr and "Traceback" not in done.stderr, (value, done.stderr)
    twice = cli("--home", str(home), "plan", "--python", f"{PY}={sys.executable}",
                "--python", f"{PY}={sys.executable}")  # fmt: skip
    assert twice.returncode == 2 and "given twice" in twice.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="root migrating another user's home")
def test_root_creates_the_users_files_as_the_user(tmp_path: Path) -> None:
    """As root on a user's home, what the tool creates there belongs to that user (issue 16):
    the requirement files and the folders made for them."""
    nobody = pwd.getpwnam("nobody")
    demo = build_demo_account(tmp_path / "demo")
    for folder, dirs, files in os.walk(demo.home):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), nobody.pw_uid, nobody.pw_gid)
    os.lchown(demo.home, nobody.pw_uid, nobody.pw_gid)
    done = subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(demo.home), "--crontab",
         str(demo.crontab), "requirements", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = [Path(f["path"]) for f in json.loads(done.stdout)["files"]]
    assert written and Path(demo.home / ".venvs") in {p.parent for p in written}
    for path in [*written, demo.home / ".venvs"]:
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid), path


def test_runtimes_probed_at_once_are_never_handed_one_port() -> None:
    """``run`` verifies its apps at once, each starting its real runtime on a free
    loopback port: a port stays promised to one probe until that probe ends."""
    from migrate.resolve.probe import _free_port

    with contextlib.ExitStack() as held:
        ports = [held.enter_context(_free_port()) for _ in range(1000)]
    assert len(set(ports)) == len(ports)
    with _free_port() as again:  # released: the process may hand them out again
        assert 1024 <= again <= 65535

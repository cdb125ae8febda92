"""``run`` under faults: crashes at every journal step, SIGKILL from outside, two writers,
kept permissions, and a dry run that writes nothing.

- ``CONCENTRIC_MIGRATE_CRASH_AT=N`` for every N until ``run`` completes: after each crash
  ``rollback`` gives back every byte, mode, owner and xattr under HOME and the crontab file;
  every step of the completed run (begin, new files, folders, venv installs, rewritten
  files, the crontab, commit) was crashed at;
- ``run`` SIGKILLed with its whole process group when it stages a venv, when the first venv
  is in place and when the crontab has changed: ``rollback`` restores all of it;
- two ``run``s at once: one migrates, the other exits 1 naming the lock and its holder and
  writes nothing; a ``run`` while another process holds the lock writes nothing;
- mode, owner and POSIX ACL of every rewritten file survive ``run`` and ``rollback``; the
  journal's own files are private (0700 folders, 0600 files) as journal.py promises;
- ``run --dry-run`` writes nothing at all, not even the tool's state folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_run
from accounts import PY, account_lib, install_wheels, write_files
from journal_helper import snapshot
from test_build_more import alive_in_group
from test_run import cli, httpd_conf, package, wsgi_file

from migrate.journal import CRASH_ENV, LockHeld, home_lock, transactions
from migrate.layout import STATE_DIR

RUN_TIMEOUT = 300
IS_ROOT = os.geteuid() == 0
HAVE_ACL = shutil.which("setfacl") is not None and shutil.which("getfacl") is not None

account = test_run.account
"""test_run's fixture: HOME with blog and shop (mod_wsgi), a cron-run app, ~/bin/report;
and a crontab file."""
needs_mod_wsgi = test_run.pytestmark
"""For the tests on that account: its apps are served by Debian's mod_wsgi (whose Python
models them), so they skip, saying so, where it is not installed, as test_run does."""


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pip configuration of the machine's, and no crash injection unless a test asks."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.delenv(CRASH_ENV, raising=False)


@pytest.fixture
def small_account(tmp_path: Path) -> tuple[Path, Path]:
    """One mod_wsgi app (httpd.conf, WSGI file), ~/bin/report and a crontab FILE: each kind
    of rewrite ``run`` makes, two venvs, in as few journal steps as that takes."""
    home = tmp_path / "home"
    wheels = tmp_path / "wheels"
    blog = home / "webapps" / "blog"
    install_wheels(account_lib(home), [package("helper", "2.0")], wheels)
    install_wheels(account_lib(home, "blog"), [package("blogcore", "3.1")], wheels)
    write_files(
        blog,
        {
            "blog.wsgi": wsgi_file(blog, ["blogcore"]),
            # Nothing listens on this port: run restarts nothing.
            "apache2/conf/httpd.conf": httpd_conf(blog, "blog", 18431, home),
        },
    )
    write_files(home, {"bin/report": f"#!/usr/bin/env python{PY}\nimport helper\n"})
    os.chmod(home / "bin" / "report", 0o750)
    crontab = tmp_path / "crontab"
    crontab.write_text(
        f'MAILTO=""\nPYTHONPATH={home}/lib/python{PY}\n0 3 * * * {home}/bin/report\n',
        encoding="utf-8",
    )
    return home, crontab


def run_command(home: Path, crontab: Path) -> list[str]:
    """``run --yes`` as test_run.cli runs it."""
    return [
        sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab),
        "run", "--yes",
    ]  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (
        f"{done.args}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


def journal_records(txn_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (txn_path / "journal.jsonl").read_text().splitlines()]


def roll_back_and_compare(
    home: Path,
    crontab: Path,
    before: dict[str, tuple[object, ...]],
    crontab_before: bytes,
    label: str,
) -> None:
    """``rollback``: the open transaction (if the journal had begun) is undone exactly."""
    listed = transactions(home)
    undone = ok(cli(home, crontab, "rollback"))
    if listed:
        assert listed[-1].state == "open", (label, listed)
        assert f"rolled back {listed[-1].id}" in undone.stdout, (label, undone.stdout)
    else:  # the crash came before the journal began: nothing under HOME was written
        assert undone.stdout == "nothing to roll back: no transaction in this home\n", label
    assert [t.state for t in transactions(home)] == ["rolled-back"] * len(listed), label
    assert snapshot(home) == before, f"the home differs after {label} and rollback"
    assert crontab.read_bytes() == crontab_before, f"the crontab differs after {label}"


# ------------------------------------------------------------------ 1. crash at every step

STEPS_PER_OPERATION = {
    # (op, existed): durable steps, per the CRASH_ENV list in journal.py's docstring
    ("write", False): 4,  # intent, temp, rename, done (missing parents are mkdir intents)
    ("write", True): 5,  # backup, intent, temp, rename, done
    ("crontab-file", True): 5,
    ("mkdir", False): 3,  # intent, mkdir, done
    ("install", False): 4,  # listing, intent, rename, done
}
BEGIN_STEPS, COMMIT_STEPS = 2, 1


@needs_mod_wsgi
def test_crash_at_every_journal_step_of_run_then_rollback_restores_everything(
    small_account: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, crontab = small_account
    before, crontab_before = snapshot(home), crontab.read_bytes()
    step = 0
    while True:
        step += 1
        assert step < 200, "run never completed"
        monkeypatch.setenv(CRASH_ENV, str(step))
        crashed = cli(home, crontab, "run", "--yes")
        monkeypatch.delenv(CRASH_ENV)  # rollback counts steps too
        if crashed.returncode == 0:
            break
        assert crashed.returncode == -signal.SIGKILL, (step, crashed.stderr)
        roll_back_and_compare(home, crontab, before, crontab_before, f"a crash at step {step}")
        # A crash inside begin leaves no transaction (its folder is renamed in last); each
        # later one leaves exactly one, rolled back.
        assert len(transactions(home)) == max(0, step - BEGIN_STEPS), step

    # The run that completed wrote what a migration writes ...
    conf = home / "webapps" / "blog" / "apache2" / "conf" / "httpd.conf"
    assert f"python-home={home}/webapps/blog/venv" in conf.read_text()
    assert (home / "bin" / "report").read_text().startswith(f"#!{home}/.venvs/account/bin/python")
    assert crontab.read_bytes() != crontab_before
    # ... and every one of its durable steps was crashed at before it: step N completed
    # exactly when N was one past its last step.
    *crashed_ones, committed = transactions(home)
    assert committed.state == "committed"
    assert {t.state for t in crashed_ones} == {"rolled-back"}
    records = journal_records(committed.path)
    intents = [r for r in records if r["rec"] == "intent"]
    kinds = {(r["op"], r["existed"]) for r in intents}
    assert kinds == set(STEPS_PER_OPERATION), kinds
    total = BEGIN_STEPS + sum(STEPS_PER_OPERATION[r["op"], r["existed"]] for r in intents)
    total += COMMIT_STEPS
    assert step == total + 1, (step, total)
    assert step > 40, "several dozen steps"
    replaced = {r["path"] for r in intents if r["existed"]}
    assert replaced == {
        "webapps/blog/apache2/conf/httpd.conf",
        "webapps/blog/blog.wsgi",
        "bin/report",
        os.path.realpath(crontab),
    }
    assert {r["path"] for r in intents if r["op"] == "install"} == {
        "webapps/blog/venv",
        ".venvs/account",
    }

    undone = ok(cli(home, crontab, "rollback"))
    assert f"rolled back {committed.id}" in undone.stdout
    assert snapshot(home) == before
    assert crontab.read_bytes() == crontab_before


# ------------------------------------------------------------ 2. SIGKILL from outside

Trigger = Callable[[], bool]


def run_killed_when(home: Path, crontab: Path, trigger: Trigger, log: Path) -> None:
    """Start ``run`` in its own session and SIGKILL its whole group once ``trigger`` holds;
    the run must not finish first (the moment would not have been tested)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            run_command(home, crontab), stdout=subprocess.DEVNULL, stderr=err,
            env={**os.environ, "HOME": str(home)}, start_new_session=True,
        )  # fmt: skip
    start = time.monotonic()
    try:
        while not trigger():
            assert proc.poll() is None, f"run ended ({proc.returncode}) first:\n{log.read_text()}"
            assert time.monotonic() - start < RUN_TIMEOUT, "run hung"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    deadline = time.monotonic() + 10
    while alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alive_in_group(proc.pid) == [], "a process of the run outlived SIGKILL of its group"


def venvs_in_place(home: Path) -> list[Path]:
    return [p for p in (*home.glob("webapps/*/venv"), home / ".venvs" / "account") if p.exists()]


@needs_mod_wsgi
def test_sigkill_of_run_from_outside_then_rollback_restores_everything(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, crontab = account
    before, crontab_before = snapshot(home), crontab.read_bytes()
    state = home / STATE_DIR
    moments: list[tuple[str, Trigger, str]] = [
        ("a staging folder appeared", lambda: any(state.glob("tmp-*")), "write"),
        ("the first venv is in place", lambda: bool(venvs_in_place(home)), "install"),
        ("the crontab changed", lambda: crontab.read_bytes() != crontab_before, "crontab-file"),
    ]
    for label, trigger, journaled in moments:
        run_killed_when(home, crontab, trigger, tmp_path / "run.log")
        # Each moment comes after the journal began (requirement files are written first),
        # and the journal already names what the moment is about.
        (killed,) = [t for t in transactions(home) if t.state == "open"]
        ops = {r.get("op") for r in journal_records(killed.path)}
        assert journaled in ops, (label, ops)
        roll_back_and_compare(home, crontab, before, crontab_before, f"a kill when {label}")
        assert venvs_in_place(home) == [], label

    # The killed runs left nothing in the way: a run now completes and rolls back exactly.
    ok(cli(home, crontab, "run", "--yes"))
    assert sorted(p.name for p in state.glob("tmp-*")) == [], "staging folders left behind"
    assert len(venvs_in_place(home)) == 4
    ok(cli(home, crontab, "rollback"))
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before


# ---------------------------------------------------------------------- 3. two writers


@needs_mod_wsgi
def test_two_runs_at_once_one_migrates_and_the_other_names_the_lock_holder(
    account: tuple[Path, Path],
) -> None:
    home, crontab = account
    # The home has met the tool before (its state folder exists): two writers racing to
    # create that folder is test_first_two_writers_of_a_fresh_home_... below.
    with home_lock(home):
        pass
    before, crontab_before = snapshot(home), crontab.read_bytes()
    env = {**os.environ, "HOME": str(home)}
    runs = [
        subprocess.Popen(
            run_command(home, crontab),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=RUN_TIMEOUT) for proc in runs]
    codes = [proc.returncode for proc in runs]
    assert sorted(codes) == [0, 1], (codes, outputs)
    winner = runs[codes.index(0)]
    _, refused = outputs[codes.index(1)]
    lock = Path(os.path.realpath(home)) / STATE_DIR / "lock"
    # LockHeld names the holder from the record it writes just after taking the lock; in
    # the instant between the two it can only name the lock.
    named = f"Error: another migration holds {lock}: pid {winner.pid} ("
    unnamed = f"Error: {lock} is held by another process (it has not said which yet)"
    assert named in refused or unnamed in refused, refused
    if named in refused:
        assert "run --yes" in refused, "the holder's command line is named"
    assert "Traceback" not in refused

    # Only the winner's transaction exists, and undoing it gives back the home as it was.
    (only,) = transactions(home)
    assert only.state == "committed"
    assert len(venvs_in_place(home)) == 4
    ok(cli(home, crontab, "rollback"))
    assert snapshot(home) == before and crontab.read_bytes() == crontab_before


HOLD_LOCK = (
    "import sys, time\nfrom pathlib import Path\nfrom migrate.journal import home_lock\n"
    "with home_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n"
)


@needs_mod_wsgi
def test_run_while_another_process_holds_the_lock_writes_nothing(
    account: tuple[Path, Path],
) -> None:
    home, crontab = account
    before, crontab_before = snapshot(home), crontab.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(home)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = home / STATE_DIR / "lock"
        held = lock.read_bytes()
        assert json.loads(held)["pid"] == holder.pid
        refused = cli(home, crontab, "run", "--yes")
        assert refused.returncode == 1, refused.stderr
        named = f"another migration holds {os.path.realpath(lock)}: pid {holder.pid} ("
        assert named in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        assert snapshot(home) == before and crontab.read_bytes() == crontab_before
        # Not even the tool's own state: no journal, and the holder's record is intact.
        assert sorted(p.name for p in (home / STATE_DIR).iterdir()) == ["lock"]
        assert lock.read_bytes() == held
    finally:
        holder.kill()
        holder.wait()


def _take_lock(home: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        with home_lock(Path(home)):
            time.sleep(0.02)
        outcome = "took it"
    except LockHeld:
        outcome = "LockHeld"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    results.put(outcome)


def test_first_two_writers_of_a_fresh_home_get_the_lock_or_lock_held(tmp_path: Path) -> None:
    """Two processes released at the same instant take home_lock of a home that has no
    state folder yet: one takes it, the other gets LockHeld (or takes it after)."""
    context = multiprocessing.get_context("fork")
    for attempt in range(100):
        home = Path(tempfile.mkdtemp(dir=tmp_path))
        barrier, results = context.Barrier(2), context.Queue()
        workers = [
            context.Process(target=_take_lock, args=(str(home), barrier, results)) for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        outcomes = sorted(results.get(timeout=30) for _ in workers)
        for worker in workers:
            worker.join(timeout=30)
        assert outcomes in (["LockHeld", "took it"], ["took it", "took it"]), (attempt, outcomes)


# ------------------------------------------------------------------ 4. permissions


def getfacl(path: Path) -> str:
    return subprocess.run(
        ["getfacl", "--omit-header", "--numeric", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


@needs_mod_wsgi
@pytest.mark.parametrize("kept", ["mode", "acl", "owner"])
def test_run_keeps_mode_owner_and_acl_of_rewritten_files_and_rollback_restores_them(
    small_account: tuple[Path, Path], kept: str
) -> None:
    if kept == "acl" and not HAVE_ACL:
        pytest.skip("setfacl/getfacl not installed (Debian package acl)")
    if kept == "owner" and not IS_ROOT:
        pytest.skip("giving a file another owner needs root")
    home, crontab = small_account
    blog = home / "webapps" / "blog"
    conf, wsgi, script = blog / "apache2/conf/httpd.conf", blog / "blog.wsgi", home / "bin/report"
    os.chmod(conf, 0o640)
    os.chmod(wsgi, 0o600)
    os.chmod(script, 0o750)
    if kept == "acl":
        subprocess.run(["setfacl", "-m", "u:nobody:r", str(conf)], check=True)
        assert "user:65534:r--" in getfacl(conf)
    if kept == "owner":
        os.chown(wsgi, 12345, 12345)
    files = (conf, wsgi, script)
    stats = {f: (mode_of(f), os.stat(f).st_uid, os.stat(f).st_gid) for f in files}
    assert stats[conf][0] == 0o640 and stats[wsgi][0] == 0o600 and stats[script][0] == 0o750
    acls = {f: getfacl(f) for f in files} if HAVE_ACL else {}
    contents = {f: f.read_bytes() for f in files}
    before, crontab_before = snapshot(home), crontab.read_bytes()

    result = json.loads(ok(cli(home, crontab, "run", "--yes", "--json")).stdout)
    for file in files:
        assert file.read_bytes() != contents[file], f"{file} was not rewritten"
        assert (mode_of(file), os.stat(file).st_uid, os.stat(file).st_gid) == stats[file], file
        if HAVE_ACL:
            assert getfacl(file) == acls[file], file
    if kept == "owner":
        assert (os.stat(wsgi).st_uid, os.stat(wsgi).st_gid) == (12345, 12345)

    # What journal.py promises: HOME/.concentric-migrate 0700 with lock 0600; per
    # transaction journal/<id>/ 0700 with journal.jsonl 0600, backups/ 0700, copies 0600.
    state = home / STATE_DIR
    txn = state / "journal" / result["transaction"]
    assert mode_of(state) == 0o700
    assert mode_of(state / "lock") == 0o600
    assert mode_of(state / "journal") == 0o700
    assert mode_of(txn) == 0o700
    assert mode_of(txn / "journal.jsonl") == 0o600
    assert mode_of(txn / "backups") == 0o700
    backups = sorted((txn / "backups").iterdir())
    copies = [b for b in backups if not b.name.endswith("-tree")]
    assert len(copies) == 4, copies  # httpd.conf, blog.wsgi, bin/report, the crontab file
    assert len(backups) - len(copies) == len(venvs_in_place(home))  # a listing per venv
    assert {mode_of(backup) for backup in backups} == {0o600}

    ok(cli(home, crontab, "rollback", result["transaction"]))
    assert snapshot(home) == before
    assert crontab.read_bytes() == crontab_before
    if HAVE_ACL:
        assert {f: getfacl(f) for f in files} == acls


# ------------------------------------------------------------------ 5. dry run


def every_entry(root: Path) -> dict[str, tuple[object, ...]]:
    """snapshot() of everything under ``root`` (the home's state folder included), with each
    entry's mtime: a file written and removed again changes its folder's mtime."""
    entries = snapshot(root)
    return {rel: (*entry, os.lstat(root / rel).st_mtime_ns) for rel, entry in entries.items()}


@needs_mod_wsgi
def test_dry_run_writes_nothing_and_prints_every_change_as_a_diff(
    account: tuple[Path, Path], tmp_path: Path
) -> None:
    home, crontab = account
    everything = every_entry(tmp_path)  # the home, its crontab file, the wheels

    dry = ok(cli(home, crontab, "run", "--dry-run"))

    assert every_entry(tmp_path) == everything
    assert not (home / STATE_DIR).exists(), "a dry run created the tool's state folder"
    out = dry.stdout
    assert f"--- {home}/webapps/blog/apache2/conf/httpd.conf\n" in out
    assert f"+WSGIDaemonProcess blog python-home={home}/webapps/blog/venv " in out
    assert f"\n--- {crontab}\n+++ {crontab}\n@@ " in out
    assert f"\n-PYTHONPATH={home}/lib/python{PY}\n" in out
    jobs = "*/5 * * * * cd ~/webapps/jobs && "
    assert f"\n-{jobs}python{PY} manage.py >> ~/jobs.log 2>&1\n" in out
    assert f"\n+{jobs}{home}/webapps/jobs/venv/bin/python manage.py >> ~/jobs.log 2>&1\n" in out
    assert "Nothing was written (--dry-run)." in dry.stderr

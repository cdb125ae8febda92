"""The journal on real files: atomic writes, metadata kept, rollback exact after any crash."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from journal_helper import (
    APP,
    CRONTAB_FILE_AFTER,
    CRONTAB_FILE_BEFORE,
    INSTALLED_AFTER,
    INSTALLED_AFTER_AGAIN,
    INSTALLED_BEFORE,
    NEW_SETTINGS,
    VENV,
    apply,
    apply_crontab,
    build_home,
    snapshot,
    staged_venv,
)

from migrate.journal import (
    CRASH_ENV,
    EditedSince,
    JournalError,
    LockHeld,
    OutsideHome,
    RollbackResult,
    TargetChanged,
    TransactionOpen,
    UnknownTransaction,
    begin,
    home_lock,
    rollback,
    transactions,
)
from migrate.journal import crontab as installed_crontab
from migrate.journal.fs import folder_of, write_temp
from migrate.layout import STATE_DIR

HELPER = Path(__file__).with_name("journal_helper.py")


def run_helper(*args: str, crash_at: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = str(crash_at)
    return subprocess.run(
        [sys.executable, str(HELPER), *args], env=env, capture_output=True, text=True, timeout=60
    )


def locked_apply(home: Path) -> str:
    with home_lock(home):
        return apply(home)


def locked_rollback(
    home: Path, txn_id: str | None = None, *, force: bool = False
) -> RollbackResult:
    with home_lock(home):
        return rollback(home, txn_id, force=force)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def journal_bytes(home: Path) -> dict[str, bytes]:
    folder = home / STATE_DIR / "journal"
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def account(home: Path) -> Path:
    build_home(home)
    return home


def test_write_replace_create_then_rollback_is_exact(account: Path) -> None:
    before = snapshot(account)
    txn_id = locked_apply(account)

    assert (account / APP / "app.wsgi").read_bytes() == b"# venv, second thought\nimport app\n"
    assert mode_of(account / APP / "app.wsgi") == 0o640
    assert mode_of(account / APP / "bin/run.sh") == 0o700
    assert mode_of(account / NEW_SETTINGS) == 0o644
    assert mode_of(account / NEW_SETTINGS.parent) == 0o755
    assert (account / APP / "link.conf").is_symlink()
    assert (account / APP / "real.conf").read_bytes() == b"[server]\nport = 9090\n"
    assert mode_of(account / APP / "real.conf") == 0o600
    assert (account / VENV / "pyvenv.cfg").read_bytes() == b"home = /usr/local/bin\n"
    assert not list((account / APP).glob(".*"))  # no temp left behind

    state = account / STATE_DIR
    folder = state / "journal" / txn_id
    assert mode_of(state) == mode_of(folder) == mode_of(folder / "backups") == 0o700
    assert mode_of(state / "lock") == mode_of(folder / "journal.jsonl") == 0o600
    assert {mode_of(p) for p in (folder / "backups").iterdir()} == {0o600}

    [info] = transactions(account)
    assert (info.id, info.state, info.description) == (txn_id, "committed", "test migration")
    assert info.files == tuple(
        account / p
        for p in (
            APP / "app.wsgi",
            APP / "conf/new",
            APP / "conf/new/deep",
            NEW_SETTINGS,
            APP / "real.conf",
            APP / "bin/run.sh",
            VENV,
            VENV / "pyvenv.cfg",
        )
    )
    records = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    intent = next(r for r in records if r["rec"] == "intent")
    assert intent["mode"] == "0640" and intent["existed"] and len(intent["before"]) == 64

    result = locked_rollback(account)
    assert snapshot(account) == before
    assert result.id == txn_id and not result.already and result.kept_aside == ()
    assert account / APP / "app.wsgi" in result.restored
    assert account / APP / "real.conf" in result.restored
    assert {account / NEW_SETTINGS, account / VENV, account / APP / "conf/new"} <= set(
        result.removed
    )
    assert transactions(account)[0].state == "rolled-back"


def test_edited_file_refuses_rollback_and_changes_nothing(account: Path) -> None:
    locked_apply(account)
    (account / APP / "app.wsgi").write_bytes(b"hand edit\n")
    (account / NEW_SETTINGS).write_bytes(b"[settings]\ndebug = true\n")
    edited = snapshot(account)
    journal = journal_bytes(account)

    with pytest.raises(EditedSince) as caught:
        locked_rollback(account)
    assert set(caught.value.files) == {account / APP / "app.wsgi", account / NEW_SETTINGS}
    assert "app.wsgi" in str(caught.value) and "settings.ini" in str(caught.value)
    assert snapshot(account) == edited
    assert journal_bytes(account) == journal
    assert transactions(account)[0].state == "committed"


def test_what_was_added_to_an_installed_venv_is_kept_never_deleted(account: Path) -> None:
    """A venv is taken away whole by rollback, but not what the user put in it since: an
    added module, a changed file. The rewrite the transaction itself made inside the venv
    (pyvenv.cfg) and the bytecode an interpreter wrote there are the journal's to remove."""
    before = snapshot(account)
    locked_apply(account)
    venv = account / VENV
    (venv / "lib/site-packages/hers").mkdir(parents=True)
    (venv / "lib/site-packages/hers/__init__.py").write_bytes(b"HERS = 1\n")
    (venv / "bin/python").write_bytes(b"#!/bin/sh\necho patched\n")  # edited in place
    (venv / "bin/__pycache__").mkdir()
    (venv / "bin/__pycache__/x.cpython-311.pyc").write_bytes(b"\0" * 16)
    edited = snapshot(account)
    journal = journal_bytes(account)

    with pytest.raises(EditedSince) as caught:
        locked_rollback(account)
    assert set(caught.value.files) == {venv / "lib", venv / "bin/python"}
    assert snapshot(account) == edited and journal_bytes(account) == journal

    result = locked_rollback(account, force=True)
    assert snapshot(account) == before
    [install] = [r for r in intents(transactions(account)[0].path) if r["op"] == "install"]
    folder = f"{install['n']:04d}-venv"  # where each is kept: by its place in the venv
    kept = {str(p.relative_to(txn_edited(p))): p for p in result.kept_aside}
    assert sorted(kept) == [f"{folder}/bin/python", f"{folder}/lib"], kept
    assert (kept[f"{folder}/lib"] / "site-packages/hers/__init__.py").read_bytes() == b"HERS = 1\n"
    assert kept[f"{folder}/bin/python"].read_bytes() == b"#!/bin/sh\necho patched\n"


def install_compiled_venv(account: Path) -> Path:
    """A venv installed with its bytecode (as the store links it), committed."""
    dest = account / ".venvs/app"
    with home_lock(account):
        staged = staged_venv(account)
        package = staged / "lib/site-packages/pkg"
        (package / "__pycache__").mkdir(parents=True)
        (package / "__init__.py").write_bytes(b"X = 1\n")
        (package / "__pycache__/__init__.cpython-311.pyc").write_bytes(b"\0" * 16)
        txn = begin(account, "a compiled venv")
        txn.install_dir(staged, dest)
        txn.commit()
    return dest


def test_bytecode_an_interpreter_rewrote_in_an_installed_venv_is_not_an_edit(
    account: Path,
) -> None:
    before = snapshot(account)
    venv = install_compiled_venv(account)
    (venv / "lib/site-packages/pkg/__pycache__/__init__.cpython-311.pyc").write_bytes(b"\1" * 32)
    (venv / "lib/site-packages/pkg/__pycache__/extra.cpython-311.pyc").write_bytes(b"\2" * 16)

    result = locked_rollback(account)

    assert result.kept_aside == () and snapshot(account) == before


def test_a_note_put_beside_the_bytecode_of_an_installed_venv_is_hers(account: Path) -> None:
    """Bytecode is not listed, its folder is: the note, not the folder, is what was added."""
    before = snapshot(account)
    venv = install_compiled_venv(account)
    cache = venv / "lib/site-packages/pkg/__pycache__"
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\1" * 32)
    (cache / "notes.txt").write_bytes(b"hers\n")

    with pytest.raises(EditedSince) as caught:
        locked_rollback(account)
    assert set(caught.value.files) == {cache / "notes.txt"}

    result = locked_rollback(account, force=True)
    assert [p.name for p in result.kept_aside] == ["notes.txt"]
    assert result.kept_aside[0].read_bytes() == b"hers\n"
    assert snapshot(account) == before


def txn_edited(kept: Path) -> Path:
    """The ``edited/`` folder a kept path lies in."""
    return next(p for p in kept.parents if p.name == "edited")


def test_a_file_with_another_name_is_rewritten_and_restored_in_place(account: Path) -> None:
    """A hard-linked file: both names show the rewrite and, after rollback, the old text;
    still one file (a rewrite renamed in would leave the second name the old text)."""
    wsgi = account / APP / "app.wsgi"
    second = account / "second.wsgi"
    os.link(wsgi, second)
    old, inode = wsgi.read_bytes(), os.lstat(wsgi).st_ino
    with home_lock(account):
        txn = begin(account, "in place")
        txn.write_file(wsgi, b"# venv\n")
        txn.commit()
    assert second.read_bytes() == b"# venv\n" and os.lstat(second).st_ino == inode
    assert mode_of(wsgi) == 0o640
    [intent] = intents(txn.path)
    assert intent["in_place"] is True
    locked_rollback(account)
    assert second.read_bytes() == old == wsgi.read_bytes() and os.lstat(wsgi).st_ino == inode


def test_an_in_place_write_cut_short_is_restored_without_force(account: Path) -> None:
    """A crash in the middle of an in-place write leaves part of each text: that is the
    journal's own doing (its intent has no done record), not an edit to keep aside."""
    wsgi = account / APP / "app.wsgi"
    os.link(wsgi, account / "second.wsgi")
    old = wsgi.read_bytes()
    with home_lock(account):
        txn = begin(account, "in place, cut short")
        txn.write_file(wsgi, b"# venv\n")
    journal = txn.path / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(line for line in lines if b'"rec":"done"' not in line))
    torn = b"# ve" + old[4:]  # what a crash mid-write leaves
    wsgi.write_bytes(torn)
    result = locked_rollback(account)
    assert wsgi.read_bytes() == old == (account / "second.wsgi").read_bytes()
    assert os.path.samefile(wsgi, account / "second.wsgi")
    [copy] = result.kept_aside  # it might have been hers: a copy is kept, never lost
    assert copy.read_bytes() == torn


def test_an_in_place_restore_cut_short_is_finished_without_force(account: Path) -> None:
    """A rollback that stopped in the middle of putting a hard-linked file's old text
    back (a full disk, a crash): the half-restored file is its own doing, not an edit;
    the next rollback finishes it, in place."""
    wsgi = account / APP / "app.wsgi"
    os.link(wsgi, account / "second.wsgi")
    old = wsgi.read_bytes()
    with home_lock(account):
        txn = begin(account, "in place")
        txn.write_file(wsgi, b"# venv, a longer text than the old one was\n")
        txn.commit()
    [intent] = intents(txn.path)
    with open(txn.path / "journal.jsonl", "ab") as journal:  # as the stopped rollback left it
        journal.write(b'{"rec":"rollback-begin","force":false,"at":"2026-01-01T00:00:00+00:00"}\n')
        journal.write(b'{"rec":"restoring","n":%d}\n' % intent["n"])
    wsgi.write_bytes(old[:5] + b"# venv, a longer text than the old one was\n"[5:])
    result = locked_rollback(account)
    assert wsgi.read_bytes() == old and os.path.samefile(wsgi, account / "second.wsgi")
    assert transactions(account)[0].state == "rolled-back"
    assert len(result.kept_aside) == 1  # a copy of what it held, in case


def test_a_write_planned_from_other_bytes_is_refused(account: Path) -> None:
    """Compare-and-swap: the file must still hold the bytes the write was planned from."""
    wsgi = account / APP / "app.wsgi"
    planned_from = hashlib.sha256(wsgi.read_bytes()).hexdigest()
    wsgi.write_bytes(b"edited by the user after it was read\n")
    edited = snapshot(account)
    with home_lock(account):
        txn = begin(account, "compare and swap")
        with pytest.raises(TargetChanged, match="changed after it was read") as caught:
            txn.write_file(wsgi, b"# venv\n", expect_sha256=planned_from)
        assert caught.value.target == wsgi
        assert snapshot(account) == edited
        now = hashlib.sha256(wsgi.read_bytes()).hexdigest()
        txn.write_file(wsgi, b"# venv\n", expect_sha256=now)
        txn.commit()
    assert wsgi.read_bytes() == b"# venv\n"


def test_force_keeps_edits_aside_then_restores(account: Path) -> None:
    before = snapshot(account)
    locked_apply(account)
    (account / APP / "app.wsgi").write_bytes(b"hand edit\n")
    (account / NEW_SETTINGS).write_bytes(b"[settings]\ndebug = true\n")
    (account / NEW_SETTINGS.parent / "notes.txt").write_bytes(b"mine\n")  # in a created dir

    result = locked_rollback(account, force=True)
    assert snapshot(account) == before
    kept = {p.name: p for p in result.kept_aside}
    assert all(p.parent.name == "edited" and mode_of(p.parent) == 0o700 for p in kept.values())
    [wsgi] = [p for n, p in kept.items() if n.endswith("app.wsgi")]
    [settings] = [p for n, p in kept.items() if n.endswith("settings.ini")]
    assert wsgi.read_bytes() == b"hand edit\n"
    assert settings.read_bytes() == b"[settings]\ndebug = true\n"
    [deep] = [p for n, p in kept.items() if n.endswith("deep")]
    assert (deep / "notes.txt").read_bytes() == b"mine\n"


def test_rollback_twice_is_idempotent(account: Path) -> None:
    before = snapshot(account)
    txn_id = locked_apply(account)
    first = locked_rollback(account)
    journal = journal_bytes(account)
    for again in (locked_rollback(account, txn_id), locked_rollback(account)):
        assert again.already and again.id == txn_id
        assert (again.restored, again.removed) == (first.restored, first.removed)
    assert journal_bytes(account) == journal
    assert snapshot(account) == before


def test_rollback_newest_first_and_unknown_ids(account: Path) -> None:
    with pytest.raises(UnknownTransaction):
        locked_rollback(account)
    before = snapshot(account)
    with home_lock(account):
        first = begin(account, "one")
        first.write_file(account / "a.txt", b"one\n")
        first.commit()
        middle = snapshot(account)
        second = begin(account, "two")
        second.write_file(account / "a.txt", b"two\n")
        second.commit()
        with pytest.raises(UnknownTransaction):
            rollback(account, "20000101T000000Z-abcdef")
        with pytest.raises(UnknownTransaction):
            rollback(account, "../../etc")
        assert [t.id for t in transactions(account)] == [first.id, second.id]
        assert rollback(account).id == second.id
        assert snapshot(account) == middle
        assert rollback(account).id == first.id
        assert snapshot(account) == before
        assert rollback(account).already


def test_an_older_transaction_is_never_rolled_back_over_a_newer_ones_changes(
    account: Path,
) -> None:
    """The first made a folder, the second installed a venv in it and rewrote a file the
    first wrote: rolling back the first, even with force, would move the venv and the
    rewrite aside and break what the second migrated. It refuses, naming the second."""
    before = snapshot(account)
    with home_lock(account):
        first = begin(account, "one")
        first.make_dir(account / ".venvs")
        first.write_file(account / "a.txt", b"one\n")
        first.commit()
        second = begin(account, "two")
        second.install_dir(staged_venv(account), account / ".venvs/app")
        second.write_file(account / "a.txt", b"two\n")
        second.commit()
        after = snapshot(account)
        for force in (False, True):
            with pytest.raises(JournalError, match=f"newer transaction {second.id}") as refused:
                rollback(account, first.id, force=force)
            assert "changed nothing" in str(refused.value)
            assert snapshot(account) == after
        rollback(account, second.id)
        rollback(account, first.id)
    assert snapshot(account) == before


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_a_rollback_with_one_line_and_a_rerun_finishes_it(
    small_disk: Path,
) -> None:
    """No space left while rolling back: one ``Error:`` line saying how to finish (no
    traceback); with space again, the same command finishes the rollback exactly."""
    home = small_disk / "home"
    home.mkdir()
    build_home(home)
    before = snapshot(home)
    locked_apply(home)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):  # every block the file system has left...
        while os.write(fd, b"\0" * 4096):
            pass
    os.ftruncate(fd, os.fstat(fd).st_size - 4096)  # ...but one: the lock takes it
    os.close(fd)
    command = [sys.executable, "-m", "migrate", "--home", str(home), "rollback", "--no-restart"]
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 1
    assert "Traceback" not in stopped.stderr, stopped.stderr
    assert stopped.stderr.startswith("Error: rollback of "), stopped.stderr
    assert "No space left on device" in stopped.stderr and "run rollback again" in stopped.stderr
    filler.unlink()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert snapshot(home) == before


def test_rollback_of_open_transaction_with_torn_last_line(account: Path) -> None:
    before = snapshot(account)
    with home_lock(account):
        txn = begin(account, "left open")
        txn.write_file(account / APP / "app.wsgi", b"changed\n")
        txn.write_file(account / "new/file.txt", b"new\n")
        # A crash mid-append: half a record, no newline.
        with open(txn.path / "journal.jsonl", "ab") as journal:
            journal.write(b'{"rec":"intent","n":9,"op":"wr')
        [info] = transactions(account)
        assert info.state == "open"
        with pytest.raises(TransactionOpen):
            begin(account, "another")
        result = rollback(account)
    assert snapshot(account) == before
    assert not result.already
    records = [json.loads(line) for line in (txn.path / "journal.jsonl").read_bytes().splitlines()]
    assert records[-1]["rec"] == "rolled-back"  # the torn line was cut, not glued to


def test_failed_operation_leaves_transaction_for_rollback(account: Path) -> None:
    before = snapshot(account)
    with home_lock(account):
        txn = begin(account, "fails")
        txn.write_file(account / "a.txt", b"a\n")
        with pytest.raises(JournalError):
            txn.write_file(account / APP / "conf", b"a directory\n")
        with pytest.raises(JournalError):
            txn.install_dir(account / "missing", account / "dest")
        txn.write_file(account / "b.txt", b"b\n")  # refusals before any step do not poison
        txn.commit()
        with pytest.raises(JournalError):
            txn.write_file(account / "c.txt", b"too late\n")
        rollback(account)
    assert snapshot(account) == before


def crash_loop(
    command: list[str], before_each: Callable[[], object], after_each: Callable[[bool], None]
) -> int:
    """Run ``command`` crashing at step 1, 2, ... until it completes; return the step count."""
    for n in itertools.count(1):
        before_each()
        proc = run_helper(*command, crash_at=n)
        if proc.returncode == 0:
            after_each(False)
            return n - 1
        assert proc.returncode == -signal.SIGKILL, (n, proc.returncode, proc.stderr)
        after_each(True)
    raise AssertionError("unreachable")


def test_crash_at_every_step_of_a_transaction_then_rollback_is_exact(account: Path) -> None:
    before = snapshot(account)
    seen_temp = []

    def after_each(crashed: bool) -> None:
        seen_temp.append(any(p.name.endswith(".cm-tmp") for p in account.rglob("*")))
        if not crashed:
            assert snapshot(account) != before
        if transactions(account):
            locked_rollback(account)
        else:  # killed before the transaction folder was renamed in: nothing to undo
            with pytest.raises(UnknownTransaction):
                locked_rollback(account)
        assert snapshot(account) == before, "not restored exactly"
        assert {t.state for t in transactions(account)} <= {"rolled-back"}
        for txn in transactions(account):  # a staged dir is installed or removed, never left
            for line in (txn.path / "journal.jsonl").read_text().splitlines():
                record = json.loads(line)
                if record.get("op") == "install":
                    assert not (account / record["staged"]).exists()

    steps = crash_loop(["apply", str(account)], lambda: None, after_each)
    # begin 2; replace 5 + 5; 2 new dirs 3 + 3 and a new file 4; through the symlink 5;
    # explicit mode 5; install 4 (its listing, the intent, the rename, done); rewrite inside it 5; commit 1.
    assert steps == 2 + 5 + 5 + 3 + 3 + 4 + 5 + 5 + 4 + 5 + 1
    assert any(seen_temp)  # some crash left a temp file that rollback removed
    assert len(transactions(account)) == steps - 1  # a crash before the folder rename leaves none
    assert not list((account / STATE_DIR / "journal").glob(".*"))  # the next begin cleaned it


@pytest.mark.parametrize("force", [False, True])
def test_crash_at_every_step_of_a_rollback_then_resume_is_exact(account: Path, force: bool) -> None:
    before = snapshot(account)
    edit = b"edited after the migration\n"

    def before_each() -> None:
        locked_apply(account)
        if force:
            (account / APP / "app.wsgi").write_bytes(edit)
            (account / VENV / "local.txt").write_bytes(b"mine\n")
            (account / NEW_SETTINGS.parent / "notes.txt").write_bytes(b"mine\n")

    def after_each(crashed: bool) -> None:
        result = locked_rollback(account, force=force)
        assert result.already == (not crashed)
        assert snapshot(account) == before, "not restored exactly"
        if force:
            [kept] = [p for p in result.kept_aside if p.name.endswith("app.wsgi")]
            assert kept.read_bytes() == edit
            [mine] = [p for p in result.kept_aside if p.name == "local.txt"]
            assert mine.parent.name.endswith("-venv") and mine.read_bytes() == b"mine\n"

    args = ["rollback", str(account)] + (["force"] if force else [])
    steps = crash_loop(args, before_each, after_each)
    # rollback-begin 1; 9 undone records, 5 restores (temp, rename) of replaced files, the
    # created file and 2 dirs removed (1 each), the venv renamed to trash and removed (2);
    # rolled-back 1. Force: 2 more for the aside of app.wsgi, 1 more for the dir moved
    # aside, 2 for the file added in the venv (kept aside from it, not removed with it).
    assert steps == 1 + 9 + 5 * 2 + 3 + 2 + 1 + (5 if force else 0), steps


def test_acl_kept_through_write_and_rollback(account: Path) -> None:
    if shutil.which("setfacl") is None or shutil.which("getfacl") is None:
        pytest.skip("setfacl/getfacl not installed (Debian package acl)")
    wsgi = account / APP / "app.wsgi"
    plain = account / APP / "bin/run.sh"
    subprocess.run(["setfacl", "-m", "u:65534:rw,g:65534:r", str(wsgi)], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:65534:rwx", str(plain.parent)], check=True)

    def acl(path: Path) -> str:
        return subprocess.run(
            ["getfacl", "-cpn", str(path)], check=True, capture_output=True, text=True
        ).stdout

    acls = {wsgi: acl(wsgi), plain: acl(plain)}
    assert "user:65534:rw-" in acls[wsgi]
    before = snapshot(account)
    with home_lock(account):
        txn = begin(account, "acl")
        txn.write_file(wsgi, b"new\n")
        txn.write_file(plain, b"new\n")  # must not pick up the folder's default ACL
        txn.write_file(plain.parent / "fresh", b"new\n")  # a new file does
        txn.commit()
    assert {p: acl(p) for p in acls} == acls
    assert "user:65534:rwx" in acl(plain.parent / "fresh")
    locked_rollback(account)
    assert {p: acl(p) for p in acls} == acls
    assert snapshot(account) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_owner_kept_through_write_and_rollback(account: Path) -> None:
    wsgi = account / APP / "app.wsgi"
    os.chown(wsgi, 65534, 65534)
    before = snapshot(account)
    with home_lock(account):
        txn = begin(account, "owner")
        txn.write_file(wsgi, b"new\n")
        txn.commit()
    st = os.stat(wsgi)
    assert (st.st_uid, st.st_gid, mode_of(wsgi)) == (65534, 65534, 0o640)
    locked_rollback(account)
    assert snapshot(account) == before


def test_paths_leaving_the_home_are_refused_before_anything_is_written(
    account: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0\n")
    (account / "escape").symlink_to(outside / "passwd")
    (account / "escape-dir").symlink_to(outside)
    (account / APP / "up").symlink_to("../../..")
    before_outside = sorted(p.name for p in outside.iterdir())
    with home_lock(account):
        txn = begin(account, "hostile")
        for target in (
            account / "escape",
            account / "escape-dir" / "new",
            account / "escape-dir" / "sub" / "new",
            account / APP / "up" / "outside" / "passwd",
            account / ".." / "outside" / "passwd",
            outside / "passwd",
        ):
            with pytest.raises(OutsideHome):
                txn.write_file(target, b"owned\n")
        with pytest.raises(OutsideHome):
            txn.make_dir(account / "escape-dir" / "newdir")
        with pytest.raises(OutsideHome):
            txn.install_dir(account / APP / "bin", account / "escape-dir" / "venv")
        with pytest.raises(JournalError):
            txn.write_file(account / STATE_DIR / "lock", b"mine\n")
        txn.commit()
    assert (outside / "passwd").read_bytes() == b"root:x:0:0\n"
    assert sorted(p.name for p in outside.iterdir()) == before_outside
    assert transactions(account)[0].files == ()


def test_second_writer_gets_lock_held_naming_the_holder(account: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, str(HELPER), "hold", str(account), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with pytest.raises(LockHeld) as caught, home_lock(account):
            pass
        assert time.monotonic() - started < 1
        assert caught.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(caught.value) and "journal_helper.py" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    with home_lock(account):  # the kernel dropped the dead holder's lock
        pass


def test_writers_must_hold_the_lock(account: Path) -> None:
    with pytest.raises(JournalError, match="home_lock"):
        begin(account, "no lock")
    with home_lock(account):
        pass
    with pytest.raises(JournalError, match="home_lock"):
        rollback(account)


def test_rollback_refuses_a_path_that_now_leads_out_of_the_home(
    account: Path, tmp_path: Path
) -> None:
    locked_apply(account)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(account / APP / "conf/new", outside / "new")
    (account / APP / "conf/new").symlink_to(outside / "new")
    inside, beyond = snapshot(account), snapshot(outside)
    with pytest.raises(OutsideHome):
        locked_rollback(account, force=True)
    assert (snapshot(account), snapshot(outside)) == (inside, beyond)


def test_state_dir_that_is_a_symlink_is_refused(account: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (account / STATE_DIR).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(JournalError, match="symlink"), home_lock(account):
        pass
    with pytest.raises(JournalError, match="symlink"):
        transactions(account)
    assert not list((tmp_path / "elsewhere").iterdir())


# --- the crontab ----------------------------------------------------------------------------

INSTALLED = Path("crontab -l")
EDITED_CRONTAB = b"# edited by hand after the migration\n0 0 31 2 * true edited\n"


def crontab_l() -> bytes | None:
    """The real installed crontab of the user running the tests; None when there is none."""
    done = subprocess.run(["crontab", "-l"], capture_output=True, timeout=30, check=False)
    if done.returncode == 0:
        return done.stdout
    assert b"no crontab for" in done.stderr, done.stderr
    return None


def crontab_set(data: bytes | None) -> None:
    """Install ``data`` as the crontab, or remove it (None)."""
    if data is None:
        subprocess.run(["crontab", "-r"], capture_output=True, timeout=30, check=False)
    else:
        subprocess.run(["crontab", "-"], input=data, capture_output=True, timeout=30, check=True)
    assert crontab_l() == data


@pytest.fixture
def user_crontab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The real crontab (root's in CI: /var/spool/cron/crontabs/root), saved and put back.

    There is one per user, so the tests using it take turns across xdist workers (a lock
    file in the temp root the workers share)."""
    if shutil.which("crontab") is None:
        pytest.skip("crontab not installed (Debian package cron)")
    with open(tmp_path_factory.getbasetemp().parent / "user-crontab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _user_crontab()


def _user_crontab() -> Iterator[None]:
    probe = subprocess.run(["crontab", "-l"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0 and b"no crontab for" not in probe.stderr:
        pytest.skip(f"crontab -l does not work here: {probe.stderr.decode(errors='replace')}")
    saved = probe.stdout if probe.returncode == 0 else None
    writable = subprocess.run(
        ["crontab", "-"],
        input=b"# probe\n" if saved is None else saved,  # a failed crontab - changes nothing
        capture_output=True,
        timeout=30,
        check=False,
    )
    if writable.returncode != 0:
        said = writable.stderr.decode(errors="replace")
        pytest.skip(f"crontab - does not work here (no cron spool dir?): {said}")
    try:
        yield
    finally:
        crontab_set(saved)


@pytest.fixture(params=[None, INSTALLED_BEFORE], ids=["no-crontab", "crontab"])
def installed(request: pytest.FixtureRequest, user_crontab: None) -> bytes | None:
    """The installed crontab before the migration: none, or one."""
    crontab_set(request.param)
    return request.param


@pytest.fixture(params=["file-only", "no-crontab", "crontab"])
def cron_case(request: pytest.FixtureRequest) -> tuple[bool, bytes | None]:
    """Whether the scenario replaces the installed crontab too (needs cron), and its text."""
    if request.param == "file-only":
        return False, None
    request.getfixturevalue("user_crontab")
    initial = INSTALLED_BEFORE if request.param == "crontab" else None
    crontab_set(initial)
    return True, initial


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A crontab file outside the home, as ``--crontab FILE`` names one."""
    folder = tmp_path / "spool"
    folder.mkdir()
    file = folder / "crontab"
    file.write_bytes(CRONTAB_FILE_BEFORE)
    os.chmod(file, 0o640)
    return file


def intents(txn_path: Path) -> list[dict[str, object]]:
    lines = (txn_path / "journal.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["rec"] == "intent"]


def locked_apply_crontab(home: Path, file: Path, *, installed: bool) -> str:
    with home_lock(home):
        return apply_crontab(home, file, installed=installed)


def test_crontab_file_outside_the_home_written_and_rolled_back_exactly(
    account: Path, spool: Path
) -> None:
    before, before_spool = snapshot(account), snapshot(spool.parent)
    fresh = spool.parent / "fresh-crontab"
    with home_lock(account):
        txn = begin(account, "crontab file")
        txn.set_crontab(CRONTAB_FILE_AFTER, file=spool)
        txn.set_crontab(CRONTAB_FILE_AFTER, file=fresh)
        txn.commit()
    assert spool.read_text() == CRONTAB_FILE_AFTER and mode_of(spool) == 0o640
    assert fresh.read_text() == CRONTAB_FILE_AFTER and mode_of(fresh) == 0o600
    assert sorted(p.name for p in spool.parent.iterdir()) == ["crontab", "fresh-crontab"]
    assert snapshot(account) == before
    replaced, created = intents(txn.path)
    assert (replaced["op"], replaced["path"], replaced["mode"]) == (
        "crontab-file",
        str(spool),
        "0640",
    )
    assert (created["op"], created["path"], created["existed"]) == (
        "crontab-file",
        str(fresh),
        False,
    )
    [backup] = (txn.path / "backups").iterdir()
    assert backup.read_bytes() == CRONTAB_FILE_BEFORE
    assert transactions(account)[0].files == (spool, fresh)

    result = locked_rollback(account)
    assert (result.restored, result.removed) == ((spool,), (fresh,))
    assert snapshot(spool.parent) == before_spool and snapshot(account) == before
    assert locked_rollback(account).already


def test_crontab_file_edited_since_refuses_then_force_keeps_the_edit(
    account: Path, spool: Path
) -> None:
    before_spool = snapshot(spool.parent)
    with home_lock(account):
        txn = begin(account, "crontab file")
        txn.set_crontab(CRONTAB_FILE_AFTER, file=spool)
        txn.commit()
    spool.write_bytes(b"0 0 31 2 * edited by hand\n")
    edited, journal = snapshot(spool.parent), journal_bytes(account)
    with pytest.raises(EditedSince) as caught:
        locked_rollback(account)
    assert caught.value.files == (spool,) and str(spool) in str(caught.value)
    assert (snapshot(spool.parent), journal_bytes(account)) == (edited, journal)

    result = locked_rollback(account, force=True)
    assert snapshot(spool.parent) == before_spool
    [kept] = result.kept_aside
    assert kept.read_bytes() == b"0 0 31 2 * edited by hand\n"


def test_only_the_crontab_file_may_leave_the_home(
    account: Path, spool: Path, tmp_path: Path
) -> None:
    before, before_spool = snapshot(account), snapshot(spool.parent)
    inside = account / APP / "crontab"
    with home_lock(account):
        txn = begin(account, "crontab file")
        with pytest.raises(OutsideHome):
            txn.write_file(spool, b"not through write_file\n")
        with pytest.raises(OutsideHome):
            txn.set_crontab(CRONTAB_FILE_AFTER, file=tmp_path / "no" / "such" / "crontab")
        with pytest.raises(JournalError, match=STATE_DIR):
            txn.set_crontab(CRONTAB_FILE_AFTER, file=account / STATE_DIR / "lock")
        with pytest.raises(JournalError, match="newline"):
            txn.set_crontab("0 0 31 2 * true", file=spool)
        txn.set_crontab(CRONTAB_FILE_AFTER, file=inside)  # a crontab file in the home is fine
        txn.commit()
    assert not (tmp_path / "no").exists()
    assert snapshot(spool.parent) == before_spool
    assert [r["path"] for r in intents(txn.path)] == [str(inside.relative_to(account))]
    assert transactions(account)[0].files == (inside,)
    locked_rollback(account)
    assert snapshot(account) == before


def test_crontab_file_rollback_refuses_a_folder_swapped_or_gone(
    account: Path, spool: Path, tmp_path: Path
) -> None:
    with home_lock(account):
        txn = begin(account, "crontab file")
        txn.set_crontab(CRONTAB_FILE_AFTER, file=spool)
        txn.commit()
    moved = tmp_path / "elsewhere"
    spool.parent.rename(moved)
    spool.parent.symlink_to(moved)
    with pytest.raises(JournalError, match="became a symlink"):
        locked_rollback(account, force=True)
    spool.parent.unlink()
    with pytest.raises(JournalError, match="is gone"):  # its folder is not made outside the home
        locked_rollback(account, force=True)
    assert not spool.parent.exists()
    moved.rename(spool.parent)
    locked_rollback(account)
    assert spool.read_bytes() == CRONTAB_FILE_BEFORE and mode_of(spool) == 0o640


def test_installed_crontab_replaced_and_rolled_back(account: Path, installed: bytes | None) -> None:
    before = snapshot(account)
    with home_lock(account):
        txn = begin(account, "installed crontab")
        txn.set_crontab(INSTALLED_AFTER)
        txn.write_file(account / APP / "app.wsgi", b"# venv\n")
        txn.set_crontab(INSTALLED_AFTER_AGAIN)
        txn.commit()
    assert crontab_l() == INSTALLED_AFTER_AGAIN.encode()
    first, _, second = intents(txn.path)
    assert first["op"] == second["op"] == "crontab" and "path" not in first
    assert first["existed"] is (installed is not None) and second["existed"] is True
    assert first["uid"] == os.getuid() and second["before"] == first["after"]
    backups = {p.name: p.read_bytes() for p in (txn.path / "backups").iterdir()}
    assert backups["0003-crontab"] == INSTALLED_AFTER.encode()
    assert backups.get("0001-crontab") == installed
    assert transactions(account)[0].files == (INSTALLED, account / APP / "app.wsgi")

    result = locked_rollback(account)
    assert crontab_l() == installed and snapshot(account) == before
    assert INSTALLED in (result.restored if installed is not None else result.removed)
    assert locked_rollback(account).already and crontab_l() == installed


def test_installed_crontab_changed_since_planned_is_refused(
    account: Path, installed: bytes | None
) -> None:
    planned_from = hashlib.sha256(installed or b"").hexdigest()
    crontab_set(INSTALLED_AFTER_AGAIN.encode())
    with home_lock(account):
        txn = begin(account, "installed crontab, compare and swap")
        with pytest.raises(TargetChanged, match="installed crontab changed") as caught:
            txn.set_crontab(INSTALLED_AFTER, expect_sha256=planned_from)
        assert caught.value.target is None
        txn.commit()
    assert crontab_l() == INSTALLED_AFTER_AGAIN.encode()


def test_installed_crontab_removed_since_is_simply_restored(
    account: Path, installed: bytes | None
) -> None:
    with home_lock(account):
        txn = begin(account, "installed crontab")
        txn.set_crontab(INSTALLED_AFTER)
        txn.commit()
    crontab_set(None)
    locked_rollback(account)
    assert crontab_l() == installed


def test_installed_crontab_edited_since_refuses_then_force_keeps_it_aside(
    account: Path, installed: bytes | None
) -> None:
    with home_lock(account):
        txn = begin(account, "installed crontab")
        txn.set_crontab(INSTALLED_AFTER)
        txn.commit()
    crontab_set(EDITED_CRONTAB)
    journal = journal_bytes(account)
    with pytest.raises(EditedSince) as caught:
        locked_rollback(account)
    assert caught.value.files == (INSTALLED,) and "crontab -l" in str(caught.value)
    assert crontab_l() == EDITED_CRONTAB and journal_bytes(account) == journal

    result = locked_rollback(account, force=True)
    assert crontab_l() == installed
    [kept] = result.kept_aside
    assert kept.parent == txn.path / "edited" and kept.read_bytes() == EDITED_CRONTAB
    assert mode_of(kept) == 0o600


def test_crontab_that_cron_refuses_changes_nothing_and_rolls_back(
    account: Path, installed: bytes | None
) -> None:
    with home_lock(account):
        txn = begin(account, "bad crontab")
        with pytest.raises(JournalError, match="crontab - failed"):
            txn.set_crontab("this is not a cron line\n")
        assert crontab_l() == installed
        with pytest.raises(JournalError, match="roll it back"):
            txn.set_crontab(INSTALLED_AFTER)
        result = rollback(account)
    assert crontab_l() == installed and result.restored == result.removed == ()


def test_crontab_rollback_only_by_its_user(account: Path, user_crontab: None) -> None:
    crontab_set(None)
    with home_lock(account):
        txn = begin(account, "installed crontab")
        txn.set_crontab(INSTALLED_AFTER)
        txn.commit()
    journal = txn.path / "journal.jsonl"
    honest = journal.read_bytes()
    journal.write_bytes(honest.replace(b'"uid":%d,' % os.getuid(), b'"uid":4242,'))
    with pytest.raises(JournalError, match="uid 4242"):
        locked_rollback(account)
    assert crontab_l() == INSTALLED_AFTER.encode()
    journal.write_bytes(honest)
    locked_rollback(account)
    assert crontab_l() is None


def test_crontab_command_missing_or_hanging(
    account: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with home_lock(account):
        txn = begin(account, "no cron")
        with pytest.raises(JournalError, match="crontab command is not installed"):
            txn.set_crontab(INSTALLED_AFTER)
        assert intents(txn.path) == []
        hanging = empty / "crontab"
        hanging.write_text(f"#!/bin/sh\nexec {sleep} 30\n")
        hanging.chmod(0o755)
        monkeypatch.setattr(installed_crontab, "TIMEOUT", 0.5)
        started = time.monotonic()
        with pytest.raises(JournalError, match=r"did not finish within 0\.5 s"):
            txn.set_crontab(INSTALLED_AFTER)
        assert time.monotonic() - started < 10
        txn.commit()  # refused before any step: the transaction is still good


def test_crash_at_every_step_of_a_crontab_transaction_then_rollback_is_exact(
    account: Path, spool: Path, cron_case: tuple[bool, bytes | None]
) -> None:
    installed, initial = cron_case
    before, before_spool = snapshot(account), snapshot(spool.parent)
    seen_temp = []

    def after_each(crashed: bool) -> None:
        seen_temp.append(any(p.name.endswith(".cm-tmp") for p in spool.parent.iterdir()))
        if not crashed:
            assert spool.read_text() == CRONTAB_FILE_AFTER
            assert not installed or crontab_l() == INSTALLED_AFTER_AGAIN.encode()
        if transactions(account):
            locked_rollback(account)
        else:
            with pytest.raises(UnknownTransaction):
                locked_rollback(account)
        assert not installed or crontab_l() == initial, "crontab not restored"
        assert snapshot(spool.parent) == before_spool, "crontab file not restored exactly"
        assert snapshot(account) == before, "home not restored exactly"

    args = ["apply-crontab", str(account), str(spool)] + (["installed"] if installed else [])
    steps = crash_loop(args, lambda: None, after_each)
    # begin 2; a script replaced 5; the crontab file replaced 5; the installed crontab
    # replaced 4 (3 when there was none: no backup), then again 4; commit 1.
    crontab_steps = (3 if initial is None else 4) + 4 if installed else 0
    assert steps == 2 + 5 + 5 + crontab_steps + 1
    assert any(seen_temp)


@pytest.mark.parametrize("force", [False, True])
def test_crash_at_every_step_of_a_crontab_rollback_then_resume_is_exact(
    account: Path, spool: Path, cron_case: tuple[bool, bytes | None], force: bool
) -> None:
    installed, initial = cron_case
    before, before_spool = snapshot(account), snapshot(spool.parent)
    edit = b"0 0 31 2 * edited file\n"

    def before_each() -> None:
        locked_apply_crontab(account, spool, installed=installed)
        if force:
            spool.write_bytes(edit)
            if installed:
                crontab_set(EDITED_CRONTAB)

    def after_each(crashed: bool) -> None:
        result = locked_rollback(account, force=force)
        assert result.already == (not crashed)
        assert not installed or crontab_l() == initial, "crontab not restored"
        assert snapshot(spool.parent) == before_spool, "crontab file not restored exactly"
        assert snapshot(account) == before, "home not restored exactly"
        if force:
            kept = {p.name: p.read_bytes() for p in result.kept_aside}
            assert kept == {"0002-crontab": edit} | (
                {"0004-crontab": EDITED_CRONTAB} if installed else {}
            )

    args = ["rollback", str(account)] + (["force"] if force else [])
    steps = crash_loop(args, before_each, after_each)
    # rollback-begin 1; an undone record per operation (2, or 4 with the installed
    # crontab); the crontab file and the script restored (temp, rename) 2 + 2; the installed
    # crontab put back twice (crontab -, or crontab -r for the first when there was none)
    # 1 + 1; rolled-back 1. Force: the edited file moved aside (append, move) 2 and the
    # installed crontab's edited text kept aside (append, write) 2.
    per_crontab = 1 + 1 + (2 if force else 0)
    expected = 1 + 2 + 2 + 2 + 1 + (2 if force else 0) + (2 + per_crontab if installed else 0)
    assert steps == expected, steps


def test_a_damaged_journal_line_is_one_line_of_error_and_changes_nothing(account: Path) -> None:
    """A journal line that is not a record (a disk error, a hand edit): ``journal`` and
    ``rollback`` say which line in one ``Error:`` line, no traceback, and change nothing."""
    txn_id = locked_apply(account)
    journal = account / STATE_DIR / "journal" / txn_id / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"rec":"intent","n":2,"op":"write"}\n'
    journal.write_bytes(b"".join(lines))
    before = snapshot(account)
    for command in (["journal"], ["rollback", "--no-restart"]):
        done = subprocess.run(
            [sys.executable, "-m", "migrate", "--home", str(account), *command],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr == f"Error: {journal}: line 4 is not a journal record\n"
    assert snapshot(account) == before


def test_a_folder_swapped_for_a_link_once_opened_leads_nowhere(tmp_path: Path) -> None:
    """What the journal writes goes through a descriptor on the target's folder, reached
    name by name without following a link: a folder swapped for a link to elsewhere after
    that still gets the file (she moved it, it is hers), the elsewhere nothing; a folder
    that is a link when it is reached is refused."""
    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / "app").mkdir(parents=True)
    outside.mkdir()
    target = home / "app" / "x.conf"
    folder = folder_of(home, target)
    try:
        os.rename(home / "app", home / "app.moved")
        os.symlink(outside, home / "app")
        write_temp(
            target, b"data\n", owner=None, xattrs=None, mode=0o644, strict_owner=False,
            folder=folder,
        )  # fmt: skip
    finally:
        os.close(folder)
    assert list(outside.iterdir()) == []
    assert (home / "app.moved" / "x.conf").read_bytes() == b"data\n"
    with pytest.raises(JournalError, match="not a folder"):
        folder_of(home, target)

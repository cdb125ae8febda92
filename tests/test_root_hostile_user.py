"""Issue 16's hostile-environment suite: root migrates a real unprivileged user's account
while that user attacks it.

The module creates a user (``useradd``) whose home is the demo account, built for that
path and handed to her whole before anything starts. Every attack step runs as her (a
child with her uid, gid and no other group): what she plants, she could plant. The tool
runs as root, as an administrator migrating a customer's home does. After each command of
root's these must hold, and every breach is collected so that a failure reports them all:

* nothing outside the home changed (a canary folder the attacks point links at, the
  root-only secret, the folder holding the home);
* nothing in the home belongs to root, the tool's own state folder included (what the
  tool creates belongs to the home's owner);
* no setuid or setgid bit the user did not have;
* no edit of the user's is lost (kept in place, or kept aside and reported);
* after a rollback the home is byte for byte as before the run (paths, bytes, modes,
  owners, xattrs; the tool's state folder aside).

The account's apps run on Debian's ``/usr/bin/pythonX.Y`` (a bare venv of it outside the
home): pyenv's interpreters live under ``/root`` (mode 0700), which the user cannot reach.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import apache
import pytest
from journal_helper import snapshot

from migrate.demo import PY, build_demo_account
from migrate.layout import STATE_DIR
from migrate.paths import home_relative

USER_PYTHON = Path(f"/usr/bin/python{PY}")
"""An interpreter of the demo's X.Y that an unprivileged user can run."""
TIMEOUT = 300
TXN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
SETID = stat.S_ISUID | stat.S_ISGID

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it creates a real user"),
    pytest.mark.skipif(
        not (shutil.which("useradd") and shutil.which("userdel")),
        reason="useradd/userdel are not installed",
    ),
    pytest.mark.skipif(
        not USER_PYTHON.exists(), reason=f"no {USER_PYTHON} (a Python {PY} the user can run)"
    ),
]


# ------------------------------------------------------------------------------ the user


@dataclass(frozen=True)
class User:
    """The user this module created and what lies around her home (all root's, 0755)."""

    name: str
    uid: int
    gid: int
    base: Path
    """Root's folder holding the home, its template and the folders outside it."""
    home: Path
    template: Path
    """The demo home as built, copied (``cp -a``) over ``home`` before each test."""
    python: Path
    """The apps' interpreter: a bare venv of Debian's Python, outside the home."""
    tool: Path
    """The tool's interpreter, one she can read (root builds her venvs as her): Debian's
    Python with this test run's environment on its path."""


def _kill_processes(name: str) -> None:
    """End every process of the user (servers her scripts started included)."""
    subprocess.run(["pkill", "-KILL", "-u", name], check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-u", name], capture_output=True).returncode != 0:
            return
        time.sleep(0.1)


def _readable_tool(folder: Path) -> Path:
    """The tool installed where a user can read it, as an administrator installs it for
    root to migrate customers' homes: a venv of Debian's Python whose site folder adds the
    one this test runs from (same X.Y; the tool and its dependencies in it)."""
    subprocess.run([str(USER_PYTHON), "-m", "venv", "--without-pip", str(folder)], check=True)
    ours = sysconfig.get_paths()["purelib"]
    site = folder / "lib" / f"python{PY}" / "site-packages"
    (site / "concentric-test-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return folder / "bin" / f"python{PY}"


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    """A fresh user whose home is the demo account, built at its final path and hers whole."""
    name = f"cmh{secrets.token_hex(3)}"
    base = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/home"))
    base.chmod(0o755)
    created = False
    try:
        demo = build_demo_account(base)
        shutil.rmtree(demo.python.parent.parent)  # this Python's venv: under /root, out of reach
        python_root = base / "python"
        subprocess.run(
            [str(USER_PYTHON), "-m", "venv", "--without-pip", "--clear", str(python_root)],
            check=True,
        )
        demo.crontab.rename(demo.home / "crontab")
        tool = _readable_tool(base / "tool")
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(demo.home), "--shell", "/bin/sh",
             "--user-group", name],
            check=True, capture_output=True,
        )  # fmt: skip
        created = True
        subprocess.run(["chown", "-hR", f"{name}:{name}", str(demo.home)], check=True)
        template = base / "template"
        subprocess.run(["cp", "-a", str(demo.home), str(template)], check=True)
        entry = pwd.getpwnam(name)
        yield User(
            name, entry.pw_uid, entry.pw_gid, base, demo.home, template,
            python_root / "bin" / f"python{PY}", tool,
        )  # fmt: skip
    finally:
        if created:
            _kill_processes(name)
            subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- the account


@dataclass
class Account:
    """One test's copy of the user's home, and how root and the user act on it."""

    user: User
    outside: Path
    """Root's folder outside the home that the attacks point links at (0755: she cannot
    write it, only root could)."""
    secret: Path
    """A root-only file (0600 in a 0700 folder) outside the home."""
    trip: Path
    """A sticky world-writable folder where tripwires record which uid ran them."""

    @property
    def home(self) -> Path:
        return self.user.home

    @property
    def crontab(self) -> Path:
        return self.user.home / "crontab"

    @property
    def state(self) -> Path:
        return self.user.home / STATE_DIR

    @property
    def python(self) -> list[str]:
        return ["--python", f"{PY}={self.user.python}"]

    def tool(
        self, *args: str, installed: bool = False, python: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The tool as root, as an administrator runs it on the user's home: on the crontab
        file, or (``installed``) on her installed crontab; ``python``: another install."""
        crontab = [] if installed else ["--crontab", str(self.crontab)]
        python = python or self.user.tool
        return subprocess.run(
            [str(python), "-m", "migrate", "--home", str(self.home), *crontab, *args],
            capture_output=True, text=True, timeout=TIMEOUT, cwd="/",
        )  # fmt: skip

    def as_user(self, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` as the user, in her home, with a login-like environment."""
        done = subprocess.run(
            ["/bin/sh", "-c", script],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=self.home,
            env=self.user_env(), user=self.user.uid, group=self.user.gid, extra_groups=[],
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"the user could not run {script!r}: {done.stderr}"
        return done

    def user_env(self) -> dict[str, str]:
        name = self.user.name
        return {"HOME": str(self.home), "USER": name, "LOGNAME": name, "PATH": "/usr/bin:/bin"}

    def user_writes(self, files: Mapping[str, tuple[bytes, int]]) -> None:
        """Write files (relative to the home, with their modes) as the user; missing
        folders are made 0700."""
        payload = {
            rel: [oct(mode), base64.b64encode(data).decode()] for rel, (data, mode) in files.items()
        }
        code = (
            "import base64, json, os, sys\n"
            "for rel, (mode, data) in json.loads(sys.argv[1]).items():\n"
            "    path = os.path.join(os.environ['HOME'], rel)\n"
            "    folder = os.path.dirname(path)\n"
            "    missing = []\n"
            "    while not os.path.lexists(folder):\n"
            "        missing.append(folder)\n"
            "        folder = os.path.dirname(folder)\n"
            "    for each in reversed(missing):\n"
            "        os.mkdir(each, 0o700)\n"
            "    with open(path, 'wb') as out:\n"
            "        out.write(base64.b64decode(data))\n"
            "    os.chmod(path, int(mode, 8))\n"
        )
        self.as_user(f"{USER_PYTHON} -c {_quote(code)} {_quote(json.dumps(payload))}")

    def newest_transaction(self) -> Path:
        journals = self.state / "journal"
        ids = sorted(p.name for p in journals.iterdir() if TXN_ID.match(p.name))
        assert ids, f"no transaction in {journals}"
        return journals / ids[-1]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.fixture
def account(user: User) -> Iterator[Account]:
    """The demo home as built (hers whole), and fresh folders outside it."""
    _kill_processes(user.name)
    shutil.rmtree(user.home, ignore_errors=True)
    subprocess.run(["cp", "-a", str(user.template), str(user.home)], check=True)
    scratch = user.base / "outside"
    shutil.rmtree(scratch, ignore_errors=True)
    outside = scratch / "canary"
    outside.mkdir(parents=True)
    (outside / "target").mkdir()
    (outside / "canary.txt").write_text("root's file outside the home\n")
    for folder in (scratch, outside, outside / "target"):
        folder.chmod(0o755)
    secret_dir = scratch / "secret"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "settings.py"
    secret.write_text(f'PASSWORD = "root-only-{secrets.token_hex(8)}"\n')
    secret.chmod(0o600)
    trip = scratch / "trip"
    trip.mkdir()
    trip.chmod(0o1777)
    yield Account(user, outside, secret, trip)
    _kill_processes(user.name)


# ---------------------------------------------------------------------------- invariants


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``top`` and everything below it, lstat'ed (symlinks not followed)."""
    yield top, os.lstat(top)
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder, name)
            yield path, os.lstat(path)


def _setid(top: Path) -> set[str]:
    return {str(path) for path, info in _walk(top) if info.st_mode & SETID}


def _differences(before: Mapping[str, object], after: Mapping[str, object], limit: int = 8) -> str:
    """``+path`` added, ``-path`` gone, ``~path: old -> new`` changed; what lies inside an
    added or removed folder is not listed again."""
    shown = []
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) == after.get(key):
            continue
        parent = os.path.dirname(key)
        if parent and (parent in before) != (parent in after):
            continue
        if key not in before:
            shown.append(f"+{key}")
        elif key not in after:
            shown.append(f"-{key}")
        else:
            shown.append(f"~{key}: {before[key]} -> {after[key]}")
    more = f" (and {len(shown) - limit} more)" if len(shown) > limit else ""
    return "; ".join(shown[:limit]) + more


def said(done: subprocess.CompletedProcess[str], limit: int = 1200) -> str:
    """What a command printed, shortened for a breach message."""
    text = (done.stdout + done.stderr).strip()
    return f"exit {done.returncode}: {text[-limit:]!r}"


def one_line_error(done: subprocess.CompletedProcess[str]) -> bool:
    """A refusal as the CLI states one: an ``Error:`` line, no traceback."""
    return "Traceback" not in done.stderr and any(
        line.startswith("Error: ") for line in done.stderr.splitlines()
    )


def files_holding(top: Path, needle: bytes) -> list[Path]:
    """Every regular file under ``top`` whose bytes contain ``needle``."""
    found = []
    for path, info in _walk(top):
        if stat.S_ISREG(info.st_mode):
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    found.append(path)
    return found


@dataclass
class Invariants:
    """What must hold after every command root runs on the account. Breaches are
    collected (with what the command said) and asserted together at the end of a test."""

    account: Account
    outside_before: dict[str, tuple[object, ...]] = field(default_factory=dict)
    around_before: list[str] = field(default_factory=list)
    setid_before: set[str] = field(default_factory=set)
    breaches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outside_before = self._outside()
        self.around_before = sorted(os.listdir(self.account.user.base))
        self.setid_before = _setid(self.account.home)

    def _outside(self) -> dict[str, tuple[object, ...]]:
        scratch = self.account.outside.parent
        found = snapshot(scratch)
        return {k: v for k, v in found.items() if not k.startswith("trip")}

    def after(self, step: str, done: subprocess.CompletedProcess[str] | None = None) -> None:
        """Check the account after ``step`` (root's command, whose output ``done`` is)."""
        context = f" [{said(done)}]" if done is not None else ""
        outside = self._outside()
        if outside != self.outside_before:
            self.breach(
                f"after {step}: changed outside the home: "
                f"{_differences(self.outside_before, outside)}{context}"
            )
        around = sorted(os.listdir(self.account.user.base))
        if around != self.around_before:
            self.breach(f"after {step}: beside the home: {self.around_before} -> {around}{context}")
        root_owned = [
            str(p) for p, info in _walk(self.account.home) if 0 in (info.st_uid, info.st_gid)
        ]
        if root_owned:
            self.breach(
                f"after {step}: {len(root_owned)} path(s) in the home belong to root, e.g. "
                f"{root_owned[:4]}{context}"
            )
        setid = _setid(self.account.home) - self.setid_before
        if setid:
            detail = [
                f"{p} {stat.filemode(os.lstat(p).st_mode)} uid {os.lstat(p).st_uid}"
                for p in sorted(setid)
            ]
            self.breach(
                f"after {step}: setuid/setgid bits the user did not have: {detail}{context}"
            )

    def require(self, condition: bool, message: str) -> None:
        """A desired behaviour of this attack; a breach when it does not hold."""
        if not condition:
            self.breach(message)

    def breach(self, message: str) -> None:
        self.breaches.append(message)

    def assert_held(self) -> None:
        assert not self.breaches, "\n".join(["", *self.breaches])


def run_and_check(
    account: Account, watch: Invariants, step: str, *args: str, installed: bool = False
) -> subprocess.CompletedProcess[str]:
    """Root runs one command; the invariants are checked after it."""
    done = account.tool(*args, installed=installed)
    watch.after(step, done)
    return done


def run_args(account: Account, *, probe: bool = False) -> list[str]:
    """``run`` without a restart. The probe of the real runtimes (it starts the account's
    interpreters: the baseline and the user-code test keep it) costs ~4 s a run, so the
    attacks on files leave it out."""
    return ["run", *account.python, "--yes", "--no-restart", *([] if probe else ["--no-probe"])]


def migrated(account: Account, watch: Invariants, *, probe: bool = False) -> None:
    """The setup every attack on a migrated account starts from: a plain ``run``, which
    must succeed."""
    done = run_and_check(account, watch, "run", *run_args(account, probe=probe))
    assert done.returncode == 0, f"run failed before any attack: {said(done)}"


# -------------------------------------------------------------------------------- tests


def test_a_plain_run_and_rollback_give_the_user_nothing(account: Account) -> None:
    """The baseline every attack is measured against: root migrates and rolls back the
    untouched account; the invariants hold and the home comes back byte for byte."""
    watch = Invariants(account)
    before = snapshot(account.home)
    migrated(account, watch, probe=True)
    undone = run_and_check(account, watch, "rollback", "rollback", "--no-restart")
    watch.require(undone.returncode == 0, f"rollback failed: {said(undone)}")
    after = snapshot(account.home)
    watch.require(
        after == before, f"the home differs after rollback: {_differences(before, after)}"
    )
    watch.assert_held()


def _planted_transaction(
    account: Account, intent: Mapping[str, object], payload: bytes
) -> dict[str, tuple[bytes, int]]:
    """A committed transaction in the journal's on-disk format with one operation
    (``intent``, whose backup ``0001-planted`` holds ``payload``): what rolling it back
    would restore. The files to write as the user."""
    txn_id = "20240102T030405Z-abcdef"
    folder = f"{STATE_DIR}/journal/{txn_id}"
    records = [
        {"rec": "begin", "id": txn_id, "seq": 1, "created": "2024-01-02T03:04:05.000000+00:00",
         "description": "run", "home": str(account.home), "pid": 1,
         "argv": ["concentric-migrate", "run"]},
        {"rec": "intent", "n": 1, "existed": True, "before": hashlib.sha256(payload).hexdigest(),
         "backup": "0001-planted", **intent},
        {"rec": "done", "n": 1},
        {"rec": "commit", "at": "2024-01-02T03:04:06+00:00"},
    ]  # fmt: skip
    journal = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
    return {
        f"{folder}/backups/0001-planted": (payload, 0o600),
        f"{folder}/journal.jsonl": (journal, 0o600),
    }


def _planted_write(
    account: Account, path: str, current: bytes, payload: bytes, owner: tuple[int, int], mode: str
) -> dict[str, tuple[bytes, int]]:
    """A planted transaction whose one write "replaced" ``path`` (now ``current``): rolling
    it back writes ``payload`` there with ``owner`` and ``mode``."""
    intent = {
        "op": "crontab-file" if os.path.isabs(path) else "write", "path": path,
        "after": hashlib.sha256(current).hexdigest(), "temp": ".planted.abcdef.0001.cm-tmp",
        "mode": mode, "uid": owner[0], "gid": owner[1], "xattrs": {}, "new_mode": "0644",
    }  # fmt: skip
    return _planted_transaction(account, intent, payload)


@pytest.mark.parametrize("case", ["setuid-root-shell", "crontab-file-outside-the-home"])
def test_a_planted_journal_restores_nothing_the_user_could_not_set(
    account: Account, case: str
) -> None:
    """The user writes a transaction into her own journal: one whose rollback would give
    her a setuid-root shell in her home, or one whose "crontab file" is root's file outside
    the home. Root's ``rollback`` (and ``--force``) must refuse, or restore only what she
    could have set herself: nothing outside the home, no root-owned or setuid file."""
    if case == "setuid-root-shell":
        target = account.home / "bin" / "evil"
        current = b"#!/bin/sh\necho nothing to see\n"
        account.user_writes({"bin/evil": (current, 0o755)})
        payload, owner, mode = b"#!/bin/sh\nexec /bin/sh -p\n", (0, 0), "6755"
        recorded = "bin/evil"
    else:
        target = account.outside / "canary.txt"
        current = target.read_bytes()
        payload, owner, mode = b"* * * * * root sh -c 'id > /tmp/owned'\n", (0, 0), "0644"
        recorded = str(target)
    account.user_writes(_planted_write(account, recorded, current, payload, owner, mode))
    watch = Invariants(account)
    for args in (["rollback", "--no-restart"], ["rollback", "--force", "--no-restart"]):
        done = run_and_check(account, watch, " ".join(args), *args)
        if done.returncode != 0:
            watch.require(
                one_line_error(done), f"{' '.join(args)}: not a one-line error: {said(done)}"
            )
        watch.require(
            target.read_bytes() != payload, f"{' '.join(args)} wrote the planted bytes to {target}"
        )
    watch.assert_held()


SWAP_STAGING = """
import os, sys, time
state, target = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    try:
        names = os.listdir(state)
    except OSError:
        names = []
    for name in names:
        if name.startswith("tmp-") and not name.endswith(".moved"):
            path = os.path.join(state, name)
            try:
                os.rename(path, path + ".moved")
                os.symlink(target, path)
            except OSError as exc:
                print("could not swap", name, exc, flush=True)
                continue
            print("swapped", name, flush=True)
            sys.exit(0)
    time.sleep(0.0005)
print("saw no staging folder", flush=True)
"""


def test_a_staging_folder_swapped_for_a_link_while_root_builds_leads_nowhere(
    account: Account,
) -> None:
    """While ``run`` builds, she renames the venv being staged in her state folder away and
    puts a link to a folder outside the home in its place: the build writes by path, so
    it must be one she could do herself (it runs as her), and nothing outside the home
    may change, whatever becomes of the run."""
    watch = Invariants(account)
    attacker = subprocess.Popen(
        [str(USER_PYTHON), "-c", SWAP_STAGING, str(account.state), str(account.outside / "target")],
        stdout=subprocess.PIPE, text=True, cwd=account.home, env=account.user_env(),
        user=account.user.uid, group=account.user.gid, extra_groups=[],
    )  # fmt: skip
    try:
        done = run_and_check(account, watch, "run", *run_args(account))
    finally:
        attacker.kill()
        swapped = attacker.communicate()[0]
    assert swapped.startswith("swapped"), f"the attack did not happen: {swapped!r}"
    watch.require(
        not any((account.outside / "target").iterdir()),
        f"root wrote through her link: {sorted(os.listdir(account.outside / 'target'))}",
    )
    if done.returncode != 0:
        watch.require(one_line_error(done), f"run: not a one-line error: {said(done)}")
    watch.assert_held()


def test_a_tool_she_cannot_run_refuses_to_build_her_venvs(account: Account) -> None:
    """Root builds her venvs as her, with the tool's own Python: installed where she cannot
    read it (this test run's, under /root), ``run`` refuses before it writes anything (no
    transaction begins), saying why and what to do."""
    readable = account.as_user(f"{sys.executable} -I -c 'import migrate'", check=False)
    if readable.returncode == 0:
        pytest.skip(f"{sys.executable} is readable by the user here")
    watch = Invariants(account)
    before = snapshot(account.home)
    done = account.tool(*run_args(account), python=Path(sys.executable))
    watch.after("run", done)
    watch.require(done.returncode == 1, f"run did not refuse: {said(done)}")
    watch.require(one_line_error(done), f"not a one-line error: {said(done)}")
    watch.require(
        f"cannot run its Python ({sys.executable}" in done.stderr,
        f"the cause is not named: {said(done)}",
    )
    watch.require("run will not start" in done.stderr, f"not refused up front: {said(done)}")
    after = snapshot(account.home)
    watch.require(after == before, f"the home changed: {_differences(before, after)}")
    journal = account.state / "journal"
    watch.require(not journal.exists() or not any(journal.iterdir()), "a transaction was begun")
    watch.assert_held()


def crontab_of(name: str | None) -> bytes | None:
    """The installed crontab of user ``name`` (root's when None), None when there is none."""
    done = subprocess.run(
        ["crontab", *(["-u", name] if name else []), "-l"], capture_output=True, timeout=60
    )
    if done.returncode != 0:
        assert b"no crontab for" in done.stderr, done.stderr
        return None
    return done.stdout


def roots_crontab_names(account: Account) -> bool:
    return str(account.home).encode() in (crontab_of(None) or b"")


def set_crontab_of(name: str, text: bytes | None) -> None:
    argv = ["crontab", "-u", name, *(["-"] if text is not None else ["-r"])]
    subprocess.run(argv, input=text or b"", capture_output=True, timeout=60, check=text is not None)


@pytest.fixture
def her_crontab(account: Account) -> Iterator[bytes]:
    """The demo's crontab installed as the user's own (``crontab -u``), removed after.

    Root's own crontab is only ever checked for her text: the journal tests replace it
    (and put it back) while these run."""
    if shutil.which("crontab") is None:
        pytest.skip("the crontab command is not installed (package cron)")
    text = account.crontab.read_bytes()
    try:
        set_crontab_of(account.user.name, text)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"crontab -u does not work here: {exc.stderr!r}")
    try:
        yield text
    finally:
        set_crontab_of(account.user.name, None)


def test_root_migrates_and_rolls_back_the_users_installed_crontab(
    account: Account, her_crontab: bytes
) -> None:
    """Without ``--crontab FILE``, root on her home edits the crontab her jobs run from
    (``crontab -u``): the cron-started apps move to their venvs, root's own crontab is
    never read nor touched, and rollback gives hers back byte for byte."""
    watch = Invariants(account)
    done = run_and_check(account, watch, "run", *run_args(account), installed=True)
    assert done.returncode == 0, f"run failed: {said(done)}"
    after = crontab_of(account.user.name)
    watch.require(
        after is not None and b"/.venvs/account/bin/python " in after,
        f"her installed crontab was not migrated: {after!r}",
    )
    watch.require(not roots_crontab_names(account), "root's own crontab was migrated")
    undone = run_and_check(account, watch, "rollback", "rollback", "--no-restart", installed=True)
    watch.require(undone.returncode == 0, f"rollback failed: {said(undone)}")
    watch.require(
        crontab_of(account.user.name) == her_crontab, "her crontab did not come back as it was"
    )
    watch.require(not roots_crontab_names(account), "root's own crontab was migrated")
    watch.assert_held()


def test_a_planted_journal_cannot_install_roots_crontab(
    account: Account, her_crontab: bytes
) -> None:
    """A transaction she writes whose crontab record names root's crontab (uid 0): root's
    rollback refuses it, and never installs her text as root's crontab."""
    payload = b"* * * * * id > /tmp/owned-by-the-user\n"
    roots = crontab_of(None)
    intent = {
        "op": "crontab", "after": hashlib.sha256(roots or b"").hexdigest(), "uid": 0,
        "user": "root",
    }  # fmt: skip
    account.user_writes(_planted_transaction(account, intent, payload))
    watch = Invariants(account)
    for args in (["rollback", "--no-restart"], ["rollback", "--force", "--no-restart"]):
        done = run_and_check(account, watch, " ".join(args), *args, installed=True)
        watch.require(done.returncode != 0, f"{' '.join(args)} accepted the record: {said(done)}")
        watch.require(one_line_error(done), f"{' '.join(args)}: not a one-line error: {said(done)}")
        watch.require(
            payload not in (crontab_of(None) or b""),
            f"{' '.join(args)} installed her crontab as root's",
        )
        watch.require(
            crontab_of(account.user.name) == her_crontab, f"{' '.join(args)} changed hers"
        )
    watch.assert_held()


def test_a_forced_rollback_does_not_follow_an_edited_symlink_out_of_the_home(
    account: Account,
) -> None:
    """After a real run the user edits a rewritten file and turns the transaction's
    ``edited/`` into a link to a folder outside the home: ``rollback --force`` keeps her
    edit, but never writes through the link."""
    watch = Invariants(account)
    migrated(account, watch)
    txn = account.newest_transaction()
    wsgi = account.home / "webapps" / "blog" / "blog.wsgi"
    mark = f"# her edit {secrets.token_hex(4)}"
    account.as_user(f"echo '{mark}' >> {wsgi}")
    edited = txn / "edited"
    account.as_user(f"rm -rf {edited} && ln -s {account.outside / 'target'} {edited}")

    done = run_and_check(account, watch, "rollback --force", "rollback", "--force", "--no-restart")

    kept = files_holding(account.home, mark.encode())
    watch.require(bool(kept), f"her edit of blog.wsgi is nowhere in the home [{said(done)}]")
    if done.returncode != 0:
        watch.require(one_line_error(done), f"rollback --force: not a one-line error: {said(done)}")
    elif kept and kept != [wsgi]:
        names = [str(p.relative_to(account.home)) for p in kept]
        watch.require(
            any(p.name in done.stdout + done.stderr for p in kept),
            f"her edit was kept in {names}, which the output does not say [{said(done)}]",
        )
    watch.assert_held()


def _link_state(account: Account, which: str) -> None:
    """Make ``~/.concentric-migrate`` (or a folder of it) lead out of the home, as she can."""
    target = account.outside / "target"
    if which == STATE_DIR:
        account.as_user(f"ln -s {target} {account.state}")
    else:
        account.as_user(f"mkdir -m 700 {account.state} && ln -s {target} {account.state / which}")


@pytest.mark.parametrize(
    "case", ["state-link", "journal-link", "store-link", "state-mode-0777", "state-of-another-user"]
)
def test_a_state_folder_that_is_not_the_tools_own_is_refused(account: Account, case: str) -> None:
    """The tool's state folder (or its journal or store) leading out of the home, open to
    all, or another user's: ``run`` refuses before it writes anything, in one line."""
    if case.endswith("-link"):
        _link_state(
            account,
            {"state": STATE_DIR, "journal": "journal", "store": "store"}[case.split("-")[0]],
        )
    elif case == "state-mode-0777":
        account.as_user(f"mkdir {account.state} && chmod 0777 {account.state}")
    else:
        nobody = pwd.getpwnam("nobody")
        account.state.mkdir(mode=0o700)
        os.chown(account.state, nobody.pw_uid, nobody.pw_gid)
    watch = Invariants(account)
    before = snapshot(account.home)

    done = run_and_check(account, watch, f"run ({case})", *run_args(account))

    watch.require(done.returncode != 0, f"{case}: run was not refused: {said(done)}")
    watch.require(one_line_error(done), f"{case}: not a one-line error: {said(done)}")
    after = snapshot(account.home)
    watch.require(after == before, f"{case}: the home changed: {_differences(before, after)}")
    watch.assert_held()


def test_a_store_member_swapped_for_a_link_to_a_root_only_file_leaks_nothing(
    account: Account,
) -> None:
    """After a run and its rollback the store stays; the user swaps a member of it for a
    link to a root-only ``.py``. The next run rebuilds that member or refuses: the secret
    never lands in the home (compiled or copied)."""
    watch = Invariants(account)
    migrated(account, watch)
    undone = run_and_check(account, watch, "rollback", "rollback", "--no-restart")
    assert undone.returncode == 0, f"rollback failed before the attack: {said(undone)}"
    members = sorted((account.state / "store").glob("*/acme_utils/__init__.py"))
    assert members, "no acme_utils in the store after a run"
    member = members[0]
    account.as_user(
        f"chmod u+w {member.parent} && rm -f {member} && ln -s {account.secret} {member}"
    )
    needle = account.secret.read_bytes().split(b'"')[1]

    done = run_and_check(account, watch, "run again", *run_args(account))

    leaked = files_holding(account.home, needle)
    watch.require(not leaked, f"the root-only secret is now in {leaked} [{said(done)}]")
    if done.returncode != 0:
        watch.require(one_line_error(done), f"run again: not a one-line error: {said(done)}")
    watch.assert_held()


TRIPWIRE_PY = """
import os as _trip_os
try:
    open("%s/import-%d-%d" % ({trip!r}, _trip_os.getuid(), _trip_os.getpid()), "w").close()
except OSError:
    pass
"""
TRIPWIRE_PTH = (
    'import os; exec("try:\\n open(\\"%s/pth-%d-%d\\" % ({trip!r}, os.getuid(), os.getpid()), '
    '\\"w\\").close()\\nexcept OSError:\\n pass")\n'
)
TRIPWIRE_SH = 'touch "{trip}/script-$(id -u)-$(basename "$0")-$$"\n'


def _serve_blog(account: Account) -> int:
    """Make ``blog`` a real WebFaction-style app on its own Apache + mod_wsgi (its scripts
    and modules carry tripwires) and start it as the user; its port."""
    blog = account.home / "webapps" / "blog"
    lib = f"python{PY}"
    port = apache.free_port()
    apache.make_server(blog, "blog", port, [blog, blog / "lib" / lib, account.home / "lib" / lib])
    conf = blog / "apache2" / "conf" / "httpd.conf"
    conf.write_text(conf.read_text().replace("User www-data\nGroup www-data\n", ""))
    for script in (blog / "apache2" / "bin").iterdir():
        shebang, rest = script.read_text().split("\n", 1)
        script.write_text(f"{shebang}\n{TRIPWIRE_SH.format(trip=account.trip)}{rest}")
    for module in (
        account.home / "lib" / lib / "acme_utils" / "__init__.py",
        blog / "lib" / lib / "tinyhttp" / "__init__.py",
    ):
        with open(module, "a") as out:
            out.write(TRIPWIRE_PY.format(trip=str(account.trip)))
    (account.home / "lib" / lib / "zz_tripwire.pth").write_text(
        TRIPWIRE_PTH.format(trip=str(account.trip))
    )
    subprocess.run(
        ["chown", "-hR", f"{account.user.name}:{account.user.name}", str(account.home)], check=True
    )
    account.as_user(str(blog / "apache2" / "bin" / "start"))
    status, body = apache.get(port, timeout=30)
    assert status == 200, (
        f"the user's Apache does not serve blog: {status} {body[:300]}\n{apache.error_log(blog)}"
    )
    return port


def _server_uid(account: Account) -> int | None:
    """The uid of the blog's Apache main process, if it runs."""
    pid_file = account.home / "webapps" / "blog" / "apache2" / "run" / "httpd.pid"
    try:
        return os.stat(f"/proc/{int(pid_file.read_text().strip())}").st_uid
    except (OSError, ValueError):
        return None


def _stop_blog(account: Account) -> None:
    """Stop the blog's Apache: her stop script as her, then (a server root started would
    outlive it) SIGKILL to its process group, without running any script as root."""
    blog = account.home / "webapps" / "blog"
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        account.as_user(str(blog / "apache2" / "bin" / "stop"), check=False)
    pid_file = blog / "apache2" / "run" / "httpd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


def _answers(port: int) -> int | None:
    """The HTTP status of ``GET /`` (given a few seconds to come up); None: no answer."""
    try:
        return apache.get(port, timeout=10)[0]
    except OSError:
        return None


def _trips(account: Account) -> list[tuple[str, int]]:
    """(kind, uid) of every tripwire that fired since the folder was last emptied."""
    found = []
    for name in os.listdir(account.trip):
        kind, uid, *_ = name.split("-")
        found.append((kind, int(uid)))
    return found


def test_the_users_scripts_and_modules_never_run_as_root(account: Account) -> None:
    """The user's Apache serves blog; its start/stop/restart scripts, a module the app
    imports and a ``.pth`` in ~/lib record the uid that runs them. ``run`` (restart, probe,
    trace), ``verify`` and ``rollback`` as root: none of them ever runs as root."""
    if apache.available() is not None:
        pytest.skip(str(apache.available()))
    port = _serve_blog(account)
    blog = account.home / "webapps" / "blog"
    watch = Invariants(account)
    for name in os.listdir(account.trip):  # what her own start and first page recorded
        os.unlink(account.trip / name)
    try:
        done = run_and_check(account, watch, "run", "run", *account.python, "--yes", "--trace")
        watch.require(done.returncode == 0, f"run failed: {said(done)}\n{apache.error_log(blog)}")
        watch.require(
            _server_uid(account) == account.user.uid,
            f"after run the blog's Apache runs as uid {_server_uid(account)}",
        )
        checked = run_and_check(account, watch, "verify", "verify", *account.python)
        watch.require(checked.returncode == 0, f"verify failed: {said(checked)}")
        undone = run_and_check(account, watch, "rollback", "rollback")
        watch.require(undone.returncode == 0, f"rollback failed: {said(undone)}")
        watch.require(
            _server_uid(account) == account.user.uid,
            f"after rollback the blog's Apache runs as uid {_server_uid(account)}",
        )
        watch.require(
            _answers(port) == 200, f"after rollback blog answers {_answers(port)}: {said(undone)}"
        )
        trips = _trips(account)
    finally:
        _stop_blog(account)
    as_root = sorted({kind for kind, uid in trips if uid == 0})
    watch.require(
        not as_root, f"the user's code ran as root: {as_root} (all: {sorted(set(trips))})"
    )
    kinds = {kind for kind, _ in trips}
    watch.require(
        "script" in kinds, f"no restart script ran (the app was running): {sorted(set(trips))}"
    )
    watch.require(
        "import" in kinds, f"no app module was imported by verify or run: {sorted(set(trips))}"
    )
    watch.assert_held()


def _venv_module(account: Account, app: str) -> Path:
    site = Path("venv", "lib", f"python{PY}", "site-packages")
    return account.home / "webapps" / app / site / "acme_utils" / "__init__.py"


def test_an_in_place_edit_of_a_shared_venv_file_is_reported_and_never_reused(
    account: Account,
) -> None:
    """The user edits a file of blog's venv in place (chmod, then no rename). Venvs share
    store inodes by design (docs/how-it-works.md, the privilege model): the edit shows in
    every venv linking that file, so ``verify`` must name it for both apps, and a fresh
    build must not link the edited store tree into a new venv."""
    watch = Invariants(account)
    migrated(account, watch)
    mine, other = _venv_module(account, "blog"), _venv_module(account, "shop")
    assert mine.is_file() and other.is_file(), "acme_utils is in both venvs after run"
    original = other.read_bytes()
    code = f"f = open({str(mine)!r}, 'r+'); f.seek(0, 2); f.write('INFECTED = True\\n'); f.close()"
    edit = account.as_user(f"chmod u+w {mine} && {USER_PYTHON} -c {_quote(code)}", check=False)
    assert edit.returncode == 0, edit.stderr
    checked = run_and_check(account, watch, "verify", "verify", "--json", *account.python)
    assert checked.returncode == 1, said(checked)
    apps = {app["app"]: app for app in json.loads(checked.stdout)["apps"]}
    for name in ("blog", "shop"):
        changed = apps[name]["changed"]
        watch.require(
            any(path.endswith("acme_utils/__init__.py") for path in changed),
            f"verify does not name the edit in {name}'s venv: {apps[name]}",
        )
    run_and_check(account, watch, "roll back", "rollback", "--force", "--no-restart")
    migrated(account, watch)
    fresh = _venv_module(account, "shop")
    watch.require(
        fresh.read_bytes() == original,
        f"the edited store tree was linked into a new venv: {fresh.read_bytes()[-40:]!r}",
    )
    watch.assert_held()


def test_a_rollback_without_force_deletes_no_file_the_user_added_to_a_venv(
    account: Account,
) -> None:
    """Files the user adds inside a venv after ``run``: ``rollback`` without ``--force``
    refuses, or keeps them aside and says where; with ``--force`` it keeps them aside and
    says where; it never deletes them."""
    watch = Invariants(account)
    migrated(account, watch)
    venv = account.home / "webapps" / "blog" / "venv"
    token = secrets.token_hex(8)
    added = {
        f"webapps/blog/venv/lib/python{PY}/site-packages/her_module.py": (
            f"HERS = {token!r}\n".encode(),
            0o644,
        ),
        "webapps/blog/venv/her-notes.txt": (f"notes {token}\n".encode(), 0o644),
    }
    assert venv.is_dir()
    account.user_writes(added)

    for args in (["rollback", "--no-restart"], ["rollback", "--force", "--no-restart"]):
        done = run_and_check(account, watch, " ".join(args), *args)
        for rel, (data, _) in added.items():
            kept = [p for p in files_holding(account.home, data) if p.read_bytes() == data]
            name = Path(rel).name
            watch.require(bool(kept), f"{' '.join(args)} deleted her {rel} [{said(done)}]")
            if kept and kept != [account.home / rel]:
                watch.require(
                    any(home_relative(p, account.home) in done.stdout for p in kept),
                    f"her {name} was moved to {kept}, which the output does not say [{said(done)}]",
                )
        if done.returncode != 0:
            watch.require(one_line_error(done), f"rollback: not a one-line error: {said(done)}")
    watch.require(not venv.exists(), f"rollback --force left the venv: {said(done)}")
    watch.assert_held()


def test_a_forced_rollback_keeps_her_venv_files_aside_only_inside_the_home(
    account: Account,
) -> None:
    """She adds a file to a venv and, knowing from her journal where a forced rollback
    will keep it (``edited/NNNN-venv/``), puts a link to a folder outside the home there:
    the file is never moved through it (nor lost), nothing outside changes."""
    watch = Invariants(account)
    migrated(account, watch)
    txn = account.newest_transaction()
    records = [json.loads(line) for line in (txn / "journal.jsonl").read_text().splitlines()]
    [n] = [r["n"] for r in records if r.get("op") == "install" and r["path"].endswith("blog/venv")]
    mine = f"webapps/blog/venv/passwd-{secrets.token_hex(4)}"
    data = f"hers {secrets.token_hex(8)}\n".encode()
    account.user_writes({mine: (data, 0o644)})
    edited = txn.relative_to(account.home) / "edited"
    account.as_user(
        f"mkdir -p {edited} && ln -s {account.outside / 'target'} {edited}/{n:04d}-venv"
    )

    done = run_and_check(account, watch, "rollback --force", "rollback", "--force", "--no-restart")

    watch.require(
        not any((account.outside / "target").iterdir()),
        f"moved through her link: {sorted(os.listdir(account.outside / 'target'))}",
    )
    kept = [p for p in files_holding(account.home, data) if p.read_bytes() == data]
    watch.require(bool(kept), f"her {mine} is gone [{said(done)}]")
    if done.returncode != 0:
        watch.require(one_line_error(done), f"not a one-line error: {said(done)}")
    watch.assert_held()


def test_a_rewritten_file_keeps_its_second_hard_link(account: Account) -> None:
    """blog's WSGI file has a second name elsewhere in the home: after ``run`` both names
    show the rewrite, after ``rollback`` both show the original, still one file."""
    watch = Invariants(account)
    wsgi = account.home / "webapps" / "blog" / "blog.wsgi"
    second = account.home / "keep" / "blog.wsgi"
    account.as_user(f"mkdir {second.parent} && ln {wsgi} {second}")
    original = wsgi.read_bytes()
    before = snapshot(account.home)

    migrated(account, watch)
    rewritten = wsgi.read_bytes()
    watch.require(rewritten != original, "run did not rewrite blog.wsgi")
    watch.require(
        second.read_bytes() == rewritten and os.path.samefile(wsgi, second),
        f"after run the second name is not the rewritten file (nlink {os.lstat(wsgi).st_nlink})",
    )
    undone = run_and_check(account, watch, "rollback", "rollback", "--no-restart")
    watch.require(undone.returncode == 0, f"rollback failed: {said(undone)}")
    watch.require(
        wsgi.read_bytes() == original == second.read_bytes() and os.path.samefile(wsgi, second),
        f"after rollback the two names differ or are two files (nlink {os.lstat(wsgi).st_nlink})",
    )
    after = snapshot(account.home)
    watch.require(
        after == before, f"the home differs after rollback: {_differences(before, after)}"
    )
    watch.assert_held()

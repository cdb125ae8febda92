"""A fixture home and a journaled migration of it, runnable in a subprocess that may be killed.

python journal_helper.py apply HOME            # the scenario below, committed
python journal_helper.py apply-crontab HOME FILE [installed]  # the crontab scenario
python journal_helper.py rollback HOME [force]
python journal_helper.py hold HOME SECONDS     # hold home_lock, say "locked", sleep
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import sys
import time
from pathlib import Path

from migrate.journal import begin, home_lock, rollback
from migrate.layout import STATE_DIR

APP = Path("webapps/app")
NEW_SETTINGS = APP / "conf/new/deep/settings.ini"
VENV = APP / "venv"

# Crontab lines whose schedule never comes (31 February): a cron daemon may be running.
CRONTAB_FILE_BEFORE = b'MAILTO=""\n0 0 31 2 * python3.11 $HOME/webapps/app/job.py\n'
CRONTAB_FILE_AFTER = (
    'MAILTO=""\n0 0 31 2 * $HOME/webapps/app/venv/bin/python $HOME/webapps/app/job.py\n'
)
INSTALLED_BEFORE = b"# installed before the test\n0 0 31 2 * true before\n"
INSTALLED_AFTER = "# rewritten by the test\n0 0 31 2 * true after\n"
INSTALLED_AFTER_AGAIN = "# rewritten twice\n0 0 31 2 * true after again\n"


def build_home(home: Path) -> None:
    """Files with telling modes, a symlink inside the home, an existing folder."""
    (home / APP / "bin").mkdir(parents=True)
    (home / APP / "conf").mkdir(mode=0o750)
    os.chmod(home / APP / "conf", 0o750)
    (home / "lib/python3.11/pkg").mkdir(parents=True)
    files = {
        APP / "app.wsgi": (b"import sys\nsys.path.insert(0, '/home/u/lib/python3.11')\n", 0o640),
        APP / "bin/run.sh": (b"#!/bin/sh\nexec python3.11 serve.py\n", 0o755),
        APP / "real.conf": (b"[server]\nport = 8080\n", 0o600),
        Path("lib/python3.11/pkg/__init__.py"): (b"VERSION = '1.0'\n", 0o644),
    }
    for rel, (data, mode) in files.items():
        (home / rel).write_bytes(data)
        os.chmod(home / rel, mode)
    (home / APP / "link.conf").symlink_to("real.conf")


def staged_venv(home: Path) -> Path:
    """A folder built aside, as a venv would be, in the journal's state dir."""
    staged = home / STATE_DIR / f"tmp-venv-{secrets.token_hex(4)}"
    (staged / "bin").mkdir(parents=True)
    (staged / "pyvenv.cfg").write_bytes(b"home = /usr/bin\n")
    (staged / "bin/python").write_bytes(b"#!/bin/sh\n")
    os.chmod(staged / "bin/python", 0o755)
    return staged


def apply(home: Path) -> str:
    """Replace (twice), create in new nested folders, rewrite through a symlink, install a dir
    and rewrite a file inside it, change a mode; commit. The caller holds home_lock."""
    staged = staged_venv(home)
    txn = begin(home, "test migration")
    txn.write_file(home / APP / "app.wsgi", b"# venv\nimport app\n")
    txn.write_file(home / APP / "app.wsgi", b"# venv, second thought\nimport app\n")
    txn.write_file(home / NEW_SETTINGS, b"[settings]\ndebug = false\n")
    txn.write_file(home / APP / "link.conf", b"[server]\nport = 9090\n")
    txn.write_file(home / APP / "bin/run.sh", b"#!/bin/sh\nexec venv/bin/python serve.py\n", 0o700)
    txn.install_dir(staged, home / VENV)
    txn.write_file(home / VENV / "pyvenv.cfg", b"home = /usr/local/bin\n")
    txn.commit()
    return txn.id


def apply_crontab(home: Path, file: Path, *, installed: bool) -> str:
    """Rewrite a script and the crontab file ``file`` (outside the home), with ``installed``
    also the installed crontab, twice; commit. The caller holds home_lock."""
    txn = begin(home, "crontab migration")
    txn.write_file(home / APP / "bin/run.sh", b"#!/bin/sh\nexec venv/bin/python serve.py\n")
    txn.set_crontab(CRONTAB_FILE_AFTER, file=file)
    if installed:
        txn.set_crontab(INSTALLED_AFTER)
        txn.set_crontab(INSTALLED_AFTER_AGAIN)
    txn.commit()
    return txn.id


def snapshot(home: Path) -> dict[str, tuple[object, ...]]:
    """Kind, mode, owner, xattrs and content hash (or link target) of everything but STATE_DIR."""
    found: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(home):
        if Path(folder) == home:
            dirs[:] = [d for d in dirs if d != STATE_DIR]
        for name in dirs + files:
            path = Path(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                content: object = os.readlink(path)
                xattrs: object = ()
            else:
                content = (
                    hashlib.sha256(path.read_bytes()).hexdigest()
                    if stat.S_ISREG(st.st_mode)
                    else "dir"
                )
                xattrs = tuple(sorted((n, os.getxattr(path, n)) for n in os.listxattr(path)))
            found[str(path.relative_to(home))] = (
                content,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                xattrs,
            )
    return found


def main(argv: list[str]) -> int:
    command, home = argv[0], Path(argv[1])
    with home_lock(home):
        if command == "apply":
            apply(home)
        elif command == "apply-crontab":
            apply_crontab(home, Path(argv[2]), installed=argv[3:] == ["installed"])
        elif command == "rollback":
            rollback(home, force=argv[2:] == ["force"])
        elif command == "hold":
            print("locked", flush=True)
            time.sleep(float(argv[2]))
        else:
            raise SystemExit(f"unknown command {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

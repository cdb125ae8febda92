"""Every path the tool reads or writes in an account, spelled once.

The account's own layout (WebFaction's): apps in ``HOME/webapps/APP``. What the migration
adds: a venv per app in ``APP/venv`` and the account's own (``~``, its scripts and cron
jobs) in ``HOME/.venvs/account``, requirement files beside them, and the tool's private
state (journal, lock, wheelhouse, store, helpers, staging) in ``HOME/.concentric-migrate``.
"""

from __future__ import annotations

from pathlib import Path

ACCOUNT_GROUP = "~"
"""The name of the account's own group of entry points (scripts and cron jobs outside apps)."""

STATE_DIR = ".concentric-migrate"
"""The tool's private folder in the home: only the journal writes it (mode 0700)."""
JOURNALS_DIR = "journal"
"""Inside STATE_DIR: one folder per transaction."""
LOCK_FILE = "lock"
"""Inside STATE_DIR: the flock that makes one migration at a time (mode 0600)."""
WEBAPPS = "webapps"
ACCOUNT_VENVS = ".venvs"


def state_dir(home: Path) -> Path:
    return home / STATE_DIR


def webapps_dir(home: Path) -> Path:
    return home / WEBAPPS


def app_dir(home: Path, app: str) -> Path:
    return home / WEBAPPS / app


def app_folder(home: Path, app: str) -> Path:
    """Where an app's venv and requirement files go: its app dir; ``~``: HOME/.venvs."""
    return home / ACCOUNT_VENVS if app == ACCOUNT_GROUP else app_dir(home, app)


def app_httpd_conf(app_path: Path) -> Path:
    """An app's private Apache configuration (what it Includes is read from there)."""
    return app_path / "apache2" / "conf" / "httpd.conf"


def app_start_scripts(app_path: Path) -> tuple[Path, ...]:
    """WebFaction's scripts that start, stop and restart an app's private Apache."""
    return tuple(app_path / "apache2" / "bin" / name for name in ("start", "stop", "restart"))


def venv_dir(home: Path, app: str) -> Path:
    """An app's venv: ``APP/venv``; the account's: ``HOME/.venvs/account``."""
    return home / ACCOUNT_VENVS / "account" if app == ACCOUNT_GROUP else app_dir(home, app) / "venv"


def requirement_paths(folder: Path) -> tuple[Path, Path]:
    """(requirements.in, requirements.txt) in an app's folder."""
    return folder / "requirements.in", folder / "requirements.txt"


def helpers_dir(home: Path) -> Path:
    """The legacy virtualenv helper and virtualenv's app data."""
    return state_dir(home) / "helpers"


def store_dir(home: Path) -> Path:
    """Unpacked wheels, one tree per sha256, hardlinked into the venvs."""
    return state_dir(home) / "store"


def wheelhouse_dir(home: Path) -> Path:
    """Wheels repacked from the installed files, content-addressed."""
    return state_dir(home) / "wheels"


def logs_dir(home: Path) -> Path:
    """What the start and stop scripts ``run`` ran printed, one file per app."""
    return state_dir(home) / "logs"


def staging_dirs(home: Path) -> list[Path]:
    """Venvs being built (``tmp-*``), renamed into place by the journal when done."""
    return sorted(state_dir(home).glob("tmp-*"))

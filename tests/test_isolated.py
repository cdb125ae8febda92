"""``verify --isolated``: a venv that still needs a concentric dir fails once the dirs are
hidden, though every module it imports comes from the venv (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, pip_env, write_files

from migrate import isolation
from migrate.build.verify import verify_app
from migrate.build.wheelfile import WheelSpec
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.isolation import NAMESPACE
from migrate.layout import venv_dir
from migrate.resolve.plan import plan_account


def account(tmp_path: Path) -> Path:
    """One app whose package reads a table from ``~/lib`` when imported: the venv gets the
    package, but the table stays in the concentric dir."""
    home = tmp_path / "home"
    lib = account_lib(home)
    table = lib / "tables" / "rates.txt"
    body = f'__version__ = "1.0"\nRATES = open({str(table)!r}).read()\n'
    install_wheels(lib, [WheelSpec("rates", "1.0", {"rates/__init__.py": body.encode()})],
                   tmp_path / "wheels")  # fmt: skip
    write_files(lib / "tables", {"rates.txt": "EUR 1.0\n"})
    app = home / "webapps" / "shop"
    write_files(
        app,
        {
            "shop.wsgi": "import rates\napplication = None\n",
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess shop python-path={app}:{lib}\nWSGIProcessGroup shop\n"
                f"WSGIScriptAlias / {app}/shop.wsgi\n"
            ),
        },
    )
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), *args],
        capture_output=True, text=True, env={**pip_env(), "HOME": str(home)},
    )  # fmt: skip


def test_a_venv_that_reads_from_a_concentric_dir_fails_only_with_the_dirs_hidden(
    tmp_path: Path, bare_python: Path
) -> None:
    home = account(tmp_path)
    python = f"--python={PY}={bare_python}"
    built = cli(home, "build", python)
    assert built.returncode == 0, built.stderr

    plain = cli(home, "verify", python, "--json")
    assert plain.returncode == 0, plain.stdout
    (app,) = json.loads(plain.stdout)["apps"]
    assert app["ok"] and app["isolation"] is None

    before = sorted(os.listdir(home / "lib" / f"python{PY}" / "tables"))
    hidden = cli(home, "verify", python, "--isolated", "--json")
    assert hidden.returncode == 1, hidden.stdout
    (app,) = json.loads(hidden.stdout)["apps"]
    assert not app["ok"]
    if app["isolation"] == NAMESPACE:
        assert any("rates" in p and "No such file" in p for p in app["problems"]), app
    else:
        assert any("opened" in leak and "rates.txt" in leak for leak in app["leaks"]), app
    assert sorted(os.listdir(home / "lib" / f"python{PY}" / "tables")) == before

    text = cli(home, "verify", python, "--isolated")
    assert "FAILED" in text.stdout and "the lib dirs hidden" in text.stdout


def test_without_a_namespace_the_audit_names_the_file_opened(
    tmp_path: Path, bare_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel without mount namespaces for this user: the check audits every file the
    venv's Python opens, and the read of the hidden table is the leak."""
    home = account(tmp_path)
    assert cli(home, "build", f"--python={PY}={bare_python}").returncode == 0
    monkeypatch.setattr(isolation, "_unshare", lambda: None)
    found = discover(home)
    plan = plan_account(found, take_inventory(found), None, interpreters={PY: bare_python})
    (shop,) = [a for a in plan.apps if a.name == "shop"]
    report = verify_app(venv_dir(home, "shop"), shop, home, plan.concentric)
    assert report.isolation == isolation.AUDIT
    table = home / "lib" / f"python{PY}" / "tables" / "rates.txt"
    assert report.leaks == (f"opened {table}",)
    assert not report.ok

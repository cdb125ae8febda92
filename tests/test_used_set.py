"""The conservative used set (issue 15): what the packages an app uses import in turn.

A framework imports a translation package inside ``try:``, a highlighter inside a
function, a helper from a Python 2 file, and loads plugins through an entry-point group;
none is in its ``Requires-Dist``. The app imports only the framework. By default the
plan keeps all of them and says why; ``--minimal`` keeps the ``Requires-Dist`` closure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, pip_env, write_files

from migrate.build.wheelfile import WheelSpec
from migrate.discover.account import discover
from migrate.inventory import take_inventory
from migrate.resolve.plan import AppPlan, plan_account

FRAMEWORK = {
    "framework/__init__.py": b'__version__ = "1.0"\n',
    "framework/util.py": b"""\
try:
    import babelish
except ImportError:
    babelish = None


def highlight(text):
    import pygmentsish.lexers
    return pygmentsish.lexers.go(text)
""",
    "framework/legacy.py": b'print "a Python 2 file"\nfrom oldhelper import thing\n',
    "framework/loader.py": b"""\
from pkg_resources import iter_entry_points


def load_all():
    return [ep.load() for ep in iter_entry_points(group="framework.plugins")]
""",
}


PYGMENTSISH = {"pygmentsish/__init__.py": b"", "pygmentsish/lexers.py": b"import corelib\n"}


def spec(name: str, version: str, **kwargs: object) -> WheelSpec:
    files = {f"{name}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    return WheelSpec(name, version, files, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def account(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    install_wheels(
        account_lib(home),
        [
            WheelSpec("framework", "1.0", FRAMEWORK, requires=("corelib>=1",)),
            spec("corelib", "1.1"),
            spec("babelish", "2.0"),
            WheelSpec("pygmentsish", "2.1", PYGMENTSISH),
            spec("oldhelper", "0.3"),
            spec("myplugin", "0.5", entry_points="[framework.plugins]\nmyplugin = myplugin\n"),
            spec(
                "otherplugin", "0.1", entry_points="[console_scripts]\nother = otherplugin:main\n"
            ),
            spec("unrelated", "9.9"),
        ],
        tmp_path / "wheels",
    )
    app = home / "webapps" / "wiki"
    write_files(
        app,
        {
            "wiki.wsgi": "import framework\napplication = None\n",
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess wiki python-path={app}:{home}/lib/python{PY}\n"
                "WSGIProcessGroup wiki\n"
                f"WSGIScriptAlias / {app}/wiki.wsgi\n"
            ),
        },
    )
    return home


def plan_of(home: Path, python: Path, **kwargs: object) -> dict[str, AppPlan]:
    account = discover(home)
    plan = plan_account(account, take_inventory(account), None, interpreters={PY: python}, **kwargs)  # type: ignore[arg-type]
    return {app.name: app for app in plan.apps}


def why(app: AppPlan) -> dict[str, tuple[str, ...]]:
    return {row.dist.name: row.why for row in app.packages if row.used}


def test_what_the_used_packages_import_and_load_is_kept_and_said_why(
    account: Path, bare_python: Path
) -> None:
    wiki = plan_of(account, bare_python)["wiki"]
    used = why(wiki)
    assert set(used) == {
        "framework", "corelib", "babelish", "pygmentsish", "oldhelper", "myplugin",
    }  # fmt: skip
    assert used["framework"] == ("import framework in ~/webapps/wiki/wiki.wsgi:1",)
    lib = f"~/lib/python{PY}"
    assert used["corelib"] == (
        "required by framework (corelib>=1)",
        f"imported by pygmentsish ({lib}/pygmentsish/lexers.py:1)",
    )
    assert used["babelish"] == (f"imported by framework ({lib}/framework/util.py:2)",)
    assert used["pygmentsish"] == (f"imported by framework ({lib}/framework/util.py:8)",)
    assert used["oldhelper"] == (f"imported by framework ({lib}/framework/legacy.py:2)",)
    assert used["myplugin"] == ("plugin of framework (entry points framework.plugins)",)
    unused = {f.name for f in wiki.findings if f.kind == "unused"}
    assert unused == {"otherplugin", "unrelated"}
    rows = {row.dist.name: row for row in wiki.packages}
    assert rows["babelish"].required_by == ("framework",) and not rows["babelish"].direct


def test_minimal_keeps_the_requires_dist_closure_alone(account: Path, bare_python: Path) -> None:
    wiki = plan_of(account, bare_python, minimal=True)["wiki"]
    assert set(why(wiki)) == {"framework", "corelib"}


def test_the_requirements_say_why(account: Path) -> None:
    home = account
    env = {**pip_env(), "HOME": str(home)}
    command = [sys.executable, "-m", "migrate", "--home", str(home), "requirements"]
    done = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "babelish==2.0" in done.stdout and "myplugin==0.5" in done.stdout
    assert "    # via framework" in done.stdout
    lean = subprocess.run(
        [*command, "--dry-run", "--minimal", "--json"], capture_output=True, text=True, env=env
    )
    assert lean.returncode == 0, lean.stderr
    written = {Path(f["path"]).name: f for f in json.loads(lean.stdout)["files"]}
    assert set(written) == {"requirements.in", "requirements.txt"}


@pytest.mark.network
def test_trac_keeps_babel_pytz_and_pygments(tmp_path: Path, bare_python: Path) -> None:
    """The issue's case, with the real packages: Trac 1.6 imports Babel and pytz
    optionally and highlights with Pygments; none is in its Requires-Dist."""
    home = tmp_path / "home"
    lib = account_lib(home)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib),
         "Trac==1.6", "Babel", "pytz", "Pygments", "docutils"],
        check=True, env=pip_env(),
    )  # fmt: skip
    app = home / "webapps" / "trac"
    write_files(
        app,
        {
            "trac.wsgi": "from trac.web.main import dispatch_request as application\n",
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess trac python-path={lib}\nWSGIProcessGroup trac\n"
                f"WSGIScriptAlias / {app}/trac.wsgi\n"
            ),
        },
    )
    conservative = why(plan_of(home, bare_python)["trac"])
    assert {"trac", "jinja2", "markupsafe"} <= {n.lower() for n in conservative}
    for name in ("babel", "pytz", "pygments"):
        (kept,) = [w for n, w in conservative.items() if n.lower() == name]
        assert any(reason.startswith("imported by Trac (") for reason in kept), kept
    minimal = {n.lower() for n in why(plan_of(home, bare_python, minimal=True)["trac"])}
    assert not {"babel", "pytz", "pygments"} & minimal

"""End to end with a real Apache + mod_wsgi (Debian's; .ci/run installs them).

A WebFaction-shaped account whose app is served by its own private Apache with the
concentric ``python-path``: before, after ``run`` (from the venv, through ``python-home``),
after ``run`` with the account's lib dirs renamed away, and after ``rollback`` (the old
configuration serves again and every file is as it was). Apache's own runtime files
(``apache2/logs``, ``apache2/run``) change by serving and are left out of the snapshots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apache
import pytest
from accounts import install_wheels, write_files
from journal_helper import snapshot

from migrate.build.wheelfile import WheelSpec

pytestmark = [
    pytest.mark.skipif(apache.available() is not None, reason=str(apache.available())),
    pytest.mark.usefixtures("decoy_on_path"),  # the operator's python3.X must change nothing
]

# The WSGI file's / shows the versions it imported; /where, which no page links, shows
# from where and which Python serves it (what a migration changes on purpose).
APP = """\
import json, os, sys
sys.path.insert(0, {lib!r})
import appcore, shared

def application(environ, start_response):
    found = dict(
        (m.__name__, [m.__version__, os.path.realpath(m.__file__)]) for m in (appcore, shared)
    )
    if environ.get("PATH_INFO") == "/where":
        body = json.dumps({{"prefix": sys.prefix, "found": found}}).encode()
    else:
        body = json.dumps({{"versions": dict((n, v) for n, (v, _) in found.items())}}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def package(name: str, version: str, *requires: str) -> WheelSpec:
    files = {f"{name}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    return WheelSpec(name, version, files, requires=requires)


def without_runtime(state: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    """Apache's logs and pid/socket files change by serving: everything else must not."""
    return {
        path: value
        for path, value in state.items()
        if "/apache2/logs" not in f"/{path}" and "/apache2/run" not in f"/{path}"
    }


@pytest.fixture
def served() -> Iterator[tuple[Path, Path, int]]:
    """(home, app dir, port): the app running on its private Apache."""
    root, python = apache.account_root("concentric-e2e-")
    home = root / "home"
    app_dir = home / "webapps" / "plain"
    home_lib = home / "lib" / f"python{python}"
    app_lib = app_dir / "lib" / f"python{python}"
    try:
        install_wheels(home_lib, [package("shared", "1.4")], root / "wheels")
        install_wheels(app_lib, [package("appcore", "2.0", "shared>=1")], root / "wheels")
        write_files(app_dir, {"plain.wsgi": APP.format(lib=str(app_lib))})
        port = apache.free_port()
        apache.make_server(app_dir, "plain", port, [app_dir, app_lib, home_lib])
        apache.open_up(root)
        apache.start(app_dir)
        yield home, app_dir, port
    finally:
        apache.stop(app_dir)
        shutil.rmtree(root, ignore_errors=True)


def cli(home: Path, crontab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", "--home", str(home), "--crontab", str(crontab), *args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def page(port: int, app_dir: Path, path: str = "/where") -> dict[str, object]:
    status, body = apache.get(port, path=path)
    assert status == 200, f"{status} {body[:500]}\n{apache.error_log(app_dir)}"
    return json.loads(body)


def test_real_apache_serves_from_the_venv_after_run_and_from_lib_after_rollback(
    served: tuple[Path, Path, int],
) -> None:
    home, app_dir, port = served
    crontab = home.parent / "crontab"
    crontab.write_text(f"*/20 * * * * {app_dir}/apache2/bin/start\n", encoding="utf-8")
    before = page(port, app_dir)
    versions = {name: version for name, (version, _) in before["found"].items()}
    assert versions == {"appcore": "2.0", "shared": "1.4"}
    assert all("/lib/python" in file for _, file in before["found"].values())
    snap, crontab_before = without_runtime(snapshot(home)), crontab.read_bytes()

    done = cli(home, crontab, "run", "--yes", "--json")
    assert done.returncode == 0, done.stderr + apache.error_log(app_dir)
    (result,) = [a for a in json.loads(done.stdout)["apps"] if a["app"] == "plain"]
    assert result["restarted"] and result["status_before"] == result["status_after"] == 200
    venv = Path(result["venv"])
    after = page(port, app_dir)
    assert after["prefix"] == str(venv)
    assert {n: v for n, (v, _) in after["found"].items()} == versions
    assert all(Path(file).is_relative_to(venv) for _, file in after["found"].values())

    # The concentric dirs away: the venv alone serves, still the same versions.
    libs = [home / "lib", app_dir / "lib"]
    for lib in libs:
        lib.rename(lib.with_name("lib.away"))
    try:
        subprocess.run([str(app_dir / "apache2" / "bin" / "restart")], check=True, timeout=60)
        alone = page(port, app_dir)
        assert {n: v for n, (v, _) in alone["found"].items()} == versions
    finally:
        for lib in libs:
            lib.with_name("lib.away").rename(lib)

    undone = cli(home, crontab, "rollback")
    assert undone.returncode == 0, undone.stderr
    assert "restarted on the restored configuration (HTTP 200)" in undone.stderr
    again = page(port, app_dir)
    assert again == before  # the old configuration serves, from the old lib dirs
    assert without_runtime(snapshot(home)) == snap
    assert crontab.read_bytes() == crontab_before


def test_a_server_that_breaks_after_run_is_rolled_back_and_restarted_on_the_old_config(
    served: tuple[Path, Path, int],
) -> None:
    home, app_dir, port = served
    crontab = home.parent / "crontab"
    crontab.write_text("", encoding="utf-8")
    before = page(port, app_dir)
    # Works on the old path, fails in a clean venv: the WSGI file needs a module that only
    # a concentric dir's own .pth file puts on the path (verify does not import WSGI files).
    lib = app_dir / "lib" / next(p.name for p in (app_dir / "lib").iterdir())
    (lib / "extra.pth").write_text(str(app_dir / "extra") + "\n")
    write_files(app_dir / "extra", {"needed_at_runtime.py": "X = 1\n"})
    wsgi = app_dir / "plain.wsgi"
    wsgi.write_text(wsgi.read_text().replace("import appcore", "import needed_at_runtime, appcore"))
    subprocess.run([str(app_dir / "apache2" / "bin" / "restart")], check=True, timeout=60)
    assert page(port, app_dir)["found"] == before["found"]
    snap = without_runtime(snapshot(home))

    done = cli(home, crontab, "run", "--yes")
    assert done.returncode == 1
    assert "answered" in done.stderr and "rolled back" in done.stderr
    assert page(port, app_dir)["found"] == before["found"]  # the old config serves again
    # The last word is the state probed after the restart on the old configuration.
    assert done.stderr.rstrip().endswith(
        f"Now:\n  {app_dir.name}: HTTP 200 on port {port} (as before)"
    )
    assert without_runtime(snapshot(home)) == snap


# A view that names what Django imported, from where, and which Python serves it.
DJANGO_VIEW = """
import json, os, sys
import django, sqlparse, asgiref
from django.http import HttpResponse


def _found():
    return dict(
        (m.__name__, [getattr(m, "__version__", None), os.path.realpath(m.__file__)])
        for m in (django, sqlparse, asgiref)
    )


def versions(request):
    return HttpResponse(json.dumps({n: v for n, (v, _) in _found().items()}))


def where(request):
    return HttpResponse(json.dumps({"prefix": sys.prefix, "found": _found()}))
"""


@pytest.mark.network
def test_a_real_django_project_served_by_apache_moves_to_its_venv_and_back() -> None:
    """``django-admin startproject`` with Django from the index in ``~/lib``, served by
    Apache + mod_wsgi with the concentric python-path; then run, lib away, rollback."""
    root, python = apache.account_root("concentric-e2e-django-")
    home = root / "home"
    app_dir = home / "webapps" / "djangoapp"
    lib = home / "lib" / f"python{python}"
    try:
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib),
             "Django>=4.2,<5"],
            check=True, env=env,
        )  # fmt: skip
        app_dir.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "django", "startproject", "mysite"],
            cwd=app_dir, check=True, env={**env, "PYTHONPATH": str(lib)},
        )  # fmt: skip
        project = app_dir / "mysite"
        settings = project / "mysite" / "settings.py"
        settings.write_text(
            settings.read_text().replace("ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['*']")
        )
        (project / "mysite" / "views.py").write_text(DJANGO_VIEW)
        urls = project / "mysite" / "urls.py"
        urls.write_text(
            urls.read_text()
            .replace(
                "from django.urls import path", "from django.urls import path\nfrom . import views"
            )
            .replace(
                "urlpatterns = [",
                "urlpatterns = [\n    path('', views.versions),\n    path('where', views.where),",
            )
        )
        port = apache.free_port()
        apache.make_server(app_dir, "djangoapp", port, [project, lib])
        conf = app_dir / "apache2" / "conf" / "httpd.conf"
        conf.write_text(
            conf.read_text().replace(f"{app_dir}/djangoapp.wsgi", f"{project}/mysite/wsgi.py")
        )
        apache.open_up(root)
        crontab = root / "crontab"
        crontab.write_text(f"*/20 * * * * {app_dir}/apache2/bin/start\n", encoding="utf-8")
        apache.start(app_dir)

        before = page(port, app_dir)
        assert before["found"]["django"][0].startswith("4.2")
        assert all(file.startswith(str(lib)) for _, file in before["found"].values())
        snap = without_runtime(snapshot(home))

        done = cli(home, crontab, "run", "--yes", "--json")
        assert done.returncode == 0, done.stderr + apache.error_log(app_dir)
        (result,) = json.loads(done.stdout)["apps"]
        venv = Path(result["venv"])
        after = page(port, app_dir)
        assert after["prefix"] == str(venv)
        assert {n: v for n, (v, _) in after["found"].items()} == {
            n: v for n, (v, _) in before["found"].items()
        }
        assert all(Path(file).is_relative_to(venv) for _, file in after["found"].values())

        (home / "lib").rename(home / "lib.away")
        try:
            subprocess.run([str(app_dir / "apache2" / "bin" / "restart")], check=True, timeout=60)
            assert page(port, app_dir)["found"] == after["found"]
        finally:
            (home / "lib.away").rename(home / "lib")

        undone = cli(home, crontab, "rollback")
        assert undone.returncode == 0, undone.stderr
        assert page(port, app_dir) == before
        assert without_runtime(snapshot(home)) == snap
    finally:
        apache.stop(app_dir)
        shutil.rmtree(root, ignore_errors=True)

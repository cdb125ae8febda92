"""`plan`: entry points, used sets, recipes and findings on real fixture accounts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from accounts import PY, account_lib, install_wheels, module, write_files
from click.testing import CliRunner

from migrate.build.wheelfile import WheelSpec
from migrate.cli import cli
from migrate.demo import build_demo_account
from migrate.discover.account import discover
from migrate.discover.crontab import parse_crontab
from migrate.discover.entrypoints import EntryPoint, find_entry_points
from migrate.discover.httpd import read_config
from migrate.discover.imports import scan_sources
from migrate.discover.interpreters import find_interpreter
from migrate.inventory import take_inventory
from migrate.resolve.plan import AppPlan, plan_account
from migrate.resolve.syspath import PathEntry, PathModel


def plan_of(
    home: Path, crontab: str | None = None, *, python: Path | None = None, **kwargs: object
) -> dict[str, AppPlan]:
    """The plan of a test account; ``python``: what its apps run on, where no server says."""
    account = discover(home)
    if python is not None:
        kwargs["interpreters"] = {PY: python}
    plan = plan_account(
        account, take_inventory(account), parse_crontab(crontab) if crontab else None, **kwargs
    )
    return {app.name: app for app in plan.apps}


def used(app: AppPlan) -> dict[str, str | None]:
    return {row.dist.name: row.dist.version for row in app.packages if row.used}


def kinds(app: AppPlan) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for finding in app.findings:
        out.setdefault(finding.kind, set()).add(finding.name)
    return out


def test_demo_account_plan(tmp_path: Path, decoy_on_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    apps = plan_of(demo.home, demo.crontab.read_text(), python=demo.python)

    assert set(apps) == {"blog", "shop", "static_site", "~"}
    assert not apps["static_site"].has_python and apps["static_site"].packages == ()
    blog = apps["blog"]
    assert used(blog) == {
        "acme-utils": "1.2.0",
        "oldlib": "0.4",
        "packaging": version("packaging"),  # the demo copies the tool's own into blog's lib
        "tinyhttp": "1.8",
    }
    assert [e.executable for e in blog.entry_points] == [demo.python]
    tinyhttp = next(r for r in blog.packages if r.used and r.dist.name == "tinyhttp")
    assert (tinyhttp.dist.kind, tinyhttp.rule) == ("bare", "file-edit")
    assert kinds(blog)["shadowed"] == {"tinyhttp"}, "nothing of the host's shadows anything"
    assert kinds(blog)["leaked"] == {"acme-utils", "oldlib"}
    assert {"click", "eggpkg", "devtool"} <= kinds(blog)["unused"]
    assert "usertool" not in {r.dist.name for r in blog.packages}, "a venv sees no user site"
    shop = apps["shop"]
    assert used(shop) == {"webframe": "0.9.1", "tinyhttp": "2.1.0", "acme-utils": "1.2.0"}
    why = {r.dist.name: r.why for r in shop.packages if r.used}
    assert why["tinyhttp"] == ("required by webframe (tinyhttp>=2)",)
    account = apps["~"]
    assert [e.kind for e in account.entry_points] == ["cron"]
    assert used(account) == {"acme-utils": "1.2.0"}
    assert "leaked" not in kinds(account), "the account's own scripts may use ~/lib"


def test_plan_cli_json_schema(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    result = CliRunner().invoke(
        cli, ["--home", str(demo.home), "--crontab", str(demo.crontab), "plan", "--json"]
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    app = next(a for a in doc["apps"] if a["name"] == "shop")
    assert app["python"] == PY
    assert app["entry_points"][0]["kind"] == "wsgi"
    assert set(app["packages"][0]) >= {"name", "version", "path", "lib_dir", "rule", "used", "why"}
    assert set(app["findings"][0]) == {"kind", "name", "message"}
    static = next(a for a in doc["apps"] if a["name"] == "static_site")
    assert static["packages"] == [] and static["has_python"] is False


def test_plan_cli_rejects_unknown_app_and_bad_python(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    runner = CliRunner()
    bad_app = runner.invoke(cli, ["--home", str(demo.home), "plan", "--app", "nope"])
    bad_python = runner.invoke(cli, ["--home", str(demo.home), "plan", "--python", "3.11"])
    only = runner.invoke(cli, ["--home", str(demo.home), "plan", "--app", "shop"])

    assert bad_app.exit_code == 2 and "no such app" in bad_app.output
    assert bad_python.exit_code == 2 and "X.Y=" in bad_python.output
    assert only.exit_code == 0 and "shop" in only.output and "blog" not in only.output


def test_httpd_conf_forms(tmp_path: Path) -> None:
    conf = tmp_path / "apache2" / "conf"
    write_files(
        conf,
        {
            "httpd.conf": (
                f'ServerRoot "{tmp_path / "apache2"}"\n'
                "# WSGIScriptAlias / /commented/out.wsgi\n"
                "include conf/extra/*.conf\n"
                "wsgipythonpath /emb/one:/emb/two\n"
                "WSGIPythonHome /emb/home\n"
                "<VirtualHost *:80>\n"
                '  WSGIDaemonProcess "site" processes=2 \\\n'
                '      python-path="/code:/lib/python2.7" python-home=/venv\n'
                "  WSGIScriptAlias / /code/site.wsgi process-group=site\n"
                "</VirtualHost>\n"
            ),
            "extra/more.conf": "WSGIScriptAlias /emb /code/embedded.wsgi\nInclude conf/httpd.conf\n",
        },
    )
    config = read_config(conf / "httpd.conf")

    daemon = config.named("WSGIDaemonProcess")[0]
    assert daemon.args[0] == "site"
    assert daemon.option("python-path") == "/code:/lib/python2.7"
    assert daemon.option("PYTHON-HOME") == "/venv"
    assert (daemon.line, daemon.end_line, daemon.sections) == (7, 8, ("virtualhost",))
    assert [d.args[1] for d in config.named("wsgiscriptalias")] == [
        "/code/embedded.wsgi",
        "/code/site.wsgi",
    ]
    assert config.named("WSGIPythonPath")[0].args == ("/emb/one:/emb/two",)
    assert [f.message for f in config.findings if "Include loop" in f.message]


def test_httpd_conf_variables_are_expanded_as_apache_reads_them(tmp_path: Path) -> None:
    """``${HOME}`` (Apache's environment) and ``Define``d names are expanded when the file is
    read; ``~``, ``$HOME`` and unknown ``${X}`` are not: mod_wsgi gets them as written."""
    path = tmp_path / "httpd.conf"
    path.write_text(
        "Define APP /srv/app\n"
        "WSGIDaemonProcess d python-path=${HOME}/lib/python3.11:${APP}/src:~/x:$HOME/y:${NOPE}\n"
    )
    (daemon,) = read_config(path, Path("/home/u")).named("wsgidaemonprocess")
    assert daemon.option("python-path") == "/home/u/lib/python3.11:/srv/app/src:~/x:$HOME/y:${NOPE}"
    (unexpanded,) = read_config(path).named("wsgidaemonprocess")
    assert unexpanded.option("python-path").startswith("${HOME}/lib/python3.11:/srv/app/src")


def test_httpd_conf_broken_sections_are_findings(tmp_path: Path) -> None:
    path = tmp_path / "httpd.conf"
    path.write_text("<VirtualHost *:80>\nListen 80\n</Directory>\n")
    messages = [f.message for f in read_config(path).findings]
    assert any("without a matching opening" in m for m in messages)
    assert any("unclosed section" in m for m in messages)


def test_entry_points_from_conf_shebangs_and_crontab(home: Path, decoy_on_path: Path) -> None:
    lib = account_lib(home, "api", "2.7")
    account_lib(home)
    app = home / "webapps" / "api"
    write_files(
        app,
        {
            "apache2/conf/httpd.conf": (
                "LoadModule wsgi_module modules/mod_wsgi.so\n"
                f"WSGIDaemonProcess api python-path={app}/src:{lib}\n"
                "WSGIProcessGroup api\n"
                f"WSGIScriptAlias / {app}/api.wsgi\n"
            ),
            "apache2/modules/mod_wsgi.so": b"\x7fELF...libpython2.7.so.1.0\x00",
            "api.wsgi": "",
            "bin/manage": "#!/usr/bin/env python2.7\n",
            "bin/not-python": "#!/bin/sh\n",
        },
    )
    write_files(home / "bin", {"backup.py": "#!/usr/local/bin/python3.6\n", "readme": "hi"})
    crontab = (
        "MAILTO=me@example.com\n"
        f"PYTHONPATH={home}/lib/python{PY}\n"
        f"*/20 * * * * {app}/apache2/bin/start\n"
        f"0 * * * * cd {app} && PYTHONPATH=$HOME/extra python2.7 -u src/job.py --x >> ~/log 2>&1\n"
        f"@daily {home}/bin/backup.py % input\n"
        f"5 4 * * * /usr/local/bin/python{PY} -m tool.cli\n"
    )

    found = find_entry_points(discover(home), parse_crontab(crontab)).entry_points
    by_path = {(e.kind, e.path.name): e for e in found}

    wsgi = by_path[("wsgi", "api.wsgi")]
    assert (wsgi.group, wsgi.python) == ("api", "2.7")
    assert wsgi.python_reason.startswith("mod_wsgi")
    assert wsgi.site_dirs == (app / "src", lib)
    assert by_path[("script", "manage")].python == "2.7"
    job = by_path[("cron", "job.py")]
    assert (job.group, job.python, job.path) == ("api", "2.7", app / "src" / "job.py")
    assert job.pythonpath == (home / "extra",)
    backup = by_path[("cron", "backup.py")]
    assert (backup.group, backup.python, backup.pythonpath) == (
        "~",
        "3.6",
        (home / "lib" / f"python{PY}",),
    )
    module_job = next(e for e in found if e.module)
    assert (module_job.module, module_job.python, module_job.path) == ("tool.cli", PY, home)
    assert ("script", "not-python") not in by_path

    # The interpreter each runtime starts: never the decoy first on the operator's PATH.
    assert shutil.which(f"python{PY}") == str(decoy_on_path / f"python{PY}")
    on_cron_path = shutil.which("python2.7", path="/usr/bin:/bin")
    assert job.executable == (Path(on_cron_path) if on_cron_path else None)
    assert "cron" in job.executable_reason and "(/usr/bin:/bin)" in job.executable_reason
    assert module_job.executable is None or module_job.executable == Path(
        f"/usr/local/bin/python{PY}"
    )
    assert f"/usr/local/bin/python{PY}" in module_job.executable_reason
    assert backup.executable is None or backup.executable == Path("/usr/local/bin/python3.6")
    assert wsgi.executable is None, "a fake mod_wsgi.so: ldd cannot tell"
    assert "ldd" in wsgi.executable_reason
    assert all("decoy" not in str(e.executable) for e in found)


def test_static_imports_of_python_2_files(tmp_path: Path) -> None:
    source = tmp_path / "old.py"
    source.write_text(
        "import os, sys\n"
        "print 'python 2 only'\n"
        "try:\n    import cjson\nexcept ImportError:\n    cjson = None\n"
        "from django.conf import settings\n"
        "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'vendor'))\n"
    )
    python27 = find_interpreter("2.7")

    with_27 = scan_sources([source], tmp_path, python27)[source] if python27 else None
    without = scan_sources([source], tmp_path, None)[source]

    assert without.parsed_by == "tokenize"
    assert {i.name for i in without.imports} == {"os", "sys", "cjson", "django.conf"}
    if with_27 is None:
        pytest.skip("no python2.7 to parse with")
    assert with_27.parsed_by == "python2.7" and with_27.error is None
    assert [(i.name, i.optional) for i in with_27.imports] == [
        ("os", False),
        ("sys", False),
        ("cjson", True),
        ("django.conf", False),
    ]
    assert with_27.path_edits[0].path == tmp_path / "vendor"


def test_django_settings_strings_without_django(
    home: Path, tmp_path: Path, bare_python: Path
) -> None:
    """The recipe reads INSTALLED_APPS, DATABASES ENGINE and DJANGO_SETTINGS_MODULE."""
    lib = account_lib(home, "site")
    install_wheels(
        lib,
        [
            WheelSpec(
                "Django", "1.11.29", {"django/__init__.py": module("1.11.29")}, requires=("pytz",)
            ),
            WheelSpec("pytz", "2019.1", {"pytz/__init__.py": b""}),
            WheelSpec("django-debug-toolbar", "1.9", {"debug_toolbar/__init__.py": b""}),
            WheelSpec("psycopg2", "2.7.7", {"psycopg2/__init__.py": b""}),
            WheelSpec("unrelated", "1.0", {"unrelated/__init__.py": b""}),
        ],
        tmp_path / "w",
    )
    app = home / "webapps" / "site"
    write_files(
        app,
        {
            "mysite/mysite/settings.py": (
                "INSTALLED_APPS = ['django.contrib.admin', 'debug_toolbar', 'polls']\n"
                "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'x'}}\n"
            ),
            "mysite/mysite/__init__.py": "",
            "mysite/polls/__init__.py": "",
            "mysite/polls/models.py": "from django.db import models\n",
            "mysite/mysite/wsgi.py": (
                "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
                "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"
            ),
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess site python-path={app}/mysite:{lib}\nWSGIProcessGroup site\n"
                f"WSGIScriptAlias / {app}/mysite/mysite/wsgi.py\n"
            ),
        },
    )

    site = plan_of(home, python=bare_python)["site"]

    assert "django" in site.recipes
    assert used(site) == {
        "django": "1.11.29",
        "pytz": "2019.1",
        "django-debug-toolbar": "1.9",
        "psycopg2": "2.7.7",
    }
    whys = {r.dist.name: r.why for r in site.packages}
    assert any("INSTALLED_APPS" in w for w in whys["django-debug-toolbar"])
    assert any("DATABASES.*.ENGINE" in w for w in whys["psycopg2"])
    assert kinds(site)["unused"] == {"unrelated"}
    assert "missing" not in kinds(site), site.findings


def test_missing_conflict_and_interpreter_findings(
    home: Path, tmp_path: Path, bare_python: Path
) -> None:
    lib = account_lib(home, "app")
    install_wheels(
        lib,
        [
            WheelSpec(
                "needy",
                "1.0",
                {"needy.py": b""},
                requires=("helper>=2", "absent", 'py2only; python_version < "3"'),
            ),
            WheelSpec("helper", "1.5", {"helper.py": b""}),
        ],
        tmp_path / "w",
    )
    account_lib(home, "ancient", "2.4")
    app = home / "webapps"
    write_files(
        app / "app",
        {
            "app.wsgi": "import needy\nimport nowhere_to_be_found\ntry:\n    import optional_thing\nexcept ImportError:\n    pass\n"
        },
    )
    write_files(app / "ancient", {"run.py": "#!/usr/local/bin/python2.4\nimport os\n"})
    os.chmod(app / "ancient" / "run.py", 0o755)
    (app / "ancient" / "bin").mkdir()
    os.replace(app / "ancient" / "run.py", app / "ancient" / "bin" / "run.py")

    apps = plan_of(home, python=bare_python)
    found = kinds(apps["app"])

    assert found["missing"] == {"nowhere_to_be_found"}
    assert found["conflict"] == {"helper", "absent"}
    messages = [f.message for f in apps["app"].findings if f.kind == "conflict"]
    assert any("requires helper>=2, but the app sees 1.5" in m for m in messages)
    assert used(apps["app"]) == {"needy": "1.0", "helper": "1.5"}, (
        "py2only's marker is false for 3.x"
    )
    assert "interpreter" in kinds(apps["ancient"])


# --------------------------------------------------------------------------- real frameworks


def pip_target_from_index(target: Path, *requirements: str) -> None:
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *requirements],
        check=True,
        env=env,
    )


@pytest.fixture(scope="module")
def framework_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("frameworks") / "home"
    lib = home / "lib" / f"python{PY}"
    pip_target_from_index(lib, "Django>=4.2,<5", "Flask>=3,<4", "requests")
    # A bare python-home: the apps see the account's lib dirs, not a site-packages of a host's.
    base = home / "base-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base)], check=True)
    home_opt = f"python-home={base}"
    djapp = home / "webapps" / "dj"
    djapp.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"],
        cwd=djapp,
        check=True,
        env={**os.environ, "PYTHONPATH": str(lib)},
    )
    settings = djapp / "mysite" / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['*']"))
    write_files(
        djapp,
        {
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess dj {home_opt} python-path={djapp}/mysite:{lib}\n"
                "WSGIProcessGroup dj\n"
                f"WSGIScriptAlias / {djapp}/mysite/mysite/wsgi.py\n"
            )
        },
    )
    flapp = home / "webapps" / "fl"
    write_files(
        flapp,
        {
            "fl.wsgi": (
                "from flask import Flask, jsonify\n\napplication = Flask(__name__)\n\n"
                "@application.route('/')\ndef index():\n    return jsonify(ok=True)\n"
            ),
            "apache2/conf/httpd.conf": (
                f"WSGIDaemonProcess fl {home_opt} python-path={flapp}:{lib}\n"
                "WSGIProcessGroup fl\n"
                f"WSGIScriptAlias / {flapp}/fl.wsgi\n"
            ),
        },
    )
    return home


@pytest.mark.network
@pytest.mark.parametrize("app", ["dj", "fl"])
def test_static_used_set_covers_what_a_real_request_imports(
    framework_home: Path, app: str, bare_python: Path
) -> None:
    """Static analysis alone finds every account distribution a real request loads.

    The apps run with a bare ``python-home`` so that no site-packages of the host's can
    stand in for the account's lib.
    """
    static = plan_of(framework_home, apps=[app], python=bare_python)[app]
    traced = plan_of(framework_home, apps=[app], python=bare_python, tracer=_trace)[app]

    assert not [f for f in traced.findings if f.message.startswith("trace:")], traced.findings
    static_used = set(used(static))
    traced_used = {
        r.dist.name
        for r in traced.packages
        if r.used and r.dist.lib_dir == framework_home / "lib" / f"python{PY}"
    }
    assert len(traced_used) >= 3
    assert traced_used - static_used == set(), (
        "the trace found distributions the static analysis missed"
    )
    assert {
        "django": {"django", "asgiref", "sqlparse"},
        "fl": {"flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"},
    }["django" if app == "dj" else "fl"] <= static_used
    assert "requests" not in static_used, "visible but never imported"
    assert "missing" not in kinds(static), static.findings


def _trace(entry, interpreter, home):  # type: ignore[no-untyped-def]
    from migrate.resolve.trace import trace_entry

    return trace_entry(entry, interpreter, home)


def test_trace_offline_agrees_with_static_on_the_demo(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    result = CliRunner().invoke(
        cli,
        ["--home", str(demo.home), "--crontab", str(demo.crontab), "plan", "--trace", "--json",
         "--python", f"{PY}={demo.python}"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    apps = {a["name"]: a for a in json.loads(result.output)["apps"]}
    assert not [
        f for a in apps.values() for f in a["findings"] if f["message"].startswith("trace:")
    ]
    traced = {p["name"] for p in apps["blog"]["packages"] if p["used"]}
    assert traced == {"acme-utils", "oldlib", "packaging", "tinyhttp"}
    assert any("traced loading" in w for p in apps["blog"]["packages"] for w in p["why"])


def test_recipes_for_paste_trac_and_database_urls(
    home: Path, tmp_path: Path, bare_python: Path
) -> None:
    lib = account_lib(home, "apps")
    install_wheels(
        lib,
        [
            WheelSpec("PasteDeploy", "1.5.2", {"paste/deploy/__init__.py": b""}),
            WheelSpec("MyWiki", "0.3", {"mywiki/__init__.py": b""}),
            WheelSpec("Trac", "1.0.1", {"trac/__init__.py": b"", "tracopt/__init__.py": b""}),
            WheelSpec(
                "TracGit", "0.1", {"tracext/__init__.py": b"", "tracext/git/__init__.py": b""}
            ),
            WheelSpec("SQLAlchemy", "1.3.0", {"sqlalchemy/__init__.py": b""}),
            WheelSpec("psycopg2", "2.8", {"psycopg2/__init__.py": b""}),
            WheelSpec("PyMySQL", "0.9", {"pymysql/__init__.py": b""}),
        ],
        tmp_path / "w",
    )
    app = home / "webapps" / "apps"
    write_files(
        app,
        {
            "app.wsgi": (
                "import sqlalchemy, trac\nfrom paste.deploy import loadapp\n"
                "ENGINE = sqlalchemy.create_engine('postgresql://db/x')\n"
                "application = loadapp('config:production.ini')\n"
            ),
            "production.ini": "[app:main]\nuse = egg:MyWiki#main\n\n[server:main]\nuse = egg:Paste#http\n",
            "env/conf/trac.ini": "[components]\ntracext.git.* = enabled\ntracopt.perm.* = disabled\n",
        },
    )

    plan = plan_of(home, python=bare_python)["apps"]

    assert {"paste", "trac", "sqlalchemy"} <= set(plan.recipes)
    assert set(used(plan)) == {"pastedeploy", "mywiki", "trac", "tracgit", "sqlalchemy", "psycopg2"}
    assert {f.name for f in plan.findings if f.kind == "missing"} == {"paste"}, (
        "egg:Paste is not installed"
    )
    assert kinds(plan)["unused"] == {"pymysql"}


def test_crontab_pythonpath_is_read_as_cron_and_sh_pass_it(tmp_path: Path) -> None:
    """cron hands an environment line's value over as written (``~`` is then a folder named
    ``~``); sh expands ``~`` (unquoted) and ``$HOME`` in a job's own assignment."""
    home = tmp_path / "home"
    write_files(home / "webapps" / "app", {"job.py": "", "two.py": "", "three.py": ""})
    crontab = parse_crontab(
        "PYTHONPATH=~/lib/python3.11\n"
        "0 * * * * python3.11 ~/webapps/app/job.py\n"
        "0 * * * * PYTHONPATH=~/lib/python3.11:$HOME/src python3.11 ~/webapps/app/two.py\n"
        "0 * * * * PYTHONPATH='~/lib' python3.11 ~/webapps/app/three.py\n"
    )
    entries = find_entry_points(discover(home), crontab).entry_points
    by_file = {e.path.name: e.pythonpath for e in entries if e.kind == "cron"}
    assert by_file == {
        "job.py": (home / "~" / "lib" / "python3.11",),
        "two.py": (home / "lib" / "python3.11", home / "src"),
        "three.py": (home / "~" / "lib",),
    }


def test_hostile_crontab_lines_are_findings_not_crashes(tmp_path: Path) -> None:
    demo = build_demo_account(tmp_path / "demo")
    crontab = tmp_path / "crontab"
    crontab.write_bytes(
        b"PYTHONPATH=/x\n* * * * * python3 "
        + b"a" * (70 * 1024)
        + b"\n0 0 * * * echo \x00 bad\nnot a job\n"
        + b"@daily python3 'unbalanced\n"
    )

    result = CliRunner().invoke(
        cli, ["--home", str(demo.home), "--crontab", str(crontab), "plan", "--json"]
    )

    assert result.exit_code == 0, result.output
    messages = [f["message"] for f in json.loads(result.output)["findings"]]
    assert [f["path"] for f in json.loads(result.output)["findings"]] == [str(crontab)] * 4
    assert any("longer than" in m for m in messages) and any("NUL" in m for m in messages)
    assert any("cannot split command" in m for m in messages)


def test_python_names_only_what_the_runtime_leaves_open(
    home: Path, bare_python: Path, webfaction_python: Path, decoy_on_path: Path
) -> None:
    """``--python X.Y=PATH`` says what ``pythonX.Y`` means where a name is looked up, never
    instead of a path a cron line names; mod_wsgi's own Python against it is a finding."""
    write_files(home / "bin", {"a.py": "import os\n", "b.py": "import os\n"})
    account_lib(home)
    crontab = f"0 1 * * * {bare_python} {home}/bin/a.py\n0 2 * * * python{PY} {home}/bin/b.py\n"
    app = home / "webapps" / "served"
    mod_wsgi = Path("/usr/lib/apache2/modules/mod_wsgi.so")
    if mod_wsgi.exists():
        write_files(
            app,
            {
                "served.wsgi": "import os\n",
                "apache2/conf/httpd.conf": (
                    f"LoadModule wsgi_module {mod_wsgi}\n"
                    f"WSGIDaemonProcess served python-path={app}\nWSGIProcessGroup served\n"
                    f"WSGIScriptAlias / {app}/served.wsgi\n"
                ),
            },
        )
        account_lib(home, "served")

    apps = plan_of(home, crontab, python=webfaction_python)

    entries = {e.path.name: e for e in apps["~"].entry_points}
    assert entries["a.py"].executable == bare_python, "a path cron names stays"
    assert entries["b.py"].executable == webfaction_python
    assert entries["b.py"].executable_reason == f"--python {PY}={webfaction_python}"
    if mod_wsgi.exists():
        served = apps["served"]
        assert served.executable != webfaction_python, "mod_wsgi's libpython stays"
        assert any(
            f.kind == "interpreter" and f"not --python {PY}=" in f.message for f in served.findings
        )


def test_every_name_with_several_providers_is_judged_for_shadowing(tmp_path: Path) -> None:
    """Shadowing resolves only the names two path entries may provide (and ``-nspkg.pth``
    modules): every name with more than one provider, in any form, must be among them."""
    first, second, egg = tmp_path / "first", tmp_path / "second", tmp_path / "z.egg"
    so = ".cpython-311-x86_64-linux-gnu.so"
    write_files(first, {
        "pkg/__init__.py": "", "mod.py": "", f"ext{so}": "", "ns/a.py": "", "dup.py": "",
        "notpkg/data.txt": "", "cached.pyc": "", "lonely.py": "", "readme.txt": "",
    })  # fmt: skip
    write_files(second, {
        "pkg.py": "", "mod/__init__.py": "", "ext.abi3.so": "", "ns/b.py": "",
        "dup/__init__.py": "", "notpkg.py": "", "cached/__init__.pyc": "", "alone/x.py": "",
    })  # fmt: skip
    with zipfile.ZipFile(egg, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("zipped.py", "")
        archive.writestr("lonely.pyc", "")
    entry = EntryPoint(tmp_path / "app.wsgi", "wsgi", "app", "3.11", "test", "test")
    entries = tuple(PathEntry(path, "python-path") for path in (first, second, egg))
    nspkg = (("alone", second / "alone", second / "alone-nspkg.pth"),)
    model = PathModel(entry, "3.11", entries, nspkg, extension_suffixes=(so, ".abi3.so", ".so"))
    cache = model.cache
    names = {n for e in entries for n in cache.names_in(str(e.path))} | {"missing", "alone"}

    several = {n for n in names if len(model.resolve(n).candidates) > 1}

    assert several == {"pkg", "mod", "ext", "ns", "dup", "notpkg", "cached", "lonely", "alone"}
    assert {n for n in names if model.may_have_several(n)} >= several
    assert not model.may_have_several("zipped") and not model.may_have_several("readme")
    py2 = PathModel(entry, "2.7", entries, extension_suffixes=(".so", "module.so"))
    assert py2.may_have_several("zipped"), "suffixes names_in cannot see: every name is judged"

"""rewrite_httpd: mod_wsgi config -> the app's virtualenv, every other byte kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from migrate.discover.httpd import read_config
from migrate.rewrite import MARKER, CannotRewrite, is_concentric_dir
from migrate.rewrite.httpd import rewrite_httpd

HOME = "/home/me"
VENV = "/home/me/webapps/app/venv"
SPACED = "/home/me/my envs/app"

WEBFACTION = [
    'ServerRoot "/home/me/webapps/app/apache2"',
    "",
    "LoadModule dir_module        modules/mod_dir.so",
    "LoadModule env_module        modules/mod_env.so",
    "LoadModule log_config_module modules/mod_log_config.so",
    "LoadModule mime_module       modules/mod_mime.so",
    "LoadModule rewrite_module    modules/mod_rewrite.so",
    "LoadModule setenvif_module   modules/mod_setenvif.so",
    "LoadModule wsgi_module       modules/mod_wsgi.so",
    "",
    'LogFormat "%{X-Forwarded-For}i %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined',
    "CustomLog /home/me/logs/user/access_app.log combined",
    "ErrorLog /home/me/logs/user/error_app.log",
    "KeepAlive Off",
    "Listen 12345",
    "MaxSpareThreads 3",
    "MinSpareThreads 1",
    "ServerLimit 1",
    "SetEnvIf X-Forwarded-SSL on HTTPS=1",
    "ThreadsPerChild 5",
    "# WSGIDaemonProcess app python-path=/home/me/lib/python2.7 (the old setting)",
    "@DAEMON@",
    "WSGIProcessGroup app",
    "WSGIRestrictEmbedded On",
    "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
]
APP_PATH = "/home/me/webapps/app:/home/me/webapps/app/lib/python2.7"


def conf(daemon: str, end: str = "\n", last: str = "\n") -> str:
    """The usual WebFaction httpd.conf around one WSGIDaemonProcess directive."""
    lines = [daemon if line == "@DAEMON@" else line for line in WEBFACTION]
    return end.join(lines) + (end if last == "\n" else last)


def text(*lines: str, end: str = "\n", last: bool = True) -> str:
    return end.join(lines) + (end if last else "")


DAEMON = [
    pytest.param(
        conf(f"WSGIDaemonProcess app processes=2 threads=12 python-path={APP_PATH}"),
        conf(
            f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12 "
            "python-path=/home/me/webapps/app"
        ),
        id="webfaction-mixed",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app processes=2 threads=12"),
        conf(f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12"),
        id="no-python-path",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app"),
        conf(f"WSGIDaemonProcess app python-home={VENV}"),
        id="name-only",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-home=/usr/local processes=2 threads=12"),
        conf(f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12"),
        id="python-home-replaced",
    ),
    pytest.param(
        conf(
            "WSGIDaemonProcess app processes=2 python-home=/home/me/old-env "
            "python-path=/home/me/webapps/app/lib/python2.7 threads=12"
        ),
        conf(f"WSGIDaemonProcess app processes=2 python-home={VENV} threads=12"),
        id="python-home-replaced-in-place",
    ),
    pytest.param(
        conf(
            "WSGIDaemonProcess app processes=2 threads=12 "
            "python-path=/home/me/webapps/app/lib/python2.7:/home/me/lib/python2.7"
        ),
        conf(f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12"),
        id="only-concentric-removed",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-path=/home/me/lib/python2.7 processes=2"),
        conf(f"WSGIDaemonProcess app python-home={VENV} processes=2"),
        id="only-concentric-right-after-name",
    ),
    pytest.param(
        conf(
            "WSGIDaemonProcess app python-path=/home/me/webapps/app/src:/home/me/lib/python2.7:"
            "/home/me/webapps/app:/home/me/webapps/app/lib/python2.7/Django-1.4-py2.7.egg:"
            "/home/me/webapps/app/myproject:/home/me/lib/python2.7/site-packages"
        ),
        conf(
            f"WSGIDaemonProcess app python-home={VENV} python-path=/home/me/webapps/app/src:"
            "/home/me/webapps/app:/home/me/webapps/app/myproject"
        ),
        id="mixed-order-kept",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-path=/home/me/webapps/app::/home/me/lib/python2.7"),
        conf(f"WSGIDaemonProcess app python-home={VENV} python-path=/home/me/webapps/app"),
        id="empty-entry",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-path=~/webapps/app:~/lib/python2.7"),
        conf(f"WSGIDaemonProcess app python-home={VENV} python-path=~/webapps/app"),
        id="tilde",
    ),
    pytest.param(
        conf(
            "WSGIDaemonProcess app python-path=$HOME/webapps/app:"
            "${HOME}/webapps/app/lib/python2.7:$HOME/lib/python3.6"
        ),
        conf(f"WSGIDaemonProcess app python-home={VENV} python-path=$HOME/webapps/app"),
        id="dollar-home",
    ),
    pytest.param(
        conf(
            "WSGIDaemonProcess app python-path=/home/me/webapps/app:"
            "/home/me/.virtualenvs/old/lib/python2.7/site-packages:"
            "/usr/lib/python2.7/dist-packages:/home/me/.local/lib/python2.7/site-packages"
        ),
        conf(f"WSGIDaemonProcess app python-home={VENV} python-path=/home/me/webapps/app"),
        id="other-env-site-packages",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-path=app:../shared:/srv/code python-home=/usr/local"),
        conf(f"WSGIDaemonProcess app python-path=app:../shared:/srv/code python-home={VENV}"),
        id="relative-and-outside-kept",
    ),
    pytest.param(
        conf(f"wsgidaemonprocess app PYTHON-PATH={APP_PATH} Python-Home=/usr"),
        conf(f"wsgidaemonprocess app PYTHON-PATH=/home/me/webapps/app Python-Home={VENV}"),
        id="case-insensitive",
    ),
    pytest.param(
        conf("WSGIDaemonProcess\tapp\tprocesses=2\tpython-path=/home/me/lib/python2.7\tthreads=12"),
        conf(f"WSGIDaemonProcess\tapp python-home={VENV}\tprocesses=2\tthreads=12"),
        id="tabs",
    ),
    pytest.param(
        conf(f'WSGIDaemonProcess app python-path="{APP_PATH}" python-home="/usr/local"'),
        conf(f'WSGIDaemonProcess app python-path="/home/me/webapps/app" python-home="{VENV}"'),
        id="double-quoted-values",
    ),
    pytest.param(
        conf(f"WSGIDaemonProcess app python-path='{APP_PATH}' python-home='/usr/local'"),
        conf(f"WSGIDaemonProcess app python-path='/home/me/webapps/app' python-home='{VENV}'"),
        id="single-quoted-values",
    ),
    pytest.param(
        conf(f'WSGIDaemonProcess app "python-path={APP_PATH}" "python-home=/usr"'),
        conf(f'WSGIDaemonProcess app "python-path=/home/me/webapps/app" "python-home={VENV}"'),
        id="double-quoted-arguments",
    ),
    pytest.param(
        conf(f"WSGIDaemonProcess app 'python-path={APP_PATH}'"),
        conf(f"WSGIDaemonProcess app python-home={VENV} 'python-path=/home/me/webapps/app'"),
        id="single-quoted-argument",
    ),
    pytest.param(
        conf('WSGIDaemonProcess "my app" python-path="/home/me/lib/python2.7"'),
        conf(f'WSGIDaemonProcess "my app" python-home={VENV}'),
        id="quoted-name-only-concentric",
    ),
    pytest.param(
        conf(
            'WSGIDaemonProcess app python-path="/home/me/webapps/my app:'
            '/home/me/webapps/my app/lib/python2.7" threads=12'
        ),
        conf(
            f'WSGIDaemonProcess app python-home={VENV} python-path="/home/me/webapps/my app" '
            "threads=12"
        ),
        id="quoted-value-with-space",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess app processes=2 threads=12 \\",
            f"    python-path={APP_PATH} \\",
            "    display-name=%{GROUP}",
            "WSGIProcessGroup app",
        ),
        text(
            f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12 \\",
            "    python-path=/home/me/webapps/app \\",
            "    display-name=%{GROUP}",
            "WSGIProcessGroup app",
        ),
        id="continuation-value-edited",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess app \\",
            "    processes=2 \\",
            "    python-path=/home/me/webapps/app/lib/python2.7 \\",
            "    threads=12",
            "WSGIProcessGroup app",
        ),
        text(
            f"WSGIDaemonProcess app python-home={VENV} \\",
            "    processes=2 \\",
            "    threads=12",
            "WSGIProcessGroup app",
        ),
        id="continuation-middle-line-removed",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess app processes=2 threads=12 \\",
            "\tpython-path=/home/me/lib/python2.7",
            "WSGIProcessGroup app",
        ),
        text(
            f"WSGIDaemonProcess app python-home={VENV} processes=2 threads=12",
            "WSGIProcessGroup app",
        ),
        id="continuation-last-line-removed",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess \\",
            "    app \\",
            "    python-path=/home/me/lib/python2.7 threads=12 \\",
            "    python-home=/usr",
        ),
        text(
            "WSGIDaemonProcess \\",
            "    app \\",
            "    threads=12 \\",
            f"    python-home={VENV}",
        ),
        id="continuation-first-on-line-removed",
    ),
    pytest.param(
        text(
            "<VirtualHost *:12345>",
            "    WSGIDaemonProcess app python-path=/home/me/lib/python2.7 \\",
            "        python-path=/home/me/lib/python2.7 processes=2",
            "</VirtualHost>",
        ),
        text(
            "<VirtualHost *:12345>",
            f"    WSGIDaemonProcess app python-home={VENV} \\",
            "        processes=2",
            "</VirtualHost>",
        ),
        id="repeated-option",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess app python-path=/home/me/webapps/app/lib/python2.7 \\",
            "    processes=2",
            "WSGIDaemonProcess admin python-home=/usr python-path=/home/me/lib/python2.7:/srv/a",
        ),
        text(
            f"WSGIDaemonProcess app python-home={VENV} \\",
            "    processes=2",
            f"WSGIDaemonProcess admin python-home={VENV} python-path=/srv/a",
        ),
        id="two-daemons",
    ),
    pytest.param(
        conf(f"WSGIDaemonProcess app processes=2 python-path={APP_PATH}", end="\r\n"),
        conf(
            f"WSGIDaemonProcess app python-home={VENV} processes=2 "
            "python-path=/home/me/webapps/app",
            end="\r\n",
        ),
        id="crlf",
    ),
    pytest.param(
        text(
            "WSGIDaemonProcess app processes=2 \\",
            "    python-path=/home/me/lib/python2.7",
            "WSGIProcessGroup app",
            end="\r\n",
        ),
        text(
            f"WSGIDaemonProcess app python-home={VENV} processes=2",
            "WSGIProcessGroup app",
            end="\r\n",
        ),
        id="crlf-continuation",
    ),
    pytest.param(
        text("Listen 12345", f"WSGIDaemonProcess app python-path={APP_PATH}", last=False),
        text(
            "Listen 12345",
            f"WSGIDaemonProcess app python-home={VENV} python-path=/home/me/webapps/app",
            last=False,
        ),
        id="no-trailing-newline",
    ),
    pytest.param(
        text("WSGIDaemonProcess app threads=12 \\", "    python-path=~/lib/python2.7", last=False),
        text(f"WSGIDaemonProcess app python-home={VENV} threads=12", last=False),
        id="no-trailing-newline-continuation",
    ),
]

EMBEDDED = [
    pytest.param(
        text("WSGIPythonHome /usr/local", "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        text(f"WSGIPythonHome {VENV}", "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        id="python-home",
    ),
    pytest.param(
        text('wsgipythonhome "/usr/local"', "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        text(f'wsgipythonhome "{VENV}"', "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        id="python-home-quoted",
    ),
    pytest.param(
        text(
            "WSGIPythonHome /usr/local",
            f"WSGIPythonPath {APP_PATH}:/home/me/lib/python2.7",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        text(
            f"WSGIPythonHome {VENV}",
            "WSGIPythonPath /home/me/webapps/app",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        id="python-path-mixed",
    ),
    pytest.param(
        text(
            f"WSGIPythonHome {VENV}",
            "  WSGIPythonPath '~/lib/python2.7:${HOME}/webapps/app/lib/python2.7'",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        text(
            f"WSGIPythonHome {VENV}",
            f"  # {MARKER} only concentric dirs, the virtualenv replaces them: "
            "WSGIPythonPath '~/lib/python2.7:${HOME}/webapps/app/lib/python2.7'",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        id="python-path-only-concentric",
    ),
    pytest.param(
        text(
            "WSGIPythonPath \\",
            "    /home/me/lib/python2.7",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        text(
            f'WSGIPythonHome "{VENV}"',
            f"# {MARKER} only concentric dirs, the virtualenv replaces them: WSGIPythonPath \\",
            "    # /home/me/lib/python2.7",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        id="python-path-continued-commented-and-home-added",
    ),
    pytest.param(
        conf("WSGIPythonPath /home/me/webapps/app").replace(
            "WSGIProcessGroup app\nWSGIRestrictEmbedded On\n", ""
        ),
        conf(f'WSGIPythonHome "{VENV}"\nWSGIPythonPath /home/me/webapps/app').replace(
            "WSGIProcessGroup app\nWSGIRestrictEmbedded On\n", ""
        ),
        id="script-alias-home-before-python-path",
    ),
    pytest.param(
        text(
            "Listen 12345",
            "LoadModule wsgi_module modules/mod_wsgi.so",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        text(
            "Listen 12345",
            "LoadModule wsgi_module modules/mod_wsgi.so",
            f'WSGIPythonHome "{VENV}"',
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        id="script-alias-top-level",
    ),
    pytest.param(
        text(
            "<IfModule wsgi_module>",
            "\tWSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            "\tWSGIScriptAlias /admin /home/me/webapps/app/admin.wsgi",
            "</IfModule>",
        ),
        text(
            "<IfModule wsgi_module>",
            f'\tWSGIPythonHome "{VENV}"',
            "\tWSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            "\tWSGIScriptAlias /admin /home/me/webapps/app/admin.wsgi",
            "</IfModule>",
        ),
        id="script-alias-in-ifmodule",
    ),
    pytest.param(
        text(
            "Listen 12345",
            "<VirtualHost *:12345>",
            "    ServerName app.example.com",
            "    WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            "</VirtualHost>",
        ),
        text(
            "Listen 12345",
            f'WSGIPythonHome "{VENV}"',
            "<VirtualHost *:12345>",
            "    ServerName app.example.com",
            "    WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            "</VirtualHost>",
        ),
        id="script-alias-in-virtualhost",
    ),
    pytest.param(
        text(
            "<IfModule wsgi_module>",
            "  <virtualhost *:12345>",
            "    <Directory /home/me/webapps/app>",
            "      WSGIScriptAliasMatch ^/(.*) /home/me/webapps/app/app.wsgi",
            "    </Directory>",
            "  </virtualhost>",
            "</IfModule>",
        ),
        text(
            "<IfModule wsgi_module>",
            f'  WSGIPythonHome "{VENV}"',
            "  <virtualhost *:12345>",
            "    <Directory /home/me/webapps/app>",
            "      WSGIScriptAliasMatch ^/(.*) /home/me/webapps/app/app.wsgi",
            "    </Directory>",
            "  </virtualhost>",
            "</IfModule>",
        ),
        id="script-alias-nested-sections",
    ),
    pytest.param(
        text("Listen 12345", "WSGIScriptAlias / /home/me/webapps/app/app.wsgi", end="\r\n"),
        text(
            "Listen 12345",
            f'WSGIPythonHome "{VENV}"',
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            end="\r\n",
        ),
        id="script-alias-crlf",
    ),
    pytest.param(
        text("Listen 12345", "WSGIScriptAlias / /home/me/webapps/app/app.wsgi", last=False),
        text(
            "Listen 12345",
            f'WSGIPythonHome "{VENV}"',
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            last=False,
        ),
        id="script-alias-no-trailing-newline",
    ),
]

SPACED_VENV = [
    pytest.param(
        conf("WSGIDaemonProcess app threads=12"),
        conf(f'WSGIDaemonProcess app python-home="{SPACED}" threads=12'),
        id="added",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app python-home=/usr threads=12"),
        conf(f'WSGIDaemonProcess app python-home="{SPACED}" threads=12'),
        id="bare-replaced",
    ),
    pytest.param(
        conf("WSGIDaemonProcess app 'python-home=/usr' threads=12"),
        conf(f"WSGIDaemonProcess app 'python-home={SPACED}' threads=12"),
        id="quoted-replaced",
    ),
    pytest.param(
        text("WSGIPythonHome /usr", "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        text(f'WSGIPythonHome "{SPACED}"', "WSGIScriptAlias / /home/me/webapps/app/app.wsgi"),
        id="embedded",
    ),
]

UNCHANGED = [
    pytest.param(text(*WEBFACTION[:-5]), id="no-wsgi-directive"),
    pytest.param(
        conf(
            f"WSGIDaemonProcess app python-home={VENV} processes=2 python-path=/home/me/webapps/app"
        ),
        id="daemon-migrated",
    ),
    pytest.param(
        conf(f"WSGIDaemonProcess app python-home={VENV}/ python-path=/home/me/webapps/app:"),
        id="trailing-slash-and-colon",
    ),
    pytest.param(
        text(
            f"WSGIPythonHome {VENV}",
            "WSGIPythonPath /home/me/webapps/app",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        ),
        id="embedded-migrated",
    ),
    pytest.param(
        text(
            "# WSGIPythonPath /home/me/lib/python2.7",
            "# WSGIScriptAlias / /home/me/webapps/app/app.wsgi \\",
            "WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
            "Listen 12345",
        ),
        id="comments",
    ),
    pytest.param("WSGIProcessGroup app\r\nWSGIRestrictEmbedded On\r\nListen 12345", id="no-mount"),
    pytest.param("", id="empty"),
]


def check(before: str, after: str, venv: str = VENV) -> None:
    result = rewrite_httpd(before, venv=venv, home=HOME)
    assert result.text == after
    assert result.changed is (before != after)
    again = rewrite_httpd(after, venv=venv, home=HOME)
    assert again.text == after
    assert again.changes == ()


@pytest.mark.parametrize(("before", "after"), DAEMON)
def test_daemon(before: str, after: str) -> None:
    check(before, after)


@pytest.mark.parametrize(("before", "after"), EMBEDDED)
def test_embedded(before: str, after: str) -> None:
    check(before, after)


@pytest.mark.parametrize(("before", "after"), SPACED_VENV)
def test_venv_with_space_is_quoted(before: str, after: str) -> None:
    check(before, after, venv=SPACED)


@pytest.mark.parametrize("before", UNCHANGED)
def test_unchanged(before: str) -> None:
    result = rewrite_httpd(before, venv=VENV, home=HOME)
    assert result.text == before
    assert result.changes == ()


def test_changes_name_lines_and_reasons() -> None:
    before = text(
        "Listen 12345",
        "WSGIPythonPath /home/me/lib/python2.7",
        "<VirtualHost *:12345>",
        "  WSGIDaemonProcess app threads=12 \\",
        f"    python-path={APP_PATH}",
        "  WSGIScriptAlias / /home/me/webapps/app/app.wsgi",
        "</VirtualHost>",
    )
    changes = rewrite_httpd(before, venv=VENV, home=HOME).changes
    assert [(c.line, c.before, c.after) for c in changes] == [
        (
            2,
            "WSGIPythonPath /home/me/lib/python2.7",
            f"# {MARKER} only concentric dirs, the virtualenv replaces them: "
            "WSGIPythonPath /home/me/lib/python2.7",
        ),
        (
            4,
            f"  WSGIDaemonProcess app threads=12 \\\n    python-path={APP_PATH}",
            f"  WSGIDaemonProcess app python-home={VENV} threads=12 \\\n"
            "    python-path=/home/me/webapps/app",
        ),
    ]
    assert "/home/me/webapps/app/lib/python2.7" in changes[1].why
    assert "python-home" in changes[1].why


def test_inserted_home_is_a_change_before_the_section() -> None:
    before = text("<VirtualHost *:80>", "  WSGIScriptAlias / /a.wsgi", "</VirtualHost>")
    (change,) = rewrite_httpd(before, venv=VENV, home=HOME).changes
    assert (change.line, change.before, change.after) == (1, "", f'WSGIPythonHome "{VENV}"')
    assert "server-config" in change.why


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            conf("WSGIDaemonProcess app python-path=${APP_DIR}:/home/me/lib/python2.7"),
            "${APP_DIR}",
            id="define-in-python-path",
        ),
        pytest.param(
            text("Define LIBS /home/me/lib/python2.7", "WSGIPythonPath ${LIBS}"),
            "Define",
            id="define-in-embedded-path",
        ),
        pytest.param(
            conf('WSGIDaemonProcess app python-path="/home/me/lib/python2.7 threads=12'),
            "unbalanced quote",
            id="unbalanced-value",
        ),
        pytest.param(
            text("WSGIDaemonProcess app \\", "  'python-path=/a:\\", "/b'"),
            "unbalanced quote",
            id="quote-across-continuation",
        ),
        pytest.param(text("WSGIPythonHome '/usr/local"), "unbalanced quote", id="unbalanced-home"),
        pytest.param(
            conf('WSGIDaemonProcess app python-path=/home/me/"lib"/python2.7'),
            "unusual quoting",
            id="quote-inside-value",
        ),
        pytest.param(conf("WSGIDaemonProcess"), "no process name", id="daemon-without-name"),
        pytest.param(
            text("WSGIPythonPath /home/me/my app:/home/me/lib/python2.7"),
            "exactly one argument",
            id="unquoted-space",
        ),
    ],
)
def test_cannot_rewrite(config: str, message: str) -> None:
    with pytest.raises(CannotRewrite, match="run again") as error:
        rewrite_httpd(config, venv=VENV, home=HOME)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            conf("WSGIDaemonProcess app 'python-home=~/webapps/app/venv' threads=12"),
            conf(f"WSGIDaemonProcess app 'python-home={VENV}' threads=12"),
            id="daemon-tilde",
        ),
        pytest.param(
            text("WSGIPythonHome $HOME/webapps/app/venv", "WSGIScriptAlias / /x.wsgi"),
            text(f"WSGIPythonHome {VENV}", "WSGIScriptAlias / /x.wsgi"),
            id="embedded-dollar-home",
        ),
        pytest.param(
            text('WSGIPythonHome "${HOME}/webapps/app/venv"', "WSGIScriptAlias / /x.wsgi"),
            text(f'WSGIPythonHome "{VENV}"', "WSGIScriptAlias / /x.wsgi"),
            id="embedded-define-home",
        ),
    ],
)
def test_python_home_is_literal(before: str, after: str) -> None:
    """mod_wsgi hands python-home to Python as written: ``~`` and ``$HOME`` are not the home
    (the plan reads them as relative paths), so they get the venv's absolute path."""
    result = rewrite_httpd(before, venv=VENV, home=HOME)
    assert result.text == after
    assert "replaced" in result.changes[0].why


def test_define_message_names_the_daemon() -> None:
    config = conf("WSGIDaemonProcess app python-path=${APP_DIR}")
    with pytest.raises(CannotRewrite, match=r"python-path of WSGIDaemonProcess app uses \$\{"):
        rewrite_httpd(config, venv=VENV, home=HOME)


@pytest.mark.parametrize("venv", ["venv", "/home/me/it's", '/home/me/"x"', "/home/me/a\nb"])
def test_unusable_venv_path(venv: str) -> None:
    with pytest.raises(CannotRewrite):
        rewrite_httpd(conf("WSGIDaemonProcess app"), venv=venv, home=HOME)


INPUTS = {param.id: param.values[0] for param in DAEMON}


@pytest.mark.parametrize(
    ("before", "venv", "code_dirs"),
    [
        pytest.param(INPUTS["webfaction-mixed"], VENV, ["/home/me/webapps/app"], id="webfaction"),
        pytest.param(INPUTS["only-concentric-removed"], VENV, [], id="only-concentric"),
        pytest.param(
            INPUTS["mixed-order-kept"],
            VENV,
            ["/home/me/webapps/app/src", "/home/me/webapps/app", "/home/me/webapps/app/myproject"],
            id="mixed",
        ),
        pytest.param(
            INPUTS["single-quoted-values"], VENV, ["/home/me/webapps/app"], id="quoted-values"
        ),
        pytest.param(
            INPUTS["double-quoted-arguments"], VENV, ["/home/me/webapps/app"], id="quoted-arguments"
        ),
        pytest.param(
            INPUTS["quoted-value-with-space"], VENV, ["/home/me/webapps/my app"], id="spaces"
        ),
        pytest.param(
            INPUTS["continuation-value-edited"], VENV, ["/home/me/webapps/app"], id="continuation"
        ),
        pytest.param(INPUTS["continuation-last-line-removed"], VENV, [], id="continuation-removed"),
        pytest.param(INPUTS["crlf"], VENV, ["/home/me/webapps/app"], id="crlf"),
        pytest.param(SPACED_VENV[1].values[0], SPACED, [], id="spaced-venv"),
    ],
)
def test_apacheconf_reads_the_result(
    tmp_path: Path, before: str, venv: str, code_dirs: list[str]
) -> None:
    (tmp_path / "before.conf").write_bytes(before.encode())
    (tmp_path / "after.conf").write_bytes(rewrite_httpd(before, venv=venv, home=HOME).text.encode())
    old, new = read_config(tmp_path / "before.conf"), read_config(tmp_path / "after.conf")
    assert new.findings == ()
    (daemon,) = new.named("wsgidaemonprocess")
    assert daemon.option("python-home") == venv
    entries = [p for p in (daemon.option("python-path") or "").split(":") if p]
    assert entries == code_dirs
    assert not any(is_concentric_dir(p, HOME) for p in entries)
    others = [(d.name, d.args, d.sections) for d in old.directives if d.name != "wsgidaemonprocess"]
    assert others == [
        (d.name, d.args, d.sections) for d in new.directives if d.name != "wsgidaemonprocess"
    ]


# --------------------------------------------------------------------------- properties

ENDINGS = st.sampled_from(["\n", "\r\n"])
WORDS = st.text(alphabet="abcxyz019/._-:*%{}=\"'<>$~\\ \t", max_size=30)
FILLER = st.one_of(
    st.builds(
        lambda name, args: f"{name} {args}",
        st.sampled_from(
            [
                "ServerRoot",
                "LoadModule",
                "Listen",
                "KeepAlive",
                "ErrorLog",
                "SetEnvIf",
                "Alias",
                "Include",
                "Define",
                "LogFormat",
            ]
        ),
        WORDS,
    ),
    WORDS.map(lambda s: "# " + s),
    st.sampled_from(["", "   ", "\t", "<VirtualHost *:80>", "</VirtualHost>", "<IfModule x>"]),
    WORDS.map(lambda s: s + " \\"),
    st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), max_size=40),
)


def assemble(lines: list[str], endings: list[str], final: bool) -> str:
    out = "".join(line + end for line, end in zip(lines, endings, strict=False))
    if lines and not final:
        out = out.removesuffix(endings[len(lines) - 1])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(FILLER, max_size=25), st.lists(ENDINGS, min_size=25, max_size=25), st.booleans())
def test_no_wsgi_directive_passes_through(
    lines: list[str], endings: list[str], final: bool
) -> None:
    config = assemble(lines, endings, final)
    assume("wsgi" not in config.lower())
    result = rewrite_httpd(config, venv=VENV, home=HOME)
    assert result.text == config
    assert result.changes == ()


CODE_DIRS = st.lists(
    st.sampled_from(
        [
            "/home/me/webapps/app",
            "/home/me/webapps/app/src",
            "~/webapps/app/myproject",
            "$HOME/webapps/app",
            "${HOME}/webapps/app/lib",
            "app",
            "/srv/shared/code",
        ]
    ),
    min_size=1,
    max_size=4,
)
CONCENTRIC_DIRS = st.lists(
    st.sampled_from(
        [
            "/home/me/lib/python2.7",
            "~/lib/python3.6",
            "/home/me/webapps/app/lib/python2.7",
            "$HOME/webapps/app/lib/python2.7/Django-1.4-py2.7.egg",
            "/home/me/.virtualenvs/old/lib/python2.7/site-packages",
            "${HOME}/lib/python2.7",
        ]
    ),
    max_size=3,
)
SEPARATORS = st.sampled_from([" ", "\t", "  ", " \\@EOL@    ", "\t\\@EOL@\t"])


@st.composite
def option(draw: st.DrawFn, key: str, value: str) -> str:
    key = draw(st.sampled_from([key, key.upper(), key.title()]))
    style = draw(st.sampled_from(["bare", '"', "'", 'whole"', "whole'"]))
    if style == "bare":
        return f"{key}={value}"
    if style.startswith("whole"):
        return f"{style[-1]}{key}={value}{style[-1]}"
    return f"{key}={style}{value}{style}"


def path_list(draw: st.DrawFn, concentric: bool) -> str:
    entries = draw(CODE_DIRS) + (draw(CONCENTRIC_DIRS) if concentric else [])
    return ":".join(draw(st.permutations(entries)))


@st.composite
def migrated_config(draw: st.DrawFn, concentric: bool = False) -> str:
    """Config-like text that is already migrated, or (``concentric``) still needs it."""
    homes = [VENV, VENV + "/"] + (["/usr/local", "/home/me/old env"] if concentric else [])
    end = draw(ENDINGS)
    directives: list[list[str]] = []
    if draw(st.booleans()):
        words = [draw(st.sampled_from(["WSGIDaemonProcess", "wsgidaemonprocess"])), "app"]
        options = [draw(option("python-home", draw(st.sampled_from(homes))))]
        if concentric and draw(st.booleans()):
            options = []
        if draw(st.booleans()):
            options.append(draw(option("python-path", path_list(draw, concentric))))
        options += draw(st.lists(st.sampled_from(["processes=2", "threads=12"]), max_size=2))
        words += draw(st.permutations(options))
        directives.append(words)
        directives.append(["WSGIProcessGroup", "app"])
    else:
        home = draw(st.sampled_from([VENV, f'"{VENV}"', f"'{VENV}/'"]))
        if not concentric or draw(st.booleans()):
            directives.append([draw(st.sampled_from(["WSGIPythonHome", "wsgipythonhome"])), home])
    if draw(st.booleans()):
        quote = draw(st.sampled_from(["", "'", '"']))
        directives.append(["WSGIPythonPath", f"{quote}{path_list(draw, concentric)}{quote}"])
    directives.append(["WSGIScriptAlias", "/", "/home/me/webapps/app/app.wsgi"])
    lines = [draw(SEPARATORS).join(words).replace("@EOL@", end) for words in directives]
    filler = draw(st.lists(st.sampled_from(WEBFACTION[:-5]), max_size=8))
    body = draw(st.permutations(lines + filler))
    return end.join(body) + draw(st.sampled_from([end, ""]))


@settings(max_examples=300, deadline=None)
@given(migrated_config())
def test_migrated_config_passes_through(config: str) -> None:
    result = rewrite_httpd(config, venv=VENV, home=HOME)
    assert result.text == config
    assert result.changes == ()


@settings(max_examples=300, deadline=None)
@given(migrated_config(concentric=True))
def test_rewrite_is_idempotent(config: str) -> None:
    once = rewrite_httpd(config, venv=VENV, home=HOME)
    twice = rewrite_httpd(once.text, venv=VENV, home=HOME)
    assert twice.text == once.text
    assert twice.changes == ()
    assert once.text.count("\n") - config.count("\n") == sum(
        c.after.count("\n") + 1 - (c.before.count("\n") + 1 if c.before else 0)
        for c in once.changes
    )

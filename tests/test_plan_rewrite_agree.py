"""The plan and the rewriters agree about the same bytes.

For each file kind the plan models what an entry point's runtime puts on ``sys.path`` from
that file, and ``run`` rewrites the file. Over a generated corpus these tests read a file
the way the plan does, rewrite it, and read the result again: the entries the rewrite
removed are exactly the concentric entries the plan modelled, and every other entry the
plan modelled is still there, in order.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from accounts import write_files
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rewrite_httpd import HOME, VENV, migrated_config

from migrate.discover.account import discover
from migrate.discover.crontab import parse_crontab
from migrate.discover.entrypoints import EntryPoint, find_entry_points
from migrate.discover.imports import scan_sources
from migrate.layout import venv_dir
from migrate.rewrite import is_concentric_dir
from migrate.rewrite.crontab import CronTargets, rewrite_crontab
from migrate.rewrite.httpd import rewrite_httpd
from migrate.rewrite.pyfile import rewrite_python


def _wsgi_entry(home: Path, config: str) -> EntryPoint:
    conf = home / "webapps" / "app" / "apache2" / "conf" / "httpd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_bytes(config.encode())
    (entry,) = [e for e in find_entry_points(discover(home), None).entry_points if e.kind == "wsgi"]
    return entry


@settings(max_examples=150, deadline=None)
@given(migrated_config(concentric=True))
def test_httpd_plan_and_rewrite_agree(template: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch, "me")
        config = template.replace(HOME, str(home))
        venv = VENV.replace(HOME, str(home))
        before = _wsgi_entry(home, config)
        result = rewrite_httpd(config, venv=venv, home=str(home))
        after = _wsgi_entry(home, result.text)

    modelled = [str(d) for d in before.site_dirs]
    # Apache expands ${HOME} (from its environment) when it reads the file, mod_wsgi then
    # uses each entry as written: ~ and $HOME stay relative paths that never load anything.
    assert not any("${HOME}" in d for d in modelled)
    kept = [d for d in modelled if not is_concentric_dir(d, str(home))]
    assert [str(d) for d in after.site_dirs] == kept
    removed = [d for d in modelled if d not in kept]
    assert all(any(d in c.before for c in result.changes) for d in _spelled(removed, home))
    assert after.python_home is not None
    assert after.python_home.resolve() == Path(venv).resolve()
    assert (after.path, after.daemon) == (before.path, before.daemon)


def _spelled(dirs: list[str], home: Path) -> list[str]:
    """How a modelled dir may be spelled in the file (``~``, ``$HOME`` forms read as is)."""
    return [d.replace(str(home), "") or d for d in dirs]


CRON_CODE = ["~/webapps/app/src", "$HOME/webapps/app", "/srv/code"]
CRON_CONCENTRIC = [
    "~/lib/python3.11",
    "$HOME/webapps/app/lib/python3.11",
    "/opt/old/lib/python3.11/site-packages",
]


@st.composite
def cron_path(draw: st.DrawFn) -> str:
    entries = draw(st.lists(st.sampled_from(CRON_CODE + CRON_CONCENTRIC), min_size=1, max_size=4))
    value = ":".join(dict.fromkeys(entries))
    return draw(st.sampled_from([value, f'"{value}"', f"'{value}'"]))


@st.composite
def cron_job(draw: st.DrawFn) -> str:
    app = draw(st.sampled_from(["app", "other"]))
    words = []
    if cd := draw(st.booleans()):
        words.append(f"cd ~/webapps/{app} &&")
    setter = draw(st.sampled_from(["", "export PYTHONPATH=", "PYTHONPATH="]))
    if setter:
        words.append(f"{setter}{draw(cron_path())};")
    if draw(st.booleans()):
        words.append(f"PYTHONPATH={draw(cron_path())}")
    words.append(draw(st.sampled_from(["python3.11", "/usr/bin/python3.11"])))
    words.append("job.py" if cd else f"~/webapps/{app}/job.py")
    schedule = draw(st.sampled_from(["0 * * * *", "@reboot", "*/5 1,2 * * 1-5"]))
    return f"{schedule} {' '.join(words)}"


@st.composite
def crontab_text(draw: st.DrawFn) -> str:
    lines = [f"PYTHONPATH={draw(cron_path())}"] if draw(st.booleans()) else []
    lines += draw(st.lists(cron_job(), min_size=1, max_size=4))
    return "\n".join(lines) + "\n"


def _cron_entries(home: Path, text: str) -> list[EntryPoint]:
    entries = find_entry_points(discover(home), parse_crontab(text)).entry_points
    return sorted((e for e in entries if e.kind == "cron"), key=lambda e: e.source)


@settings(max_examples=150, deadline=None)
@given(crontab_text())
def test_crontab_plan_and_rewrite_agree(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch, "me")
        for app in ("app", "other"):
            write_files(home / "webapps" / app, {"job.py": "print('hi')\n"})
        venv = venv_dir(home, "app")
        before = _cron_entries(home, text)
        result = rewrite_crontab(text, CronTargets(str(home), {"app": str(venv)}))
        after = _cron_entries(home, result.text)

    assert [(e.path, e.source) for e in after] == [(e.path, e.source) for e in before]
    for old, new in zip(before, after, strict=True):
        if old.group == "app":
            kept = [p for p in old.pythonpath if not is_concentric_dir(str(p), str(home))]
            assert list(new.pythonpath) == kept, (old.source, result.text)
            assert new.interpreter == str(venv / "bin" / "python")
        else:
            assert new.pythonpath == old.pythonpath, (old.source, result.text)
            assert new.interpreter == old.interpreter


PY_HOME = "/home/me"
PY_FILE = "/home/me/webapps/app/app.wsgi"
BINDINGS = "import os, site, sys\nHOME = os.environ['HOME']\nHERE = os.path.dirname(__file__)\n"
BASES = [
    "'/home/me/'",
    "HOME + '/'",
    "os.environ['HOME'] + '/'",
    "'%s/' % os.environ['HOME']",
    "'{}/'.format(os.getenv('HOME'))",
    "f'{HOME}/'",
    "os.path.expanduser('~/')",
    "os.path.join(os.path.expanduser('~'), '')",
    "HERE + '/../../'",
    "os.path.join(os.path.dirname(os.path.dirname(HERE)), '')",
    "os.path.join(UNKNOWN, '')",
    "os.path.abspath('rel') + '/'",
]
TAILS = [
    "lib/python2.7",
    "webapps/app/lib/python2.7",
    "webapps/app/src",
    "code",
    "lib/python2.7/x.egg",
]


FORMS = [
    "sys.path.insert(0, {})",
    "sys.path.append({})",
    "site.addsitedir({})",
    "sys.path[0:0] = [{}, {}]",
    "sys.path = [{}] + sys.path",
    "sys.path.extend([{}, {}])",
    "for d in [{}, {}]:\n    site.addsitedir(d)",
]


@st.composite
def python_file(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 5))):
        form = draw(st.sampled_from(FORMS))
        paths = [
            f"{draw(st.sampled_from(BASES))} + {draw(st.sampled_from(TAILS))!r}"
            for _ in range(form.count("{}"))
        ]
        lines.append(form.format(*paths))
    return BINDINGS + "\n".join(lines) + "\n"


def _path_edits(folder: Path, text: str) -> Counter[tuple[int, Path | None]]:
    file = folder / "app.wsgi"
    file.write_text(text)
    (scan,) = scan_sources([file], Path(PY_HOME)).values()
    assert scan.error is None
    return Counter((edit.line, edit.path) for edit in scan.path_edits)


@settings(max_examples=200, deadline=None)
@given(python_file())
def test_python_plan_and_rewrite_agree(text: str) -> None:
    """Each sys.path edit the plan evaluates to a concentric dir is the one the rewrite
    disables; every other edit (code dirs, and what neither can evaluate) stays."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        before = _path_edits(folder, text.replace("__file__", repr(PY_FILE)))
        result = rewrite_python(text, home=PY_HOME, file=PY_FILE)
        after = _path_edits(folder, result.text.replace("__file__", repr(PY_FILE)))

    concentric = Counter(
        {
            (line, path): count
            for (line, path), count in before.items()
            if path and is_concentric_dir(str(path), PY_HOME)
        }
    )
    assert before - after == concentric, result.text
    assert after - before == Counter(), result.text

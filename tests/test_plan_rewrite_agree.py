"""The plan and the rewriters agree about the same bytes.

For each file kind the plan models what an entry point's runtime puts on ``sys.path`` from
that file, and ``run`` rewrites the file. Over a generated corpus these tests read a file
the way the plan does, rewrite it, and read the result again: the entries the rewrite
removed are exactly the concentric entries the plan modelled, and every other entry the
plan modelled is still there, in order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from test_rewrite_httpd import HOME, VENV, migrated_config

from migrate.discover.account import discover
from migrate.discover.entrypoints import EntryPoint, find_entry_points
from migrate.rewrite import is_concentric_dir
from migrate.rewrite.httpd import rewrite_httpd


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

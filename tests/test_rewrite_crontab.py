"""Crontab rewriting: each migrated job runs its group's venv Python, nothing else moves."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from migrate.discover.crontab import MAX_LINE
from migrate.rewrite import MARKER, CannotRewrite, Change
from migrate.rewrite.crontab import CronTargets, rewrite_crontab

HOME = "/home/me"
APP_PY = "/home/me/webapps/app/venv/bin/python"
HOME_PY = "/home/me/venv/bin/python"
TARGETS = CronTargets(
    HOME,
    {"app": "/home/me/webapps/app/venv", "~": "/home/me/venv"},
    frozenset(
        {
            "/home/me/bin/report.py",
            "/home/me/webapps/app/bin/tool",
            "/home/me/webapps/other/bin/tool",
        }
    ),
)

CASES = {
    "python2.7 script": (
        "0 3 * * * python2.7 ~/webapps/app/manage.py cleanup\n",
        f"0 3 * * * {APP_PY} ~/webapps/app/manage.py cleanup\n",
    ),
    "absolute interpreter": (
        "0 3 * * * /usr/local/bin/python2.7 /home/me/webapps/app/manage.py cleanup\n",
        f"0 3 * * * {APP_PY} /home/me/webapps/app/manage.py cleanup\n",
    ),
    "python -u": (
        "0 3 * * * python -u ~/webapps/app/x.py\n",
        f"0 3 * * * {APP_PY} -u ~/webapps/app/x.py\n",
    ),
    "option with an argument": (
        "0 3 * * * python3 -W ignore $HOME/webapps/app/x.py\n",
        f"0 3 * * * {APP_PY} -W ignore $HOME/webapps/app/x.py\n",
    ),
    "cd then relative script": (
        "5 * * * * cd ~/webapps/app && python2.7 manage.py cleanup\n",
        f"5 * * * * cd ~/webapps/app && {APP_PY} manage.py cleanup\n",
    ),
    "cd then -m module": (
        "5 * * * * cd /home/me/webapps/app; python3.6 -m myapp.jobs --all\n",
        f"5 * * * * cd /home/me/webapps/app; {APP_PY} -m myapp.jobs --all\n",
    ),
    "-m from home": (
        "5 * * * * python3.6 -mreports\n",
        f"5 * * * * {HOME_PY} -mreports\n",
    ),
    "account script": (
        "5 * * * * python2.7 bin/backup.py\n",
        f"5 * * * * {HOME_PY} bin/backup.py\n",
    ),
    "shebang script gets the venv python": (
        "2 * * * * ~/bin/report.py --daily\n",
        f"2 * * * * {HOME_PY} ~/bin/report.py --daily\n",
    ),
    "shebang script after cd": (
        "2 * * * * cd ~/webapps/app && bin/tool >> log 2>&1\n",
        f"2 * * * * cd ~/webapps/app && {APP_PY} bin/tool >> log 2>&1\n",
    ),
    "group without a venv untouched": (
        "0 * * * * python2.7 ~/webapps/other/x.py\n1 * * * * ~/webapps/other/bin/tool\n",
        "0 * * * * python2.7 ~/webapps/other/x.py\n1 * * * * ~/webapps/other/bin/tool\n",
    ),
    "python -c untouched": (
        "0 * * * * python2.7 -c 'import foo; foo.run()'\n",
        "0 * * * * python2.7 -c 'import foo; foo.run()'\n",
    ),
    "env line cleaned": (
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/webapps/app/code\n"
        "0 * * * * python2.7 ~/webapps/app/x.py\n",
        f"PYTHONPATH=/home/me/webapps/app/code\n0 * * * * {APP_PY} ~/webapps/app/x.py\n",
    ),
    # Commented out, not ``PYTHONPATH=``: Python 2 reads an empty entry as the working dir.
    "env line emptied": (
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/webapps/app/lib/python2.7\n",
        "# concentric-migrate: PYTHONPATH no longer lists concentric /home/me/lib/python2.7, "
        "/home/me/webapps/app/lib/python2.7: "
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/webapps/app/lib/python2.7\n",
    ),
    "an app's Apache started by cron reads PYTHONPATH too": (
        "PYTHONPATH=/home/me/lib/python2.7\n"
        "*/20 * * * * ~/webapps/app/apache2/bin/start\n"
        "*/20 * * * * ~/webapps/other/apache2/bin/start\n",
        "PYTHONPATH=/home/me/lib/python2.7\n"
        "*/20 * * * * PYTHONPATH= ~/webapps/app/apache2/bin/start\n"
        "*/20 * * * * ~/webapps/other/apache2/bin/start\n",
    ),
    "quoted env line": (
        'PYTHONPATH = "/home/me/lib/python2.7:/home/me/code"\n',
        'PYTHONPATH = "/home/me/code"\n',
    ),
    "quoted env line emptied": (
        "PYTHONPATH='/home/me/lib/python2.7'\n",
        "# concentric-migrate: PYTHONPATH no longer lists concentric /home/me/lib/python2.7: "
        "PYTHONPATH='/home/me/lib/python2.7'\n",
    ),
    "env line kept, inline for migrated": (
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/code\n"
        "0 * * * * python2.7 ~/webapps/app/x.py\n"
        "1 * * * * python2.7 ~/webapps/other/y.py\n",
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/code\n"
        f"0 * * * * PYTHONPATH=/home/me/code {APP_PY} ~/webapps/app/x.py\n"
        "1 * * * * python2.7 ~/webapps/other/y.py\n",
    ),
    "env line kept, empty inline": (
        "PYTHONPATH=/home/me/lib/python2.7\n"
        "1 * * * * python2.7 -c 'import x'\n"
        "0 * * * * cd ~/webapps/app && DJANGO_SETTINGS_MODULE=s python2.7 manage.py x\n",
        "PYTHONPATH=/home/me/lib/python2.7\n"
        "1 * * * * python2.7 -c 'import x'\n"
        f"0 * * * * cd ~/webapps/app && PYTHONPATH= DJANGO_SETTINGS_MODULE=s {APP_PY} manage.py x\n",
    ),
    "env line value needing quotes inline": (
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/my code\n"
        "0 * * * * ~/bin/report.py\n"
        "1 * * * * ~/webapps/other/bin/tool\n",
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/my code\n"
        f"0 * * * * PYTHONPATH='/home/me/my code' {HOME_PY} ~/bin/report.py\n"
        "1 * * * * ~/webapps/other/bin/tool\n",
    ),
    "a later env line ends the scope": (
        "PYTHONPATH=/home/me/lib/python2.7\n"
        "0 * * * * python2.7 ~/webapps/app/x.py\n"
        "PYTHONPATH=/home/me/webapps/other/lib/python2.7\n"
        "1 * * * * python2.7 ~/webapps/other/y.py\n",
        "# concentric-migrate: PYTHONPATH no longer lists concentric /home/me/lib/python2.7: "
        "PYTHONPATH=/home/me/lib/python2.7\n"
        f"0 * * * * {APP_PY} ~/webapps/app/x.py\n"
        "PYTHONPATH=/home/me/webapps/other/lib/python2.7\n"
        "1 * * * * python2.7 ~/webapps/other/y.py\n",
    ),
    "env line with no Python job below is cleaned": (
        "PYTHONPATH=/home/me/lib/python2.7:/home/me/code\n*/20 * * * * ~/webapps/app/apache2/bin/start\n",
        "PYTHONPATH=/home/me/code\n*/20 * * * * ~/webapps/app/apache2/bin/start\n",
    ),
    "inline assignment cleaned": (
        "0 * * * * PYTHONPATH=~/lib/python2.7:~/webapps/app/code python2.7 ~/webapps/app/x.py\n",
        f"0 * * * * PYTHONPATH=~/webapps/app/code {APP_PY} ~/webapps/app/x.py\n",
    ),
    "inline assignment dropped": (
        "0 * * * * PYTHONPATH=~/lib/python2.7  python2.7 ~/webapps/app/x.py\n",
        f"0 * * * * {APP_PY} ~/webapps/app/x.py\n",
    ),
    "inline assignment emptied, not dropped, under an env line": (
        "PYTHONPATH=/home/me/code\n"
        "0 * * * * PYTHONPATH=~/lib/python2.7 python2.7 ~/webapps/app/x.py\n",
        f"PYTHONPATH=/home/me/code\n0 * * * * PYTHONPATH= {APP_PY} ~/webapps/app/x.py\n",
    ),
    "inline assignment after env": (
        "0 * * * * env PYTHONPATH=$HOME/lib/python2.7 LANG=C python2.7 ~/webapps/app/x.py\n",
        f"0 * * * * env LANG=C {APP_PY} ~/webapps/app/x.py\n",
    ),
    "inline assignment of an unmigrated job untouched": (
        "0 * * * * PYTHONPATH=~/lib/python2.7 python2.7 ~/webapps/other/x.py\n",
        "0 * * * * PYTHONPATH=~/lib/python2.7 python2.7 ~/webapps/other/x.py\n",
    ),
    "export inside a job": (
        "0 * * * * export PYTHONPATH=~/lib/python2.7:~/code; python2.7 ~/webapps/app/x.py\n",
        f"0 * * * * export PYTHONPATH=~/code; {APP_PY} ~/webapps/app/x.py\n",
    ),
    "export inside a job kept for a later unknown command": (
        "0 * * * * export PYTHONPATH=~/lib/python2.7; python2.7 ~/webapps/app/x.py; ./other.sh\n",
        f"0 * * * * export PYTHONPATH=~/lib/python2.7; PYTHONPATH= {APP_PY} ~/webapps/app/x.py; ./other.sh\n",
    ),
    "percent escapes and stdin": (
        "0 0 * * * python2.7 ~/webapps/app/x.py --day $(date +\\%Y\\%m) % line 1 % line 2\n",
        f"0 0 * * * {APP_PY} ~/webapps/app/x.py --day $(date +\\%Y\\%m) % line 1 % line 2\n",
    ),
    "stdin for the interpreter": (
        "0 0 * * * date +\\%Y; python2.7 %print 1\n",
        "0 0 * * * date +\\%Y; python2.7 %print 1\n",
    ),
    "MAILTO PATH SHELL untouched": (
        'MAILTO="me@example.com"\nPATH=/home/me/bin:/usr/bin:/bin\nSHELL=/bin/bash\n',
        'MAILTO="me@example.com"\nPATH=/home/me/bin:/usr/bin:/bin\nSHELL=/bin/bash\n',
    ),
    "staggered restarts untouched": (
        "*/20 * * * * /home/me/webapps/app/apache2/bin/start\n"
        "1,21,41 * * * * ~/webapps/other/apache2/bin/start >/dev/null 2>&1\n",
        "*/20 * * * * /home/me/webapps/app/apache2/bin/start\n"
        "1,21,41 * * * * ~/webapps/other/apache2/bin/start >/dev/null 2>&1\n",
    ),
    "comments and blank lines untouched": (
        "# python2.7 ~/webapps/app/x.py\n\n   \n  # PYTHONPATH=/home/me/lib/python2.7\n",
        "# python2.7 ~/webapps/app/x.py\n\n   \n  # PYTHONPATH=/home/me/lib/python2.7\n",
    ),
    "@reboot and @daily": (
        "@reboot python2.7 ~/webapps/app/worker.py\n@daily\tpython3 -m cleanup\n",
        f"@reboot {APP_PY} ~/webapps/app/worker.py\n@daily\t{HOME_PY} -m cleanup\n",
    ),
    "spacing kept": (
        "  0\t3  * * *   python2.7   ~/webapps/app/x.py   --flag  \n",
        f"  0\t3  * * *   {APP_PY}   ~/webapps/app/x.py   --flag  \n",
    ),
    "no trailing newline": (
        "0 3 * * * python2.7 ~/webapps/app/x.py",
        f"0 3 * * * {APP_PY} ~/webapps/app/x.py",
    ),
    "quoted script path": (
        "0 3 * * * python2.7 '/home/me/webapps/app/my script.py'\n",
        f"0 3 * * * {APP_PY} '/home/me/webapps/app/my script.py'\n",
    ),
    "double-quoted program keeps its quotes": (
        '0 3 * * * "/usr/bin/python2.7" "$HOME/webapps/app/x.py"\n',
        f'0 3 * * * "{APP_PY}" "$HOME/webapps/app/x.py"\n',
    ),
    "several commands": (
        "0 3 * * * python2.7 ~/webapps/app/a.py && python2.7 ~/bin/b.py | mail -s b me\n",
        f"0 3 * * * {APP_PY} ~/webapps/app/a.py && {HOME_PY} ~/bin/b.py | mail -s b me\n",
    ),
    "shell comment after the command": (
        "0 3 * * * python2.7 ~/webapps/app/x.py # python2.7 ~/webapps/app/y.py\n",
        f"0 3 * * * {APP_PY} ~/webapps/app/x.py # python2.7 ~/webapps/app/y.py\n",
    ),
    "already the venv": (
        f"0 3 * * * {APP_PY} ~/webapps/app/x.py\n0 4 * * * ~/webapps/app/venv/bin/python -m x\n",
        f"0 3 * * * {APP_PY} ~/webapps/app/x.py\n0 4 * * * ~/webapps/app/venv/bin/python -m x\n",
    ),
    "unbalanced quote untouched": (
        "0 3 * * * python2.7 ~/webapps/app/x.py 'oops\n",
        "0 3 * * * python2.7 ~/webapps/app/x.py 'oops\n",
    ),
    "not a job untouched": (
        "0 3 * * python2.7 ~/webapps/app/x.py\n@every python2.7 ~/webapps/app/x.py\n",
        "0 3 * * python2.7 ~/webapps/app/x.py\n@every python2.7 ~/webapps/app/x.py\n",
    ),
}


@pytest.mark.parametrize(("before", "after"), CASES.values(), ids=CASES.keys())
def test_rewrite(before: str, after: str) -> None:
    result = rewrite_crontab(before, TARGETS)
    assert result.text == after
    assert result.changed == (before != after)
    changed_lines = [
        n
        for n, (a, b) in enumerate(zip(before.split("\n"), after.split("\n"), strict=True), 1)
        if a != b
    ]
    assert [c.line for c in result.changes] == changed_lines


@pytest.mark.parametrize("after", [after for _, after in CASES.values()], ids=CASES.keys())
def test_idempotent(after: str) -> None:
    again = rewrite_crontab(after, TARGETS)
    assert again.text == after
    assert not again.changes


def test_change_records_line_and_why() -> None:
    text = "MAILTO=me\n0 3 * * * PYTHONPATH=~/lib/python2.7 python2.7 ~/webapps/app/x.py\n"
    (change,) = rewrite_crontab(text, TARGETS).changes
    assert change == Change(
        2,
        "0 3 * * * PYTHONPATH=~/lib/python2.7 python2.7 ~/webapps/app/x.py",
        f"0 3 * * * {APP_PY} ~/webapps/app/x.py",
        "PYTHONPATH no longer lists concentric ~/lib/python2.7; "
        "runs the venv Python of app app instead of python2.7",
    )


def test_kept_env_line_is_named_in_the_why() -> None:
    text = "PYTHONPATH=/home/me/lib/python2.7\n0 * * * * python2.7 ~/webapps/app/x.py\n1 * * * * python2.7 x.py\n"
    changes = rewrite_crontab(text, CronTargets(HOME, {"app": "/v"})).changes
    assert [c.line for c in changes] == [2]
    assert "line 1 stays" in changes[0].why


def test_bare_job_assignment_stays_exported() -> None:
    """A job's bare ``PYTHONPATH=...;`` reaches its commands because the environment line
    exported it; commenting that line out must not lose the job's own value."""
    text = (
        "PYTHONPATH=/home/me/lib/python3.11\n"
        "0 * * * * PYTHONPATH=/home/me/webapps/app/src; python3.11 ~/webapps/app/x.py\n"
    )
    result = rewrite_crontab(text, CronTargets(HOME, {"app": "/v"}))
    assert result.text.splitlines()[1] == (
        "0 * * * * export PYTHONPATH=/home/me/webapps/app/src; /v/bin/python ~/webapps/app/x.py"
    )
    assert result.text.startswith(f"# {MARKER}")
    assert "export added" in result.changes[1].why


def test_deeply_nested_command_is_left_alone() -> None:
    text = "0 * * * * python2.7 ~/webapps/app/x.py " + "$(" * 5000 + "\n"
    assert rewrite_crontab(text, TARGETS).text == text


def test_venv_path_with_spaces_is_single_quoted() -> None:
    targets = CronTargets(HOME, {"app": "/home/me/my venvs/app"})
    result = rewrite_crontab("0 3 * * * python2.7 ~/webapps/app/x.py\n", targets)
    assert result.text == "0 3 * * * '/home/me/my venvs/app/bin/python' ~/webapps/app/x.py\n"
    assert rewrite_crontab(result.text, targets).text == result.text


def test_percent_in_venv_path_is_escaped() -> None:
    targets = CronTargets(HOME, {"app": "/home/me/v%1"})
    result = rewrite_crontab("0 3 * * * python2.7 ~/webapps/app/x.py\n", targets)
    assert result.text == "0 3 * * * /home/me/v\\%1/bin/python ~/webapps/app/x.py\n"
    assert rewrite_crontab(result.text, targets).text == result.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 * * * * echo " + "x" * MAX_LINE + "\n", "longer than"),
        ("MAILTO=me\n0 * * * * echo \x00\n", "line 2 contains a NUL"),
    ],
)
def test_refuses_lines_cron_would_not_run(text: str, message: str) -> None:
    with pytest.raises(CannotRewrite, match=message):
        rewrite_crontab(text, TARGETS)


_SCHEDULES = st.sampled_from(
    ["* * * * *", "*/20 * * * *", "0 3 * * 1-5", "@reboot", "@daily", "1,21,41 * * * *"]
)
_WORDS = st.sampled_from(
    [
        "~/webapps/app/apache2/bin/start", "/home/me/bin/backup.sh", "cd ~/webapps/app", "&&",
        "||", ";", "|", ">/dev/null", "2>&1", "'quoted word'", '"$HOME/x"', "date +\\%Y",
        "%", "% stdin", "PYTHONPATH=/home/me/code", "env", "A=1", "$(cat x)", "`id`", "#",
        "mail -s subject me", "perl", "ruby", "node", "'", '"',
    ]
)  # fmt: skip
_FREE = st.text(st.characters(blacklist_characters="\n\x00"), max_size=30)
_JOB = st.builds(
    lambda schedule, words: f"{schedule} {' '.join(words)}",
    _SCHEDULES,
    st.lists(st.one_of(_WORDS, _FREE), min_size=1, max_size=8),
)
_ENV = st.builds(
    lambda name, value: f"{name}={value}",
    st.sampled_from(["MAILTO", "PATH", "SHELL", "PYTHONPATH", "HOME", "LANG"]),
    st.one_of(st.sampled_from(["/home/me/code:/usr/lib", "'/x:/y'", '"a b"', ""]), _FREE),
)
_LINE = st.one_of(_JOB, _ENV, _FREE, st.just(""), _FREE.map(lambda t: "# " + t))


@given(st.lists(_LINE, max_size=12), st.sampled_from(["", "\n"]))
def test_crontab_without_python_or_concentric_dirs_is_kept(lines: list[str], end: str) -> None:
    text = "\n".join(lines) + end
    assume("python" not in text and "packages" not in text)
    result = rewrite_crontab(text, TARGETS)
    assert result.text == text
    assert not result.changes


_PYTHON_WORDS = st.sampled_from(
    [
        "python2.7", "/usr/bin/python3", "python", "-u", "-m", "mod", "-c", "'x'",
        "~/webapps/app/x.py", "~/webapps/other/y.py", "manage.py", "cd ~/webapps/app",
        "cd ~/webapps/other", "cd", "&&", ";", "|", "PYTHONPATH=~/lib/python2.7",
        "PYTHONPATH=/home/me/lib/python2.7:/x", "PYTHONPATH=", "export", "env", "A=1",
        "~/bin/report.py", "bin/tool", "%", "\\%", "'", '"', "#", APP_PY, '"python2.7"',
    ]
)  # fmt: skip
_PYTHON_JOB = st.builds(
    lambda schedule, words: f"{schedule} {' '.join(words)}",
    _SCHEDULES,
    st.lists(st.one_of(_PYTHON_WORDS, _FREE), min_size=1, max_size=8),
)
_PYTHONPATH_LINE = st.sampled_from(
    ["PYTHONPATH=/home/me/lib/python2.7", "PYTHONPATH='~/lib/python2.7:/a b'", "PYTHONPATH=/x"]
)


@given(st.lists(st.one_of(_PYTHON_JOB, _PYTHONPATH_LINE, _LINE), max_size=8))
def test_rewriting_twice_changes_nothing_more(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    once = rewrite_crontab(text, TARGETS)
    assert once.text.count("\n") == text.count("\n")
    twice = rewrite_crontab(once.text, TARGETS)
    assert twice.text == once.text
    assert not twice.changes


VENV_SHEBANG = CronTargets(
    HOME,
    {"app": "/home/me/webapps/app/venv"},
    venv_shebangs=frozenset({"/home/me/webapps/app/bin/tool"}),
)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "1 * * * * PYTHONPATH=$HOME/lib/python3.11 ~/webapps/app/bin/tool\n",
            "1 * * * * ~/webapps/app/bin/tool\n",
        ),
        (
            "1 * * * * cd ~/webapps/app && PYTHONPATH=/home/me/lib/python3.11:src bin/tool\n",
            "1 * * * * cd ~/webapps/app && PYTHONPATH=src bin/tool\n",
        ),
        (  # the environment line reaches only this job, which now runs the venv
            "PYTHONPATH=/home/me/lib/python3.11\n1 * * * * ~/webapps/app/bin/tool\n",
            f"# {MARKER} PYTHONPATH no longer lists concentric /home/me/lib/python3.11: "
            "PYTHONPATH=/home/me/lib/python3.11\n1 * * * * ~/webapps/app/bin/tool\n",
        ),
    ],
)
def test_script_pointed_at_the_venv_loses_its_concentric_pythonpath(
    before: str, after: str
) -> None:
    """The script's shebang names the venv after the migration: a ``PYTHONPATH`` set for
    it would still put the old dirs first (issue 15)."""
    result = rewrite_crontab(before, VENV_SHEBANG)
    assert result.text == after
    if "* PYTHONPATH=" in before or "&& PYTHONPATH=" in before:  # inline: only for a venv
        unknown = CronTargets(HOME, {"app": "/home/me/webapps/app/venv"})
        assert rewrite_crontab(before, unknown).text == before

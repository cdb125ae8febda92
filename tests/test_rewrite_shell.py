"""Shebangs point at the venv; start scripts stop exporting concentric dirs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from migrate.rewrite import CannotRewrite, Change
from migrate.rewrite.shell import clean_path_list, rewrite_shebang, rewrite_start_script

HOME = "/home/me"
VENV = "/home/me/webapps/app/venv"
PY = f"{VENV}/bin/python"

# --------------------------------------------------------------------------- path lists

PATH_LISTS = {
    "plain": ("/home/me/lib/python2.7:/home/me/code", "/home/me/code"),
    "app lib and egg": (
        "/home/me/webapps/app/lib/python2.7/Foo-1.0-py2.7.egg:/x:/home/me/webapps/app/lib/python2.7",
        "/x",
    ),
    "tilde and $HOME": ("~/lib/python3.6:$HOME/lib/python2.7:${HOME}/code", "${HOME}/code"),
    "site-packages": ("/usr/lib/python3/dist-packages:/opt/x", "/opt/x"),
    "all concentric": ("/home/me/lib/python2.7:~/webapps/a/lib/python2.7", ""),
    "nothing concentric kept byte for byte": (
        "'/a':\"/b\"::$PYTHONPATH",
        "'/a':\"/b\"::$PYTHONPATH",
    ),
    "double quoted": ('"$HOME/lib/python2.7:$PYTHONPATH"', '"$PYTHONPATH"'),
    "single quoted": ("'/home/me/lib/python2.7:/x y'", "'/x y'"),
    "mixed quoting": ("/home/me/lib/python2.7:'/x y':\"$A\"", "'/x y':\"$A\""),
    "quoted empty result": ('"/home/me/lib/python2.7"', ""),
    "expansion with a colon": (
        "/home/me/lib/python2.7${PYTHONPATH:+:$PYTHONPATH}:/x",
        "/home/me/lib/python2.7${PYTHONPATH:+:$PYTHONPATH}:/x",
    ),
    "command substitution with a colon": ("~/lib/python2.7:$(cat a:b)", "$(cat a:b)"),
    "empty entry kept": ("/home/me/lib/python2.7::/x", ":/x"),
    "unbalanced kept": ("'/home/me/lib/python2.7", "'/home/me/lib/python2.7"),
    "relative and app code kept": (
        "lib/python2.7:/home/me/webapps/app",
        "lib/python2.7:/home/me/webapps/app",
    ),
}


@pytest.mark.parametrize(("value", "cleaned"), PATH_LISTS.values(), ids=PATH_LISTS.keys())
def test_clean_path_list(value: str, cleaned: str) -> None:
    assert clean_path_list(value, HOME) == cleaned
    assert clean_path_list(cleaned, HOME) == cleaned


# --------------------------------------------------------------------------- shebangs

SHEBANGS = {
    "absolute python2.7": ("#!/usr/local/bin/python2.7\nprint 'hi'\n", f"#!{PY}\nprint 'hi'\n"),
    "usr bin python": ("#!/usr/bin/python\nimport sys\n", f"#!{PY}\nimport sys\n"),
    "python3": ("#!/usr/bin/python3\n", f"#!{PY}\n"),
    "env python2.7": ("#!/usr/bin/env python2.7\nx = 1\n", f"#!{PY}\nx = 1\n"),
    "env -S with an option": ("#!/usr/bin/env -S python3 -u\n", f"#!{PY} -u\n"),
    "option kept": ("#!/usr/local/bin/python2.7 -u\n", f"#!{PY} -u\n"),
    "combined options kept": ("#!/usr/bin/python -uO\n", f"#!{PY} -uO\n"),
    "space after #! kept": ("#! /usr/bin/python2.7\n", f"#! {PY}\n"),
    "env -S with several options keeps env": (
        "#!/usr/bin/env -S python3 -u -W ignore\n",
        f"#!/usr/bin/env -S {PY} -u -W ignore\n",
    ),
    "env -S with an assignment keeps env": (
        "#!/usr/bin/env -S LANG=C python3\n",
        f"#!/usr/bin/env -S LANG=C {PY}\n",
    ),
    "CRLF kept": ("#!/usr/bin/python\r\nprint(1)\r\n", f"#!{PY}\r\nprint(1)\r\n"),
    "no newline": ("#!/usr/bin/env python", f"#!{PY}"),
    "not python: sh": ("#!/bin/sh\nexec python2.7 x.py\n", "#!/bin/sh\nexec python2.7 x.py\n"),
    "not python: env bash": ("#!/usr/bin/env bash\n", "#!/usr/bin/env bash\n"),
    "not python: pythonista": ("#!/usr/bin/pythonista\n", "#!/usr/bin/pythonista\n"),
    "no shebang": ("import os\n", "import os\n"),
    "shebang on line 2": ("\n#!/usr/bin/python\n", "\n#!/usr/bin/python\n"),
    "empty": ("", ""),
    "bare #!": ("#!\n", "#!\n"),
    "already the venv": (f"#!{PY} -u\n", f"#!{PY} -u\n"),
}


@pytest.mark.parametrize(("before", "after"), SHEBANGS.values(), ids=SHEBANGS.keys())
def test_rewrite_shebang(before: str, after: str) -> None:
    result = rewrite_shebang(before, venv=VENV)
    assert result.text == after
    assert [c.line for c in result.changes] == ([1] if before != after else [])
    assert rewrite_shebang(after, venv=VENV).text == after


def test_shebang_change_record() -> None:
    (change,) = rewrite_shebang("#!/usr/bin/env python2.7\nx\n", venv=VENV + "/").changes
    assert change == Change(
        1,
        "#!/usr/bin/env python2.7",
        f"#!{PY}",
        f"the script runs with the venv's Python ({PY}) instead of python2.7",
    )


@pytest.mark.parametrize(
    ("text", "venv", "message"),
    [
        ("#!/usr/bin/python\n", "/home/me/" + "v" * 120, "too long for a shebang"),
        ("#!/usr/bin/python -u\n", "/home/me/" + "v" * 104, "shorter path"),
        ("#!/usr/bin/python\n", "/home/me/my venv", "whitespace"),
        ("#!/usr/bin/env -i python\n", VENV, "env options"),
    ],
)
def test_shebang_refused(text: str, venv: str, message: str) -> None:
    with pytest.raises(CannotRewrite, match=message):
        rewrite_shebang(text, venv=venv)


def test_shebang_at_the_limit_fits() -> None:
    venv = "/" + "v" * (127 - len("#!/bin/python") - 1)
    assert len(rewrite_shebang("#!/usr/bin/python\n", venv=venv).text) == 128


def test_rewritten_script_runs_with_the_venv(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    script = tmp_path / "job.py"
    source = "#!/usr/bin/env python3\nimport sys\nprint(sys.prefix)\n"
    script.write_text(rewrite_shebang(source, venv=str(venv)).text)
    script.chmod(0o755)
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    assert os.path.realpath(out.strip()) == os.path.realpath(venv)


_FIRST_LINES = st.one_of(
    st.sampled_from(
        [
            "#!/bin/sh",
            "#!/bin/bash -e",
            "#!/usr/bin/env bash",
            "#!/usr/bin/perl -w",
            "#!",
            "# -*- coding: utf-8 -*-",
            "import sys",
            "",
        ]
    ),
    st.text(st.characters(blacklist_characters="\n"), max_size=40),
    st.text(st.characters(blacklist_characters="\n"), max_size=40).map(lambda t: "#!" + t),
)


@given(_FIRST_LINES, st.text(max_size=80), st.sampled_from(["\n", "\r\n", ""]))
def test_non_python_shebang_is_kept(first: str, rest: str, newline: str) -> None:
    assume(not re.match(r"#!.*python", first))
    text = first + (newline + rest if newline else "")
    result = rewrite_shebang(text, venv=VENV)
    assert result.text == text
    assert not result.changes


# --------------------------------------------------------------------------- start scripts

HTTPD = "/home/me/webapps/app/apache2/bin/httpd.worker -f /home/me/webapps/app/apache2/conf/httpd.conf -k start"
NOTE = "# concentric-migrate: PYTHONPATH no longer lists concentric"

START = {
    "export emptied is commented out": (
        "#!/bin/sh\nexport PYTHONPATH=/home/me/lib/python2.7\n" + HTTPD + "\n",
        f"#!/bin/sh\n{NOTE} /home/me/lib/python2.7: export PYTHONPATH=/home/me/lib/python2.7\n{HTTPD}\n",
    ),
    "export cleaned": (
        "export PYTHONPATH=/home/me/webapps/app/lib/python2.7:/home/me/webapps/app/myproject\n",
        "export PYTHONPATH=/home/me/webapps/app/myproject\n",
    ),
    "assign then export, emptied": (
        "PYTHONPATH=/home/me/lib/python2.7; export PYTHONPATH\n",
        f"{NOTE} /home/me/lib/python2.7: PYTHONPATH=/home/me/lib/python2.7; export PYTHONPATH\n",
    ),
    "assign then export keeps $PYTHONPATH": (
        "PYTHONPATH=/home/me/lib/python2.7:$PYTHONPATH; export PYTHONPATH\n",
        "PYTHONPATH=$PYTHONPATH; export PYTHONPATH\n",
    ),
    "double quotes kept": (
        'export PYTHONPATH="$HOME/lib/python2.7:${PYTHONPATH}"\n',
        'export PYTHONPATH="${PYTHONPATH}"\n',
    ),
    "single-quoted entry dropped": (
        "export PYTHONPATH='/home/me/lib/python2.7':/home/me/code\n",
        "export PYTHONPATH=/home/me/code\n",
    ),
    "inline word dropped": (
        f'PYTHONPATH="/home/me/webapps/app/lib/python2.7" {HTTPD}\n',
        f"{HTTPD}\n",
    ),
    "inline word cleaned": (
        f'LD_LIBRARY_PATH=/home/me/webapps/app/apache2/lib PYTHONPATH="/home/me/lib/python2.7:/home/me/webapps/app/code" {HTTPD}\n',
        f'LD_LIBRARY_PATH=/home/me/webapps/app/apache2/lib PYTHONPATH="/home/me/webapps/app/code" {HTTPD}\n',
    ),
    "inline word through env dropped": (
        f"env PYTHONPATH=/home/me/lib/python2.7 {HTTPD}\n",
        f"env {HTTPD}\n",
    ),
    "inline before exec on a continued line": (
        f"PYTHONPATH=/home/me/lib/python2.7 \\\n    exec {HTTPD}\n",
        f"\\\n    exec {HTTPD}\n",
    ),
    "one of several exports dropped": (
        "export LANG=C PYTHONPATH=/home/me/lib/python2.7\n",
        "export LANG=C\n",
    ),
    "two exports of PYTHONPATH emptied": (
        "export PYTHONPATH=/home/me/lib/python2.7 PYTHONPATH=~/lib/python2.7 && echo\n",
        "export PYTHONPATH= PYTHONPATH= && echo\n",
    ),
    "export with another command on the line is emptied": (
        f"export PYTHONPATH=/home/me/lib/python2.7 && exec {HTTPD}\n",
        f"export PYTHONPATH= && exec {HTTPD}\n",
    ),
    "indented line in an if body is commented with its indent": (
        "if [ -d /x ]; then\n  export PYTHONPATH=/home/me/lib/python2.7\n  echo x\nfi\n",
        f"if [ -d /x ]; then\n  {NOTE} /home/me/lib/python2.7: export PYTHONPATH=/home/me/lib/python2.7\n  echo x\nfi\n",
    ),
    "sole command of an if body is emptied, not commented": (
        "if [ -d /x ]; then\n  export PYTHONPATH=/home/me/lib/python2.7\nfi\n",
        "if [ -d /x ]; then\n  export PYTHONPATH=\nfi\n",
    ),
    "WebFaction start script untouched": (
        f"#!/bin/sh\n\nLD_LIBRARY_PATH=/home/me/webapps/app/apache2/lib {HTTPD}\n",
        f"#!/bin/sh\n\nLD_LIBRARY_PATH=/home/me/webapps/app/apache2/lib {HTTPD}\n",
    ),
    "comments and here-documents untouched": (
        "# export PYTHONPATH=/home/me/lib/python2.7\ncat <<EOF >conf\nPYTHONPATH=/home/me/lib/python2.7\nEOF\necho x # PYTHONPATH=/home/me/lib/python2.7\n",
        "# export PYTHONPATH=/home/me/lib/python2.7\ncat <<EOF >conf\nPYTHONPATH=/home/me/lib/python2.7\nEOF\necho x # PYTHONPATH=/home/me/lib/python2.7\n",
    ),
    "non-concentric PYTHONPATH untouched": (
        "export PYTHONPATH=/home/me/webapps/app/code:$PYTHONPATH\n",
        "export PYTHONPATH=/home/me/webapps/app/code:$PYTHONPATH\n",
    ),
    "no trailing newline": (
        "export PYTHONPATH=/home/me/lib/python2.7:/x",
        "export PYTHONPATH=/x",
    ),
    "CRLF line kept": (
        "export PYTHONPATH=/home/me/lib/python2.7\r\necho\r\n",
        f"{NOTE} /home/me/lib/python2.7: export PYTHONPATH=/home/me/lib/python2.7\r\necho\r\n",
    ),
    "CRLF value cleaned": (
        "export PYTHONPATH=/x:/home/me/lib/python2.7\r\n",
        "export PYTHONPATH=/x\r\n",
    ),
}


@pytest.mark.parametrize(("before", "after"), START.values(), ids=START.keys())
def test_rewrite_start_script(before: str, after: str) -> None:
    result = rewrite_start_script(before, home=HOME)
    assert result.text == after
    assert result.changed == (before != after)
    again = rewrite_start_script(after, home=HOME)
    assert again.text == after
    assert not again.changes


def test_start_script_change_records() -> None:
    text = "#!/bin/sh\nexport PYTHONPATH=/home/me/lib/python2.7:/x\nPYTHONPATH=~/lib/python2.7 exec httpd\n"
    changes = rewrite_start_script(text, home=HOME).changes
    assert changes == (
        Change(
            2,
            "export PYTHONPATH=/home/me/lib/python2.7:/x",
            "export PYTHONPATH=/x",
            "PYTHONPATH no longer lists concentric /home/me/lib/python2.7",
        ),
        Change(
            3,
            "PYTHONPATH=~/lib/python2.7 exec httpd",
            "exec httpd",
            "PYTHONPATH no longer lists concentric ~/lib/python2.7",
        ),
    )


def test_unreadable_start_script() -> None:
    with pytest.raises(CannotRewrite, match="cannot read the start script"):
        rewrite_start_script("export PYTHONPATH='/home/me/lib/python2.7\n", home=HOME)
    text = "export PYTHONPATH='/home/me/code\n"
    assert rewrite_start_script(text, home=HOME).text == text
    with pytest.raises(CannotRewrite, match="nested too deeply"):
        rewrite_start_script("export PYTHONPATH=~/lib/python2.7:" + "$(" * 5000, home=HOME)


_SH = st.sampled_from(
    [
        "export ", "PYTHONPATH=", "$PYTHONPATH", "${PYTHONPATH}", ":", "/home/me/webapps/app/code",
        "~/bin", "$HOME/code", "'", '"', ";", "\n", " ", "\t", "#", "&&", "||", "|", "$(", ")",
        "${", "}", "\\", "if ", "then", "fi", "<<EOF\n", "EOF\n", "<<-X", "env ", "exec ",
        HTTPD, "`", "2>&1", ">/dev/null",
    ]
)  # fmt: skip


@given(st.lists(st.one_of(_SH, st.text(max_size=10)), max_size=40))
def test_start_script_without_concentric_dirs_is_kept(pieces: list[str]) -> None:
    text = "".join(pieces)
    assume("python" not in text and "packages" not in text)
    result = rewrite_start_script(text, home=HOME)
    assert result.text == text
    assert not result.changes


_CONCENTRIC_SH = st.sampled_from(
    [
        "PYTHONPATH=/home/me/lib/python2.7", "~/lib/python2.7", ":$HOME/webapps/app/lib/python2.7",
        "if true; then\n", "fi\n", "\\\n", "\r",
    ]
)  # fmt: skip


@given(st.lists(st.one_of(_SH, _CONCENTRIC_SH), max_size=30))
def test_start_script_rewriting_twice_changes_nothing_more(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        once = rewrite_start_script(text, home=HOME)
    except CannotRewrite:
        return
    twice = rewrite_start_script(once.text, home=HOME)
    assert twice.text == once.text
    assert not twice.changes

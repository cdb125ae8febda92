"""rewrite_python: concentric sys.path edits in WSGI files and scripts are disabled, nothing else.

Every table case is also checked for idempotence and for compiling exactly when its input
compiles: under this Python, and under Python 2.7 when one is installed (pyenv or PATH).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import string
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.rewrite import MARKER, CannotRewrite
from migrate.rewrite.pyfile import rewrite_python

HOME = "/home/me"
P = "# concentric-migrate: concentric lib dir, the app's venv has its packages: "
A = "# concentric-migrate: activates another environment, the app's venv replaces it: "
V = "# concentric-migrate: path of the activation disabled here, nothing else uses it: "
D = "# concentric-migrate: dropped concentric lib dirs, the app's venv has their packages: "
LIB = "'/home/me/lib/python2.7'"

CASES = [
    # -- the calls ------------------------------------------------------------------------
    (
        "insert",
        f"import sys\nsys.path.insert(0, {LIB})\nimport django\n",
        f"import sys\n{P}sys.path.insert(0, {LIB})\nimport django\n",
    ),
    (
        "append-double-quotes",
        'import sys\nsys.path.append("/home/me/webapps/app/lib/python3.11")\n',
        f'import sys\n{P}sys.path.append("/home/me/webapps/app/lib/python3.11")\n',
    ),
    (
        "insert-other-index",
        "import sys\nsys.path.insert(1, '/home/me/lib/python3.6/foo-1.0-py3.6.egg')\n",
        f"import sys\n{P}sys.path.insert(1, '/home/me/lib/python3.6/foo-1.0-py3.6.egg')\n",
    ),
    (
        "addsitedir",
        "import site\nsite.addsitedir('/home/me/webapps/app/lib/python2.7')\n",
        f"import site\n{P}site.addsitedir('/home/me/webapps/app/lib/python2.7')\n",
    ),
    (
        "from-site-import",
        f"from site import addsitedir\naddsitedir({LIB})\n",
        f"from site import addsitedir\n{P}addsitedir({LIB})\n",
    ),
    (
        "from-site-import-as-in-parentheses",
        f"from site import (getsitepackages,\n    addsitedir as add)\nadd({LIB})\n",
        f"from site import (getsitepackages,\n    addsitedir as add)\n{P}add({LIB})\n",
    ),
    (
        "import-sys-as",
        f"import sys as _sys\n_sys.path.insert(0, {LIB})\n",
        f"import sys as _sys\n{P}_sys.path.insert(0, {LIB})\n",
    ),
    (
        "from-sys-import-path",
        f"from sys import path\npath.append({LIB})\n",
        f"from sys import path\n{P}path.append({LIB})\n",
    ),
    (
        "addsitedir-without-site-import-is-not-site",
        f"def addsitedir(p):\n    pass\naddsitedir({LIB})\n",
        None,
    ),
    (
        "other-environment-site-packages",
        "import site\nsite.addsitedir('/home/me/.virtualenvs/old/lib/python2.7/site-packages')\n",
        f"import site\n{P}site.addsitedir('/home/me/.virtualenvs/old/lib/python2.7/site-packages')\n",
    ),
    # -- string forms -------------------------------------------------------------------
    (
        "triple-quoted",
        "import sys\nsys.path.insert(0, '''/home/me/lib/python2.7''')\n",
        f"import sys\n{P}sys.path.insert(0, '''/home/me/lib/python2.7''')\n",
    ),
    (
        "raw-unicode-bytes-prefixes",
        "sys.path.append(r'/home/me/lib/python2.7')\nsys.path.append(u\"/home/me/lib/python2.7\")\n"
        "sys.path.append(b'/home/me/lib/python2.7')\n",
        f"{P}sys.path.append(r'/home/me/lib/python2.7')\n{P}sys.path.append(u\"/home/me/lib/python2.7\")\n"
        f"{P}sys.path.append(b'/home/me/lib/python2.7')\n",
    ),
    (
        "implicit-concatenation",
        "sys.path.insert(0, '/home/me' '/lib/python2.7')\n",
        f"{P}sys.path.insert(0, '/home/me' '/lib/python2.7')\n",
    ),
    # -- values ---------------------------------------------------------------------------
    (
        "expanduser",
        "import os, sys\nsys.path.insert(0, os.path.expanduser('~/lib/python2.7'))\n",
        f"import os, sys\n{P}sys.path.insert(0, os.path.expanduser('~/lib/python2.7'))\n",
    ),
    (
        "join-of-literals",
        "sys.path.insert(0, os.path.join('/home/me', 'lib', 'python2.7'))\n",
        f"{P}sys.path.insert(0, os.path.join('/home/me', 'lib', 'python2.7'))\n",
    ),
    (
        "concatenation",
        "sys.path.insert(0, '/home/me' + '/lib/python2.7')\n",
        f"{P}sys.path.insert(0, '/home/me' + '/lib/python2.7')\n",
    ),
    (
        "environ-home",
        "sys.path.append(os.environ['HOME'] + '/lib/python3.6')\n",
        f"{P}sys.path.append(os.environ['HOME'] + '/lib/python3.6')\n",
    ),
    (
        "join-expanduser-home",
        "sys.path.append(os.path.join(os.path.expanduser('~'), 'lib', 'python3.6'))\n",
        f"{P}sys.path.append(os.path.join(os.path.expanduser('~'), 'lib', 'python3.6'))\n",
    ),
    (
        "posixpath-and-getenv",
        "import posixpath as pp\nsys.path.append(pp.join(os.getenv('HOME'), 'lib/python3.6'))\n",
        f"import posixpath as pp\n{P}sys.path.append(pp.join(os.getenv('HOME'), 'lib/python3.6'))\n",
    ),
    (
        "name-reference",
        f"LIB = {LIB}\nsys.path.insert(0, LIB)\n",
        f"LIB = {LIB}\n{P}sys.path.insert(0, LIB)\n",
    ),
    (
        "names-built-up",
        "HOME = os.environ['HOME']\nLIB = os.path.join(HOME, 'webapps', 'app')\nLIB += '/lib/python2.7'\n"
        "sys.path.insert(0, LIB)\n",
        "HOME = os.environ['HOME']\nLIB = os.path.join(HOME, 'webapps', 'app')\nLIB += '/lib/python2.7'\n"
        f"{P}sys.path.insert(0, LIB)\n",
    ),
    (
        "percent-format",
        "HOME = '/home/me'\nsys.path.insert(0, '%s/lib/python%s' % (HOME, '2.7'))\n",
        f"HOME = '/home/me'\n{P}sys.path.insert(0, '%s/lib/python%s' % (HOME, '2.7'))\n",
    ),
    (
        "str-format-and-fstring",
        "HOME = '/home/me'\nsys.path.append('{}/lib/python3.6'.format(HOME))\nsys.path.append(f'{HOME}/lib/python3.6')\n",
        f"HOME = '/home/me'\n{P}sys.path.append('{{}}/lib/python3.6'.format(HOME))\n{P}sys.path.append(f'{{HOME}}/lib/python3.6')\n",
    ),
    (
        "module-level-name-used-in-function",
        f"LIB = {LIB}\n\ndef application(environ, start_response):\n    sys.path.insert(0, LIB)\n    return []\n",
        f"LIB = {LIB}\n\ndef application(environ, start_response):\n    {P}sys.path.insert(0, LIB)\n    return []\n",
    ),
    # -- left alone -------------------------------------------------------------------------
    ("app-dir", "import sys\nsys.path.insert(0, '/home/me/webapps/app/myproject')\n", None),
    ("relative-dir", "sys.path.insert(0, 'lib/python2.7')\n", None),
    ("other-home", "sys.path.insert(0, '/home/other/lib/python2.7')\n", None),
    ("unevaluable-call", "sys.path.insert(0, some_function())\n", None),
    (
        "unevaluable-file-relative",
        "sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'lib', 'python2.7'))\n",
        None,
    ),
    ("unevaluable-environ", "sys.path.insert(0, os.environ['APP_LIB'])\n", None),
    (
        "name-rebound-in-a-branch",
        f"LIB = {LIB}\nif DEBUG:\n    LIB = compute()\nsys.path.insert(0, LIB)\n",
        None,
    ),
    (
        "name-rebound-by-for",
        f"LIB = {LIB}\nfor LIB in candidates():\n    pass\nsys.path.insert(0, LIB)\n",
        None,
    ),
    (
        "name-from-star-import",
        f"LIB = {LIB}\nfrom settings import *\nsys.path.insert(0, LIB)\n",
        None,
    ),
    (
        "function-local-does-not-leak",
        f"LIB = '/home/me/app'\ndef f():\n    LIB = {LIB}\nsys.path.insert(0, LIB)\n",
        None,
    ),
    ("whole-path-replaced", f"sys.path = [{LIB}]\n", None),
    ("non-empty-slice", f"sys.path[0:2] = [{LIB}]\n", None),
    ("assigned-result", f"x = sys.path.insert(0, {LIB})\n", None),
    (
        "in-strings-and-comments",
        f'"""Docs: sys.path.insert(0, {LIB})"""\n# sys.path.insert(0, {LIB})\n'
        f'msg = "sys.path.append({LIB})"\n',
        None,
    ),
    ("fstring-unknown-name", "sys.path.append(f'{ROOT}/lib/python3.6')\n", None),
    ("activate-of-unknown-path", "execfile(activate_this, dict(__file__=activate_this))\n", None),
    ("exec-of-other-code", "exec(open('/home/me/app/settings_local.py').read())\n", None),
    # -- blocks -----------------------------------------------------------------------------
    (
        "only-statement-in-block",
        f"LIB = {LIB}\nif os.path.isdir(LIB):\n    sys.path.insert(0, LIB)\nimport django\n",
        f"LIB = {LIB}\nif os.path.isdir(LIB):\n    pass  {P}sys.path.insert(0, LIB)\nimport django\n",
    ),
    (
        "only-statements-in-block",
        f"if True:\n    sys.path.insert(0, {LIB})\n    site.addsitedir({LIB})\nelse:\n    pass\n",
        f"if True:\n    pass  {P}sys.path.insert(0, {LIB})\n    {P}site.addsitedir({LIB})\nelse:\n    pass\n",
    ),
    (
        "block-keeps-other-statements",
        f"try:\n    import foo\nexcept ImportError:\n    sys.path.insert(0, {LIB})\n    import foo\n",
        f"try:\n    import foo\nexcept ImportError:\n    {P}sys.path.insert(0, {LIB})\n    import foo\n",
    ),
    (
        "nested-blocks",
        f"def setup():\n    if ok:\n        sys.path.insert(0, {LIB})\n    return 1\n",
        f"def setup():\n    if ok:\n        pass  {P}sys.path.insert(0, {LIB})\n    return 1\n",
    ),
    (
        "tab-indented-block",
        f"if ok:\n\tsys.path.insert(0, {LIB})\n",
        f"if ok:\n\tpass  {P}sys.path.insert(0, {LIB})\n",
    ),
    (
        "comment-and-blank-in-block",
        f"if ok:\n    # old layout\n\n    sys.path.insert(0, {LIB})\n\nx = 1\n",
        f"if ok:\n    # old layout\n\n    pass  {P}sys.path.insert(0, {LIB})\n\nx = 1\n",
    ),
    (
        "one-line-if",
        f"if {LIB} not in sys.path: sys.path.insert(0, {LIB})\n",
        f"if {LIB} not in sys.path: pass  {P}sys.path.insert(0, {LIB})\n",
    ),
    (
        "semicolons",
        f"import sys; sys.path.insert(0, {LIB}); import django  # first\n",
        f"import sys; pass; import django  # first  {P}sys.path.insert(0, {LIB})\n",
    ),
    (
        "whole-line-with-trailing-semicolon",
        f"sys.path.insert(0, {LIB});\n",
        f"{P}sys.path.insert(0, {LIB});\n",
    ),
    # -- continuation lines -------------------------------------------------------------
    (
        "parenthesised-over-lines",
        f"import sys\nsys.path.insert(\n    0,\n\n    {LIB},  # the shared libs\n)\nx = 1\n",
        f"import sys\n{P}sys.path.insert(\n    # 0,\n\n    # {LIB},  # the shared libs\n# )\nx = 1\n",
    ),
    (
        "backslash-continuation",
        f"sys.path.insert(0, \\\n    {LIB})\n",
        f"{P}sys.path.insert(0, \\\n    # {LIB})\n",
    ),
    (
        "indented-over-lines",
        f"if ok:\n    site.addsitedir(\n        {LIB})\n    x = 1\n",
        f"if ok:\n    {P}site.addsitedir(\n        # {LIB})\n    x = 1\n",
    ),
    # -- lists ------------------------------------------------------------------------------
    (
        "slice-all-concentric",
        f"sys.path[0:0] = [{LIB}, '/home/me/webapps/app/lib/python2.7']\n",
        f"{P}sys.path[0:0] = [{LIB}, '/home/me/webapps/app/lib/python2.7']\n",
    ),
    (
        "slice-mixed",
        f"sys.path[:0] = [{LIB}, '/home/me/webapps/app/proj']\n",
        f"sys.path[:0] = ['/home/me/webapps/app/proj']  {D}{LIB}\n",
    ),
    (
        "extend-mixed-last-dropped",
        f"sys.path.extend(['/home/me/webapps/app/proj', {LIB}])\n",
        f"sys.path.extend(['/home/me/webapps/app/proj'])  {D}{LIB}\n",
    ),
    (
        "extend-mixed-middle-dropped-tuple",
        f"sys.path.extend(('/a', {LIB}, '/b'))  # paths\n",
        f"sys.path.extend(('/a', '/b'))  # paths  {D}{LIB}\n",
    ),
    (
        "extend-mixed-over-lines",
        f"sys.path.extend([\n    {LIB},\n    '/home/me/webapps/app/proj',\n    '/home/me/lib/python2.7/x.egg'\n])\n",
        f"sys.path.extend([\n    {D}{LIB},\n    '/home/me/webapps/app/proj',\n"
        f"    {D}'/home/me/lib/python2.7/x.egg'\n])\n",
    ),
    (
        "extend-mixed-keeps-unknown",
        f"sys.path.extend([{LIB}, here()])\n",
        f"sys.path.extend([here()])  {D}{LIB}\n",
    ),
    (
        "concat-list-first",
        "sys.path = ['/home/me/webapps/django/myproject',\n"
        "            '/home/me/webapps/django/lib/python2.7'] + sys.path\n",
        "sys.path = ['/home/me/webapps/django/myproject'\n"
        f"            ] + sys.path  {D}'/home/me/webapps/django/lib/python2.7'\n",
    ),
    (
        "concat-all-concentric",
        f"sys.path = [{LIB}] + sys.path\n",
        f"{P}sys.path = [{LIB}] + sys.path\n",
    ),
    (
        "concat-list-last",
        f"sys.path = sys.path + [{LIB}, '/srv/x']\n",
        f"sys.path = sys.path + ['/srv/x']  {D}{LIB}\n",
    ),
    (
        "plus-equals",
        f"sys.path += [{LIB}]\n",
        f"{P}sys.path += [{LIB}]\n",
    ),
    (
        "for-loop-all-concentric",
        f"for d in [{LIB}, '/home/me/webapps/app/lib/python2.7']:\n    site.addsitedir(d)\nx = 1\n",
        f"{P}for d in [{LIB}, '/home/me/webapps/app/lib/python2.7']:\n    # site.addsitedir(d)\nx = 1\n",
    ),
    (
        "for-loop-mixed",
        f"for d in ('/home/me/app', {LIB}): sys.path.insert(0, d)\n",
        f"for d in ('/home/me/app',): sys.path.insert(0, d)  {D}{LIB}\n",
    ),
    (
        "for-loop-with-else-left-alone",
        f"for d in [{LIB}]:\n    site.addsitedir(d)\nelse:\n    pass\n",
        None,
    ),
    # -- activate_this ----------------------------------------------------------------------
    (
        "activate-execfile",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        "execfile(activate_this, dict(__file__=activate_this))\n",
        f"{V}activate_this = '/home/me/env/bin/activate_this.py'\n"
        f"{A}execfile(activate_this, dict(__file__=activate_this))\n",
    ),
    (
        "activate-exec-open",
        "import os\nactivate_this = os.path.expanduser('~/env/bin/activate_this.py')\n"
        "exec(open(activate_this).read(), {'__file__': activate_this})\n",
        f"import os\n{V}activate_this = os.path.expanduser('~/env/bin/activate_this.py')\n"
        f"{A}exec(open(activate_this).read(), {{'__file__': activate_this}})\n",
    ),
    (
        "activate-exec-compile",
        "activate_this = os.path.join('/home/me/env', 'bin', 'activate_this.py')\n"
        "exec(compile(open(activate_this, 'rb').read(), activate_this, 'exec'), dict(__file__=activate_this))\n",
        f"{V}activate_this = os.path.join('/home/me/env', 'bin', 'activate_this.py')\n"
        f"{A}exec(compile(open(activate_this, 'rb').read(), activate_this, 'exec'), dict(__file__=activate_this))\n",
    ),
    (
        "activate-with-open",
        "activate_this = '/home/me/env/bin/activate_this.py'\nwith open(activate_this) as f:\n"
        "    exec(f.read(), dict(__file__=activate_this))\nimport django\n",
        f"{V}activate_this = '/home/me/env/bin/activate_this.py'\n{A}with open(activate_this) as f:\n"
        "    # exec(f.read(), dict(__file__=activate_this))\nimport django\n",
    ),
    (
        "activate-literal-inline",
        "execfile('/home/me/env/bin/activate_this.py', {'__file__': '/home/me/env/bin/activate_this.py'})\n",
        f"{A}execfile('/home/me/env/bin/activate_this.py', {{'__file__': '/home/me/env/bin/activate_this.py'}})\n",
    ),
    (
        "activate-python2-exec-statement",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        "exec open(activate_this).read() in dict(__file__=activate_this)\n",
        f"{V}activate_this = '/home/me/env/bin/activate_this.py'\n"
        f"{A}exec open(activate_this).read() in dict(__file__=activate_this)\n",
    ),
    (
        "activate-path-used-elsewhere-is-kept",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        "execfile(activate_this, dict(__file__=activate_this))\nprint(activate_this)\n",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        f"{A}execfile(activate_this, dict(__file__=activate_this))\nprint(activate_this)\n",
    ),
    (
        "activate-path-in-fstring-is-kept",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        "execfile(activate_this)\nlog(f'used {activate_this}')\n",
        "activate_this = '/home/me/env/bin/activate_this.py'\n"
        f"{A}execfile(activate_this)\nlog(f'used {{activate_this}}')\n",
    ),
    (
        "activate-only-statement-in-block",
        "activate_this = '/home/me/env/bin/activate_this.py'\nif os.path.exists(activate_this):\n"
        "    execfile(activate_this, dict(__file__=activate_this))\n",
        "activate_this = '/home/me/env/bin/activate_this.py'\nif os.path.exists(activate_this):\n"
        f"    pass  {A}execfile(activate_this, dict(__file__=activate_this))\n",
    ),
    (
        "activate-under-concentric-dir",
        "execfile('/home/me/lib/python2.7/activate.py')\n",
        f"{A}execfile('/home/me/lib/python2.7/activate.py')\n",
    ),
    # -- file shapes ------------------------------------------------------------------------
    (
        "crlf",
        f"import sys\r\nsys.path.insert(0,\r\n    {LIB})\r\nimport django\r\n",
        f"import sys\r\n{P}sys.path.insert(0,\r\n    # {LIB})\r\nimport django\r\n",
    ),
    (
        "no-trailing-newline",
        f"import sys\nsys.path.insert(0, {LIB})",
        f"import sys\n{P}sys.path.insert(0, {LIB})",
    ),
    (
        "encoding-cookie-and-bom",
        f"\ufeff# -*- coding: utf-8 -*-\nimport sys\nsys.path.insert(0, {LIB})  # caf\u00e9\n",
        f"\ufeff# -*- coding: utf-8 -*-\nimport sys\n{P}sys.path.insert(0, {LIB})  # caf\u00e9\n",
    ),
    (
        "would-create-encoding-cookie",
        f"sys.path.insert(0, {LIB})  # coding: latin-1 would be a cookie\n",
        f"pass  {P}sys.path.insert(0, {LIB})  # coding: latin-1 would be a cookie\n",
    ),
    (
        "python2-file",
        "#!/usr/bin/env python2.7\nimport sys, os\n"
        f"sys.path.insert(0, {LIB})\n"
        "print 'starting', `sys.argv`\n"
        "try:\n    import django\nexcept ImportError, e:\n    print >>sys.stderr, 'no django: %s' % e\n"
        "mode = 0755\nname = ur'caf\\xe9'\nif x <> 1:\n    exec 'y = 1'\n",
        "#!/usr/bin/env python2.7\nimport sys, os\n"
        f"{P}sys.path.insert(0, {LIB})\n"
        "print 'starting', `sys.argv`\n"
        "try:\n    import django\nexcept ImportError, e:\n    print >>sys.stderr, 'no django: %s' % e\n"
        "mode = 0755\nname = ur'caf\\xe9'\nif x <> 1:\n    exec 'y = 1'\n",
    ),
    (
        "python3-fstring-nested-quotes",
        f"x = f\"{{d['a']}} sys.path.insert(0, {LIB})\"\nsys.path.insert(0, {LIB})\n",
        f"x = f\"{{d['a']}} sys.path.insert(0, {LIB})\"\n{P}sys.path.insert(0, {LIB})\n",
    ),
    (
        "previously-rewritten",
        f"import sys\n{P}sys.path.insert(0, {LIB})\nif ok:\n    pass  {P}sys.path.insert(0, {LIB})\n",
        None,
    ),
]


@pytest.mark.parametrize(("source", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rewrite(source: str, expected: str | None) -> None:
    result = rewrite_python(source, home=HOME)
    assert result.text == (source if expected is None else expected)
    assert result.changed == (expected is not None)
    again = rewrite_python(result.text, home=HOME)
    assert again.text == result.text
    assert not again.changed


def test_every_added_comment_carries_the_marker() -> None:
    for _, source, expected in CASES:
        if expected is None:
            continue
        changes = rewrite_python(source, home=HOME).changes
        assert all(MARKER in change.after for change in changes)


def test_changes_name_the_lines_and_texts() -> None:
    source = f"import sys\nsys.path.insert(\n    0, {LIB})\nx = 1\nsys.path.extend(['/a', {LIB}])\n"
    changes = rewrite_python(source, home=HOME).changes
    assert [(c.line, c.before) for c in changes] == [
        (2, f"sys.path.insert(\n    0, {LIB})"),
        (5, f"sys.path.extend(['/a', {LIB}])"),
    ]
    assert changes[0].after == f"{P}sys.path.insert(\n    # 0, {LIB})"
    assert changes[0].why == "concentric lib dir, the app's venv has its packages"
    assert changes[1].after == f"sys.path.extend(['/a'])  {D}{LIB}"


def test_crlf_changes_keep_their_line_endings() -> None:
    source = f"import sys\r\nsys.path.insert(0,\r\n    {LIB})\r\n"
    (change,) = rewrite_python(source, home=HOME).changes
    assert change.before == f"sys.path.insert(0,\r\n    {LIB})"
    assert change.after == f"{P}sys.path.insert(0,\r\n    # {LIB})"


def test_statement_sharing_its_line_and_spanning_lines_cannot_be_rewritten() -> None:
    source = f"import sys; sys.path.insert(0,\n    {LIB})\n"
    with pytest.raises(CannotRewrite, match="line 1"):
        rewrite_python(source, home=HOME)


def test_home_with_trailing_slash() -> None:
    source = "sys.path.insert(0, os.path.expanduser('~/lib/python2.7'))\n"
    assert rewrite_python(source, home="/home/me/").changed


# ------------------------------------------------------------------------- compiling


@functools.cache
def _python2() -> str | None:
    """A working python2.7: pyenv's own binary first (its shim may point at no version)."""
    candidates = sorted(Path("~/.pyenv/versions").expanduser().glob("2.7*/bin/python2.7"))
    found = shutil.which("python2.7")
    for candidate in [*map(str, candidates), *([found] if found else [])]:
        try:
            subprocess.run([candidate, "-c", "pass"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return None


_PY2_COMPILES = """
import json, sys
out = []
for text in json.load(open(sys.argv[1])):
    try:
        compile(text.encode("utf-8"), "<case>", "exec")
        out.append(True)
    except SyntaxError:
        out.append(False)
print(json.dumps(out))
"""


def _compiles3(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "<case>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _compiles2(python: str, texts: list[str], tmp_path: Path) -> list[bool]:
    data = tmp_path / "texts.json"
    data.write_text(json.dumps(texts))
    run = subprocess.run(
        [python, "-c", _PY2_COMPILES, str(data)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _pairs() -> list[tuple[str, str]]:
    return [(source, expected) for _, source, expected in CASES if expected is not None]


def test_output_compiles_under_python3_when_the_input_did() -> None:
    compiled = 0
    for source, expected in _pairs():
        if _compiles3(source.lstrip("\ufeff")):
            assert _compiles3(expected.lstrip("\ufeff")), expected
            compiled += 1
    assert compiled > 40


@pytest.mark.legacy
def test_output_compiles_under_python2_when_the_input_did(tmp_path: Path) -> None:
    python = _python2()
    if python is None:
        pytest.skip("no python2.7 on PATH or in pyenv")
    pairs = [(s.lstrip("\ufeff"), e.lstrip("\ufeff")) for s, e in _pairs()]
    before = _compiles2(python, [s for s, _ in pairs], tmp_path)
    after = _compiles2(python, [e for _, e in pairs], tmp_path)
    assert sum(before) > 40
    assert [e for (_, e), b, a in zip(pairs, before, after, strict=True) if b and not a] == []


# ------------------------------------------------------------------------- properties

_PLAIN_STATEMENTS = [
    "import os",
    "import sys, site",
    "from django.core.wsgi import get_wsgi_application",
    "os.environ['DJANGO_SETTINGS_MODULE'] = 'myproject.settings'",
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'myproject.settings')",
    "application = get_wsgi_application()",
    "sys.path.insert(0, '/home/me/webapps/app/myproject')",
    "sys.path.append(os.path.dirname(os.path.abspath(__file__)))",
    "site.addsitedir('/home/me/webapps/app/src')",
    "sys.path[0:0] = ['/home/me/webapps/app', '/srv/shared']",
    "sys.path.insert(0, some_function())",
    "sys.path.insert(0, os.environ['APP_LIB'])",
    "execfile(settings_file)",
    "print 'hello %s' % name",
    "print('hello', end='')",
    "x = [1, 2,\n     3]",
    "def application(environ, start_response):\n    return [b'ok']",
    "if DEBUG:\n    sys.path.append('/home/me/webapps/app/debug')",
    "msg = \"sys.path.insert(0, '/home/me/lib/python2.7')\"",
    "doc = '''\nsys.path.append('/home/me/lib/python2.7')\nsite.addsitedir(\"/home/me/lib/python2.7\")\n'''",
    "# sys.path.insert(0, '/home/me/lib/python2.7')",
    "path = r'C:\\lib\\python2.7' ; other = u'sys.path'",
    "LIB = '/home/me/lib/python2.7'  # defined, never put on sys.path",
    "total = a + \\\n    b",
    "value = f\"{os.environ['HOME']} sys.path.insert(0, x)\"",
    "",
]


@st.composite
def _python_like(draw: st.DrawFn) -> str:
    statements = draw(st.lists(st.sampled_from(_PLAIN_STATEMENTS), max_size=12))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for statement in statements:
        indent = draw(st.sampled_from(["", "", "    ", "\t"]))
        trailing = draw(st.sampled_from(["", "", " ", "\t", "  # note"]))
        body = statement.replace("\n", newline + indent)
        lines.append(indent + body + trailing)
    return newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_python_like())
def test_python_without_concentric_edits_passes_through_identical(text: str) -> None:
    result = rewrite_python(text, home=HOME)
    assert result.text == text
    assert not result.changed


@settings(max_examples=300)
@given(st.text(alphabet=string.printable + "\r\u00e9\u2028", max_size=400))
def test_arbitrary_text_without_lib_python_passes_through(text: str) -> None:
    if "/lib/python" in text or "-packages" in text or "activate_this" in text:
        return
    result = rewrite_python(text, home=HOME)
    assert result.text == text
    assert not result.changed


_FRAGMENTS = [
    "sys.path.insert(0, ", "sys.path.append(", "site.addsitedir(", "sys.path[0:0] = ",
    "sys.path = ", "sys.path.extend(", "execfile(", "exec(open(", ").read())", "for d in ",
    "with open(", ") as f:", "'/home/me/lib/python2.7'", "'/home/me/app'", "LIB", "LIB = ",
    "os.path.join(", "'", '"', '"""', "(", ")", "[", "]", "{", "}", ",", ":", ";", "+", "\\",
    "\n", "\r\n", "\r", "    ", "\t", "#", " ", "if x:", "f'{", "u'", "b'", "pass", "else:",
]  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join))
def test_fragment_soup_never_crashes_and_stays_valid(text: str) -> None:
    try:
        result = rewrite_python(text, home=HOME)
    except CannotRewrite:
        return
    if _compiles3(text):
        assert _compiles3(result.text), result.text
    again = rewrite_python(result.text, home=HOME)
    assert again.text == result.text


# ------------------------------------------------------------------------- real Python

_WSGI = """\
import os
import sys
import site

# The project, then the app's own lib dir and the shared one in front of it.
sys.path.insert(0, '{home}/webapps/app/myproject')
site.addsitedir('{home}/webapps/app/lib/python3.11')
sys.path.insert(0, os.path.expanduser('~/lib/python3.11'))
sys.path[0:0] = ['{home}/webapps/app/extra', '{home}/lib/python3.11/Foo-1.0-py3.11.egg']

os.environ['DJANGO_SETTINGS_MODULE'] = 'myproject.settings'
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""

_DRIVER = """\
import json, runpy, sys
found = runpy.run_path(sys.argv[1])
print(json.dumps({"path": sys.path, "application": found["application"]}))
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_rewritten_wsgi_file_runs_without_concentric_dirs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    app = home / "webapps" / "app"
    shared = home / "lib" / "python3.11"
    for lib in (app / "lib" / "python3.11", shared):
        _write(lib / "django" / "__init__.py", "raise ImportError('concentric django')\n")
    _write(app / "myproject" / "django" / "__init__.py", "")
    _write(app / "myproject" / "django" / "core" / "__init__.py", "")
    _write(
        app / "myproject" / "django" / "core" / "wsgi.py",
        "def get_wsgi_application():\n    return 'project app'\n",
    )
    (app / "extra").mkdir()
    wsgi = app / "myproject" / "myproject.wsgi"
    source = _WSGI.format(home=home)
    wsgi.write_text(source)

    def run() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(home)}
        env.pop("PYTHONPATH", None)
        return subprocess.run(
            [sys.executable, "-s", "-c", _DRIVER, str(wsgi)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    before = run()
    assert "concentric django" in before.stderr
    result = rewrite_python(source, home=str(home))
    assert len(result.changes) == 3
    wsgi.write_text(result.text)
    after = run()
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["application"] == "project app"
    assert str(app / "myproject") in report["path"]
    assert str(app / "extra") in report["path"]
    assert not [p for p in report["path"] if p.startswith((str(shared), str(app / "lib")))]


@pytest.mark.legacy
def test_rewritten_python2_wsgi_file_skips_activation(tmp_path: Path) -> None:
    python = _python2()
    if python is None:
        pytest.skip("no python2.7 on PATH or in pyenv")
    home = tmp_path / "home"
    _write(home / "env" / "bin" / "activate_this.py", "raise SystemExit('old env activated')\n")
    _write(home / "lib" / "python2.7" / "placeholder.txt", "")
    wsgi = home / "webapps" / "app" / "app.wsgi"
    source = (
        "import os, sys\n"
        "activate_this = os.path.expanduser('~/env/bin/activate_this.py')\n"
        "execfile(activate_this, dict(__file__=activate_this))\n"
        "sys.path.insert(0, os.environ['HOME'] + '/lib/python2.7')\n"
        "sys.path.insert(0, os.environ['HOME'] + '/webapps/app')\n"
        "print '\\n'.join(sys.path)\n"
    )
    _write(wsgi, source)
    env = {**os.environ, "HOME": str(home)}
    assert (
        "old env activated"
        in subprocess.run(
            [python, str(wsgi)], capture_output=True, text=True, env=env, timeout=60
        ).stderr
    )
    wsgi.write_text(rewrite_python(source, home=str(home)).text)
    run = subprocess.run([python, str(wsgi)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    path = run.stdout.splitlines()
    assert str(home / "webapps" / "app") in path
    assert str(home / "lib" / "python2.7") not in path

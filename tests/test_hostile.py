"""A corpus of hostile and broken inputs (tests/hostile/), each through the whole CLI.

For every case, run as the operator would (``python -m migrate --home H --crontab C``):

* ``inventory`` and ``plan`` go on and report (exit 0; 2 for bad usage), without a
  traceback, without writing anything, and say which file (and line) is wrong;
* ``run --dry-run`` and ``run --yes`` either refuse before writing (exit 1 or 2, a message
  naming the file and what to do, not one byte of the home or the crontab changed, no
  journal transaction at all) or, where migrating is right, migrate in a way ``rollback``
  undoes byte for byte;
* nothing outside the home is ever changed, no ``.pth`` line of the account ever runs, and
  no command blocks forever on a FIFO.

Cases the tool gets wrong today are ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import legacy
import pytest
from accounts import PY, account_lib, install_wheels, write_files
from journal_helper import snapshot

from migrate.build.wheelfile import WheelSpec
from migrate.journal import transactions

CORPUS = Path(__file__).parent / "hostile"
TIMEOUT = 120
"""Seconds one command may take (a blocked read of a FIFO is caught sooner, see ``cli``)."""
TRACEBACK = "Traceback (most recent call last)"
SETPRIV = shutil.which("setpriv")


# ----------------------------------------------------------------------------- the account


@dataclass
class Account:
    root: Path
    home: Path
    crontab: Path
    outside: Path
    """A folder outside HOME that links point at: it must never change."""
    canary: Path
    """Created by any .pth import line that runs: it must never exist."""
    notes: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    """More environment for this case's commands."""
    pythons: dict[str, Path] = field(default_factory=dict)
    """What the apps run on (no real Apache or cron here): ``--python X.Y=PATH``."""

    @property
    def blog(self) -> Path:
        return self.home / "webapps" / "blog"

    @property
    def conf(self) -> Path:
        return self.blog / "apache2" / "conf" / "httpd.conf"

    @property
    def wsgi(self) -> Path:
        return self.blog / "blog.wsgi"

    @property
    def account_lib(self) -> Path:
        return self.home / "lib" / f"python{PY}"

    @property
    def app_lib(self) -> Path:
        return self.blog / "lib" / f"python{PY}"

    def corpus(self, name: str) -> bytes:
        """A corpus file with its placeholders filled in, byte for byte."""
        data = (CORPUS / name).read_bytes()
        for key, value in (
            (b"@HOME@", self.home),
            (b"@BLOG@", self.blog),
            (b"@PY@", PY),
            (b"@CANARY@", self.canary),
        ):
            data = data.replace(key, str(value).encode())
        return data

    def put(self, name: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.corpus(name))


def package(name: str, version: str, *requires: str) -> WheelSpec:
    body = f'__version__ = "{version}"\n'
    return WheelSpec(name, version, {f"{name}/__init__.py": body.encode()}, requires=requires)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lib dirs, installed once with the real pip; each case copies them."""
    root = tmp_path_factory.mktemp("template")
    wheels = root / "wheels"
    install_wheels(account_lib(root / "home"), [package("shared", "1.0")], wheels)
    install_wheels(
        account_lib(root / "home", "blog"), [package("blogcore", "3.1", "shared>=1")], wheels
    )
    return root / "home"


@pytest.fixture
def account(template: Path, webfaction_python: Path) -> Iterator[Account]:
    """HOME with one mod_wsgi app (blog) and a cron job, a crontab file, a folder outside.

    It lives outside pytest's 0700 tmp dir, so a process that obeys permissions can reach it.
    """
    root = Path(tempfile.mkdtemp(prefix="concentric-hostile-"))
    os.chmod(root, 0o755)
    home = root / "home"
    shutil.copytree(template, home, symlinks=True)
    acc = Account(root, home, root / "crontab", root / "outside", root / "canary")
    acc.pythons[PY] = webfaction_python  # its cron job finds blogcore by the upward scan
    write_files(acc.outside, {"README": "not the account's\n"})
    acc.put("base.httpd.conf", acc.conf)
    acc.put("base.wsgi", acc.wsgi)
    acc.put("base.crontab", acc.crontab)
    write_files(acc.blog, {"manage.py": "import blogcore\n"})
    try:
        yield acc
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(root)


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _opening_fifo(pid: int) -> bool:
    """The process sleeps in open(2) of a FIFO, waiting for a writer that never comes."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip() == "wait_for_partner"
    except OSError:
        return False


def cli(
    account: Account,
    *args: str,
    unprivileged: bool = False,
    env: dict[str, str] | None = None,
) -> Result:
    """The CLI in a subprocess; fails the test (and kills it) when it blocks on a FIFO."""
    command = [sys.executable, "-m", "migrate", "--home", str(account.home)]
    command += ["--crontab", str(account.crontab), *args[:1]]
    if args[:1] and args[0] in ("plan", "build", "run", "verify"):
        command += [f"--python={v}={p}" for v, p in account.pythons.items()]
    command += args[1:]
    if unprivileged and os.geteuid() == 0:
        # Root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH obeys permission bits.
        command = [str(SETPRIV), "--bounding-set=-dac_override,-dac_read_search", *command]
    environment = {**os.environ, "HOME": str(account.home), "PIP_CONFIG_FILE": os.devnull}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=account.root,
            env={**environment, **(env or {})},
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        blocked_since = None
        while process.poll() is None:
            now = time.monotonic()
            blocked_since = (blocked_since or now) if _opening_fifo(process.pid) else None
            if now > deadline or (blocked_since is not None and now - blocked_since > 0.5):
                process.kill()
                process.wait()
                why = "blocks opening a FIFO for reading" if blocked_since else "hangs"
                pytest.fail(f"`{' '.join(args)}` {why}: it would never return")
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return Result(
            args,
            process.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


# ----------------------------------------------------------------------------- the corpus

Outcome = str
"""``refuse`` (exit 1/2, nothing written, no transaction), ``migrate`` (exit 0, undone by
rollback), ``rolled-back`` (exit 1 after it began, everything rolled back by run itself)."""


@dataclass(frozen=True)
class Case:
    build: Callable[[Account], None]
    plan: int = 0
    """Exit code of inventory and plan: 0 (they go on and report), 2 for bad usage."""
    plan_says: tuple[str, ...] = ()
    """Each appears in plan's output (case-insensitive): the file, the line, the problem."""
    plan_lacks: tuple[str, ...] = ()
    """None appears in plan's output."""
    run: tuple[Outcome, ...] = ("refuse",)
    """Acceptable outcomes of run --yes."""
    says: tuple[str, ...] = ()
    """Each appears in run's refusal (case-insensitive): the file, the line, what to do."""
    check: Callable[[Account], None] | None = None
    """More to check after a run --yes that migrated (before it is rolled back)."""
    unprivileged: bool = False
    env: dict[str, str] = field(default_factory=dict)
    plan_bug: str | None = None
    """Why inventory/plan misbehave today (xfail, strict)."""
    names_bug: str | None = None
    """Why plan's message misses the file or the problem today (xfail, strict)."""
    run_bug: str | None = None
    """Why run misbehaves today (xfail, strict)."""


CASES: dict[str, Case] = {}


def case(name: str, **options: object) -> Callable[[Callable[[Account], None]], None]:
    def register(build: Callable[[Account], None]) -> None:
        CASES[name] = Case(build, **options)  # type: ignore[arg-type]

    return register


def link_away(account: Account, lib: Path) -> None:
    """Move a lib dir outside the home and leave a symlink to it in its place."""
    target = account.outside / f"{lib.parent.parent.name}-lib"
    shutil.copytree(lib, target, symlinks=True)
    shutil.rmtree(lib)
    lib.symlink_to(target)


@case(
    "vhost-unclosed",
    plan_says=("httpd.conf", "unclosed", "<virtualhost>"),
    says=("httpd.conf", "virtualhost"),
)
def _(a: Account) -> None:
    a.put("vhost-unclosed.httpd.conf", a.conf)


@case(
    "vhost-stray-close",
    plan_says=("httpd.conf", "line 6", "</virtualhost>"),
    says=("httpd.conf", "line 6"),
)
def _(a: Account) -> None:
    a.put("vhost-stray-close.httpd.conf", a.conf)


@case(
    "include-loop",
    plan_says=("include loop", "loop-a.conf", "loop-b.conf"),
    says=("loop-a.conf", "include"),
)
def _(a: Account) -> None:
    a.put("include-loop.httpd.conf", a.conf)
    a.put("include-loop.loop-a.conf", a.conf.parent / "loop-a.conf")
    a.put("include-loop.loop-b.conf", a.conf.parent / "loop-b.conf")


def _python_path_link(a: Account, target: Path) -> None:
    (a.blog / "lnk").symlink_to(target)
    text = a.conf.read_text()
    a.conf.write_text(text.replace("python-path=", f"python-path={a.blog}/lnk:"))


def _nothing_read_through_lnk(a: Account) -> None:
    assert "lnk/" not in (a.blog / "requirements.in").read_text()


@case(
    "python-path-link-outside",
    # Not walked as the app's own code (its imports are not the app's); named as leaving.
    plan_says=("webapps/blog/lnk", "leads outside the home"),
    plan_lacks=("missing_dep",),
    run=("refuse", "migrate"),
    says=("lnk", "outside the home"),
    check=_nothing_read_through_lnk,
)
def _(a: Account) -> None:
    code = a.corpus("code.pth")
    write_files(
        a.outside / "dist-packages",
        {"sysmod/__init__.py": "import missing_dep\n", "outsider.pth": code},
    )
    _python_path_link(a, a.outside / "dist-packages")


def _etc_unchanged(a: Account) -> None:
    assert sorted(os.listdir("/etc")) == a.notes["etc"]


@case("python-path-link-to-etc", run=("refuse", "migrate"), check=_etc_unchanged)
def _(a: Account) -> None:
    a.notes["etc"] = sorted(os.listdir("/etc"))
    _python_path_link(a, Path("/etc"))


@case(
    "crontab-10mb-line",
    plan_says=("crontab", "line 4", "longer than"),
    says=("crontab", "line 4", "shorten or remove it"),
)
def _(a: Account) -> None:
    with open(a.crontab, "a") as out:
        out.write(f"0 4 * * * python{PY} ~/webapps/blog/manage.py {'x' * (10 << 20)}\n")


@case(
    "crontab-nul",
    plan_says=("crontab", "line 4", "nul"),
    says=("crontab", "line 4", "nul", "remove it"),
)
def _(a: Account) -> None:
    a.put("nul.crontab", a.crontab)


def _latin_1_kept(a: Account) -> None:
    data = a.crontab.read_bytes()
    assert b"# t\xe2che de Jos\xe9\n" in data
    assert f"{a.blog}/venv/bin/python manage.py > ~/Jos".encode() + b"\xe9.log" in data


@case("crontab-latin-1", run=("migrate",), check=_latin_1_kept)
def _(a: Account) -> None:
    a.put("latin-1.crontab", a.crontab)


@case(
    "crontab-fifo",
    plan=2,
    plan_says=("--crontab", "not a regular file"),
    says=("--crontab",),
)
def _(a: Account) -> None:
    a.crontab.unlink()
    os.mkfifo(a.crontab)


@case(
    "wsgi-syntax-error",
    plan_says=("blog.wsgi", "line 6"),
    says=("blog.wsgi", "line 6"),
)
def _(a: Account) -> None:
    a.put("syntax-error.wsgi", a.wsgi)


def _python2_app(a: Account) -> None:
    shutil.rmtree(a.blog / "lib")
    write_files(a.blog / "lib" / "python2.7", {"blogcore/__init__.py": "__version__ = '3.1'\n"})
    text = a.conf.read_text().replace(f"python{PY}", "python2.7")
    a.conf.write_text(text.replace(f":{a.home}/lib/python2.7", ""))
    a.put("python2-only.wsgi", a.wsgi)
    (a.blog / "manage.py").unlink()
    a.crontab.write_text('MAILTO=""\n')
    python2 = legacy.find_interpreter("2.7")
    if python2 is None:
        pytest.skip("no python2.7 (PATH or pyenv) to serve a Python 2 app with")
    a.pythons = {"2.7": python2}


def _tool_on_path(a: Account, name: str, script: str) -> None:
    """Put an executable ``name`` first on PATH for the commands of this case."""
    bin_dir = a.root / "bin"
    write_files(bin_dir, {name: f"#!/bin/sh\n{script}\n"})
    (bin_dir / name).chmod(0o755)
    a.env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"


# The 2.7 venv needs virtualenv<20.22 from an index once: an unreachable one makes run fail
# after it began, which must roll everything back (with a real index it would migrate).
NO_INDEX = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0"}


@case(
    "wsgi-python2-only",
    plan_lacks=("could not parse", "syntaxerror"),
    run=("rolled-back", "migrate"),
    env=NO_INDEX,
)
def _(a: Account) -> None:
    _python2_app(a)
    # rustup's rustc proxy writes ~/.rustup when pip asks `rustc --version` (below).
    _tool_on_path(a, "rustc", "exit 1")


@case(
    "legacy-helper-tool-writes-home",
    run=("rolled-back", "migrate"),
    env=NO_INDEX,
)
def _(a: Account) -> None:
    _python2_app(a)
    _tool_on_path(a, "rustc", 'mkdir -p "$HOME/.rustup" && : > "$HOME/.rustup/settings.toml"')


@case(
    "httpd-conf-latin-1",
    says=("webapps/blog/apache2/conf/httpd.conf", "not utf-8", "convert it to utf-8"),
)
def _(a: Account) -> None:
    a.put("latin-1.httpd.conf", a.conf)


@case("wsgi-latin-1", says=("webapps/blog/blog.wsgi", "not utf-8", "convert it to utf-8"))
def _(a: Account) -> None:
    a.put("latin-1.wsgi", a.wsgi)


@case(
    "lib-dir-link-to-root",
    plan_says=(f"lib/python{PY}", "outside the home"),
    says=(f"lib/python{PY}", "outside the home"),
)
def _(a: Account) -> None:
    shutil.rmtree(a.account_lib)
    a.account_lib.symlink_to("/")


@case(
    "lib-dir-link-outside",
    plan_says=(f"lib/python{PY}", "outside the home"),
    says=(f"lib/python{PY}", "outside the home"),
)
def _(a: Account) -> None:
    link_away(a, a.account_lib)


@case(
    "app-lib-dir-link-outside",
    plan_says=(f"webapps/blog/lib/python{PY}", "outside the home"),
    says=(f"webapps/blog/lib/python{PY}", "outside the home"),
)
def _(a: Account) -> None:
    link_away(a, a.app_lib)


def _no_pth_in_venv(a: Account) -> None:
    for pth in (a.blog / "venv").rglob("*.pth"):
        assert str(a.canary) not in pth.read_text(errors="replace"), pth


@case(
    "pth-code",
    plan_says=("evil.pth",),
    run=("migrate",),
    check=_no_pth_in_venv,
)
def _(a: Account) -> None:
    a.put("code.pth", a.account_lib / "evil.pth")
    a.put("easy-install.pth", a.account_lib / "easy-install.pth")
    a.put("code.pth", a.app_lib / "evil.pth")


@case(
    "wsgi-link-outside",
    says=("blog.wsgi", "outside the home"),
)
def _(a: Account) -> None:
    target = a.outside / "blog.wsgi"
    target.write_bytes(a.corpus("base.wsgi"))
    a.wsgi.unlink()
    a.wsgi.symlink_to(target)


@case(
    "httpd-conf-fifo",
    plan_says=("httpd.conf", "not a regular file"),
    says=("httpd.conf",),
)
def _(a: Account) -> None:
    a.conf.unlink()
    os.mkfifo(a.conf)


@case(
    "httpd-conf-fifo-app-without-lib",
    plan_says=("httpd.conf", "not a regular file"),
)
def _(a: Account) -> None:
    shutil.rmtree(a.blog / "lib")
    a.wsgi.unlink()
    (a.blog / "manage.py").unlink()
    a.conf.unlink()
    os.mkfifo(a.conf)


@case(
    "httpd-conf-include-fifo",
    plan_says=("extra.conf", "not a regular file"),
    says=("extra.conf",),
)
def _(a: Account) -> None:
    os.mkfifo(a.conf.parent / "extra.conf")
    text = a.conf.read_text()
    a.conf.write_text(text.replace("Listen", f"Include {a.conf.parent}/extra.conf\nListen"))


@case(
    "httpd-conf-directory",
    plan_says=("httpd.conf", "not a regular file"),
    says=("httpd.conf",),
)
def _(a: Account) -> None:
    a.conf.unlink()
    a.conf.mkdir()


@case(
    "httpd-conf-5mb",
    plan_says=("httpd.conf", "larger than"),
    says=("httpd.conf", "larger than"),
)
def _(a: Account) -> None:
    with open(a.conf, "a") as out:
        out.write(f"# padding {'x' * 1000}\n" * 5000)


@case(
    "python-path-define",
    says=(
        "webapps/blog/apache2/conf/httpd.conf",
        "line 5",
        "${APP_PATH}",
        "write the literal paths",
    ),
)
def _(a: Account) -> None:
    a.put("python-path-define.httpd.conf", a.conf)


@case(
    "wsgi-fifo",
    plan_says=("blog.wsgi", "not a regular file"),
    says=("blog.wsgi",),
)
def _(a: Account) -> None:
    a.wsgi.unlink()
    os.mkfifo(a.wsgi)


@case(
    "pth-fifo",
    plan_says=("fifo.pth",),
    run=("refuse", "migrate"),
    says=("fifo.pth",),
)
def _(a: Account) -> None:
    os.mkfifo(a.account_lib / "fifo.pth")


@case(
    "wsgi-unreadable",
    plan_says=("blog.wsgi", "permission denied"),
    says=("webapps/blog/blog.wsgi", "cannot be read", "permission denied"),
    unprivileged=True,
)
def _(a: Account) -> None:
    a.wsgi.chmod(0)


# ----------------------------------------------------------------------------- the tests


def xfail_if(reason: str | None) -> tuple[pytest.MarkDecorator, ...]:
    return (pytest.mark.xfail(strict=True, reason=reason),) if reason else ()


def params(
    bug: Callable[[Case], str | None], only: Callable[[Case], bool] = lambda _case: True
) -> list[object]:
    return [
        pytest.param(name, id=name, marks=xfail_if(bug(c))) for name, c in CASES.items() if only(c)
    ]


@dataclass
class Before:
    home: dict[str, tuple[object, ...]]
    crontab: bytes | None
    outside: dict[str, tuple[object, ...]]


def prepare(account: Account, name: str) -> tuple[Case, Before]:
    hostile = CASES[name]
    if hostile.unprivileged and os.geteuid() == 0 and SETPRIV is None:
        pytest.skip("root ignores mode 000 and setpriv (util-linux) is not here to drop that")
    hostile.build(account)
    crontab = account.crontab.read_bytes() if account.crontab.is_file() else None
    outside = snapshot(account.outside)
    return hostile, Before(snapshot(account.home), crontab, outside)


def assert_clean(result: Result) -> None:
    assert TRACEBACK not in result.output, f"{result.args}:\n{result.output}"
    if result.returncode:
        assert "Error: " in result.stderr, f"{result.args}:\n{result.stderr}"


def assert_untouched(account: Account, before: Before) -> None:
    """Not one byte of the home, the crontab or the folder outside, and no transaction."""
    assert snapshot(account.home) == before.home
    if before.crontab is not None:
        assert account.crontab.read_bytes() == before.crontab
    assert snapshot(account.outside) == before.outside
    assert not account.canary.exists(), "a .pth import line of the account ran"
    assert transactions(account.home) == []


def run_cli(account: Account, hostile: Case, *args: str) -> Result:
    env = {**hostile.env, **account.env}
    result = cli(account, *args, unprivileged=hostile.unprivileged, env=env)
    assert_clean(result)
    return result


@pytest.mark.parametrize("name", params(lambda c: c.plan_bug))
def test_inventory_and_plan_go_on_and_write_nothing(account: Account, name: str) -> None:
    hostile, before = prepare(account, name)

    for command in ("inventory", "plan"):
        result = run_cli(account, hostile, command)
        assert result.returncode == hostile.plan, f"{command}:\n{result.output}"

    assert_untouched(account, before)


@pytest.mark.parametrize(
    "name",
    params(lambda c: c.plan_bug or c.names_bug, only=lambda c: bool(c.plan_says or c.plan_lacks)),
)
def test_plan_names_the_file_and_the_problem(account: Account, name: str) -> None:
    hostile, _ = prepare(account, name)

    said = run_cli(account, hostile, "plan").output.lower()

    assert [s for s in hostile.plan_says if s.lower() not in said] == [], said
    assert [s for s in hostile.plan_lacks if s.lower() in said] == [], said


@pytest.mark.parametrize("name", params(lambda c: c.run_bug))
def test_run_refuses_before_writing_or_migrates_reversibly(account: Account, name: str) -> None:
    hostile, before = prepare(account, name)

    dry = run_cli(account, hostile, "run", "--dry-run")
    assert_untouched(account, before)
    done = run_cli(account, hostile, "run", "--yes")

    assert not account.canary.exists(), "a .pth import line of the account ran"
    assert snapshot(account.outside) == before.outside, "run changed a file outside the home"
    states = [t.state for t in transactions(account.home)]
    if done.returncode == 0:
        assert "migrate" in hostile.run, f"run migrated:\n{done.output}"
        assert dry.returncode == 0, dry.output
        if hostile.check is not None:
            hostile.check(account)
        undone = run_cli(account, hostile, "rollback", "--no-restart")
        assert undone.returncode == 0, undone.output
        assert snapshot(account.home) == before.home
        assert before.crontab is None or account.crontab.read_bytes() == before.crontab
    elif states:
        assert "rolled-back" in hostile.run, f"run began, then failed:\n{done.output}"
        assert done.returncode == 1 and states == ["rolled-back"], done.output
        assert "everything was rolled back" in done.stderr.lower(), done.stderr
        assert snapshot(account.home) == before.home
        assert before.crontab is None or account.crontab.read_bytes() == before.crontab
    else:
        assert "refuse" in hostile.run, f"run refused:\n{done.output}"
        assert done.returncode in (1, 2), done.output
        assert dry.returncode in (1, 2), dry.output
        for refusal in (dry.stderr.lower(), done.stderr.lower()):
            assert [s for s in hostile.says if s.lower() not in refusal] == [], refusal
        assert_untouched(account, before)


def test_the_corpus_files_are_small_and_all_used() -> None:
    files = {p.name for p in CORPUS.iterdir()} - {"README.md"}
    source = Path(__file__).read_text()
    assert [f for f in sorted(files) if (CORPUS / f).stat().st_size > 4096] == []
    assert [f for f in sorted(files) if f not in source] == []
    assert stat.S_ISDIR(os.stat(CORPUS).st_mode)

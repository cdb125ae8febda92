"""Bytecode for the store's trees, compiled once per tree and Python version, while the
next wheels are still being unpacked.

A cold store spends most of its time here (ten Django-sized apps: 5,700 modules, about
4.5 s on two cores), and most of that is the file system making ``__pycache__`` folders
and files rather than the compiler, so the work is split in chunks of modules, each
compiled by its own process of the target Python as soon as its tree is unpacked, as many
at once as there are CPUs: the unpacking, the compiling and the disk overlap. Each process
runs ``py_compile`` (its rules: timestamp or, under ``SOURCE_DATE_EPOCH``, hash-based
pycs) but writes each ``.pyc`` itself: created read-only under its final name, where
``compileall`` writes a temporary file, renames it and leaves 0644 for a second pass to
chmod — three metadata writes where one will do, on a cost that is mostly metadata
writes. That is safe because bytecode is linked from a tree only once its marker says
the tree is compiled (:func:`marker`), written after every process for it has ended well:
a process that could not write a file (a full disk, a quota) or ran out of time leaves
the tree unmarked, so its venvs get no bytecode from it (the app's Python compiles on
import) and the next build compiles it again. The
name relative to the store goes in each ``.pyc`` (as ``compileall -s`` would; CPython
sets ``co_filename`` to the real path at import).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from migrate.build.venv.tools import TIMEOUT, clean_env
from migrate.privilege import Owner, as_owner, give_like

CHUNK = 400
"""Modules per process: large enough that start-up (about 20 ms) is small beside it."""

_POLL = 0.005
"""Seconds between looks at the running chunks (each takes a second or so)."""

_COMPILE = """\
import importlib._bootstrap_external as external, os, py_compile, sys

def write_new(path, data, mode=0o666):
    # Read-only at once, and no temp file and rename: a tree is linked only once its
    # marker says every module is compiled, so a half-written file is never seen.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o444)
    except FileExistsError:  # left by a compile cut short
        os.unlink(path)
        fd = os.open(path, flags, 0o444)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        os.unlink(path)  # never a short file under the final name
        raise

external._write_atomic = write_new
store, failed = sys.argv[1], False
for path in sys.argv[2:]:
    try:
        py_compile.compile(path, dfile=os.path.relpath(path, store), doraise=True)
    except py_compile.PyCompileError:  # as pip: a module that does not compile installs
        pass
    except Exception:  # a full disk, a quota: the tree stays unmarked
        failed = True
sys.exit(1 if failed else 0)
"""


def marker(tree: Path, python: str) -> Path:
    """Says the tree's bytecode for Python ``python`` is complete."""
    return tree.with_name(f"{tree.name}.compiled-{python}")


class StoreCompiler:
    """Compiles the trees :meth:`add` is given, in chunks, ``jobs`` processes at a time."""

    def __init__(
        self, interpreter: Path, store: Path, python: str, owner: Owner | None, jobs: int
    ) -> None:
        self._interpreter = os.fspath(interpreter)
        self._store = os.fspath(store)
        self._python = python
        self._owner = owner
        self._jobs = max(1, jobs)
        self._waiting: deque[tuple[Path, list[str]]] = deque()
        self._running: deque[tuple[Path, subprocess.Popen[bytes], float]] = deque()
        self._left: dict[Path, int] = {}
        self._failed: set[Path] = set()

    def add(self, tree: Path) -> None:
        """Compile ``tree`` unless it is compiled for this Python already."""
        if tree in self._left or os.path.exists(marker(tree, self._python)):
            return
        modules = list(_modules(tree))
        chunks = [modules[i : i + CHUNK] for i in range(0, len(modules), CHUNK)] or [[]]
        self._left[tree] = len(chunks)
        self._waiting.extend((tree, chunk) for chunk in chunks)
        self._start()

    def finish(self) -> None:
        """Wait for every chunk; mark each tree compiled."""
        while self._running or self._waiting:
            self._reap(block=True)
            self._start()

    def poll(self) -> None:
        """Reap the chunks that have ended and start the next ones, without waiting."""
        self._reap(block=False)
        self._start()

    def kill(self) -> None:
        self._waiting.clear()
        for _, process, _ in self._running:
            process.kill()
            process.wait()
        self._running.clear()

    def _start(self) -> None:
        while self._waiting and len(self._running) < self._jobs:
            tree, chunk = self._waiting.popleft()
            if not chunk:
                self._done(tree)
                continue
            process = subprocess.Popen(
                [self._interpreter, "-I", "-S", "-c", _COMPILE, self._store, *chunk],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=_compile_env(), **as_owner(self._owner),
            )  # fmt: skip
            self._running.append((tree, process, time.monotonic()))

    def _reap(self, *, block: bool) -> None:
        """Take every chunk that has ended, whichever started first (no CPU waits behind
        an older, longer chunk); with ``block``, wait until one has. A chunk past
        ``TIMEOUT`` is killed and its tree left unmarked."""
        while self._running:
            ended = [run for run in self._running if self._ended(*run)]
            for tree, process, started in ended:
                self._running.remove((tree, process, started))
                if process.returncode != 0:
                    self._failed.add(tree)
                self._done(tree)
            if ended or not block:
                return
            time.sleep(_POLL)

    @staticmethod
    def _ended(tree: Path, process: subprocess.Popen[bytes], started: float) -> bool:
        if process.poll() is not None:
            return True
        if time.monotonic() - started < TIMEOUT:
            return False
        process.kill()
        process.wait()
        return True

    def _done(self, tree: Path) -> None:
        self._left[tree] -= 1
        if self._left[tree] or tree in self._failed:
            return
        fd = os.open(marker(tree, self._python), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o444)
        try:
            give_like(fd, tree.parent)
        finally:
            os.close(fd)


def _modules(tree: Path) -> Iterator[str]:
    """The tree's ``.py`` files but those of its ``.data`` folder (scripts, headers and
    data are not modules; nothing links bytecode from there)."""
    root = os.fspath(tree)
    for folder, dirs, files in os.walk(root):
        keep = (d for d in dirs if d != "__pycache__")
        dirs[:] = sorted(d for d in keep if folder != root or not d.endswith(".data"))
        yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def _compile_env() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env

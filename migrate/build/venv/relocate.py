"""A venv names its own absolute path in its activate scripts, in the shebangs of the scripts
pip writes and in the ``.pyc`` files it compiles. It is built in a staging folder and renamed
into place, so :func:`relocate` rewrites those paths to the destination first and compiles
bytecode for the destination's paths; nothing in it names the staging folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from migrate.build.venv.tools import TIMEOUT, clean_env, release


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def relocate(staged: Path, dest: Path, *, compile: bool = True) -> None:
    """Make a venv built at ``staged`` correct at ``dest`` before it is renamed there.

    Rewrites the staging path in ``pyvenv.cfg`` and every file and symlink in ``bin/``
    (activate scripts, script shebangs, pip's ``exec`` trampolines for long paths), then
    compiles bytecode with the destination's paths in it (``compileall -d``) unless
    ``compile`` is false (a venv filled from the store links the store's bytecode).

    Files are rewritten by write-temp + rename, never in place: a file hardlinked from the
    store is thereby replaced in this venv alone, and the store and every other venv keep
    their copy.
    """
    old, new = os.fsencode(staged), os.fsencode(dest)
    candidates = [staged / "pyvenv.cfg"]
    bin_dir = staged / "bin"
    candidates += sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []
    for path in candidates:
        if path.is_symlink():
            target = os.readlink(path)
            if os.fsencode(target).startswith(old):
                path.unlink()
                os.symlink(os.fsdecode(new + os.fsencode(target)[len(old) :]), path)
        elif path.is_file():
            data = path.read_bytes()
            if old in data:
                _rewrite(path, data.replace(old, new))
    for site in site_dirs(staged) if compile else ():
        # Exit status ignored as pip ignores it: a module that does not compile (a py2-only
        # test file) still installs; it is compiled, or not, on first import.
        parallel = ["-j", "0"] if release(site.parent.name[len("python") :]) >= (3, 5) else []
        subprocess.run(  # without site: no .pth line of what was installed runs
            [str(venv_python(staged)), "-E", "-s", "-S", "-m", "compileall", "-q", *parallel, "-d",
             str(dest / site.relative_to(staged)), str(site)],
            capture_output=True, timeout=TIMEOUT, env=clean_env(), check=False,
        )  # fmt: skip


def _rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` (a new inode; a hardlink to the store is left untouched)."""
    mode = path.stat().st_mode & 0o7777
    temp = path.with_name(f".{path.name}.relocate")
    if os.path.lexists(temp):
        os.unlink(temp)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temp, mode)
    os.replace(temp, path)


def site_dirs(venv: Path) -> list[Path]:
    """``lib*/python*/site-packages`` of a venv: purelib and platlib, without duplicates."""
    found: dict[str, Path] = {}
    for site in sorted(venv.glob("lib*/python*/site-packages")):
        found.setdefault(os.path.realpath(site), site)
    return list(found.values())

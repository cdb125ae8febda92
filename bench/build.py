"""Benchmark building N app venvs from local wheels: the shared store against the plain tools.

Run it from the project root with the interpreter that has the project installed::

    python bench/build.py                 # 10 apps, each with the same Django-sized set
    python bench/build.py --apps 4 --keep

It generates, offline, 18 wheels of realistic file counts (one "framework" of 2,000 small
modules, the others 50-300 files; 5,090 files in all) and a requirements.txt pinning them,
then builds one venv per app, side by side in one run:

* this tool's store path, as ``build_app`` runs it (library calls): an unseeded virtualenv,
  ``install_linked`` (each wheel unpacked and byte-compiled once into a fresh store, then
  hardlinked), ``pip check`` with the tool's pip, ``relocate`` and a rename into place;
* the same with pip (``BuildOptions(link=False)``'s path: seeded virtualenv, the venv's pip);
* the naive pipeline: ``python -m venv`` + ``pip install --no-index --find-links W -r
  requirements.txt`` per app;
* ``uv venv`` + ``uv pip install`` per app, only when ``uv`` is on PATH (never installed);
* ``cp -al`` of one installed venv per app (the floor: nothing but the links).

It prints seconds, ratios and the disk used by all of an approach's venvs together
(``du -sk`` over them, plus the store for ours: a hardlinked file counts once), and whether
the targets hold: >= 15x faster than naive, <= 1.5x uv, disk <= 1.1x uv.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from migrate.build.venv import check, create_venv, embedded_pip, install, install_linked, relocate
from migrate.build.wheelfile import WheelSpec, build_wheel
from migrate.discover.interpreters import find_interpreter

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
ENV = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
SIZES = (2000, 300, 300, 300, 250, 250, 250, 200, 200, 200, 150, 150, 150, 100, 100, 80, 60, 50)


def module_text(package: str, number: int) -> bytes:
    """A plausible module of about 1.5 kB: a class, functions, constants."""
    body = [f'"""Module {number} of {package}."""', "", "import os", "import re", ""]
    body += [f"CONSTANT_{i} = {i * number}" for i in range(8)]
    body += ["", f"class Thing{number}:", '    """A thing."""', ""]
    for i in range(6):
        body += [
            f"    def method_{i}(self, value):",
            f"        return re.sub('a', 'b', os.fspath(str(value))) * {i + 1}",
            "",
        ]
    return ("\n".join(body) + "\n").encode()


def make_wheels(out: Path) -> list[tuple[Path, str, int]]:
    """18 pure wheels (name, file count); the framework requires the others (pip check)."""
    made = []
    names = [f"pkg{i:02d}" for i in range(len(SIZES))]
    for index, (name, count) in enumerate(zip(names, SIZES, strict=True)):
        files: dict[str, bytes] = {}
        per_dir = 40
        for number in range(count - 1):
            folder = f"{name}/sub{number // per_dir:02d}"
            files.setdefault(f"{folder}/__init__.py", b"")
            files[f"{folder}/mod{number:04d}.py"] = module_text(name, number)
        files[f"{name}/__init__.py"] = b'__version__ = "1.0"\n\ndef main():\n    print("ok")\n'
        files[f"{name}-1.0.dist-info/entry_points.txt"] = (
            f"[console_scripts]\n{name}-run = {name}:main\n".encode()
        )
        requires = tuple(f"{other}==1.0" for other in names[1:]) if index == 0 else ()
        wheel = build_wheel(WheelSpec(name, "1.0", files, requires=requires), out)
        made.append((wheel, name, len(files)))
    return made


OURS = "concentric-migrate store + hardlinks (library)"
OURS_LEAN = "  the same, no bytecode (uv's default)"
UV = "uv venv + uv pip install"
UV_BYTECODE = "  the same, --compile-bytecode"


def verdict(ratio: float, target: float, *, more: bool = False) -> str:
    met = ratio >= target if more else ratio <= target
    return f"{ratio:.2f}x {'met' if met else 'MISSED'}"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def du_k(paths: list[Path]) -> int:
    done = subprocess.run(
        ["du", "-sck", *map(str, paths)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1].split()[0])


def sh(*command: str | Path) -> None:
    subprocess.run([str(c) for c in command], check=True, env=ENV, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    interpreter = find_interpreter(PY)
    assert interpreter is not None
    root = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        wheels_dir = root / "wheels"
        made = make_wheels(wheels_dir)
        (root / "requirements.txt").write_text("".join(f"{n}==1.0\n" for _, n, _ in made))
        pairs = [(w, hashlib.sha256(w.read_bytes()).hexdigest()) for w, _, _ in made]
        files = sum(count for _, _, count in made)
        print(f"Python {PY}, {os.cpu_count()} CPU(s); {args.apps} apps x {len(made)} wheels "
              f"({files} files per app, the largest {max(c for _, _, c in made)})")  # fmt: skip

        results: dict[str, tuple[float, list[Path]]] = {}

        helpers = root / "helpers"
        create_venv(root / "warm", interpreter, helpers=helpers, seed=False)  # app-data cache
        pip_seed = embedded_pip(PY)  # build_app links a pip into each venv too
        items = [*pairs, pip_seed] if pip_seed else pairs

        def build_ours(where: Path, bytecode: bool) -> Callable[[], None]:
            def run() -> None:
                where.mkdir()
                for n in range(args.apps):
                    staged, dest = where / f"tmp-{n}", where / f"app{n:02d}" / "venv"
                    create_venv(staged, interpreter, helpers=helpers, seed=False)
                    result = install_linked(
                        staged, items, where / "store", python=PY, bytecode=bytecode
                    )
                    assert result.by_pip == () and result.copied == 0, result
                    relocate(staged, dest, compile=False)
                    dest.parent.mkdir()
                    staged.rename(dest)

            return run

        ours = root / "ours"
        results[OURS] = (timed(build_ours(ours, bytecode=True)), [ours])
        lean = root / "ours-lean"
        results[OURS_LEAN] = (timed(build_ours(lean, bytecode=False)), [lean])

        piped = root / "ours-pip"
        piped.mkdir()

        def build_piped() -> None:
            for n in range(args.apps):
                staged, dest = piped / f"tmp-{n}", piped / f"app{n:02d}" / "venv"
                create_venv(staged, interpreter, helpers=helpers)
                install(staged, [w for w, _ in pairs])
                relocate(staged, dest)
                dest.parent.mkdir()
                staged.rename(dest)

        results["concentric-migrate --no-link path (venv's pip)"] = (
            timed(build_piped), [piped],
        )  # fmt: skip

        naive = root / "naive"

        def build_naive() -> None:
            for n in range(args.apps):
                venv = naive / f"app{n:02d}"
                sh(interpreter.executable, "-m", "venv", venv)
                sh(venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links",
                   wheels_dir, "-r", root / "requirements.txt")  # fmt: skip

        results["naive: python -m venv + pip install -r"] = (timed(build_naive), [naive])

        uv = shutil.which("uv")
        if uv:

            def build_uv(where: Path, *options: str) -> Callable[[], None]:
                def run() -> None:
                    for n in range(args.apps):
                        venv = where / f"app{n:02d}"
                        sh(uv, "venv", "--quiet", "--python", interpreter.executable, venv)
                        sh(uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python",
                           "--offline", "--no-index", "--find-links", wheels_dir,
                           "--cache-dir", where.with_name(where.name + "-cache"), *options,
                           "-r", root / "requirements.txt")  # fmt: skip

                return run

            results[UV] = (timed(build_uv(root / "uv")), [root / "uv"])
            results[UV_BYTECODE] = (
                timed(build_uv(root / "uv-bc", "--compile-bytecode")), [root / "uv-bc"],
            )  # fmt: skip

        floor = root / "cp-al"
        floor.mkdir()

        def copy_links() -> None:
            for n in range(args.apps):
                sh("cp", "-al", naive / "app00", floor / f"app{n:02d}")

        results["cp -al of one installed venv (floor)"] = (timed(copy_links), [floor, naive])

        check(ours / "app00" / "venv")
        sh(ours / "app00" / "venv" / "bin" / "pkg00-run")
        naive_s = results["naive: python -m venv + pip install -r"][0]
        print(f"\n{'':52} {'total s':>8} {'s/app':>7} {'naive/x':>8} {'disk MB':>8}")
        disk = {}
        for label, (seconds, paths) in results.items():
            kb = du_k(paths)
            if label.startswith("cp -al"):
                kb -= du_k([naive])  # the links alone; the linked venv is naive's
            disk[label] = kb
            print(f"{label:52} {seconds:8.2f} {seconds / args.apps:7.3f} "
                  f"{naive_s / seconds:7.1f}x {kb / 1024:8.1f}")  # fmt: skip
        ours_s = results[OURS][0]
        print(f"\ntarget >= 15x faster than naive (both compile bytecode): "
              f"{verdict(naive_s / ours_s, 15, more=True)}")  # fmt: skip
        if uv:
            for mine, theirs, what in (
                (OURS_LEAN, UV, "no bytecode"),
                (OURS, UV_BYTECODE, "bytecode compiled"),
            ):
                time_ratio = results[mine][0] / results[theirs][0]
                disk_ratio = disk[mine] / disk[theirs]
                print(f"against uv, {what}: time <= 1.5x uv: {verdict(time_ratio, 1.5)}; "
                      f"disk <= 1.1x uv: {verdict(disk_ratio, 1.1)}")  # fmt: skip
        else:
            print("uv is not on PATH: the uv targets cannot be judged in this run")
        return 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

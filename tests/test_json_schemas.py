"""Every ``--json`` document the real CLI prints validates against its schema in docs/schemas/.

One story on the demo account (inventory, plan, requirements, journal, rollback, build,
verify, run, and the error documents) runs the CLI in a subprocess, as a script would, and
checks each step's stdout and exit code. The schemas say ``additionalProperties: false``
everywhere, so a key the schema does not document fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from jsonschema import Draft202012Validator

from migrate.cli import cli

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"

COMMAND_SCHEMAS = {
    "inventory": ["inventory"],
    "plan": ["plan"],
    "requirements": ["requirements"],
    "build": ["build"],
    "run": ["run", "run-dry-run"],
    "verify": ["verify"],
    "rollback": ["rollback"],
    "journal": ["journal"],
}
"""Each command with ``--json`` and the schema(s) of the document it prints on success."""


@dataclass(frozen=True)
class Expect:
    schema: str
    command: str
    exit_code: int


STEPS = {
    "inventory": Expect("inventory", "inventory", 0),
    "plan": Expect("plan", "plan", 0),
    "requirements --dry-run": Expect("requirements", "requirements", 0),
    "requirements": Expect("requirements", "requirements", 0),
    "journal": Expect("journal", "journal", 0),
    "rollback requirements": Expect("rollback", "rollback", 0),
    "build": Expect("build", "build", 0),
    "verify": Expect("verify", "verify", 0),
    "verify broken venv": Expect("verify", "verify", 1),
    "rollback build": Expect("rollback", "rollback", 0),
    "rollback nothing left": Expect("rollback", "rollback", 0),
    "run --dry-run": Expect("run-dry-run", "run", 0),
    "run": Expect("run", "run", 0),
    "run --dry-run after run": Expect("run-dry-run", "run", 1),
    "run refused": Expect("error", "run", 1),
    "rollback run": Expect("rollback", "rollback", 0),
    "journal after all": Expect("journal", "journal", 0),
    "rollback no such id": Expect("error", "rollback", 2),
    "inventory no such home": Expect("error", "inventory", 2),
    "plan no such app": Expect("error", "plan", 2),
    "inventory bogus option": Expect("error", "inventory", 2),
    "rollback empty home": Expect("rollback", "rollback", 0),
    "journal empty home": Expect("journal", "journal", 0),
}


@dataclass(frozen=True)
class Output:
    returncode: int
    stdout: str
    stderr: str


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


PARALLEL = (
    "inventory",
    "plan",
    "requirements --dry-run",
    "run --dry-run",
    "rollback no such id",
    "inventory no such home",
    "plan no such app",
    "inventory bogus option",
    "rollback empty home",
    "journal empty home",
)
"""Steps that only read (or fail before reading): they run first, side by side."""


def run_story(root: Path) -> dict[str, Output]:
    """Every step of STEPS on one demo account; build and run only once each."""
    from migrate.demo import build_demo_account

    demo = build_demo_account(root / "demo")
    empty = root / "empty-home"
    empty.mkdir()
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_NO_INDEX", None)
    account = ["--home", str(demo.home), "--crontab", str(demo.crontab)]
    python = ["--python", f"{demo.python.name.removeprefix('python')}={demo.python}"]
    argv = {
        "inventory": [*account, "inventory", "--json"],
        "plan": [*account, "plan", *python, "--json"],
        "requirements --dry-run": [*account, "requirements", "--dry-run", "--json"],
        "requirements": [*account, "requirements", "--json"],
        "journal": [*account, "journal", "--json"],
        "rollback requirements": [*account, "rollback", "--json"],
        "build": [*account, "build", *python, "--json"],
        "verify": [*account, "verify", *python, "--json"],
        "verify broken venv": [*account, "verify", *python, "--json"],
        "rollback build": [*account, "rollback", "--force", "--json"],
        "rollback nothing left": [*account, "rollback", "--json"],
        "run --dry-run": [*account, "run", *python, "--dry-run", "--json"],
        "run": [*account, "run", *python, "--yes", "--json"],
        "run --dry-run after run": [*account, "run", *python, "--dry-run", "--json"],
        "run refused": [*account, "run", *python, "--yes", "--json"],
        "rollback run": [*account, "rollback", "--json"],
        "journal after all": [*account, "journal", "--json"],
        "rollback no such id": [*account, "rollback", "NO-SUCH-ID", "--json"],
        "inventory no such home": ["--home", str(root / "no-such-home"), "inventory", "--json"],
        "plan no such app": [*account, "plan", "--app", "nosuchapp", "--json"],
        "inventory bogus option": [*account, "inventory", "--json", "--bogus-option"],
        "rollback empty home": ["--home", str(empty), "rollback", "--json"],
        "journal empty home": ["--home", str(empty), "journal", "--json"],
    }
    assert set(argv) == set(STEPS)

    def step(name: str) -> Output:
        done = subprocess.run(
            [sys.executable, "-m", "migrate", *argv[name]],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        return Output(done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = dict(zip(PARALLEL, pool.map(step, PARALLEL), strict=True))
    for name in STEPS:
        if name in PARALLEL:
            continue
        if name == "verify broken venv":  # as a user might: delete a package from the venv
            for site in (demo.home / "webapps/shop/venv/lib").glob("python*/site-packages"):
                for path in site.glob("webframe*"):
                    shutil.rmtree(path)
        outputs[name] = step(name)
    return outputs


def document(story: dict[str, Output], name: str) -> dict[str, Any]:
    out = story[name]
    assert out.returncode == STEPS[name].exit_code, (name, out.returncode, out.stderr)
    return json.loads(out.stdout)  # exactly one JSON document on stdout


def schema_problems(story: dict[str, Output], name: str) -> list[str]:
    """What is wrong with one step's document: exit code, JSON, schema, envelope."""
    expect, out = STEPS[name], story[name]
    if out.returncode != expect.exit_code:
        return [f"exit {out.returncode}, expected {expect.exit_code}: {out.stderr.strip()}"]
    try:
        doc = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        return [f"stdout is not one JSON document ({exc}): {out.stdout[:200]!r}"]
    schema = load_schema(expect.schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    problems = [f"{expect.schema}.schema.json: {list(e.path)}: {e.message}" for e in errors]
    if doc.get("schema") != schema["properties"]["schema"]["const"]:
        problems.append(f"schema {doc.get('schema')!r}")
    if doc.get("command") != expect.command:
        problems.append(f"command {doc.get('command')!r}, expected {expect.command!r}")
    if doc.get("ok") is not (out.returncode == 0):
        problems.append(f"ok {doc.get('ok')!r} with exit code {out.returncode}")
    if expect.schema == "error":
        error = doc.get("error", {})
        if error.get("exit_code") != out.returncode:
            problems.append(f"error.exit_code {error.get('exit_code')!r}")
        if not error.get("message") or error["message"] not in out.stderr:
            problems.append("stderr does not keep the error message")
    return problems


def test_real_output_of_every_command_matches_its_schema(tmp_path: Path) -> None:
    """The one test that runs the story (one test, so pytest-xdist runs it once)."""
    story = run_story(tmp_path)
    problems = {name: found for name in STEPS if (found := schema_problems(story, name))}
    assert not problems, "\n".join(
        f"{name}: {problem}" for name, found in problems.items() for problem in found
    )

    # Not only well formed: the documents say what each step did.
    assert document(story, "requirements --dry-run")["transaction"] is None
    written = document(story, "requirements")["transaction"]
    assert [t["id"] for t in document(story, "journal")["transactions"]] == [written]
    assert document(story, "rollback requirements")["transaction"] == written

    built = document(story, "build")
    assert {app["app"] for app in built["apps"]} == {"blog", "shop", "~"}
    assert document(story, "verify")["ok"] is True
    broken = document(story, "verify broken venv")
    assert {app["app"]: app["ok"] for app in broken["apps"]} == {
        "blog": True,
        "shop": False,
        "~": True,
    }
    assert document(story, "rollback build")["transaction"] == built["transaction"]
    nothing_left = document(story, "rollback nothing left")
    assert nothing_left["already"] is True and nothing_left["transaction"] == built["transaction"]

    assert document(story, "run --dry-run")["problems"] == []
    ran = document(story, "run")
    assert document(story, "run --dry-run after run")["problems"]
    refused = document(story, "run refused")["error"]
    assert refused["kind"] == "refused" and refused["problems"]
    assert document(story, "rollback run")["transaction"] == ran["transaction"]
    states = [t["state"] for t in document(story, "journal after all")["transactions"]]
    assert states == ["rolled-back"] * 3

    for name in ("rollback no such id", "inventory no such home", "plan no such app"):
        assert document(story, name)["error"]["kind"] == "bad-input", name
    usage = document(story, "inventory bogus option")["error"]
    assert usage["kind"] == "bad-input" and "--bogus-option" in usage["message"]
    assert document(story, "rollback empty home")["transaction"] is None
    assert document(story, "journal empty home")["transactions"] == []


def _schema_files() -> list[Path]:
    return sorted(SCHEMAS.glob("*.schema.json"))


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_each_schema_is_a_valid_self_contained_draft_2020_12_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    refs = _values(schema, "$ref")
    assert all(ref.startswith("#/$defs/") for ref in refs), "no cross-file $ref"
    assert all(ref.removeprefix("#/$defs/") in schema.get("$defs", {}) for ref in refs)
    for node in _objects(schema):
        assert node.get("additionalProperties") is False, node.get("description")
        assert set(node["required"]) == set(node["properties"]), node.get("description")
        for key, prop in node["properties"].items():
            assert prop.get("description"), f"{path.name}: {key} has no description"


def _walk(node: Any) -> list[Any]:
    found = [node]
    if isinstance(node, dict):
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def _values(schema: dict[str, Any], key: str) -> list[Any]:
    return [n[key] for n in _walk(schema) if isinstance(n, dict) and key in n]


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every subschema that describes an object by its properties."""
    return [
        n
        for n in _walk(schema)
        if isinstance(n, dict) and n.get("type") == "object" and "properties" in n
    ]


def _json_commands() -> set[str]:
    return {
        name
        for name, command in cli.commands.items()
        if any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params)
    }


def test_every_json_command_has_a_schema() -> None:
    assert _json_commands() == set(COMMAND_SCHEMAS), "map each --json command to its schema(s)"
    named = {name for names in COMMAND_SCHEMAS.values() for name in names} | {"error"}
    assert {p.name.removesuffix(".schema.json") for p in _schema_files()} == named
    assert set(load_schema("error")["properties"]["command"]["enum"]) == _json_commands()


def test_every_schema_is_checked_against_real_output() -> None:
    assert {expect.schema for expect in STEPS.values()} == {
        p.name.removesuffix(".schema.json") for p in _schema_files()
    }

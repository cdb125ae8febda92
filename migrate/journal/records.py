"""The journal's records: one frozen type per line of ``journal.jsonl``, read and written here.

A line is one JSON object; ``rec`` names its kind and, for an intent, ``op`` the operation.
Reading checks every field rollback will use, with its type, so a damaged or planted
journal fails when it is loaded, never halfway through an undo. The JSON keys are the
on-disk format: renaming a field here changes it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

FileOp = Literal["write", "crontab-file"]
Action = Literal["restored", "removed", "unchanged", "absent"]


@dataclass(frozen=True)
class Begin:
    """The first line of every transaction."""

    id: str
    seq: int
    created: str
    description: str
    home: str
    pid: int
    argv: tuple[str, ...]
    rec: ClassVar[str] = "begin"


@dataclass(frozen=True)
class Previous:
    """What a replaced file was: its bytes are in ``backups/BACKUP``."""

    before: str
    mode: str
    uid: int
    gid: int
    xattrs: Mapping[str, str]
    """Base64 of each xattr's value (POSIX ACLs among them)."""
    backup: str


@dataclass(frozen=True)
class WriteIntent:
    """A file about to be created or replaced (``crontab-file``: a crontab given as a file,
    the one path that may lie outside the home, recorded absolute there)."""

    n: int
    op: FileOp
    path: str
    after: str
    temp: str
    new_mode: str
    previous: Previous | None
    """None: the file did not exist."""
    in_place: bool = False
    """Written into the file itself (it has other names: hard links), not renamed in; not
    atomic, so until its done record the file may hold part of either text."""
    rec: ClassVar[str] = "intent"

    @property
    def existed(self) -> bool:
        return self.previous is not None


@dataclass(frozen=True)
class MkdirIntent:
    n: int
    path: str
    new_mode: str
    op: ClassVar[str] = "mkdir"
    rec: ClassVar[str] = "intent"
    existed: ClassVar[bool] = False


@dataclass(frozen=True)
class InstallIntent:
    """A folder built aside (``staged``) about to be renamed to ``path``."""

    n: int
    path: str
    staged: str
    tree: str | None = None
    """The backup holding its listing (:mod:`migrate.journal.tree`): what rollback may take
    away; None in journals written before listings were kept (all of it)."""
    tree_sha256: str | None = None
    op: ClassVar[str] = "install"
    rec: ClassVar[str] = "intent"
    existed: ClassVar[bool] = False


@dataclass(frozen=True)
class CrontabIntent:
    """The installed crontab of user ``uid`` about to be replaced through ``crontab -``."""

    n: int
    after: str
    uid: int
    user: str
    before: str | None
    backup: str | None
    """Both None: the user had no crontab."""
    op: ClassVar[str] = "crontab"
    rec: ClassVar[str] = "intent"

    @property
    def existed(self) -> bool:
        return self.before is not None


@dataclass(frozen=True)
class Done:
    n: int
    rec: ClassVar[str] = "done"


@dataclass(frozen=True)
class Restoring:
    """Operation ``n``'s file (written in place) is about to get its old text back, in
    place: until its undone record, what it holds is the rollback's own half-written text."""

    n: int
    rec: ClassVar[str] = "restoring"


@dataclass(frozen=True)
class Commit:
    at: str
    rec: ClassVar[str] = "commit"


@dataclass(frozen=True)
class RollbackBegin:
    force: bool
    at: str
    rec: ClassVar[str] = "rollback-begin"


@dataclass(frozen=True)
class Aside:
    """An edited file (or the crontab's edited text) moved into ``edited/`` as ``kept``."""

    n: int
    path: str
    kept: str
    crontab: bool = False
    rec: ClassVar[str] = "aside"


@dataclass(frozen=True)
class Undone:
    n: int
    action: Action
    path: str
    aside: str | None
    crontab: bool = False
    rec: ClassVar[str] = "undone"


@dataclass(frozen=True)
class RolledBack:
    at: str
    rec: ClassVar[str] = "rolled-back"


Intent = WriteIntent | MkdirIntent | InstallIntent | CrontabIntent
INTENTS = (WriteIntent, MkdirIntent, InstallIntent, CrontabIntent)
Record = Begin | Intent | Done | Restoring | Commit | RollbackBegin | Aside | Undone | RolledBack


def encode_xattrs(xattrs: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode("ascii") for k, v in xattrs.items()}


def decode_xattrs(xattrs: Mapping[str, str]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in xattrs.items()}


def dumps(record: Record) -> bytes:
    """One journal line, newline included."""
    return json.dumps(_to_json(record), separators=(",", ":")).encode("ascii") + b"\n"


def loads(line: bytes) -> Record:
    """A journal line back as its record; ValueError when it is not a well-formed one."""
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    return _from_json(_Fields(raw))


def _to_json(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {"rec": record.rec}
    if isinstance(record, Begin):
        out.update(
            id=record.id, seq=record.seq, created=record.created,
            description=record.description, home=record.home, pid=record.pid,
            argv=list(record.argv),
        )  # fmt: skip
    elif isinstance(record, WriteIntent):
        out.update(n=record.n, op=record.op, path=record.path, existed=record.existed,
                   after=record.after, temp=record.temp)  # fmt: skip
        if record.previous is not None:
            p = record.previous
            out.update(before=p.before, mode=p.mode, uid=p.uid, gid=p.gid,
                       xattrs=dict(p.xattrs), backup=p.backup)  # fmt: skip
        out["new_mode"] = record.new_mode
        if record.in_place:
            out["in_place"] = True
    elif isinstance(record, MkdirIntent):
        out.update(n=record.n, op=record.op, path=record.path, existed=False,
                   new_mode=record.new_mode)  # fmt: skip
    elif isinstance(record, InstallIntent):
        out.update(n=record.n, op=record.op, path=record.path, staged=record.staged,
                   existed=False)  # fmt: skip
        if record.tree is not None:
            out.update(tree=record.tree, tree_sha256=record.tree_sha256)
    elif isinstance(record, CrontabIntent):
        out.update(n=record.n, op=record.op, existed=record.existed, after=record.after,
                   uid=record.uid, user=record.user)  # fmt: skip
        if record.before is not None:
            out.update(before=record.before, backup=record.backup)
    elif isinstance(record, (Done, Restoring)):
        out["n"] = record.n
    elif isinstance(record, (Commit, RolledBack)):
        out["at"] = record.at
    elif isinstance(record, RollbackBegin):
        out.update(force=record.force, at=record.at)
    elif isinstance(record, Aside):
        out.update(n=record.n, path=record.path)
        if record.crontab:
            out["crontab"] = True
        out["kept"] = record.kept
    elif isinstance(record, Undone):
        out.update(n=record.n, action=record.action, path=record.path)
        if record.crontab:
            out["crontab"] = True
        out["aside"] = record.aside
    return out


class _Fields:
    """Typed access to a raw record: a missing key or a wrong type is a ValueError."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                raise ValueError(f"no {key!r}")
            return default
        value = self.raw[key]
        if not isinstance(value, kind) or (kind in (int, (int,)) and isinstance(value, bool)):
            raise ValueError(f"{key!r} is {type(value).__name__}")
        return value

    def str(self, key: str, default: Any = ...) -> Any:
        return self.get(key, str, default)

    def int(self, key: str, default: Any = ...) -> Any:
        return self.get(key, int, default)

    def bool(self, key: str, default: Any = ...) -> Any:
        return self.get(key, bool, default)


_ACTIONS = frozenset({"restored", "removed", "unchanged", "absent"})


def _from_json(f: _Fields) -> Record:
    rec = f.str("rec")
    if rec == "begin":
        argv = f.get("argv", list, [])
        return Begin(
            id=f.str("id"), seq=f.int("seq", 0), created=f.str("created", ""),
            description=f.str("description", ""), home=f.str("home", ""), pid=f.int("pid", 0),
            argv=tuple(str(a) for a in argv),
        )  # fmt: skip
    if rec == "intent":
        return _intent(f)
    if rec == "done":
        return Done(f.int("n"))
    if rec == "restoring":
        return Restoring(f.int("n"))
    if rec == "commit":
        return Commit(f.str("at", ""))
    if rec == "rollback-begin":
        return RollbackBegin(f.bool("force", False), f.str("at", ""))
    if rec == "rolled-back":
        return RolledBack(f.str("at", ""))
    if rec == "aside":
        return Aside(f.int("n"), f.str("path"), f.str("kept"), f.bool("crontab", False))
    if rec == "undone":
        action = f.str("action")
        if action not in _ACTIONS:
            raise ValueError(f"action {action!r}")
        aside = f.get("aside", (str, type(None)), None)
        return Undone(f.int("n"), action, f.str("path"), aside, f.bool("crontab", False))
    raise ValueError(f"record kind {rec!r}")


def _intent(f: _Fields) -> Intent:
    op, n = f.str("op"), f.int("n")
    if op in ("write", "crontab-file"):
        previous = None
        if f.bool("existed"):
            xattrs = f.get("xattrs", dict)
            if not all(isinstance(v, str) for v in xattrs.values()):
                raise ValueError("xattrs")
            previous = Previous(
                f.str("before"), f.str("mode"), f.int("uid"), f.int("gid"), xattrs,
                f.str("backup"),
            )  # fmt: skip
        return WriteIntent(
            n,
            op,
            f.str("path"),
            f.str("after"),
            f.str("temp"),
            f.str("new_mode"),
            previous,
            f.bool("in_place", False),
        )
    if op == "mkdir":
        return MkdirIntent(n, f.str("path"), f.str("new_mode"))
    if op == "install":
        tree = f.str("tree", None)
        tree_sha256 = None if tree is None else f.str("tree_sha256")
        return InstallIntent(n, f.str("path"), f.str("staged"), tree, tree_sha256)
    if op == "crontab":
        existed = f.bool("existed")
        before = f.str("before") if existed else None
        backup = f.str("backup") if existed else None
        return CrontabIntent(n, f.str("after"), f.int("uid"), f.str("user", "?"), before, backup)
    raise ValueError(f"operation {op!r}")

"""The privilege model: as root on another user's home, everything there is that user's.

The usual operator is an administrator (root) migrating a customer's account, and the
customer can change any file of her home at any moment, during a migration included. So,
when the caller is root and the home belongs to someone else:

* what the tool creates in the home is given to the home's owner (:func:`give`);
* the account's own code — its scripts, servers, imports, and any interpreter run with the
  account's files on its path (a venv's python runs its ``.pth`` lines) — runs as the
  owner, in a child that dropped root (:func:`as_owner`), never as root; so does the
  building of her venvs, store trees and wheels (:func:`become`), which writes by path
  into folders of hers that she could swap for links while it works;
* the tool's state folders are trusted only when they are the owner's own private folders
  with no symlink on the way (:func:`check_private`): otherwise someone else, or a link,
  decides where root writes;
* nothing the journal restores grants what the journal's writer — the owner, who can write
  the journal — could not have set herself (:func:`grant_refused`).

Root migrating root's own tree, or a user migrating her own home, changes nothing here.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class NotPrivate(Exception):
    """A state folder that is not the expected user's own private folder."""


@dataclass(frozen=True)
class Owner:
    """The user a home belongs to, as root needs to act for her."""

    uid: int
    gid: int
    name: str
    groups: tuple[int, ...]
    """Her supplementary groups (with ``gid``): what a child running as her gets."""


def owner_of(home: Path) -> Owner | None:
    """The home's owner when root works on another user's home; None when the caller is
    the one who owns it (nothing to drop, nothing to give). Her own primary group and
    groups (the passwd entry's), not the home's group: a home group-owned by, say,
    www-data must not lend that group to what runs as her."""
    if os.geteuid() != 0:
        return None
    info = os.stat(home)
    if info.st_uid == 0:
        return None
    try:
        pwd.getpwuid(info.st_uid)
    except KeyError:  # no such user: her uid, the home's group
        return user(info.st_uid, info.st_gid)
    return user(info.st_uid)


def controller(path: Path) -> Owner | None:
    """As root: the user who could change what running ``path`` does — the owner of the
    file, or of a folder on its way, that is not root's (``nobody`` when a root-owned one
    is writable by group or others). None when root alone controls it, or when the caller
    is not root (nothing to drop)."""
    if os.geteuid() != 0:
        return None
    real = Path(os.path.realpath(path))
    for step in (real, *real.parents):
        try:
            info = os.stat(step)
        except OSError:
            continue
        writable = info.st_mode & 0o022 and not (step != real and info.st_mode & stat.S_ISVTX)
        if info.st_uid != 0:
            return user(info.st_uid)
        if writable:  # anyone could have written it: run it as no one in particular
            entry = pwd.getpwnam("nobody")
            return Owner(entry.pw_uid, entry.pw_gid, "nobody", (entry.pw_gid,))
    return None


def user(uid: int, gid: int | None = None) -> Owner:
    """The user ``uid`` with her groups (``gid``: her primary group unless given)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        group = uid if gid is None else gid
        return Owner(uid, group, str(uid), (group,))
    group = entry.pw_gid if gid is None else gid
    return Owner(uid, group, entry.pw_name, tuple(os.getgrouplist(entry.pw_name, group)))


def expected_uid(home: Path) -> int:
    """Who the tool's state folders in ``home`` must belong to."""
    owner = owner_of(home)
    return os.geteuid() if owner is None else owner.uid


def as_owner(owner: Owner | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as ``owner`` (root dropped in the child,
    with her groups and only hers); none when there is nobody to become."""
    if owner is None:
        return {}
    return {"user": owner.uid, "group": owner.gid, "extra_groups": list(owner.groups)}


def become(owner: Owner | None) -> None:
    """Drop root for good in this process and become ``owner`` (her groups only): the
    start of a worker that does, as her, what she could do herself — building venvs,
    store trees and wheels in her home — so that no path she can swap for a link while it
    works is ever written by root. Every rule above then sees a caller who owns the home.
    Nothing to do for None."""
    if owner is None:
        return
    os.setgroups(list(owner.groups))
    os.setgid(owner.gid)
    os.setuid(owner.uid)
    os.chdir("/")  # root's working folder may be closed to her


def give(path: Path, owner: Owner | None) -> None:
    """Give one path (not what a symlink points at) to ``owner``."""
    if owner is not None:
        os.lchown(path, owner.uid, owner.gid)


def give_tree(root: Path, owner: Owner | None) -> None:
    """Give a tree the tool just built (a staged venv, a store tree) to ``owner``.

    Bottom-up, the top folder last: until a folder is hers she cannot put anything in it,
    so only what the tool made is given (never, say, a hard link she planted to a file of
    someone else's)."""
    if owner is None:
        return
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in (*files, *dirs):
            os.lchown(os.path.join(folder, name), owner.uid, owner.gid)
    os.lchown(root, owner.uid, owner.gid)


def give_like(fd: int, folder: Path) -> None:
    """Give a file the tool created in one of its state folders (open as ``fd``) to that
    folder's owner, when root made it for someone else."""
    if os.geteuid() == 0:
        info = os.stat(folder)
        if info.st_uid != 0:
            os.fchown(fd, info.st_uid, info.st_gid)


def give_like_dir(folder: Path) -> None:
    """Give a folder the tool just made in its state folder to that folder's owner."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        give_like(fd, folder.parent)
    finally:
        os.close(fd)


def check_private(home_real: Path, folder: Path, uid: int, *, private: bool = True) -> None:
    """``folder`` (inside the real home) is a real folder owned by ``uid`` that no one else
    may write, and no folder between the home and it is a symlink; ``private``: nobody else
    may even read it. :class:`NotPrivate` otherwise, saying what to fix."""
    relative = folder.relative_to(home_real)
    current = home_real
    for part in relative.parts:
        current = current / part
        info = os.lstat(current)
        if stat.S_ISLNK(info.st_mode):
            raise NotPrivate(f"{current} is a symlink: refusing to follow it (remove it)")
        if not stat.S_ISDIR(info.st_mode):
            raise NotPrivate(f"{current} is not a folder: refusing to use it")
        if info.st_uid != uid:
            raise NotPrivate(
                f"{current} belongs to uid {info.st_uid}, not to uid {uid} who owns the "
                "home: refusing to trust it"
            )
        if current != home_real and info.st_mode & 0o022:
            raise NotPrivate(
                f"{current} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "refusing to trust it (chmod 700 it)"
            )
    if private and stat.S_IMODE(os.lstat(folder).st_mode) & 0o077:
        raise NotPrivate(
            f"{folder} is open to others (mode {stat.S_IMODE(os.lstat(folder).st_mode):04o}); "
            "the tool's folders are private: chmod 700 it"
        )


def grant_refused(
    uid: int, gid: int, mode: int, current: os.stat_result | None, writer: Owner | None
) -> str | None:
    """Why restoring a file as ``uid:gid`` with ``mode`` would grant more than ``writer``
    (who could write the journal) could have set; None when it grants nothing new.

    Keeping what the file has now grants nothing; otherwise the owner must be the writer,
    the group one of hers, and a setuid (setgid) bit needs that owner (group). With no
    writer (root's own tree, or a user's own home) the kernel is the only judge.
    """
    if writer is None:
        return None
    same_uid = current is not None and current.st_uid == uid
    same_gid = current is not None and current.st_gid == gid
    if uid != writer.uid and not same_uid:
        return f"owner uid {uid}"
    if gid not in writer.groups and not same_gid:
        return f"group gid {gid}"
    had = 0 if current is None else current.st_mode
    if mode & stat.S_ISUID and uid != writer.uid and not (same_uid and had & stat.S_ISUID):
        return f"a setuid bit for uid {uid}"
    if mode & stat.S_ISGID and gid not in writer.groups and not (same_gid and had & stat.S_ISGID):
        return f"a setgid bit for gid {gid}"
    return None

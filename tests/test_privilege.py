"""The privilege model's rules (migrate/privilege.py) on real folders and real stat results.

The attacks themselves are replayed as root on a real user's home in
tests/test_root_hostile_user.py; these pin each rule where any user can run them.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from migrate.privilege import NotPrivate, Owner, check_private, grant_refused, owner_of

ALICE = Owner(uid=1500, gid=1500, name="alice", groups=(1500, 1600))


def stat_of(tmp_path: Path, uid: int, gid: int, mode: int) -> os.stat_result:
    """A real stat result of a real file, with the owner and mode a test needs."""
    path = tmp_path / f"f-{uid}-{gid}-{mode:o}"
    path.write_bytes(b"")
    real = os.stat(path)
    fields = list(real)
    fields[stat.ST_MODE] = stat.S_IFREG | mode
    fields[stat.ST_UID], fields[stat.ST_GID] = uid, gid
    return os.stat_result(fields)


def test_a_restore_may_give_only_what_the_writer_could_set(tmp_path: Path) -> None:
    assert grant_refused(1500, 1600, 0o4755, None, ALICE) is None  # her own setuid file
    assert grant_refused(0, 0, 0o4755, None, ALICE) == "owner uid 0"
    assert grant_refused(1500, 0, 0o644, None, ALICE) == "group gid 0"
    assert grant_refused(1500, 1500, 0o2755, None, ALICE) is None
    root_file = stat_of(tmp_path, 0, 0, 0o644)
    assert grant_refused(0, 0, 0o644, root_file, ALICE) is None  # kept as it is: nothing new
    assert grant_refused(0, 0, 0o4755, root_file, ALICE) == "a setuid bit for uid 0"
    assert grant_refused(0, 0, 0o2755, root_file, ALICE) == "a setgid bit for gid 0"
    setuid_root = stat_of(tmp_path, 0, 0, 0o4755)
    assert grant_refused(0, 0, 0o4755, setuid_root, ALICE) is None  # it was so already
    assert grant_refused(0, 0, 0o4755, None, None) is None  # no writer: the kernel decides


def test_a_state_folder_must_be_private_and_reached_without_a_symlink(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = home / ".state"
    (state / "journal").mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    (state / "journal").chmod(0o700)
    uid = os.geteuid()
    check_private(home, state / "journal", uid)
    with pytest.raises(NotPrivate, match="belongs to uid"):
        check_private(home, state / "journal", uid + 1)
    (state / "journal").chmod(0o755)
    with pytest.raises(NotPrivate, match="open to others"):
        check_private(home, state / "journal", uid)
    check_private(home, state / "journal", uid, private=False)
    (state / "journal").chmod(0o777)
    with pytest.raises(NotPrivate, match="writable by others"):
        check_private(home, state / "journal", uid, private=False)
    (state / "journal").chmod(0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (state / "store").symlink_to(elsewhere)
    with pytest.raises(NotPrivate, match="is a symlink"):
        check_private(home, state / "store", uid, private=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it chowns a folder")
def test_the_owner_acts_with_her_own_groups_not_the_homes_group(tmp_path: Path) -> None:
    """A home group-owned by a group its user is not in (www-data, say, so Apache can
    traverse it): what runs as her must not get that group."""
    try:
        nobody, www = pwd.getpwnam("nobody"), grp.getgrnam("www-data")
    except KeyError:
        pytest.skip("no nobody user or www-data group here")
    if nobody.pw_name in www.gr_mem or nobody.pw_gid == www.gr_gid:
        pytest.skip("nobody is in www-data here")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, www.gr_gid)
    owner = owner_of(home)
    assert owner is not None
    assert (owner.uid, owner.gid) == (nobody.pw_uid, nobody.pw_gid)
    assert www.gr_gid not in owner.groups

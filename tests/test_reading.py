"""Reading a file by descriptor, sized by its ``fstat``: what the inventory, the used set
and the plan read thousands of files with (:func:`migrate.paths.read_regular`,
:func:`migrate.paths.read_to_end`, the inventory's ``read_with_stat``).

The size ``fstat`` gave is only where the first read stops: a file that grew since (a log
appended to, a ``/proc`` file that says 0) is read on to its end, and a limit is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrate.inventory._files import Unreadable, read_with_stat
from migrate.paths import NotAFile, read_regular, read_to_end


def test_a_file_is_read_whole_and_at_most_one_byte_past_a_limit(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_bytes(b"import os\n" * 1000)

    assert read_regular(path) == b"import os\n" * 1000
    assert read_regular(str(path), 10_000) == b"import os\n" * 1000
    assert read_regular(path, 9_999) == b"import os\n" * 1000  # limit + 1 bytes: all of it
    assert read_regular(path, 25) == b"import os\n" * 2 + b"import"
    (tmp_path / "empty.py").write_bytes(b"")
    assert read_regular(tmp_path / "empty.py") == b""


@pytest.mark.parametrize("limit", [None, 100, 5_000, 1_000_000])
def test_a_file_that_grew_after_its_fstat_is_read_to_its_end_or_its_limit(
    tmp_path: Path, limit: int | None
) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"a" * 1_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        with open(path, "ab") as more:  # grows by 200 kB: more than one block read on
            more.write(b"b" * 200_000)
        data = read_to_end(fd, size, limit)
    finally:
        os.close(fd)

    whole = b"a" * 1_000 + b"b" * 200_000
    assert data == (whole if limit is None else whole[: limit + 1])


def test_a_file_that_shrank_after_its_fstat_is_read_as_it_is_now(tmp_path: Path) -> None:
    path = tmp_path / "shrinking"
    path.write_bytes(b"x" * 5_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        os.truncate(path, 10)
        assert read_to_end(fd, size) == b"x" * 10
    finally:
        os.close(fd)


def _proc_says_empty() -> bool:
    try:
        return os.stat("/proc/self/cmdline").st_size == 0
    except OSError:
        return False


@pytest.mark.skipif(not _proc_says_empty(), reason="no /proc here whose files say size 0")
def test_a_file_whose_fstat_says_empty_is_read_to_its_end() -> None:
    """procfs gives size 0 for files that have bytes: the first read finds more."""
    with open("/proc/self/cmdline", "rb") as handle:
        expected = handle.read()
    assert len(expected) > 4

    assert read_regular("/proc/self/cmdline") == expected
    assert read_regular("/proc/self/cmdline", 3) == expected[:4]
    data, _ = read_with_stat("/proc/self/cmdline")
    assert data == expected
    with pytest.raises(Unreadable, match="larger than 3 bytes"):  # the limit holds there too
        read_with_stat("/proc/self/cmdline", 3)


@pytest.mark.parametrize("change", ["none", "grew", "shrank"])
def test_short_reads_are_read_on_and_still_see_a_file_that_grew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A read may return fewer bytes than asked (a network or FUSE file system, a signal):
    the real reads, each cut to 128 bytes (the size a multiple of it, so one ends right at
    the size `fstat` gave), must give what one whole read gives."""
    path = tmp_path / "module.py"
    path.write_bytes(bytes(range(256)) * 20)  # 5,120 bytes
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 128)))
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if change == "grew":
            with open(path, "ab") as more:
                more.write(b"tail" * 50)
        elif change == "shrank":
            os.truncate(path, 1_000)
        data = read_to_end(fd, size)
        os.lseek(fd, 0, os.SEEK_SET)
        capped = read_to_end(fd, size, size)  # a limit as large as the fstat size
    finally:
        os.close(fd)

    whole = path.read_bytes()
    assert data == whole
    assert capped == whole[: size + 1]


def test_a_fifo_is_refused_at_once_never_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "METADATA"
    os.mkfifo(fifo)

    with pytest.raises(NotAFile):
        read_regular(fifo)
    with pytest.raises(Unreadable, match="not a regular file"):
        read_with_stat(fifo)

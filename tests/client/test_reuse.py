"""Content taken from another local copy (``--reuse DIR``, ``--link``), issue 24: what is placed
is what was hashed, another folder's record is no evidence, a hard link is made only to the very
file that was checked, and a link that cannot be made is a copy."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from djarchive_client import client, reuse
from djarchive_common.localfs import Folder
from tests.helpers import read_tree

A = {"keep/same.bin": b"same" * 1000, "move/from.bin": b"moved content" * 100, "old.bin": b"A only"}
B = {"keep/same.bin": A["keep/same.bin"], "move/to.bin": A["move/from.bin"], "new.bin": b"B only"}


@pytest.fixture
def two(archive):
    archive.publish("ds", "A", A)
    archive.publish("ds", "B", B)
    return archive


@pytest.fixture
def first(two, tmp_path) -> Path:
    """A complete copy of revision A, to reuse."""
    target = tmp_path / "first"
    client().download("ds", "A", target, create_target=True)
    return target


def test_another_copys_record_is_no_evidence(first, tmp_path):
    path = first / "keep" / "same.bin"
    status = path.stat()
    path.write_bytes(b"x" * status.st_size)  # changed, its size and mtime as they were
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    second = tmp_path / "second"
    summary = client().download("ds", "B", second, create_target=True, reuse=[first])
    assert read_tree(second) == B  # fetched: the copy was hashed, not taken on the record's word
    assert summary.reused_files == 1
    assert client().verify("ds", "B", second, fast=True).intact
    assert client().verify("ds", "B", second).intact


def test_what_is_reused_is_hashed_as_it_is_placed(first, tmp_path, hashed):
    summary = client().download("ds", "B", tmp_path / "second", create_target=True, reuse=[first])
    assert summary.reused_files == 2
    assert sorted(hashed) == sorted([len(B["keep/same.bin"]), len(B["move/to.bin"])])


@pytest.mark.parametrize("link", [False, True])
def test_a_name_swapped_for_a_link_as_it_is_reused_places_the_checked_file(
    first, tmp_path, monkeypatch, link
):
    """The reused file's name is swapped for a symbolic link to a file outside at the worst moment:
    as it is linked, or as it is copied. What lands in TARGET is the file that was checked."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"x" * len(A["keep/same.bin"]))
    victim = first / "keep" / "same.bin"
    swapped = []

    def swap() -> None:
        if not swapped:
            swapped.append(True)
            saved = victim.with_name("saved")
            victim.rename(saved)
            victim.symlink_to(outside)

    real_link, real_copy = Folder.link, reuse._copy_data

    def link_after_swap(self, name, to, new_name):
        swap()
        return real_link(self, name, to, new_name)

    def copy_after_swap(fd_in, fd_out, size):
        swap()
        return real_copy(fd_in, fd_out, size)

    monkeypatch.setattr(Folder, "link", link_after_swap)
    monkeypatch.setattr(reuse, "_copy_data", copy_after_swap)
    second = tmp_path / "second"
    summary = client().download("ds", "B", second, create_target=True, reuse=[first], link=link)
    assert swapped
    placed = second / "keep" / "same.bin"
    assert not placed.is_symlink()
    assert placed.read_bytes() == B["keep/same.bin"]
    assert outside.read_bytes() == b"x" * len(A["keep/same.bin"])
    assert read_tree(second) == B
    assert summary.ok


def test_a_hard_link_is_the_checked_file_itself(first, tmp_path):
    second = tmp_path / "second"
    summary = client().download("ds", "B", second, create_target=True, reuse=[first], link=True)
    assert summary.reused_files == 2
    assert (second / "keep" / "same.bin").stat().st_ino == (first / "keep" / "same.bin").stat().st_ino
    assert (second / "move" / "to.bin").stat().st_ino == (first / "move" / "from.bin").stat().st_ino


def other_file_system(near: Path) -> Path | None:
    """A folder on another file system than ``near`` (a tmpfs), or None where there is none."""
    for base in ("/dev/shm", "/run/user", tempfile.gettempdir()):
        if os.path.isdir(base) and os.access(base, os.W_OK) and os.stat(base).st_dev != near.stat().st_dev:
            return Path(tempfile.mkdtemp(dir=base))
    return None


@pytest.mark.parametrize("where", ["simulated", "real"])
def test_link_across_file_systems_copies_each_file_instead(two, tmp_path, monkeypatch, where):
    second = tmp_path / "second"
    if where == "real":
        elsewhere = other_file_system(tmp_path)
        if elsewhere is None:
            pytest.skip("no writable folder on another file system than the tests' temporary folder")
        first = elsewhere / "first"
    else:
        elsewhere = None
        first = tmp_path / "first"

        def cross_device(self, name, to, new_name):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

        monkeypatch.setattr(Folder, "link", cross_device)
    try:
        client().download("ds", "A", first, create_target=True)
        summary = client().download("ds", "B", second, create_target=True, reuse=[first], link=True)
        assert summary.ok
        assert summary.reused_files == 2
        assert read_tree(second) == B
        assert (second / "keep" / "same.bin").stat().st_nlink == 1  # copies
    finally:
        if elsewhere is not None:
            shutil.rmtree(elsewhere)

"""The download path where the platform has no directory descriptors (Windows): every operation
goes by path, each folder on the way checked at the moment of use. Switched off here, so the
fallback runs on every CI machine too."""

from __future__ import annotations

import os

import pytest

from djarchive_client import client
from djarchive_common import localfs
from djarchive_common.errors import LocalPathError, PartialFailureError
from tests.helpers import part_files, read_tree

KiB = 1024


@pytest.fixture(autouse=True)
def without_descriptors(monkeypatch):
    monkeypatch.setattr(localfs, "USE_DESCRIPTORS", False)
    for name in ("posix_fallocate", "pread", "pwrite"):  # missing on Windows
        if hasattr(os, name):
            monkeypatch.delattr(os, name)


def test_folders_are_paths_here():
    with localfs.open_root(".") as root:
        assert root._fd is None


def test_download_rerun_and_verify(archive, seed_files, tmp_path):
    files = {**seed_files, "big/large.bin": os.urandom(300 * KiB)}
    archive.publish("some-set", "000", files)
    target = tmp_path / "copy"
    summary = client().download(
        "some-set", "000", target, create_target=True, part_size=64 * KiB, multipart_threshold=128 * KiB
    )
    assert summary.fetched_files == len(files)
    assert read_tree(target) == files
    assert part_files(target) == []
    for subpath in files:  # the data gone from the store: a re-run must fetch nothing
        archive.remove(f"some-set/000/{subpath}")
    assert client().download("some-set", "000", target).present_files == len(files)
    assert client().verify("some-set", "000", target).intact


def test_links_are_refused_by_path_too(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "copy"
    target.mkdir()
    (target / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LocalPathError, match="sub is a symbolic link"):
        client().download("some-set", "000", target)
    assert list(outside.iterdir()) == []


def test_a_folder_replaced_by_a_link_before_placing_fails_that_file(archive, tmp_path, monkeypatch):
    from djarchive_client.localcopy import LocalCopy

    files = {"a/x.bin": b"x", "b/y.bin": b"y"}
    archive.publish("ds", "1", files)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "t"
    (target / "a").mkdir(parents=True)
    place = LocalCopy.place

    def swap_then_place(self, part, subpath):
        if subpath == "a/x.bin" and not (target / "a").is_symlink():
            (target / "a").rmdir()
            (target / "a").symlink_to(outside, target_is_directory=True)
        return place(self, part, subpath)

    monkeypatch.setattr(LocalCopy, "place", swap_then_place)
    with pytest.raises(PartialFailureError) as caught:
        client().download("ds", "1", target)
    assert list(caught.value.failures) == ["a/x.bin"]
    assert "symbolic link" in caught.value.failures["a/x.bin"]
    assert list(outside.iterdir()) == []
    assert (target / "b" / "y.bin").read_bytes() == b"y"

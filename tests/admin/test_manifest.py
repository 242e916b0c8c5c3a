"""Writing a manifest from SOURCE: hashing, the filename filter, symbolic links. No store involved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_admin.scan import scan_source
from djarchive_common.errors import InvalidNameError, LocalPathError
from djarchive_common.manifest import read_manifest
from djarchive_common.store import Store
from tests.helpers import manifest_bytes, write_tree

needs_symlinks = pytest.mark.skipif(
    not hasattr(os, "symlink") or os.name == "nt", reason="needs posix symlinks"
)


@pytest.fixture
def offline(monkeypatch):
    """Fail any store call: writing a manifest is purely local."""

    def refuse(self, what, func):
        raise AssertionError(f"the store was called: {what}")

    monkeypatch.setattr(Store, "call", refuse)


def test_write_manifest_bytes(source, seed_files, offline):
    manifest = admin().write_manifest(source)

    path = source / "djarchive-manifest.csv"
    assert path.read_bytes() == manifest_bytes(seed_files)
    assert read_manifest(path) == manifest
    assert [entry.subpath for entry in manifest] == sorted(seed_files)


def test_write_manifest_needs_no_credentials_and_refuses_to_overwrite(source, seed_files, offline):
    tool = admin()  # no DJARCHIVE_ADMIN_* at all
    assert tool.settings.anonymous
    tool.write_manifest(source)
    (source / "root.dat").write_bytes(b"new content")

    with pytest.raises(LocalPathError, match=r"djarchive-manifest\.csv already exists; pass overwrite=True"):
        tool.write_manifest(source)
    tool.write_manifest(source, overwrite=True)

    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes(
        {**seed_files, "root.dat": b"new content"}
    )


def test_manifest_never_lists_itself_or_hidden_files(source, seed_files, offline):
    write_tree(
        source, {".hidden": b"h", ".git/objects/ab": b"o", "sub/.DS_Store": b"d", "sub/dir/.x/y": b"y"}
    )
    admin().write_manifest(source)
    admin().write_manifest(source, overwrite=True)  # the existing manifest is not data

    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes(seed_files)


def test_a_nested_file_named_like_the_manifest_is_data(tmp_path, offline):
    files = {"sub/djarchive-manifest.csv": b"data", "a.txt": b"a"}
    source = write_tree(tmp_path / "src", files)

    admin().write_manifest(source)

    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes(files)


def test_custom_filter(source, seed_files, offline):
    write_tree(source, {".hidden": b"h", "notes.tmp": b"t", "sub/cache.tmp/inner.dat": b"i"})

    admin(filename_filter=r"\.tmp$").write_manifest(source)

    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes({**seed_files, ".hidden": b"h"})


def test_invalid_filter(source, offline):
    with pytest.raises(InvalidNameError, match="invalid filename filter"):
        admin(filename_filter="(").write_manifest(source)


def test_empty_source(tmp_path, offline):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LocalPathError, match="has no files to archive"):
        admin().write_manifest(tmp_path / "empty")
    assert not (tmp_path / "empty" / "djarchive-manifest.csv").exists()


def test_source_must_be_a_folder(tmp_path, offline):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(LocalPathError, match="is not a folder"):
        admin().write_manifest(tmp_path / "file")


def test_unarchivable_file_name(tmp_path, offline):
    source = write_tree(tmp_path / "src", {"ok.txt": b"x", "back\\slash.txt": b"y"})
    with pytest.raises(InvalidNameError, match="backslash"):
        admin().write_manifest(source)
    assert not (source / "djarchive-manifest.csv").exists()


@needs_symlinks
def test_symlinks_inside_source_are_followed(tmp_path, offline):
    source = write_tree(tmp_path / "src", {"data/a.dat": b"a", "data/deep/b.dat": b"b"})
    os.symlink("data/a.dat", source / "link-to-file")
    os.symlink("data", source / "link-to-dir")
    os.symlink(source / "data" / "deep", source / "data" / "absolute-link")

    subpaths = [item.subpath for item in scan_source(source, r"^\.")]

    assert subpaths == [
        "data/a.dat",
        "data/absolute-link/b.dat",
        "data/deep/b.dat",
        "link-to-dir/a.dat",
        "link-to-dir/absolute-link/b.dat",
        "link-to-dir/deep/b.dat",
        "link-to-file",
    ]
    manifest = admin().write_manifest(source)
    assert manifest.get("link-to-file").size == 1  # type: ignore[union-attr]


@needs_symlinks
def test_symlink_leaving_source_is_refused(tmp_path, offline):
    outside = write_tree(tmp_path / "outside", {"secret.txt": b"not part of the dataset"})
    source = write_tree(tmp_path / "src", {"a.dat": b"a"})
    os.symlink(outside / "secret.txt", source / "escape")

    with pytest.raises(
        LocalPathError, match=r"symbolic link 'escape' in .* points to .*secret\.txt, outside"
    ):
        admin().write_manifest(source)
    assert not (source / "djarchive-manifest.csv").exists()

    os.unlink(source / "escape")
    os.symlink("../outside", source / "up")
    with pytest.raises(LocalPathError, match="outside the source folder"):
        admin().write_manifest(source)


@needs_symlinks
def test_broken_and_looping_symlinks_are_refused(tmp_path, offline):
    source = write_tree(tmp_path / "src", {"sub/a.dat": b"a"})
    os.symlink("missing", source / "dangling")
    with pytest.raises(LocalPathError, match=r"symbolic link 'dangling' .* is broken"):
        admin().write_manifest(source)
    os.unlink(source / "dangling")
    os.symlink("..", source / "sub" / "loop")
    with pytest.raises(LocalPathError, match="loops back"):
        admin().write_manifest(source)


@needs_symlinks
def test_hidden_symlink_outside_is_just_filtered(tmp_path, offline):
    source = write_tree(tmp_path / "src", {"a.dat": b"a"})
    os.symlink("/", source / ".escape")

    admin().write_manifest(source)

    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes({"a.dat": b"a"})


def test_source_itself_may_be_a_symlink(tmp_path, seed_files, offline):
    real = write_tree(tmp_path / "real", seed_files)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)

    admin().write_manifest(link)

    assert Path(real, "djarchive-manifest.csv").read_bytes() == manifest_bytes(seed_files)

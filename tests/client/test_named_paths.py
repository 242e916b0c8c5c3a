"""``download(paths=...)``: files named exactly (no globs), kept at their subpaths or placed under
local names relative to TARGET (what fsspec's ``get`` asks for)."""

from __future__ import annotations

import pytest

from djarchive_client import client
from djarchive_common.errors import ManifestError, NotFoundError
from tests.helpers import read_tree


@pytest.fixture
def files(archive):
    files = {"a[1].txt": b"brackets", "a1.txt": b"no brackets", "sub/deep/b.bin": b"b" * 5000, "c.txt": b"c"}
    archive.publish("ds", "1", files)
    return files


def test_paths_name_files_exactly(files, tmp_path):
    summary = client().download(
        "ds", "1", tmp_path / "t", create_target=True, paths=["a[1].txt", "sub/deep/b.bin"]
    )
    assert (summary.files, summary.fetched_files) == (2, 2)
    assert read_tree(tmp_path / "t") == {"a[1].txt": b"brackets", "sub/deep/b.bin": b"b" * 5000}


def test_a_mapping_places_files_under_local_names(files, tmp_path):
    target = tmp_path / "t"
    places = {"sub/deep/b.bin": "b.bin", "c.txt": "copies/c again.txt", "a1.txt": "a1.txt"}
    summary = client().download("ds", "1", target, create_target=True, paths=places)
    assert summary.fetched_files == 3
    assert read_tree(target) == {"b.bin": b"b" * 5000, "copies/c again.txt": b"c", "a1.txt": b"no brackets"}
    again = client().download("ds", "1", target, paths=places)
    assert (again.fetched_files, again.present_files) == (0, 3)


def test_unknown_or_unsafe_paths_stop_before_anything_is_written(files, tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(NotFoundError, match=r"ds 1 has no file 'nope.txt' \(and 1 more\)"):
        client().download("ds", "1", target, paths=["c.txt", "nope.txt", "sub"])
    for local in ("../outside.txt", "/abs.txt", ".djarchive/x", "djarchive-manifest.csv"):
        with pytest.raises(ManifestError, match="the local paths asked for"):
            client().download("ds", "1", target, paths={"c.txt": local})
    with pytest.raises(ManifestError, match="duplicate"):
        client().download("ds", "1", target, paths={"c.txt": "x", "a1.txt": "x"})
    assert list(target.iterdir()) == []


def test_named_files_are_added_to_a_copy_never_an_upgrade_of_it(files, archive, tmp_path):
    archive.publish("ds", "2", {"c.txt": b"c2", "new.txt": b"new"})
    archive.publish("other", "1", {"x.txt": b"x"})
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)  # a copy of ds 1, with its receipt
    receipt = (target / ".djarchive" / "receipt.json").read_bytes()
    client().download("ds", "2", target, paths={"new.txt": "new.txt", "c.txt": "c from 2.txt"})
    client().download("other", "1", target, paths=["x.txt"])  # another dataset: files added too
    assert read_tree(target) == {**files, "new.txt": b"new", "c from 2.txt": b"c2", "x.txt": b"x"}
    assert (target / ".djarchive" / "receipt.json").read_bytes() == receipt  # still a copy of ds 1
    assert client().verify("ds", "1", target, fast=True).missing == []

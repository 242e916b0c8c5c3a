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

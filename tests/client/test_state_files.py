"""djarchive's own files in TARGET (issue 24): never written through a link, read when they are
damaged or cannot be written, and what ``status`` says of a copy that is not complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_client.cli import main
from djarchive_common.errors import LocalPathError
from tests.faults.support import error_lines
from tests.helpers import read_tree

FILES = {"a/x.bin": b"x" * 100, "top.bin": b"top"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every TARGET; tests assert it never changes."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(b"precious")
    return path


# -- 1. djarchive's own files are replaced, never written in place -------------------------------------


def test_a_lock_hard_linked_to_a_file_outside_is_refused_not_rewritten(archive, tmp_path, outside, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    (target / ".djarchive").mkdir(parents=True)
    os.link(outside, target / ".djarchive" / "lock")
    code, out, err = run(capsys, "download", "ds", "1", str(target), "-q")
    assert outside.read_bytes() == b"precious"
    assert code == 1
    [line] = error_lines(err, "djarchive")
    assert "lock" in line and "hard link" in line
    assert read_tree(target) == {}  # refused before anything was written


def test_the_holders_mark_replaces_a_linked_mark_file_and_the_lock_file_is_never_written(
    archive, tmp_path, outside
):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    lock = target / ".djarchive" / "lock"
    before = lock.stat()
    for name in os.listdir(target / ".djarchive"):
        if name.endswith(".pid"):
            (target / ".djarchive" / name).unlink()
            os.link(outside, target / ".djarchive" / name)
    (target / "top.bin").unlink()
    client().download("ds", "1", target)
    assert outside.read_bytes() == b"precious"
    assert (lock.stat().st_size, lock.stat().st_mtime_ns) == (0, before.st_mtime_ns)
    assert read_tree(target) == FILES

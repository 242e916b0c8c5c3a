"""Shards: a deterministic, byte-balanced split; N shard runs into one TARGET at once, then a plain
run that fetches and hashes nothing."""

from __future__ import annotations

import os
import random

import pytest

from djarchive_client import client
from djarchive_client.localcopy import LocalCopy
from djarchive_common.errors import LockedError
from djarchive_common.manifest import Entry, shard
from tests.faults.support import popen
from tests.helpers import read_tree, sha256

KiB = 1024


def entries(count: int, seed: int = 1) -> list[Entry]:
    rng = random.Random(seed)
    return [Entry(f"f/{n:04d}.bin", int(rng.lognormvariate(10, 2)), "0" * 64) for n in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_split_is_a_partition_balanced_by_bytes_and_fixed(count):
    items = entries(500)
    parts = [shard(items, index, count) for index in range(1, count + 1)]
    assert sorted(e.subpath for part in parts for e in part) == sorted(e.subpath for e in items)
    assert parts == [shard(list(reversed(items)), index, count) for index in range(1, count + 1)]
    sizes = [sum(e.size for e in part) for part in parts]
    assert max(sizes) - min(sizes) <= max(e.size for e in items)  # greedy bound: one file at most


def test_more_shards_than_files_leaves_some_empty():
    assert [len(shard(entries(2), index, 4)) for index in range(1, 5)] == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="1 <= K <= N"):
        shard(entries(2), 5, 4)


def test_four_shard_processes_into_one_target_then_a_plain_run_does_nothing(archive, tmp_path, hashed):
    files = {f"session{n % 3}/chunk{n:03d}.bin": os.urandom(1 * KiB + n) for n in range(60)}
    files["big/video.bin"] = os.urandom(600 * KiB)
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    processes = [
        popen(
            ["-m", "djarchive_client.cli", "download", "ds", "1", str(target), "--shard", f"{k}/4", "-q"],
            env=archive.client_env,
        )
        for k in range(1, 5)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert read_tree(target) == files
    hashed.clear()
    for subpath in files:  # the data gone from the store: any fetch would fail
        archive.remove(f"ds/1/{subpath}")
    summary = client().download("ds", "1", target)
    assert (summary.fetched_files, summary.present_files, hashed) == (0, len(files), [])
    assert sorted(p.name for p in (target / ".djarchive").iterdir() if p.name.startswith("verified")) == [
        "verified.bin"
    ]  # the shards' records folded into one


def test_a_plain_run_and_a_shard_exclude_each_other(archive, tmp_path):
    archive.publish("ds", "1", {"a": b"a"})
    target = tmp_path / "t"
    plain = LocalCopy(target, create=True)
    plain.lock()
    try:
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            client().download("ds", "1", target, shard=(1, 2))
    finally:
        plain.unlock()
    one = LocalCopy(target, shard=(1, 2))
    one.lock()
    try:
        with pytest.raises(LockedError, match="a shard download is downloading into"):
            client().download("ds", "1", target)
        with pytest.raises(LockedError, match="downloading shard 1/2 of"):
            client().download("ds", "1", target, shard=(1, 2))
        assert client().download("ds", "1", target, shard=(2, 2)).ok  # the other shard runs beside it
    finally:
        one.unlock()
    assert client().download("ds", "1", target).fetched_files == 1  # shard 1 never ran: "a" is its file
    assert sha256((target / "a").read_bytes()) == sha256(b"a")

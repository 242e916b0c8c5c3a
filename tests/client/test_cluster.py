"""The Dask helper: one download as N shard tasks on a ``distributed`` cluster of worker processes
(configured by the environment they inherit), one combined summary, then a plain download that
fetches and hashes nothing."""

from __future__ import annotations

import os

import pytest

distributed = pytest.importorskip("distributed")

from djarchive_client import client  # noqa: E402
from djarchive_client.cluster import download_on_cluster  # noqa: E402
from djarchive_common.errors import PartialFailureError  # noqa: E402
from tests.helpers import read_tree  # noqa: E402

KiB = 1024


@pytest.mark.slow
def test_four_shards_on_two_worker_processes_then_a_plain_download_does_nothing(archive, tmp_path, hashed):
    files = {f"session{n % 3}/chunk{n:03d}.bin": os.urandom(1 * KiB + n) for n in range(40)}
    files["big/video.bin"] = os.urandom(600 * KiB)
    archive.publish("ds", "1", files)
    target, other = tmp_path / "t", tmp_path / "other"
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as cluster:
        with distributed.Client(cluster) as dask:
            summary = download_on_cluster(dask, "ds", "1", target, shards=4, jobs=4)
            assert os.getpid() not in dask.run(os.getpid).values()
        records = sorted(p.name for p in (target / ".djarchive").iterdir() if p.name.startswith("verified"))
        assert records == [f"verified.{k}-of-4.bin" for k in range(1, 5)]  # four shards ran
        archive.remove("ds/1/session1/chunk004.bin")
        with pytest.raises(PartialFailureError, match="1 of 41 files of ds 1 failed") as failure:
            download_on_cluster(cluster.scheduler_address, "ds", "1", other)  # one shard per worker
    assert (summary.files, summary.fetched_files, summary.present_files, summary.failed) == (41, 41, 0, {})
    assert summary.bytes == summary.fetched_bytes == sum(len(data) for data in files.values())
    assert summary.signature is not None
    assert summary.signature.status == client().signature("ds", "1").status  # carried back from the shards
    assert summary.shard is None
    assert "41 files" in str(summary)
    assert read_tree(target) == files
    partial = failure.value.summary
    assert list(partial.failed) == ["session1/chunk004.bin"]
    assert "not found" in partial.failed["session1/chunk004.bin"]
    assert (partial.files, partial.fetched_files) == (41, 40)

    hashed.clear()
    for subpath in files:  # the data gone from the store: any fetch would fail
        if subpath != "session1/chunk004.bin":
            archive.remove(f"ds/1/{subpath}")
    again = client().download("ds", "1", target)
    assert (again.fetched_files, again.present_files, hashed) == (0, len(files), [])

"""Transfer helpers: how many threads hash files."""

from __future__ import annotations

import threading

import pytest

from djarchive_common import transfer

KiB = 1024


@pytest.mark.parametrize(
    ("sizes", "threads"),
    [
        ([4 * KiB] * 200, 1),  # small files: one thread (two would pass the GIL back and forth)
        ([300 * KiB] * 8, 4),  # large ones: in parallel
        ([4 * KiB] * 100 + [64 * 1024 * KiB], 4),  # one large file among small ones lifts the average
    ],
)
def test_small_files_are_hashed_on_one_thread_large_ones_in_parallel(sizes, threads):
    assert transfer.hash_jobs(4, sum(sizes), len(sizes)) == threads
    names: set[str] = set()
    items = list(range(len(sizes)))

    def hash_one(item: int) -> tuple[int, str]:
        names.add(threading.current_thread().name)
        return sizes[item], "0" * 64

    results = list(transfer.hash_files(items, hash_one, sizes.__getitem__, jobs=4))
    assert sorted(item for item, _, _ in results) == items
    assert len(names) <= threads
    if threads == 1:
        assert len(names) == 1

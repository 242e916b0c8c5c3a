"""The record of verified files: its binary columns, changes over them, older records still read."""

from __future__ import annotations

import gc
import json
import sys
from array import array

import pytest

from djarchive_client.record import Record

A, B, C = ("a" * 64, "b" * 64, "c" * 64)


def test_changes_over_the_base_round_trip_through_the_file():
    base = Record()
    for path, sha in (("x/2", B), ("x/1", A), ("y", C)):
        base.set(path, (10, 1_700_000_000_123_456_789, sha))
    record = Record.from_bytes(base.to_bytes())
    assert record.get("x/1") == (10, 1_700_000_000_123_456_789, A)
    assert record.get("missing") is None
    record.set("x/1", (11, 5, B))  # a change wins over the base
    assert record.discard("y") is True
    assert record.discard("y") is False
    record.set("a-first", (0, -1, C))  # before every base path; an mtime before 1970
    expected = [("a-first", (0, -1, C)), ("x/1", (11, 5, B)), ("x/2", (10, 1_700_000_000_123_456_789, B))]
    assert list(record.items()) == expected
    assert list(Record.from_bytes(record.to_bytes()).items()) == expected


def test_a_record_written_on_a_machine_of_the_other_byte_order_reads_the_same():
    record = Record()
    record.set("a", (2**40 + 3, -(2**50), A))
    data = record.to_bytes()
    mine, other = ("little", "big") if sys.byteorder == "little" else ("big", "little")
    header, rest = data.split(b"\n", 1)
    count, sizes, mtimes, tail = rest[:8], rest[8:16], rest[16:24], rest[24:]
    swapped = (
        header.replace(mine.encode(), other.encode()) + b"\n" + count + sizes[::-1] + mtimes[::-1] + tail
    )
    assert list(Record.from_bytes(swapped).items()) == [("a", (2**40 + 3, -(2**50), A))]


def test_a_record_of_an_earlier_version_is_still_read():
    data = json.dumps(
        {
            "version": 1,
            "files": {"a": [1, 2, A], "bad": [1, 2], "worse": ["1", 2, A], "up": [1, 2, A.upper()]},
        }
    )
    assert list(Record.from_bytes(data.encode()).items()) == [("a", (1, 2, A))]


def test_mtimes_are_given_only_for_a_record_of_exactly_those_files():
    record = Record()
    for path, size, sha in (("a", 1, A), ("b/c", 2, B)):
        record.set(path, (size, 100 + size, sha))
    loaded = Record.from_bytes(record.to_bytes())
    paths, sizes, digests = ["a", "b/c"], array("Q", [1, 2]), bytes.fromhex(A + B)
    assert list(loaded.mtimes_if_of(paths, sizes, digests) or []) == [101, 102]
    assert loaded.mtimes_if_of(["a"], array("Q", [1]), bytes.fromhex(A)) is None  # fewer files
    assert loaded.mtimes_if_of(["a", "b/d"], sizes, digests) is None  # another path
    assert loaded.mtimes_if_of(paths, array("Q", [1, 3]), digests) is None  # another size
    assert loaded.mtimes_if_of(paths, sizes, bytes.fromhex(A + C)) is None  # another digest
    loaded.set("a", (1, 5, A))  # a change made by this run: no longer the record as read
    assert loaded.mtimes_if_of(paths, sizes, digests) is None


def test_update_takes_the_other_records_word():
    one, two = Record(), Record()
    one.set("a", (1, 1, A))
    one.set("b", (1, 1, A))
    two.set("b", (2, 2, B))
    merged = Record()
    merged.update(Record.from_bytes(one.to_bytes()))
    merged.update(two)
    assert list(merged.items()) == [("a", (1, 1, A)), ("b", (2, 2, B))]


def _columns(paths: list[str]) -> bytes:
    count = len(paths)
    order = sys.byteorder
    return (
        f"djarchive record 1 {order}\n".encode()
        + count.to_bytes(8, "little")
        + bytes(16 * count + 32 * count)
        + "\n".join(paths).encode()
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        json.dumps({"version": 3}).encode(),
        json.dumps({"version": 1, "files": []}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        _columns(["b", "a"]),  # not sorted
        _columns(["a", "a"]),  # repeated
        _columns(["a", "b"])[:-2],  # cut short
        _columns(["a"]) + b"\nb",  # more paths than entries
        _columns(["a"])[:30],
        _columns(["\xff"]).replace("\xff".encode(), b"\xff"),  # not UTF-8
    ],
)
def test_a_damaged_record_is_a_value_error(data):
    # Garbage of earlier tests collected at the deepest point of the nested JSON would run its
    # finalizers there and fail to report (a RecursionError in pytest's unraisable hook).
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(ValueError, match=r"record|Expecting|JSON|version|decode|sorted|short") as caught:
            Record.from_bytes(data)
    finally:
        gc.enable()
    assert "\n" not in str(caught.value)

"""Finding revisions by listing: as many requests for 2,000 names as for a handful, the same answers
as a reading of every key, and the jumps that skip a revision's data."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from djarchive_client import client
from djarchive_common import store as store_module
from djarchive_common.layout import MANIFEST_NAME, TOMBSTONE_NAME, is_valid_name
from djarchive_common.survey import LISTING_WORKERS, skip_to, survey


@pytest.fixture
def listings(monkeypatch):
    """Counts the listing requests the store sends, by prefix."""
    from minio import Minio

    sent: Counter[str] = Counter()
    lock = threading.Lock()
    execute = Minio._execute

    def counting(self, method, bucket_name=None, object_name=None, *args, **kwargs):
        query = kwargs.get("query_params") or {}
        if method == "GET" and object_name is None and "list-type" in query:
            with lock:
                sent[query.get("prefix", "")] += 1
        return execute(self, method, bucket_name, object_name, *args, **kwargs)

    monkeypatch.setattr(Minio, "_execute", counting)
    return sent


def put_many(archive, keys) -> None:
    """Store empty objects under ``keys``: on moto through its own backend, thousands in a fraction
    of a second (every read of them still goes over HTTP); on another server by PUTs in threads."""
    if archive.server.kind != "moto":
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: archive.put(key, b""), keys))
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(archive.bucket, key, b"")


def marks_of_every_key(keys) -> dict[tuple[str, str], frozenset[str]]:
    """What a survey must find, read from the complete list of keys."""
    found: dict[tuple[str, str], set[str]] = {}
    for key in keys:
        parts = key.split("/", 2)
        if len(parts) == 3 and is_valid_name(parts[0]) and is_valid_name(parts[1]):
            marks = found.setdefault((parts[0], parts[1]), set())
            if parts[2] in (MANIFEST_NAME, TOMBSTONE_NAME):
                marks.add(parts[2])
    return {pair: frozenset(marks) for pair, marks in found.items()}


def test_datasets_of_2000_names_cost_a_bounded_number_of_listings(archive, listings):
    names = [f"name-{n:04d}" for n in range(2000)]
    junk = [f"{name}/000/data.bin" for name in names]  # unpublished uploads
    junk += [f"{name}/001/{MANIFEST_NAME}x" for name in names[::7]]  # near misses
    put_many(archive, junk)
    for dataset, revision in (("name-0500", "1"), ("name-1999", "10"), ("name-1999", "2"), ("a-set", "000")):
        archive.publish(dataset, revision, {"f.bin": b"f"})
    listings.clear()
    assert list(client().datasets()) == ["a-set", "name-0500", "name-1999"]
    # Two pages of names (2,001 of them), then one page for each of the 16 runs of ~125 names.
    assert sum(listings.values()) <= 2 + LISTING_WORKERS + 2, listings
    assert not [prefix for prefix in listings if prefix.endswith("/")]  # nothing asked name by name
    listings.clear()
    assert list(client().revisions()) == [
        ("a-set", "000"),
        ("name-0500", "1"),
        ("name-1999", "2"),
        ("name-1999", "10"),
    ]
    assert sum(listings.values()) <= 2 + LISTING_WORKERS + 2, listings


def test_a_large_revision_is_jumped_over(archive, listings, monkeypatch):
    """With pages of 5 keys, a revision of 200 data keys costs a few listings, not 40: one page
    lands in its data, a jump reaches its manifest and tombstone, another leaves it."""
    monkeypatch.setattr(store_module, "LISTING_PAGE", 5)
    before = [f"big/7/a{n:03d}.bin" for n in range(100)]  # sorted before djarchive-manifest.csv
    after = [f"big/7/z{n:03d}.bin" for n in range(100)]  # and after djarchive-retraction.json
    put_many(archive, [*before, *after, "big/7/" + MANIFEST_NAME, "big/7/" + TOMBSTONE_NAME, "big/8/x"])
    listings.clear()
    found = survey(client().store, "big")
    assert found.marks == {("big", "7"): {MANIFEST_NAME, TOMBSTONE_NAME}, ("big", "8"): frozenset()}
    assert listings["big/"] <= 1 + 4, listings  # the revisions' names, then the scan


@pytest.mark.parametrize("seed", range(4))
def test_a_survey_finds_what_reading_every_key_finds(archive, monkeypatch, seed):
    """Random keys of tricky shapes, pages of 3 keys (many jumps): the survey of the bucket and of
    each dataset equals what the complete list of keys says."""
    monkeypatch.setattr(store_module, "LISTING_PAGE", 3)
    rng = random.Random(seed)
    datasets = ["a", "a-b", "a.b", "a0", "ab", "Z9", "-bad", "a b"]
    revisions = ["1", "1.0", "1-a", "10", "2", "_x", "r"]
    leaves = [
        MANIFEST_NAME,
        TOMBSTONE_NAME,
        "djarchive-manifest.cs",
        "djarchive-manifest.csv0",
        "djarchive-manifest.sig",
        "djarchive-n.bin",
        "0.bin",
        "Z/deep/x",
        "zz",
        "é.bin",
        "\U0010fffd.bin",
    ]
    keys = {f"{rng.choice(datasets)}/{rng.choice(revisions)}/{rng.choice(leaves)}" for _ in range(120)}
    keys |= {"loose.txt", ".djarchive~staging~a~1~djarchive-manifest.csv", "a/file-in-a-dataset"}
    put_many(archive, sorted(keys))
    store = client().store
    everything = marks_of_every_key(archive.keys())
    assert survey(store).marks == everything
    for dataset in {dataset for dataset, _ in everything}:
        expected = {pair: marks for pair, marks in everything.items() if pair[0] == dataset}
        assert survey(store, dataset).marks == expected


def test_where_a_scan_goes_on_after_a_page():
    assert skip_to("loose.txt") == "loose.txt"  # a top-level object: no name to skip
    assert skip_to("-bad/1/x") == "-bad0"  # past every key of a name that is no dataset
    assert skip_to("ds/file") == "ds/file"
    assert skip_to("ds/_x/a") == "ds/_x0"  # past a name that is no revision
    assert skip_to("ds/1/a.bin") == "ds/1/djarchive-manifest.cs"  # to just before the manifest
    assert skip_to(f"ds/1/{MANIFEST_NAME}") == "ds/1/djarchive-retraction.jso"  # and the tombstone
    assert skip_to("ds/1/djarchive-n") == "ds/1/djarchive-retraction.jso"
    assert skip_to(f"ds/1/{TOMBSTONE_NAME}") == "ds/10"  # then past the revision
    assert skip_to("ds/1/zz/top") == "ds/10"
    assert all(f"ds/1/{name}" < "ds/10" < "ds/10/" for name in ("\U0010ffff", "zz", "~"))

"""Listing against the real local S3 server: only published revisions, natural order, clear not-found."""

from __future__ import annotations

import types

import pytest

from djarchive_client import client
from djarchive_common.errors import (
    DatasetNotFoundError,
    InvalidNameError,
    NotFoundError,
    RevisionNotFoundError,
)
from djarchive_common.manifest import Entry
from tests.helpers import sha256


@pytest.fixture
def populated(archive, seed_files):
    archive.publish("some-set", "000", seed_files)
    archive.publish("other-set", "001", {"a.dat": b"a"})
    archive.publish("other-set", "10", {"a.dat": b"a"})
    archive.publish("other-set", "2", {"a.dat": b"a"})
    # Staged data without a manifest, a staged manifest outside the namespace, and junk names.
    archive.put("other-set/003/a.dat", b"a")
    archive.put("staged-only/000/a.dat", b"a")
    archive.put(".djarchive~staging~staged-only~000~djarchive-manifest.csv", b"")
    archive.put(".djarchive/staging/staged-only/001/djarchive-manifest.csv", b"")  # the legacy key
    archive.put("-bad name/000/djarchive-manifest.csv", b"")
    archive.put("loose-file.txt", b"x")
    return archive


def test_datasets_lists_only_datasets_with_a_published_revision(populated):
    names = client().datasets()
    assert isinstance(names, types.GeneratorType)
    assert list(names) == ["other-set", "some-set"]


def test_revisions_published_only_in_natural_order(populated):
    assert list(client().revisions()) == [
        ("other-set", "001"),
        ("other-set", "2"),
        ("other-set", "10"),
        ("some-set", "000"),
    ]
    assert list(client().revisions("other-set")) == [
        ("other-set", "001"),
        ("other-set", "2"),
        ("other-set", "10"),
    ]


def test_unknown_dataset_says_what_exists(populated):
    with pytest.raises(
        DatasetNotFoundError, match=r"dataset 'nope' not found .*published datasets: other-set, some-set"
    ):
        list(client().revisions("nope"))
    with pytest.raises(FileNotFoundError):  # the original raised FileNotFoundError; callers catch it
        list(client().revisions("staged-only"))


def test_invalid_dataset_name(populated):
    with pytest.raises(InvalidNameError, match=r"invalid dataset name '\.\./etc'"):
        list(client().revisions("../etc"))


def test_files_come_from_the_manifest(populated, seed_files):
    entries = client().files("some-set", "000")
    assert entries == sorted(
        (Entry(path, len(data), sha256(data)) for path, data in seed_files.items()), key=lambda e: e.subpath
    )
    assert [e.subpath for e in client().files("some-set", "000", include=["sub/*"], exclude=["*other*"])] == [
        "sub/dir/dir.dat",
        "sub/sub.dat",
    ]


def test_unpublished_and_missing_revisions(populated):
    with pytest.raises(RevisionNotFoundError, match="revision '003' of dataset 'other-set' is not published"):
        client().files("other-set", "003")
    with pytest.raises(RevisionNotFoundError, match="has no revision '999'; published revisions: 001, 2, 10"):
        client().files("other-set", "999")
    with pytest.raises(DatasetNotFoundError, match="dataset 'staged-only' not found"):
        client().files("staged-only", "000")
    assert issubclass(RevisionNotFoundError, NotFoundError)


def test_empty_bucket(archive):
    assert list(client().datasets()) == []
    assert list(client().revisions()) == []


def test_missing_bucket(archive, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_BUCKET", "no-such-bucket-here")
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket-here' does not exist"):
        list(client().datasets())


def test_listing_with_credentials_as_well(populated):
    c = client(access_key=populated.admin_env["DJARCHIVE_ADMIN_ACCESS_KEY"], secret_key="listing-test-secret")
    assert not c.settings.anonymous
    assert list(c.datasets()) == ["other-set", "some-set"]


def test_fast_unit_listing_with_minio_mock(minio_mock):
    """The listing logic alone, without a server (pytest-minio-mock)."""
    import io

    from minio import Minio

    store = Minio("mock.example.org", access_key="a", secret_key="b")
    store.make_bucket("mock-bucket")
    for key in ("ds/1/djarchive-manifest.csv", "ds/1/x", "ds/2/x", "other/9/x"):
        store.put_object("mock-bucket", key, io.BytesIO(b"x"), 1)
    c = client(endpoint="mock.example.org", bucket="mock-bucket", access_key="a", secret_key="b")
    assert list(c.datasets()) == ["ds"]
    assert list(c.revisions("ds")) == [("ds", "1")]


def test_listings_page_past_a_thousand_keys(archive):
    """Listings of more than 1,000 keys take several pages (continuation tokens: s3rver needs Node's
    legacy OpenSSL provider for them), and a '/'-delimited listing finds every folder, also those
    with no object directly in them (s3rver's own store misses those; tests/s3rver_start.js)."""
    from concurrent.futures import ThreadPoolExecutor

    from djarchive_common.store import Store

    files = {f"deep/{index // 100:02d}/f{index:04d}.bin": b"x" for index in range(1005)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda subpath: archive.put(f"big-set/1/{subpath}", b"x"), files))
    archive.publish(
        "big-set",
        "1",
        {},
        manifest=b"".join(f'"1","{sha256(b"x")}","{subpath}"\n'.encode() for subpath in sorted(files)),
    )
    archive.publish("small-set", "2", {"a.dat": b"a"})
    store = Store(client().settings)
    keys = [info.key for info in store.objects("big-set/1/deep/")]
    assert keys == sorted(f"big-set/1/{subpath}" for subpath in files)
    assert store.prefixes("big-set/1/deep/") == [f"big-set/1/deep/{index:02d}/" for index in range(11)]
    assert sorted(client().datasets()) == ["big-set", "small-set"]
    assert len(client().files("big-set", "1")) == 1005

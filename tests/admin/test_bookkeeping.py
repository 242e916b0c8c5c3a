"""Where the admin keeps its bookkeeping in the bucket (staged manifests, leases): in flat top-level
keys that no client lists, not even the archive's original one; the legacy staging key is still
read, published and purged, and never written."""

from __future__ import annotations

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin.cli import main as admin_main
from djarchive_admin.lease import RevisionLease
from djarchive_client import client
from djarchive_common.layout import (
    LEGACY_STAGING_PREFIX,
    legacy_staged_manifest_key,
    lock_key,
    staged_manifest_key,
    staged_revision,
)
from tests.admin.support import DATASET, legacy_staged_key, revision_keys, staged_key
from tests.helpers import manifest_bytes


def original_datasets(minio, bucket: str) -> list[str]:
    """The original client's datasets(): every top-level prefix of the bucket."""
    return [o.object_name.rstrip("/") for o in minio.list_objects(bucket) if o.is_dir]


def original_revisions(minio, bucket: str) -> list[tuple[str, str]]:
    """The original client's revisions(): every prefix under each of its datasets."""
    return [
        tuple(o.object_name.rstrip("/").split("/"))
        for dataset in original_datasets(minio, bucket)
        for o in minio.list_objects(bucket, prefix=f"{dataset}/")
        if o.is_dir
    ]


def test_the_original_client_lists_no_bookkeeping(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, "000", source)  # published
    admin_tool.upload(DATASET, "001", source, publish=False)  # staged
    admin_tool.upload(DATASET, "002", source)
    admin_tool.retract(DATASET, "002")  # retracted: a tombstone, the manifest kept aside
    with RevisionLease(admin_tool.store, DATASET, "003"):  # a lease held while we look
        assert original_datasets(archive.minio, archive.bucket) == [DATASET]
        # The original lists revisions by prefix, not by manifest: the staged and retracted
        # revisions' data is under their prefixes, the bookkeeping is not.
        assert original_revisions(archive.minio, archive.bucket) == [
            (DATASET, "000"),
            (DATASET, "001"),
            (DATASET, "002"),
        ]
        assert list(client().datasets()) == [DATASET]
        assert list(client().revisions()) == [(DATASET, "000")]
        keys = archive.keys()
        assert {lock_key(DATASET, "003"), staged_key(DATASET, "001")} <= set(keys)
        assert f"{DATASET}/002/djarchive-retraction.json" in keys  # the tombstone: under its revision


def test_bookkeeping_keys_are_flat_and_parse_back():
    for key in (staged_manifest_key("some-set", "v1.0"), lock_key("some-set", "v1.0")):
        assert "/" not in key
        assert key.startswith(".djarchive~")
    assert staged_manifest_key("a", "b") == ".djarchive~staging~a~b~djarchive-manifest.csv"
    assert lock_key("a", "b") == ".djarchive~locks~a~b.lock"
    assert staged_revision(staged_manifest_key("some-set", "v1.0")) == ("some-set", "v1.0")
    assert staged_revision(legacy_staged_manifest_key("some-set", "v1.0")) == ("some-set", "v1.0")
    assert legacy_staged_manifest_key("a", "b").startswith(LEGACY_STAGING_PREFIX)
    for key in (
        ".djarchive~staging~a~b~c~djarchive-manifest.csv",
        ".djarchive~staging~a~b~other.csv",
        ".djarchive~staging~-a~b~djarchive-manifest.csv",
        "a/b/djarchive-manifest.csv",
        ".djarchive~locks~a~b.lock",
    ):
        assert staged_revision(key) is None, key


def test_upload_writes_only_the_flat_staging_key(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, "001", source, publish=False)

    assert archive.get(staged_key(DATASET, "001")) == manifest_bytes(seed_files)
    assert archive.keys(".djarchive/") == []


def stage_the_legacy_way(archive, admin_tool, source, revision: str) -> None:
    """A revision staged by an earlier version: its manifest at the legacy key only."""
    admin_tool.upload(DATASET, revision, source, publish=False)
    archive.put(legacy_staged_key(DATASET, revision), archive.get(staged_key(DATASET, revision)))
    archive.remove(staged_key(DATASET, revision))


def test_a_legacy_staged_revision_is_listed_and_published(archive, admin_tool, source, seed_files, capsys):
    stage_the_legacy_way(archive, admin_tool, source, "001")

    assert admin_main(["revisions", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{DATASET},001,staged,{len(seed_files)},{sum(map(len, seed_files.values()))}"
    ]
    assert admin_main(["revisions", DATASET, "--all", "--json"]) == 0
    assert '"state": "staged"' in capsys.readouterr().out

    admin_tool.publish(DATASET, "001")

    assert list(client().revisions()) == [(DATASET, "001")]
    assert archive.keys() == revision_keys(DATASET, "001", seed_files)  # the legacy key is gone too


def test_purge_deletes_a_legacy_staged_manifest(archive, admin_tool, source):
    stage_the_legacy_way(archive, admin_tool, source, "001")

    result = admin_tool.retract(DATASET, "001", purge=True)

    assert result.purged
    assert archive.keys() == []


def test_an_upload_drops_a_stale_legacy_staged_manifest(archive, admin_tool, source, seed_files):
    archive.put(legacy_staged_key(DATASET, "001"), manifest_bytes({"gone.dat": b"old"}))

    admin_tool.upload(DATASET, "001", source, publish=False)

    assert archive.keys(".djarchive/") == []
    assert archive.get(staged_key(DATASET, "001")) == manifest_bytes(seed_files)

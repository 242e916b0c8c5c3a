"""Upload and publish through the Python API, against the local S3 server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import DJArchiveAdmin, admin
from djarchive_client import DJArchiveClient, client
from djarchive_common.errors import (
    IntegrityError,
    InvalidNameError,
    LocalPathError,
    ManifestError,
    MissingCredentialsError,
    NotFoundError,
    ObjectNotFoundError,
    PartialFailureError,
    RevisionNotFoundError,
    RevisionPublishedError,
)
from djarchive_common.store import Store
from tests.admin.support import DATASET, REVISION, revision_keys, staged_key
from tests.helpers import manifest_bytes, most_at_once, overlapping_calls, read_tree, sha256, write_tree

MiB = 1024 * 1024


def test_upload_then_client_download_byte_for_byte(archive, admin_tool, source, seed_files, tmp_path):
    summary = admin_tool.upload(DATASET, REVISION, source)

    assert summary.published
    assert summary.ok
    assert (summary.files, summary.bytes) == (len(seed_files), sum(map(len, seed_files.values())))
    assert (summary.uploaded_files, summary.stored_files) == (len(seed_files), 0)
    reader = DJArchiveClient()  # anonymous, from DJARCHIVE_CLIENT_*
    assert reader.settings.anonymous
    assert list(reader.revisions()) == [(DATASET, REVISION)]
    reader.download(DATASET, REVISION, tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == seed_files


def test_store_holds_exactly_the_data_and_the_manifest(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)

    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)  # nothing staged is left over
    manifest = archive.get(f"{DATASET}/{REVISION}/djarchive-manifest.csv")
    assert manifest == manifest_bytes(seed_files)
    assert not (source / "djarchive-manifest.csv").exists()  # SOURCE is not written to


def test_every_object_carries_its_sha256_as_metadata(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)

    for subpath, data in seed_files.items():
        stat = archive.minio.stat_object(archive.bucket, f"{DATASET}/{REVISION}/{subpath}")
        assert stat.metadata["x-amz-meta-sha256"] == sha256(data), subpath
        assert stat.size == len(data)


def test_large_file_goes_multipart_with_metadata(archive, admin_tool, tmp_path):
    files = {"big.bin": os.urandom(11 * MiB + 7), "small.txt": b"small"}
    source = write_tree(tmp_path / "big", files)

    admin_tool.upload(DATASET, REVISION, source, part_size=5 * MiB)

    stat = archive.minio.stat_object(archive.bucket, f"{DATASET}/{REVISION}/big.bin")
    if archive.server.kind == "s3rver":  # s3rver's ETag of a multipart object is its content's MD5
        assert stat.etag == hashlib.md5(files["big.bin"]).hexdigest()
    else:
        assert stat.etag.endswith("-3")  # three parts: S3's multipart ETag
    assert stat.metadata["x-amz-meta-sha256"] == sha256(files["big.bin"])
    assert archive.get(f"{DATASET}/{REVISION}/big.bin") == files["big.bin"]


def test_small_files_get_twice_the_uploads_large_ones_no_more_than_jobs(
    archive, admin_tool, tmp_path, monkeypatch
):
    """Small files are latency-bound: up to 2 x jobs of them are sent at once, larger ones up to jobs."""
    files = {f"small/{n:02d}.bin": os.urandom(1024) for n in range(16)}
    files.update({f"large/{n:02d}.bin": os.urandom(300 * 1024) for n in range(6)})
    source = write_tree(tmp_path / "mixed", files)
    seen = overlapping_calls(
        monkeypatch,
        Store,
        "put_file",
        lambda self, key, path, *a, **k: os.path.getsize(path),
        lambda size: ("small", 4) if size <= 256 * 1024 else ("large", 2),
        map(len, files.values()),
    )
    admin_tool.upload(DATASET, REVISION, source, jobs=2)
    assert most_at_once(seen) == {"small": 4, "large": 2}
    assert archive.get(f"{DATASET}/{REVISION}/large/05.bin") == files["large/05.bin"]


def test_uploads_hold_no_more_file_data_in_memory_than_the_budget(archive, admin_tool, tmp_path, monkeypatch):
    """minio reads what it sends into memory, so large files wait for room in the memory budget;
    one larger than the whole budget is sent alone."""
    import functools

    import djarchive_admin.archive
    from djarchive_admin.upload import UploadOptions

    files = {f"large/{n:02d}.bin": os.urandom(300 * 1024) for n in range(6)}
    files["huge.bin"] = os.urandom(1024 * 1024)
    files.update({f"small/{n:02d}.bin": os.urandom(1024) for n in range(8)})
    source = write_tree(tmp_path / "mixed", files)
    seen = overlapping_calls(
        monkeypatch,
        Store,
        "put_file",
        lambda self, key, path, *a, **k: os.path.getsize(path),
        lambda size: (
            ("small", 8) if size <= 256 * 1024 else ("huge", 1) if size > 512 * 1024 else ("large", 2)
        ),
        map(len, files.values()),
    )
    budget = 700 * 1024  # two of the 300 KiB files fit, three do not, the 1 MiB one alone
    monkeypatch.setattr(
        djarchive_admin.archive, "UploadOptions", functools.partial(UploadOptions, memory=budget)
    )
    admin_tool.upload(DATASET, REVISION, source, jobs=4)
    seen = [[size for size in sizes if size > 256 * 1024] for sizes in seen]  # small files are not counted
    assert max((sum(sizes) for sizes in seen if 1024 * 1024 not in sizes), default=0) == 600 * 1024
    assert [1024 * 1024] in seen
    assert all(sizes == [1024 * 1024] for sizes in seen if 1024 * 1024 in sizes)
    assert archive.get(f"{DATASET}/{REVISION}/huge.bin") == files["huge.bin"]
    assert archive.get(f"{DATASET}/{REVISION}/large/05.bin") == files["large/05.bin"]


def test_factories(archive):
    assert isinstance(admin(), DJArchiveAdmin)
    assert isinstance(client(admin=True), DJArchiveAdmin)
    tool = admin(bucket="other-bucket")
    assert tool.settings.role == "admin"
    assert (tool.endpoint, tool.bucket) == (archive.server.endpoint, "other-bucket")
    assert "s3cr3t" not in repr(tool)
    assert "s3cr3t" not in repr(tool.settings)


# -- refusals --------------------------------------------------------------------------


def test_published_revision_is_refused_without_force(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)
    before = {
        info.object_name: info.last_modified
        for info in archive.minio.list_objects(archive.bucket, recursive=True)
    }
    (source / "root.dat").write_bytes(b"changed")

    with pytest.raises(RevisionPublishedError, match=r"my-dataset 001 is already published \(6 files"):
        admin_tool.upload(DATASET, REVISION, source)
    with pytest.raises(RevisionPublishedError, match="already published"):
        admin_tool.publish(DATASET, REVISION)

    after = {
        info.object_name: info.last_modified
        for info in archive.minio.list_objects(archive.bucket, recursive=True)
    }
    assert after == before
    assert archive.get(f"{DATASET}/{REVISION}/root.dat") == seed_files["root.dat"]


def test_force_replaces_a_published_revision_and_says_what_it_overwrote(
    archive, admin_tool, source, seed_files, tmp_path
):
    admin_tool.upload(DATASET, REVISION, source)
    (source / "root.dat").write_bytes(b"changed")
    (source / "root2.dat").unlink()
    (source / "added.txt").write_bytes(b"new file")
    new_files = read_tree(source)

    summary = admin_tool.upload(DATASET, REVISION, source, force=True)

    assert summary.published
    assert summary.overwrote is not None
    assert (summary.overwrote.files, summary.overwrote.bytes) == (6, sum(map(len, seed_files.values())))
    assert summary.overwrote.changed == ["root.dat"]
    assert summary.overwrote.removed == ["root2.dat"]
    assert summary.overwrote.added == ["added.txt"]
    assert summary.removed == ["root2.dat"]  # the stray object is deleted
    assert (summary.uploaded_files, summary.stored_files) == (2, 4)
    assert archive.keys() == revision_keys(DATASET, REVISION, new_files)
    assert archive.get(f"{DATASET}/{REVISION}/djarchive-manifest.csv") == manifest_bytes(new_files)
    client().download(DATASET, REVISION, tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == new_files


def test_mismatching_local_manifest_refused_before_any_upload(archive, admin_tool, source):
    admin_tool.write_manifest(source)
    (source / "sub" / "sub.dat").write_bytes(b"edited after the manifest was written")

    with pytest.raises(ManifestError, match=r"does not match 1 file: sub/sub\.dat") as caught:
        admin_tool.upload(DATASET, REVISION, source)
    assert str(caught.value).endswith(
        f"; if the files are right, rebuild it with write_manifest({str(source.resolve())!r}, overwrite=True)"
    )
    assert archive.keys() == []


def test_same_size_but_different_content_is_a_mismatch(archive, admin_tool, source, seed_files):
    admin_tool.write_manifest(source)
    (source / "root.dat").write_bytes(bytes(len(seed_files["root.dat"])))

    with pytest.raises(ManifestError, match=r"root\.dat \(sha256 [0-9a-f]{64}, the manifest says"):
        admin_tool.upload(DATASET, REVISION, source)
    assert archive.keys() == []


def test_untracked_and_missing_files_refused_before_any_upload(archive, admin_tool, source):
    admin_tool.write_manifest(source)
    (source / "sub" / "untracked.dat").write_bytes(b"not in the manifest")
    (source / "root2.dat").unlink()

    with pytest.raises(ManifestError) as caught:
        admin_tool.upload(DATASET, REVISION, source)
    assert "untracked): sub/untracked.dat" in str(caught.value)
    assert "missing: root2.dat" in str(caught.value)
    assert archive.keys() == []


def test_invalid_local_manifest_refused(archive, admin_tool, source):
    (source / "djarchive-manifest.csv").write_text('"12","not-a-hash","root.dat"\n')

    with pytest.raises(ManifestError, match="line 1: sha256 'not-a-hash'"):
        admin_tool.upload(DATASET, REVISION, source)
    assert archive.keys() == []


def test_upload_uses_the_local_manifest(archive, admin_tool, source, seed_files):
    written = admin_tool.write_manifest(source)

    summary = admin_tool.upload(DATASET, REVISION, source)

    assert summary.manifest_source == str(source.resolve() / "djarchive-manifest.csv")
    assert len(written) == len(seed_files)
    local = (source / "djarchive-manifest.csv").read_bytes()
    assert local == manifest_bytes(seed_files)
    assert archive.get(f"{DATASET}/{REVISION}/djarchive-manifest.csv") == local


def test_missing_admin_credentials_stop_before_touching_anything(archive, source, monkeypatch):
    monkeypatch.delenv("DJARCHIVE_ADMIN_ACCESS_KEY")
    monkeypatch.delenv("DJARCHIVE_ADMIN_SECRET_KEY")
    calls = []
    monkeypatch.setattr(Store, "call", lambda self, what, func: calls.append(what))
    tool = admin()

    for action in (
        lambda: tool.upload(DATASET, REVISION, source),
        lambda: tool.publish(DATASET, REVISION),
        lambda: tool.retract(DATASET, REVISION),
        lambda: tool.retract(DATASET, REVISION, purge=True),
        lambda: tool.revision_details(all=True),
    ):
        with pytest.raises(
            MissingCredentialsError, match="admin credentials are not configured: set DJARCHIVE_ADMIN_"
        ):
            action()
    assert calls == []
    assert archive.keys() == []


def test_client_credentials_are_not_admin_credentials(archive, source, monkeypatch):
    for name in ("ACCESS_KEY", "SECRET_KEY"):
        monkeypatch.setenv(f"DJARCHIVE_CLIENT_{name}", archive.admin_env[f"DJARCHIVE_ADMIN_{name}"])
        monkeypatch.delenv(f"DJARCHIVE_ADMIN_{name}")

    with pytest.raises(MissingCredentialsError):
        admin().upload(DATASET, REVISION, source)
    assert archive.keys() == []


@pytest.mark.parametrize(
    ("dataset", "revision"),
    [("my dataset", "001"), ("dätaset", "001"), ("my-dataset", "v 1"), (".djarchive", "001"), ("ok", "../x")],
)
def test_invalid_names_refused(archive, admin_tool, source, dataset, revision):
    with pytest.raises(InvalidNameError, match=r"invalid (dataset|revision) name"):
        admin_tool.upload(dataset, revision, source)
    assert archive.keys() == []


def test_empty_source_refused(archive, admin_tool, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LocalPathError, match="has no files to archive"):
        admin_tool.upload(DATASET, REVISION, empty)
    hidden_only = write_tree(tmp_path / "hidden-only", {".hidden": b"x", ".git/config": b"y"})
    with pytest.raises(LocalPathError, match="has no files to archive"):
        admin_tool.upload(DATASET, REVISION, hidden_only)
    with pytest.raises(LocalPathError, match="does not exist"):
        admin_tool.upload(DATASET, REVISION, tmp_path / "nowhere")
    assert archive.keys() == []


def test_names_with_spaces_and_non_ascii_round_trip(archive, admin_tool, tmp_path):
    files = {
        "with space/file name.txt": b"spaces",
        "ünïcödé/日本語.dat": b"non-ascii",
        'quote "and" comma, too.csv': b'"a","b"\n',
        "emoji-\N{SNAKE}.bin": b"\x00\x01",
    }
    source = write_tree(tmp_path / "src", files)

    admin_tool.upload("names.test_1", "v1.0-rc_2", source)

    assert archive.keys() == revision_keys("names.test_1", "v1.0-rc_2", files)
    assert archive.get("names.test_1/v1.0-rc_2/djarchive-manifest.csv") == manifest_bytes(files)
    client().download("names.test_1", "v1.0-rc_2", tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == files


def test_hidden_files_are_not_archived(archive, admin_tool, source, seed_files):
    write_tree(
        source, {".hidden": b"h", ".git/config": b"c", "sub/.DS_Store": b"d", "sub/.cache/x.dat": b"e"}
    )

    admin_tool.upload(DATASET, REVISION, source)

    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


def test_filename_filter_is_configurable(archive, source, seed_files, monkeypatch):
    write_tree(source, {".hidden": b"h", "scratch.tmp": b"t"})

    admin(filename_filter=r"\.tmp$").upload(DATASET, "custom", source)
    monkeypatch.setenv("DJARCHIVE_ADMIN_FILENAME_FILTER", r"^root")
    admin().upload(DATASET, "from-env", source)
    admin().upload(DATASET, "everything", source, filename_filter="")

    assert set(archive.keys(f"{DATASET}/custom/")) == {
        *revision_keys(DATASET, "custom", {**seed_files, ".hidden": b""}),
    }
    from_env = {key.split("/", 2)[2] for key in archive.keys(f"{DATASET}/from-env/")}
    assert "root.dat" not in from_env
    assert "root2.dat" not in from_env
    assert {".hidden", "scratch.tmp", "sub/sub.dat"} <= from_env
    everything = {key.split("/", 2)[2] for key in archive.keys(f"{DATASET}/everything/")}
    assert {".hidden", "scratch.tmp", *seed_files} <= everything


# -- staging and publishing --------------------------------------------------------------


def test_no_publish_stages_invisibly_then_publish(archive, admin_tool, source, seed_files, tmp_path):
    summary = admin_tool.upload(DATASET, REVISION, source, publish=False)

    assert summary.staged
    assert not summary.published
    assert summary.state == "staged"
    assert archive.get(staged_key(DATASET, REVISION)) == manifest_bytes(seed_files)
    assert f"{DATASET}/{REVISION}/djarchive-manifest.csv" not in list(archive.keys())
    reader = client()
    assert list(reader.datasets()) == []
    assert list(reader.revisions()) == []
    with pytest.raises(NotFoundError, match="not found"):
        reader.files(DATASET, REVISION)
    assert [info.state for info in admin_tool.revision_details(all=True)] == ["staged"]
    assert admin_tool.revision_details() == []

    result = admin_tool.publish(DATASET, REVISION)

    assert (result.files, result.bytes, result.replaced) == (
        len(seed_files),
        sum(map(len, seed_files.values())),
        False,
    )
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)
    assert list(reader.revisions()) == [(DATASET, REVISION)]
    reader.download(DATASET, REVISION, tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == seed_files


def test_publish_refuses_an_incomplete_store(archive, admin_tool, source):
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    archive.remove(f"{DATASET}/{REVISION}/sub/sub.dat")

    with pytest.raises(
        ObjectNotFoundError,
        match=r"cannot publish my-dataset 001: 1 of 6 files is not in the store: sub/sub\.dat",
    ):
        admin_tool.publish(DATASET, REVISION)
    assert f"{DATASET}/{REVISION}/djarchive-manifest.csv" not in list(archive.keys())
    assert list(client().revisions()) == []

    admin_tool.upload(DATASET, REVISION, source)  # the re-run completes and publishes it
    assert list(client().revisions()) == [(DATASET, REVISION)]


def test_publish_refuses_wrong_content_metadata_and_strays(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    prefix = f"{DATASET}/{REVISION}/"
    archive.put(prefix + "root.dat", b"x" * len(seed_files["root.dat"]), {"sha256": sha256(b"other")})
    archive.put(prefix + "root2.dat", seed_files["root2.dat"])  # no sha256 metadata
    archive.put(prefix + "stray.bin", b"left over")

    with pytest.raises(IntegrityError) as caught:
        admin_tool.publish(DATASET, REVISION)
    message = str(caught.value)
    assert "2 stored objects do not match the manifest" in message
    assert "root.dat (stored sha256" in message
    assert "root2.dat (no sha256 metadata)" in message
    assert f"1 object under {prefix} is not in the manifest: stray.bin;" in message
    assert message.endswith("; upload(..., force=True) deletes the objects not in the manifest")
    assert prefix + "djarchive-manifest.csv" not in list(archive.keys())


def test_upload_refuses_strays_without_force(archive, admin_tool, source, seed_files):
    archive.put(f"{DATASET}/{REVISION}/old/stray.bin", b"from an earlier attempt")

    with pytest.raises(
        IntegrityError,
        match=r"holds 1 object not in the manifest: old/stray\.bin; nothing was uploaded: pass force=True",
    ):
        admin_tool.upload(DATASET, REVISION, source)
    assert archive.keys() == [f"{DATASET}/{REVISION}/old/stray.bin"]

    summary = admin_tool.upload(DATASET, REVISION, source, force=True)
    assert summary.removed == ["old/stray.bin"]
    assert summary.overwrote is None  # nothing was published
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


def test_publish_with_nothing_staged(archive, admin_tool):
    with pytest.raises(RevisionNotFoundError, match="nothing is staged for my-dataset 001"):
        admin_tool.publish(DATASET, REVISION)


def test_force_publish_replaces_a_published_manifest(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)
    archive.put(staged_key(DATASET, REVISION), manifest_bytes(seed_files))

    result = admin_tool.publish(DATASET, REVISION, force=True)

    assert result.replaced
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


def test_file_changing_during_upload_is_reported_and_nothing_published(
    archive, admin_tool, source, monkeypatch
):
    original = Store.put_file

    def put_then_touch(self, key, path, *args, **kwargs):
        original(self, key, path, *args, **kwargs)
        if key.endswith("/root.dat"):
            Path(path).write_bytes(b"changed while uploading")

    monkeypatch.setattr(Store, "put_file", put_then_touch)

    with pytest.raises(
        PartialFailureError, match="1 of 6 files of my-dataset 001 failed to upload"
    ) as caught:
        admin_tool.upload(DATASET, REVISION, source)
    assert "changed while it was being uploaded" in caught.value.failures["root.dat"]
    keys = archive.keys()
    assert f"{DATASET}/{REVISION}/root.dat" not in keys
    assert staged_key(DATASET, REVISION) not in keys
    assert f"{DATASET}/{REVISION}/djarchive-manifest.csv" not in keys


def test_rerun_over_a_complete_upload_sends_nothing(archive, admin_tool, source, seed_files, monkeypatch):
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    sent = []
    original = Store.put_file
    monkeypatch.setattr(
        Store, "put_file", lambda self, key, *a, **k: (sent.append(key), original(self, key, *a, **k))
    )

    summary = admin_tool.upload(DATASET, REVISION, source)

    assert sent == []
    assert (summary.uploaded_files, summary.stored_files, summary.published) == (0, len(seed_files), True)


# -- retract ---------------------------------------------------------------------------


def test_retract_hides_the_revision_and_keeps_the_data(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)
    admin_tool.upload(DATASET, "002", source)

    result = admin_tool.retract(DATASET, REVISION)

    assert (result.files, result.purged) == (len(seed_files), False)
    assert list(client().revisions()) == [(DATASET, "002")]
    for subpath, data in seed_files.items():
        assert archive.get(f"{DATASET}/{REVISION}/{subpath}") == data
    assert archive.get(f"{DATASET}/{REVISION}/djarchive-manifest.retracted.csv") == manifest_bytes(seed_files)
    assert f"{DATASET}/{REVISION}/djarchive-manifest.csv" not in list(archive.keys())
    with pytest.raises(RevisionNotFoundError, match=r"my-dataset 001 is not published \(it is retracted\)"):
        admin_tool.retract(DATASET, REVISION)

    admin_tool.publish(DATASET, REVISION)  # and it can come back
    assert list(client().revisions()) == [(DATASET, REVISION), (DATASET, "002")]


def test_purge_deletes_everything_of_the_revision(archive, admin_tool, source, seed_files):
    admin_tool.upload(DATASET, REVISION, source)
    admin_tool.upload(DATASET, "002", source, publish=False)

    result = admin_tool.retract(DATASET, REVISION, purge=True)
    staged = admin_tool.retract(DATASET, "002", purge=True)

    assert (result.purged, result.files, result.deleted_objects) == (
        True,
        len(seed_files),
        len(seed_files) + 1,
    )
    assert staged.deleted_objects == len(seed_files) + 1  # data and the staged manifest
    assert archive.keys() == []
    with pytest.raises(RevisionNotFoundError, match="nothing is stored for my-dataset 001"):
        admin_tool.retract(DATASET, REVISION, purge=True)


def test_files_the_local_manifest_lists_are_uploaded_even_if_hidden(archive, admin_tool, source, seed_files):
    write_tree(source, {".keep": b"listed on purpose"})
    admin(filename_filter="").write_manifest(source)
    write_tree(source, {".unlisted": b"filtered, and not listed"})

    admin_tool.upload(DATASET, REVISION, source)

    assert archive.keys() == revision_keys(DATASET, REVISION, {**seed_files, ".keep": b""})


def test_progress_bars_and_listing_api(archive, admin_tool, source, seed_files, capsys):
    admin_tool.upload(DATASET, REVISION, source, publish=False, display_progress=True, jobs=2)
    admin_tool.write_manifest(source, display_progress=True)

    err = capsys.readouterr().err
    assert "hashing" in err
    assert f"{DATASET} {REVISION}" in err
    assert list(admin_tool.revisions(all=True)) == [(DATASET, REVISION)]
    assert list(admin_tool.revisions()) == []
    info = admin_tool.revision_info(DATASET, REVISION)
    assert (info.state, info.files, info.bytes) == (
        "staged",
        len(seed_files),
        sum(map(len, seed_files.values())),
    )
    with pytest.raises(RevisionNotFoundError, match="nothing is stored for my-dataset 999"):
        admin_tool.revision_info(DATASET, "999")


def test_forced_upload_of_identical_content_keeps_the_revision_published(
    archive, admin_tool, source, monkeypatch
):
    admin_tool.upload(DATASET, REVISION, source)
    removed = []
    original = Store.remove
    monkeypatch.setattr(Store, "remove", lambda self, key: (removed.append(key), original(self, key)))

    summary = admin_tool.upload(DATASET, REVISION, source, force=True)

    assert summary.published
    assert [key for key in removed if not key.startswith(".djarchive~locks~")] == []  # never unpublished
    assert summary.overwrote is not None
    assert (summary.overwrote.changed, summary.overwrote.removed, summary.overwrote.added) == ([], [], [])
    assert summary.uploaded_files == 0


def test_upload_does_not_check_again_what_it_just_sent(archive, admin_tool, source, monkeypatch):
    """Publish after an upload lists the revision but does not HEAD the objects it just wrote."""
    stats = []
    original = Store.stat
    monkeypatch.setattr(
        Store, "stat", lambda self, key, **options: (stats.append(key), original(self, key, **options))[1]
    )
    admin_tool.upload(DATASET, REVISION, source)
    assert [key for key in stats if key.startswith(f"{DATASET}/{REVISION}/") and "manifest" not in key] == []
    stats.clear()
    admin_tool.retract(DATASET, REVISION)
    admin_tool.publish(DATASET, REVISION)  # a publish on its own checks every object
    data_keys = [key for key in stats if key.startswith(f"{DATASET}/{REVISION}/") and "manifest" not in key]
    assert len(data_keys) == len(admin_tool.files(DATASET, REVISION))

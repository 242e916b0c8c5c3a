"""Uploads reuse what the archive holds: content of earlier published revisions is copied in the
bucket, not sent again (DESIGN §13), and copies are proven at publish like uploads."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_admin import archive as admin_archive
from djarchive_admin.cli import main
from djarchive_admin.upload import UploadOptions
from djarchive_client import DJArchiveClient
from tests.faults.proxy import FaultProxy, Request
from tests.helpers import read_tree, sha256, write_tree

KiB = 1024
MiB = 1024 * KiB
DATASET = "ds"


def revision_one(count: int = 40, seed: int = 1) -> dict[str, bytes]:
    """``count`` files of 100-500 KiB in a few folders."""
    rng = random.Random(seed)
    return {
        f"s{i % 4}/f{i:02d}.bin": rng.randbytes(rng.randrange(100 * KiB, 500 * KiB)) for i in range(count)
    }


def changed(files: dict[str, bytes]) -> tuple[dict[str, bytes], int]:
    """Two files changed, one added, one removed; and the bytes of the changed and added files."""
    after = dict(files)
    after["s0/f00.bin"] = os.urandom(150 * KiB)
    after["s1/f01.bin"] = files["s1/f01.bin"][:1000] + b"x" + files["s1/f01.bin"][1001:]
    after["s2/new.bin"] = os.urandom(120 * KiB)
    del after["s3/f03.bin"]
    return after, sum(len(after[path]) for path in ("s0/f00.bin", "s1/f01.bin", "s2/new.bin"))


@pytest.fixture
def proxy(archive, s3_server, monkeypatch):
    """A proxy in front of the server that counts what crosses it; the admin writes through it."""
    started = FaultProxy((s3_server.host, s3_server.port)).start()
    monkeypatch.setenv("DJARCHIVE_ADMIN_ENDPOINT", started.url)
    yield started
    started.stop()


def data_key(request: Request) -> bool:
    """A request for a data object of the dataset (not a manifest, a lease or a listing)."""
    path = request.path.lstrip("/").split("/", 1)[-1]
    return path.startswith(f"{DATASET}/") and "djarchive-" not in path


def test_the_next_revision_sends_only_what_changed(archive, proxy, tmp_path):
    first = revision_one()
    admin().upload(DATASET, "1", write_tree(tmp_path / "r1", first))
    second, new_bytes = changed(first)
    before = proxy.body_bytes()

    summary = admin().upload(DATASET, "2", write_tree(tmp_path / "r2", second))

    sent, received = (after - then for after, then in zip(proxy.body_bytes(), before, strict=True))
    assert sent <= 1.05 * new_bytes + 64 * KiB, (sent, new_bytes)
    assert (summary.uploaded_files, summary.copied_files, summary.stored_files) == (3, 37, 0)
    assert summary.copied_bytes == sum(len(data) for path, data in second.items() if first.get(path) == data)
    assert f"sent 3 ({summary.uploaded_bytes / 1000:.1f} kB), copied 37 in the archive" in str(summary)
    # the copies were proven by their ETags (MD5s of the local files on this server): not read back
    assert received < 64 * KiB, received
    assert all(summary.written[path].proven for path in second)
    for path, data in second.items():
        info = archive.minio.stat_object(archive.bucket, f"{DATASET}/2/{path}")
        assert info.metadata["x-amz-meta-sha256"] == sha256(data)
    DJArchiveClient().download(DATASET, "2", tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == second


def test_a_copy_can_come_from_any_earlier_revision_and_path(archive, admin_tool, tmp_path):
    content = os.urandom(300 * KiB)
    admin_tool.upload(DATASET, "1", write_tree(tmp_path / "r1", {"a.bin": content}))
    admin_tool.upload(DATASET, "2", write_tree(tmp_path / "r2", {"b.bin": os.urandom(10)}))

    summary = admin_tool.upload(DATASET, "3", write_tree(tmp_path / "r3", {"moved/c.bin": content}))

    assert (summary.copied_files, summary.uploaded_files) == (1, 0)
    assert archive.get(f"{DATASET}/3/moved/c.bin") == content


def test_a_large_copy_goes_as_copied_parts(archive, proxy, tmp_path, monkeypatch):
    """Above CopyObject's limit (lowered here) a file is copied by UploadPartCopy, range by range."""
    monkeypatch.setattr(
        admin_archive, "UploadOptions", functools.partial(UploadOptions, max_copy_size=8 * MiB)
    )
    big = os.urandom(12 * MiB + 5)
    admin().upload(DATASET, "1", write_tree(tmp_path / "r1", {"big.bin": big}), part_size=5 * MiB)
    proxy.requests.clear()
    before = proxy.body_bytes()

    source = write_tree(tmp_path / "r2", {"big.bin": big, "x": b"x"})
    summary = admin().upload(DATASET, "2", source, part_size=5 * MiB)

    if archive.server.kind == "s3rver":  # s3rver stores UploadPartCopy's empty body as the part:
        assert (summary.copied_files, summary.uploaded_files) == (0, 2)  # it fails its proof; sent
        assert archive.get(f"{DATASET}/2/big.bin") == big
        return
    assert (summary.copied_files, summary.uploaded_files) == (1, 1)
    assert proxy.body_bytes()[0] - before[0] < 64 * KiB
    ranges = sorted(
        request.header("x-amz-copy-source-range") for request in proxy.requests if request.method == "PUT"
    )
    assert ranges[-3:] == ["bytes=0-5242879", "bytes=10485760-12582916", "bytes=5242880-10485759"]
    info = archive.minio.stat_object(archive.bucket, f"{DATASET}/2/big.bin")
    assert info.etag.endswith("-3")
    assert info.metadata["x-amz-meta-sha256"] == sha256(big)
    assert summary.written["big.bin"].proven  # each part's ETag is the MD5 of the local range
    assert archive.get(f"{DATASET}/2/big.bin") == big


def test_a_source_that_does_not_hold_its_content_is_sent_instead(archive, admin_tool, tmp_path):
    content = os.urandom(200 * KiB)
    admin_tool.upload(DATASET, "1", write_tree(tmp_path / "r1", {"a.bin": content}))
    # behind the archive's back: other bytes of the same size under the published key
    archive.put(f"{DATASET}/1/a.bin", os.urandom(len(content)), {"sha256": sha256(content)})

    summary = admin_tool.upload(DATASET, "2", write_tree(tmp_path / "r2", {"a.bin": content}))

    assert (summary.copied_files, summary.uploaded_files, summary.published) == (0, 1, True)
    assert archive.get(f"{DATASET}/2/a.bin") == content


def test_no_delta_sends_everything(archive, admin_tool, tmp_path, capsys):
    files = {"a.bin": os.urandom(1000), "b.bin": os.urandom(2000)}
    admin_tool.upload(DATASET, "1", write_tree(tmp_path / "r1", files))
    source = write_tree(tmp_path / "r2", files)

    assert main(["upload", DATASET, "2", str(source), "--no-delta"]) == 0
    assert "sent 2 (3.0 kB), 0 already stored" in capsys.readouterr().out
    assert main(["upload", DATASET, "3", str(source)]) == 0
    assert "sent 0 (0 B), copied 2 in the archive (3.0 kB), 0 already stored" in capsys.readouterr().out


def test_an_interrupted_upload_of_copies_resumes(archive, admin_tool, tmp_path: Path):
    """Copies already made count as stored on the next run, as sent objects do."""
    files = revision_one(6)
    admin_tool.upload(DATASET, "1", write_tree(tmp_path / "r1", files))
    source = write_tree(tmp_path / "r2", files)
    first = admin_tool.upload(DATASET, "2", source, publish=False)

    again = admin_tool.upload(DATASET, "2", source)

    assert (first.copied_files, again.stored_files, again.copied_files, again.published) == (6, 6, 0, True)

"""Large files at upload: a chunk index beside the manifest, and deltas of changed files composed
in the bucket from the old object's unchanged ranges (DESIGN §13)."""

from __future__ import annotations

import functools
import hashlib
import os
import random

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_admin import archive as admin_archive
from djarchive_admin.delta import plan_delta
from djarchive_admin.upload import UploadOptions
from djarchive_client import DJArchiveClient
from djarchive_common.chunks import Chunker, ChunkIndex, FileChunks
from djarchive_common.copies import Piece
from tests.faults.proxy import FaultProxy
from tests.helpers import read_tree, write_tree

KiB = 1024
MiB = 1024 * KiB
DATASET = "ds"
SMALL_CHUNKS = Chunker(min_size=16 * KiB, max_size=256 * KiB, bits=0)  # about 80 KiB


def chunks(*sizes_and_names: tuple[int, str]) -> FileChunks:
    """A file's chunks from (length, name): the name stands for the chunk's content."""
    made = [(length, hashlib.sha256(name.encode()).hexdigest()) for length, name in sizes_and_names]
    return FileChunks(sum(length for length, _ in made), "0" * 64, made)


def test_a_delta_copies_unchanged_runs_and_sends_the_changed_part_in_a_part_of_5_mib():
    old = chunks(*[(MiB, f"c{i}") for i in range(20)])
    new = chunks(
        *[(MiB, f"c{i}") for i in range(8)], (MiB, "changed"), *[(MiB, f"c{i}") for i in range(9, 20)]
    )

    pieces = plan_delta(new, old, "ds/1/big.bin", part_size=16 * MiB)

    assert pieces == [
        Piece(0, 8 * MiB, "ds/1/big.bin", 0),
        Piece(8 * MiB, 5 * MiB),  # the changed MiB, and enough after it for a part
        Piece(13 * MiB, 7 * MiB, "ds/1/big.bin", 13 * MiB),
    ]


def test_an_insertion_shifts_the_copied_ranges():
    old = chunks(*[(MiB, f"c{i}") for i in range(20)])
    new = chunks(
        *[(MiB, f"c{i}") for i in range(10)], (MiB + 100, "c10+"), *[(MiB, f"c{i}") for i in range(11, 20)]
    )

    pieces = plan_delta(new, old, "k", part_size=16 * MiB)

    assert pieces == [
        Piece(0, 10 * MiB, "k", 0),
        Piece(10 * MiB, 5 * MiB),
        Piece(15 * MiB, 5 * MiB + 100, "k", 15 * MiB - 100),
    ]
    assert sum(piece.length for piece in pieces) == new.size


def test_no_delta_when_nothing_worth_copying_is_left():
    old = chunks(*[(MiB, f"c{i}") for i in range(8)])
    new = chunks(*[(MiB, f"d{i}") for i in range(8)])
    assert plan_delta(new, old, "k", part_size=16 * MiB) is None


@pytest.mark.parametrize("seed", range(20))
def test_every_part_but_the_last_is_at_least_5_mib_and_the_parts_cover_the_file(seed):
    rng = random.Random(seed)
    old = chunks(*[(rng.randrange(64 * KiB, 3 * MiB), f"c{i}") for i in range(60)])
    names = [f"c{i}" if rng.random() < 0.8 else f"new{i}" for i in range(60)]
    new = chunks(
        *[
            (rng.randrange(64 * KiB, 3 * MiB), name) if name.startswith("new") else (length, name)
            for (length, _), name in zip(old.chunks, names, strict=True)
        ]
    )
    where = {sha: offset for offset, _, sha in old.spans()}
    pieces = plan_delta(new, old, "k", part_size=8 * MiB)
    if pieces is None:
        return
    assert all(piece.length >= 5 * MiB for piece in pieces[:-1])
    position = 0
    for piece in pieces:
        assert piece.offset == position
        position += piece.length
    assert position == new.size
    for piece in pieces:  # a copied range holds exactly the chunks the new file has there
        if piece.source is not None:
            for offset, length, sha in new.spans():
                if piece.offset <= offset and offset + length <= piece.offset + piece.length:
                    assert where[sha] == piece.source_offset + offset - piece.offset


@pytest.fixture
def proxy(archive, s3_server, monkeypatch):
    started = FaultProxy((s3_server.host, s3_server.port)).start()
    monkeypatch.setenv("DJARCHIVE_ADMIN_ENDPOINT", started.url)
    yield started
    started.stop()


@pytest.fixture
def small_delta(monkeypatch):
    """Files from 1 MiB on get a chunk index of small chunks."""
    options = functools.partial(UploadOptions, delta_threshold=MiB, chunker=SMALL_CHUNKS)
    monkeypatch.setattr(admin_archive, "UploadOptions", options)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: data[: 12 * MiB] + os.urandom(MiB) + data[13 * MiB :], id="overwrite-1MiB"),
        pytest.param(lambda data: data[: 12 * MiB] + os.urandom(100) + data[12 * MiB :], id="insert-100B"),
    ],
)
def test_a_changed_large_file_is_uploaded_as_a_delta(archive, proxy, small_delta, tmp_path, change):
    big = os.urandom(24 * MiB + 5)
    admin().upload(DATASET, "1", write_tree(tmp_path / "r1", {"big.bin": big, "a.txt": b"a"}))
    index = ChunkIndex.from_bytes(archive.get(f"{DATASET}/1/djarchive-chunks.json"))
    assert index.files["big.bin"].size == len(big)
    assert index.chunker == SMALL_CHUNKS
    before = proxy.body_bytes()[0]
    changed = change(big)

    summary = admin().upload(DATASET, "2", write_tree(tmp_path / "r2", {"big.bin": changed, "a.txt": b"a"}))

    sent = proxy.body_bytes()[0] - before
    if archive.server.kind == "s3rver":  # s3rver stores UploadPartCopy's empty body as the part: the
        assert sent >= len(changed)  # copied parts fail their proof, and the file is sent whole
    else:
        assert sent <= 7 * MiB, sent  # a part of 5 MiB around the change, the index and the manifest
        assert summary.uploaded_bytes < 7 * MiB
        assert summary.copied_bytes > 17 * MiB
        assert summary.written["big.bin"].proven  # copied parts: their ETags are MD5s of the local ranges
    assert archive.get(f"{DATASET}/2/big.bin") == changed
    DJArchiveClient().download(DATASET, "2", tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == {"big.bin": changed, "a.txt": b"a"}


def test_no_delta_publishes_no_index_and_sends_whole(archive, proxy, small_delta, tmp_path):
    big = os.urandom(8 * MiB)
    admin().upload(DATASET, "1", write_tree(tmp_path / "r1", {"big.bin": big}))
    changed = big[:100] + b"!" + big[101:]
    before = proxy.body_bytes()[0]

    admin().upload(DATASET, "2", write_tree(tmp_path / "r2", {"big.bin": changed}), delta=False)

    assert proxy.body_bytes()[0] - before >= len(big)
    assert f"{DATASET}/2/djarchive-chunks.json" not in archive.keys()


def test_the_signature_covers_the_index(archive, small_delta, tmp_path):
    """A signed revision's statement names its index; a client that trusts the key uses only that
    index: another one is ignored (the upgrade fetches whole), and the result is right either way."""
    from djarchive_admin import keygen
    from djarchive_common.signing import parse_signatures

    line, _, _ = keygen(tmp_path / "curator.key")
    big = os.urandom(8 * MiB)
    changed = big[: 4 * MiB] + os.urandom(1000) + big[4 * MiB + 1000 :]
    for revision, data in (("1", big), ("2", changed)):
        admin().upload(
            DATASET,
            revision,
            write_tree(tmp_path / revision, {"big.bin": data}),
            sign_key=tmp_path / "curator.key",
        )
    index = archive.get(f"{DATASET}/2/djarchive-chunks.json")
    [signed] = parse_signatures(archive.get(f"{DATASET}/2/djarchive-manifest.sig"))
    assert signed.statement.chunks_sha256 == hashlib.sha256(index).hexdigest()
    reader = DJArchiveClient(trusted_keys=[line])
    target = tmp_path / "copy"
    reader.download(DATASET, "1", target, create_target=True, part_size=MiB, multipart_threshold=2 * MiB)

    assert reader.download(DATASET, "2", target, dry_run=True).deltas  # the signed index is used

    other = ChunkIndex.from_bytes(index)
    other.files["big.bin"].chunks = list(
        ChunkIndex.from_bytes(archive.get(f"{DATASET}/1/djarchive-chunks.json")).files["big.bin"].chunks
    )
    archive.put(f"{DATASET}/2/djarchive-chunks.json", other.to_bytes())
    summary = reader.download(DATASET, "2", target)
    assert summary.delta_files == 0
    assert read_tree(target) == {"big.bin": changed}

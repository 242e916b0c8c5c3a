"""Upgrading large files by their chunks: only the chunks no local file holds are fetched, the
file is assembled and verified whole (DESIGN §13). A wrong index only costs bandwidth."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_client.cli import main
from djarchive_common.chunks import Chunker, ChunkIndex, file_chunks
from tests.faults.proxy import FaultProxy, Request
from tests.helpers import read_tree

KiB = 1024
MiB = 1024 * KiB
CHUNKER = Chunker(min_size=16 * KiB, max_size=256 * KiB, bits=0)
SMALL_PARTS = {"part_size": 256 * KiB, "multipart_threshold": 512 * KiB}
SIZE = 16 * MiB + 3


def index_of(files: dict[str, bytes], tmp_path: Path) -> bytes:
    """The chunk index the admin would publish for these files (all of them large)."""
    index = ChunkIndex(CHUNKER)
    for subpath, data in files.items():
        path = tmp_path / "for-index.bin"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            index.files[subpath] = file_chunks(fd, len(data), hashlib.sha256(data).hexdigest(), CHUNKER)
        finally:
            os.close(fd)
    return index.to_bytes()


def publish(archive, revision: str, files: dict[str, bytes], tmp_path: Path, *, index: bool = True) -> None:
    archive.publish("ds", revision, files)
    if index:
        large = {subpath: data for subpath, data in files.items() if len(data) >= MiB}
        archive.put(f"ds/{revision}/djarchive-chunks.json", index_of(large, tmp_path))


@pytest.fixture
def proxy(archive, s3_server, monkeypatch):
    started = FaultProxy((s3_server.host, s3_server.port)).start()
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", started.url)
    yield started
    started.stop()


def data_bytes(proxy: FaultProxy) -> int:
    """Bytes of GET answers for objects of the dataset, but manifests and signatures: the chunk
    index counts."""

    def data(request: Request) -> bool:
        return request.method == "GET" and "/ds/" in request.path and "djarchive-manifest" not in request.path

    return proxy.body_bytes(data)[1]


OLD = os.urandom(SIZE)
CHANGES = {
    "overwrite": OLD[: 8 * MiB] + os.urandom(MiB) + OLD[9 * MiB :],
    "insert": OLD[: 8 * MiB] + os.urandom(100) + OLD[8 * MiB :],
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_upgrade_fetches_only_the_changed_chunks(archive, proxy, tmp_path, change):
    publish(archive, "1", {"big.bin": OLD, "a.txt": b"a"}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES[change], "a.txt": b"a"}, tmp_path)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)
    before = data_bytes(proxy)

    summary = client().download("ds", "2", target, **SMALL_PARTS)

    fetched = data_bytes(proxy) - before
    budget = (2 * MiB if change == "overwrite" else MiB) + 0.01 * SIZE
    assert fetched <= budget, (fetched, budget)
    assert (summary.delta_files, summary.delta_bytes) == (1, len(CHANGES[change]))
    assert summary.fetched_bytes == fetched - len(archive.get("ds/2/djarchive-chunks.json"))
    assert "; 1 by its changed chunks, of " in str(summary)
    assert read_tree(target) == {"big.bin": CHANGES[change], "a.txt": b"a"}
    assert main(["verify", "ds", "2", str(target), "-q"]) == 0


def test_a_hostile_index_costs_bandwidth_never_a_wrong_file(archive, proxy, tmp_path):
    """An index that says the new file is the old one: the assembled file fails its sha256, is
    discarded, and the file is fetched whole."""
    new = CHANGES["overwrite"]
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    archive.publish("ds", "2", {"big.bin": new})
    lying = ChunkIndex.from_bytes(index_of({"big.bin": OLD}, tmp_path))
    lying.files["big.bin"].sha256 = hashlib.sha256(new).hexdigest()
    lying.files["big.bin"].size = len(new)
    archive.put("ds/2/djarchive-chunks.json", lying.to_bytes())
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)
    before = data_bytes(proxy)

    summary = client().download("ds", "2", target, **SMALL_PARTS)

    assert summary.delta_files == 0
    assert data_bytes(proxy) - before >= len(new)
    assert read_tree(target) == {"big.bin": new}


def test_reuse_lends_chunks_of_another_copy(archive, proxy, tmp_path):
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["insert"]}, tmp_path)
    old_copy = tmp_path / "old"
    client().download("ds", "1", old_copy, create_target=True, **SMALL_PARTS)
    before = data_bytes(proxy)

    summary = client().download(
        "ds", "2", tmp_path / "new", create_target=True, reuse=[old_copy], **SMALL_PARTS
    )

    assert summary.delta_files == 1
    assert data_bytes(proxy) - before <= MiB
    assert read_tree(tmp_path / "new") == {"big.bin": CHANGES["insert"]}
    assert read_tree(old_copy) == {"big.bin": OLD}


def test_a_revision_without_an_index_is_fetched_as_before(archive, proxy, tmp_path):
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["overwrite"]}, tmp_path, index=False)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)
    before = data_bytes(proxy)

    summary = client().download("ds", "2", target, **SMALL_PARTS)

    assert summary.delta_files == 0
    assert data_bytes(proxy) - before >= SIZE
    assert read_tree(target) == {"big.bin": CHANGES["overwrite"]}


def test_no_delta_fetches_whole(archive, proxy, tmp_path):
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["overwrite"]}, tmp_path)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)

    summary = client().download("ds", "2", target, delta=False, **SMALL_PARTS)

    assert summary.delta_files == 0
    assert read_tree(target) == {"big.bin": CHANGES["overwrite"]}


def test_dry_run_says_what_each_delta_fetches(archive, tmp_path, capsys):
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["insert"]}, tmp_path)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)

    assert main(["download", "ds", "2", str(target), "--dry-run"]) == 0

    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fetch"))
    pattern = rf"fetch\t{SIZE + 100}\tbig.bin \(by its chunks: fetch [0-9.]+ kB of 16.8 MB, [0-9]+ chunks?\)"
    assert re.fullmatch(pattern, line), line
    assert read_tree(target) == {"big.bin": OLD}  # a dry run writes nothing


def test_diff_says_what_fetching_by_chunks_saves(archive, tmp_path, capsys):
    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["insert"]}, tmp_path)

    difference = client().diff("ds", "1", "2")

    assert difference.fetch_bytes == SIZE + 100
    assert difference.delta_bytes is not None
    assert difference.delta_bytes <= 2 * CHUNKER.max_size  # the chunks around the insertion
    assert main(["diff", "ds", "1", "2"]) == 0
    assert "by the chunks of changed large files" in capsys.readouterr().out


def test_progress_events_count_a_delta_file_whole(archive, tmp_path):
    import io
    import json

    from djarchive_common.events import Events

    publish(archive, "1", {"big.bin": OLD}, tmp_path)
    publish(archive, "2", {"big.bin": CHANGES["overwrite"]}, tmp_path)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True, **SMALL_PARTS)
    stream = io.StringIO()

    client().download("ds", "2", target, events=Events(stream), **SMALL_PARTS)

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"event": "file", "path": "big.bin", "bytes": SIZE, "status": "fetched"} in events
    last = [event for event in events if event["event"] == "progress"][-1]
    assert (last["files_done"], last["bytes_done"]) == (1, SIZE)
    assert events[-1]["delta_files"] == 1

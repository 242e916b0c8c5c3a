"""Resuming inside a file: an interrupted download keeps the partly fetched file with a journal of
the ranges written; the next run re-hashes them and fetches only what is missing (DESIGN §13).
A damaged or foreign partial file is discarded, never trusted."""

from __future__ import annotations

import _thread
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_client.partial import Partial
from tests.faults.proxy import FaultProxy, Request
from tests.helpers import read_tree

KiB = 1024
MiB = 1024 * KiB
SMALL_PARTS = {"part_size": 64 * KiB, "multipart_threshold": 128 * KiB}
SIZE = 4 * MiB + 13


@pytest.fixture
def published(archive):
    files = {"big.bin": os.urandom(SIZE), "small.txt": b"small"}
    archive.publish("ds", "1", files)
    return files


@pytest.fixture
def proxy(archive, s3_server, monkeypatch):
    """A proxy in front of the server that counts what crosses it; the client reads through it."""
    started = FaultProxy((s3_server.host, s3_server.port)).start()
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", started.url)
    yield started
    started.stop()


def data(request: Request) -> bool:
    return request.method == "GET" and "djarchive-" not in request.path and "?" not in request.target


def fetched(proxy: FaultProxy) -> int:
    """The bytes of data objects the proxy relayed so far."""
    return proxy.body_bytes(data)[1]


def interrupt_at(monkeypatch, fraction: float) -> None:
    """Ctrl-C (KeyboardInterrupt in the main thread) once ``fraction`` of the large file is written."""
    real = Partial.wrote
    written = [0]

    def wrote(self, start, position, data):
        real(self, start, position, data)
        written[0] += len(data)
        if written[0] >= fraction * SIZE > written[0] - len(data):
            _thread.interrupt_main()

    monkeypatch.setattr(Partial, "wrote", wrote)


def interrupted(target: Path, fraction: float = 0.5) -> None:
    """A download of the revision into ``target``, interrupted at ``fraction`` of the large file."""
    # Ctrl-C as in a terminal: interrupt_main does nothing where this process was started with
    # SIGINT ignored (a background job of a non-interactive shell, as CI may start it).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            interrupt_at(patch, fraction)
            with pytest.raises(KeyboardInterrupt):
                client().download("ds", "1", target, create_target=True, jobs=2, **SMALL_PARTS)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not (target / "big.bin").exists()


def journal(target: Path) -> tuple[Path, dict]:
    [path] = (target / ".djarchive" / "partial").glob("*.journal")
    return path, json.loads(path.read_bytes())


def test_an_interrupted_file_resumes_where_it_stopped(archive, published, proxy, tmp_path):
    target = tmp_path / "t"
    interrupted(target)
    first = fetched(proxy)
    _, kept = journal(target)
    assert (kept["path"], kept["size"]) == ("big.bin", SIZE)
    assert 0.4 * SIZE <= sum(length for _, length, _ in kept["ranges"]) <= first

    summary = client().download("ds", "1", target, jobs=2, **SMALL_PARTS)

    again = fetched(proxy) - first
    assert again <= (SIZE - first) + 0.1 * SIZE, (first, again)
    assert read_tree(target) == published
    assert summary.ok
    assert not list((target / ".djarchive" / "partial").iterdir())  # placed, journal gone


def test_a_damaged_partial_file_is_discarded(archive, published, proxy, tmp_path):
    target = tmp_path / "t"
    interrupted(target)
    path, kept = journal(target)
    start, length, _ = kept["ranges"][0]
    data_file = path.with_suffix(".data")
    with open(data_file, "r+b") as handle:  # one byte inside a range the journal vouches for
        handle.seek(start + length // 2)
        byte = handle.read(1)
        handle.seek(start + length // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    first = fetched(proxy)

    client().download("ds", "1", target, jobs=2, **SMALL_PARTS)

    assert fetched(proxy) - first >= SIZE  # the whole file again
    assert read_tree(target) == published


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda kept: {**kept, "sha256": "0" * 64}, id="another-content"),
        pytest.param(lambda kept: {**kept, "path": "other.bin"}, id="another-path"),
        pytest.param(lambda kept: {**kept, "ranges": [[0, SIZE + 1, "0" * 64]]}, id="range-outside"),
        pytest.param(lambda kept: {**kept, "version": 99}, id="other-version"),
        pytest.param(lambda kept: "not a journal", id="garbage"),
    ],
)
def test_a_foreign_journal_is_not_trusted(archive, published, proxy, tmp_path, damage):
    target = tmp_path / "t"
    interrupted(target)
    path, kept = journal(target)
    path.write_text(json.dumps(damage(kept)))
    first = fetched(proxy)

    client().download("ds", "1", target, jobs=2, **SMALL_PARTS)

    assert fetched(proxy) - first >= SIZE
    assert read_tree(target) == published


def test_a_partial_file_without_its_journal_is_not_trusted(archive, published, proxy, tmp_path):
    target = tmp_path / "t"
    interrupted(target)
    path, _ = journal(target)
    path.unlink()
    first = fetched(proxy)

    client().download("ds", "1", target, jobs=2, **SMALL_PARTS)

    assert fetched(proxy) - first >= SIZE
    assert read_tree(target) == published


def test_bytes_that_hash_as_recorded_but_make_a_wrong_file_are_fetched_again(
    archive, published, proxy, tmp_path
):
    """A journal can only say what was written; the whole file's sha256 decides. Rewritten here
    with a consistent journal for wrong bytes, the file fails its check and is fetched again."""
    target = tmp_path / "t"
    interrupted(target)
    path, kept = journal(target)
    start, length, _ = kept["ranges"][0]
    data_file = path.with_suffix(".data")
    wrong = os.urandom(length)
    with open(data_file, "r+b") as handle:
        handle.seek(start)
        handle.write(wrong)
    kept["ranges"][0][2] = hashlib.sha256(wrong).hexdigest()
    path.write_text(json.dumps(kept))

    summary = client().download("ds", "1", target, jobs=2, **SMALL_PARTS)

    assert summary.ok
    assert read_tree(target) == published


def test_a_complete_download_leaves_no_partial_file(archive, published, tmp_path):
    """Partial files of files no longer wanted go once the copy is complete."""
    target = tmp_path / "t"
    interrupted(target)
    client().download("ds", "1", target, include=["small.txt"], **SMALL_PARTS)
    assert list((target / ".djarchive" / "partial").glob("*.journal"))  # kept: big.bin is not done

    client().download("ds", "1", target, **SMALL_PARTS)

    assert not list((target / ".djarchive" / "partial").iterdir())

"""Downloads against the real local S3 server: exact bytes, resume, corruption, unsafe targets."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from djarchive_client import DJArchiveClient, client, files
from djarchive_client.record import Record
from djarchive_common import transfer
from djarchive_common.errors import (
    LocalPathError,
    LockedError,
    ManifestError,
    NotFoundError,
    PartialFailureError,
    RevisionNotFoundError,
)
from djarchive_common.store import StoreOptions
from djarchive_common.transfer import RetryPolicy
from tests.helpers import (
    bulk_transport,
    engine_in_flight,
    manifest_bytes,
    most_at_once,
    overlapping_calls,
    read_tree,
    spy_gets,
)

KiB = 1024
FAST_RETRIES = StoreOptions(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
SMALL_PARTS = {"part_size": 64 * KiB, "multipart_threshold": 128 * KiB}


@pytest.fixture
def big_files(seed_files):
    """The seed set plus one file large enough to be fetched in byte ranges (with SMALL_PARTS)."""
    files = dict(seed_files)
    files["sub/big/recording.bin"] = os.urandom(1024 * KiB + 17)
    return files


def test_download_is_byte_exact(archive, big_files, tmp_path):
    archive.publish("some-set", "000", big_files)
    target = tmp_path / "some-set-000"
    summary = client().download("some-set", "000", target, create_target=True, **SMALL_PARTS)
    assert read_tree(target) == big_files
    assert summary.ok
    assert (summary.files, summary.fetched_files, summary.present_files) == (
        len(big_files),
        len(big_files),
        0,
    )
    assert summary.bytes == summary.fetched_bytes == sum(len(data) for data in big_files.values())
    assert not list(target.rglob("*.part"))


def test_default_large_file_path_uses_ranges(archive, tmp_path, monkeypatch):
    """Ranges are requested as planned, each a separate GET, and hashed in order."""
    data = os.urandom(300 * KiB + 5)
    archive.publish("ds", "1", {"big.bin": data})
    calls = spy_gets(monkeypatch)
    client().download("ds", "1", tmp_path / "t", create_target=True, **SMALL_PARTS)
    assert (tmp_path / "t" / "big.bin").read_bytes() == data
    assert sorted(calls) == [
        ("ds/1/big.bin", offset, min(64 * KiB, len(data) - offset))
        for offset in range(0, len(data), 64 * KiB)
    ]


def test_enough_large_files_come_in_one_stream_each_on_libcurl(archive, tmp_path, monkeypatch):
    """With libcurl, as many large files as it takes to keep the link busy (schedule.STREAMS)
    come in one GET each, hashed as they arrive; fewer are cut into ranges (above). The worker
    pool of the minio path cuts them into ranges whatever their number."""
    from djarchive_client.schedule import STREAMS

    data = {f"big{n}.bin": os.urandom(200 * KiB + n) for n in range(STREAMS)}
    archive.publish("ds", "1", data)
    calls = spy_gets(monkeypatch)
    client().download("ds", "1", tmp_path / "t", create_target=True, **SMALL_PARTS)
    assert read_tree(tmp_path / "t") == data
    whole = sorted(key for key, offset, length in calls if (offset, length) == (0, 0))
    if bulk_transport() == "curl":
        assert whole == [f"ds/1/{name}" for name in sorted(data)]
        assert len(calls) == STREAMS
    else:
        assert whole == []
        assert len(calls) == STREAMS * 4


def test_writes_that_take_only_part_of_the_data_lose_nothing(archive, big_files, tmp_path, monkeypatch):
    """A write may store fewer bytes than it was given; the rest must still reach the file."""
    archive.publish("some-set", "000", big_files)
    real_write, real_pwrite = os.write, os.pwrite
    calls = {"write": 0, "pwrite": 0, "writev": 0}

    def short_write(fd, data):
        calls["write"] += 1
        return real_write(fd, memoryview(data)[:1000])

    def short_pwrite(fd, data, position):
        calls["pwrite"] += 1
        return real_pwrite(fd, memoryview(data)[:1000], position)

    def short_writev(fd, pieces):  # libcurl's pieces are gathered by writev (the first 1000 bytes)
        calls["writev"] += 1
        return real_write(fd, memoryview(b"".join(pieces))[:1000])

    monkeypatch.setattr(os, "write", short_write)
    monkeypatch.setattr(os, "pwrite", short_pwrite)
    monkeypatch.setattr(os, "writev", short_writev)
    target = tmp_path / "t"
    client().download("some-set", "000", target, create_target=True, **SMALL_PARTS)
    monkeypatch.undo()
    assert read_tree(target) == big_files
    assert calls["write"] > len(big_files)
    assert calls["pwrite"] > 1024


def test_data_reaches_the_disk_in_writes_of_at_most_write_size(archive, big_files, tmp_path, monkeypatch):
    """Reads are 256 KiB, but each system call writes at most 64 KiB (large page-cache folios
    cost several times the kernel time on VMs), for whole files and for ranges alike."""
    from djarchive_client import fetch

    files = {**big_files, "whole.bin": os.urandom(300 * KiB + 5)}
    archive.publish("some-set", "000", files)
    real_write, real_pwrite, real_writev = os.write, os.pwrite, os.writev
    sizes: dict[str, list[int]] = {"write": [], "pwrite": []}

    def spy_write(fd, data):
        sizes["write"].append(len(data))
        return real_write(fd, data)

    def spy_pwrite(fd, data, position):
        sizes["pwrite"].append(len(data))
        return real_pwrite(fd, data, position)

    def spy_writev(fd, pieces):
        sizes["write"].append(sum(map(len, pieces)))
        return real_writev(fd, pieces)

    monkeypatch.setattr(os, "write", spy_write)
    monkeypatch.setattr(os, "pwrite", spy_pwrite)
    monkeypatch.setattr(os, "writev", spy_writev)
    target = tmp_path / "t"
    client().download(
        "some-set", "000", target, create_target=True, part_size=512 * KiB, multipart_threshold=1024 * KiB
    )
    monkeypatch.undo()
    assert read_tree(target) == files
    assert max(sizes["write"]) == max(sizes["pwrite"]) == fetch.WRITE_SIZE == 64 * KiB
    assert sum(sizes["pwrite"]) == len(files["sub/big/recording.bin"])


def test_small_files_get_twice_the_transfers_large_ones_no_more_than_jobs(archive, tmp_path, monkeypatch):
    """Files that fit in one read are latency-bound: up to 2 x jobs of them are fetched at once."""
    from djarchive_client.fetch import Fetcher

    files = {f"small/{n:02d}.bin": os.urandom(KiB) for n in range(16)}
    files.update({f"large/{n:02d}.bin": os.urandom(300 * KiB) for n in range(6)})
    archive.publish("ds", "1", files)
    if bulk_transport() == "curl":  # one thread: the GETs in flight on the engine, counted
        seen = engine_in_flight(monkeypatch, lambda request: request.tag.unit.entry.size)
        client().download("ds", "1", tmp_path / "t", create_target=True, jobs=2)
        assert read_tree(tmp_path / "t") == files
        assert most_at_once(seen)["large"] == 2  # the large ones come first, two at a time
        assert most_at_once(seen)["small"] <= 4
        assert max(map(len, seen)) == 4
        return
    seen = overlapping_calls(
        monkeypatch,
        Fetcher,
        "fetch_whole",
        lambda self, entry: entry.size,
        lambda size: ("small", 4) if size <= 256 * KiB else ("large", 2),
        map(len, files.values()),
    )
    client().download("ds", "1", tmp_path / "t", create_target=True, jobs=2)
    assert read_tree(tmp_path / "t") == files
    assert most_at_once(seen) == {"small": 4, "large": 2}


def test_ranges_arriving_in_any_order_are_hashed_right(archive, tmp_path, monkeypatch):
    """Writes delayed at random: ranges land out of order while one thread at a time hashes."""
    import random
    import time

    data = {f"big{n}.bin": os.urandom(2048 * KiB + n) for n in range(3)}  # fewer than STREAMS
    archive.publish("ds", "1", data)
    import hashlib

    real_pwrite, real_sha256, chance = os.pwrite, hashlib.sha256, random.Random(7)

    def slow_pwrite(fd, chunk, position):
        time.sleep(chance.random() * 0.004)
        return real_pwrite(fd, chunk, position)

    class SlowDigest:  # gives two threads hashing one file at once every chance to collide
        def __init__(self, data=b""):
            self.digest = real_sha256(data)

        def update(self, chunk):
            time.sleep(chance.random() * 0.002)
            self.digest.update(chunk)

        def hexdigest(self):
            return self.digest.hexdigest()

        def copy(self):  # a partial file's journal records what each range's digest is so far
            twin = SlowDigest()
            twin.digest = self.digest.copy()
            return twin

    gets = spy_gets(monkeypatch)
    monkeypatch.setattr(os, "pwrite", slow_pwrite)
    monkeypatch.setattr(hashlib, "sha256", SlowDigest)
    summary = client().download("ds", "1", tmp_path / "t", create_target=True, jobs=16, **SMALL_PARTS)
    monkeypatch.undo()
    assert read_tree(tmp_path / "t") == data
    assert summary.fetched_files == 3
    # Every file verified in its first pass: only range requests, none repeated as a whole.
    requests = [length for _, _, length in gets]
    assert 0 not in requests
    assert len(requests) == sum(-(-len(content) // (64 * KiB)) for content in data.values())


def test_rerun_over_complete_copy_transfers_nothing(archive, big_files, tmp_path):
    archive.publish("some-set", "000", big_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True, **SMALL_PARTS)
    for subpath in big_files:  # the data is gone from the store: any fetch would fail
        archive.remove(f"some-set/000/{subpath}")
    summary = client().download("some-set", "000", target)
    assert (summary.fetched_files, summary.present_files, summary.fetched_bytes) == (0, len(big_files), 0)
    # Without the record the files are hashed again, still nothing is fetched.
    (target / ".djarchive" / "verified.bin").unlink()
    summary = client().download("some-set", "000", target)
    assert (summary.fetched_files, summary.present_files) == (0, len(big_files))
    assert read_tree(target) == big_files


def test_a_record_of_an_earlier_version_is_trusted_then_rewritten(archive, seed_files, tmp_path, hashed):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    state = target / ".djarchive"
    recorded = Record.from_bytes((state / "verified.bin").read_bytes())
    entries = {path: list(fields) for path, fields in recorded.items()}
    assert sorted(entries) == sorted(seed_files)
    (state / "verified.bin").unlink()  # the copy as djarchive wrote it before: a JSON record
    (state / "verified.json").write_text(json.dumps({"version": 1, "files": entries}))
    hashed.clear()
    summary = client().download("some-set", "000", target)
    assert (summary.fetched_files, summary.present_files, hashed) == (0, len(seed_files), [])
    assert not (state / "verified.json").exists()
    assert list(Record.from_bytes((state / "verified.bin").read_bytes()).items()) == list(recorded.items())


def test_a_rerun_hashes_only_the_files_changed_since_the_record(archive, seed_files, tmp_path, hashed):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    os.utime(target / "sub" / "sub.dat", ns=(1, 1))  # the same content, another mtime
    hashed.clear()
    summary = client().download("some-set", "000", target)
    assert (summary.fetched_files, summary.present_files, len(hashed)) == (0, len(seed_files), 1)
    hashed.clear()  # the record vouches for it again
    assert client().download("some-set", "000", target).present_files == len(seed_files)
    assert hashed == []
    assert read_tree(target) == seed_files


@pytest.mark.parametrize(
    "size", [0, 1, transfer.BUFFER_SIZE - 1, transfer.BUFFER_SIZE, 2 * transfer.BUFFER_SIZE + 1]
)
def test_hashing_an_open_file_reads_to_its_end(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        expected = (size, hashlib.sha256(data).hexdigest())
        assert files.hash_file(fd) == expected
        assert files.hash_file(fd, size) == expected
        with open(path, "ab") as more:  # grown since its size was taken: still read to the end
            more.write(b"grown")
        assert files.hash_file(fd, size) == (size + 5, hashlib.sha256(data + b"grown").hexdigest())
    finally:
        os.close(fd)


def test_a_first_pass_without_the_record_opens_each_file_once(
    archive, seed_files, tmp_path, monkeypatch, hashed
):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    (target / ".djarchive" / "verified.bin").unlink()
    (target / "root.dat").unlink()  # missing
    (target / "sub" / "sub.dat").write_bytes(b"changed by a user")  # another size: not read
    (target / "root2.dat").write_bytes(b"\0" * len(seed_files["root2.dat"]))  # same size, other bytes
    (target / "sub" / "other" / "other.dat").unlink()
    (target / "sub" / "other" / "other.dat").symlink_to(target / "root2.dat")  # a link: never followed
    hashed.clear()
    with monkeypatch.context() as patch:
        patch.setattr(files.TargetFiles, "stats", lambda *args: pytest.fail("stat-ed before hashing"))
        summary = client().download("some-set", "000", target)
    assert (summary.fetched_files, summary.present_files, len(hashed)) == (4, 2, 3)
    assert read_tree(target) == seed_files
    assert not (target / "sub" / "other" / "other.dat").is_symlink()
    assert client().verify("some-set", "000", target).intact


def test_planning_writes_nothing_and_returns_what_hashing_proved(archive, seed_files, tmp_path):
    from djarchive_client.localcopy import LocalCopy
    from djarchive_client.plan import plan_download

    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    (target / ".djarchive" / "verified.bin").unlink()
    (target / "root.dat").write_bytes(b"\0" * len(seed_files["root.dat"]))  # same size, other bytes

    def everything() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(target.rglob("*"))}

    before = everything()
    manifest, _ = client().signed_manifest("some-set", "000")
    local = LocalCopy(target)
    try:
        local.load_record()
        plan, proved = plan_download(local, manifest, jobs=2)
        assert not local.verified  # nothing recorded, not even in memory
    finally:
        local.close()
    assert everything() == before  # nor written
    assert [entry.subpath for entry in plan.fetch] == ["root.dat"]
    assert sorted(proved) == sorted(set(seed_files) - {"root.dat"})
    for subpath, digest in proved.items():
        assert digest.sha256 == hashlib.sha256(seed_files[subpath]).hexdigest()
        assert digest.status.st_mtime_ns == (target / subpath).stat().st_mtime_ns
    summary = client().download("some-set", "000", target)  # the download records what it proves
    assert (summary.fetched_files, summary.present_files) == (1, len(seed_files) - 1)
    assert sorted(
        path for path, _ in Record.from_bytes((target / ".djarchive" / "verified.bin").read_bytes()).items()
    ) == sorted(seed_files)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes (nor SIGALRM) on this platform")
def test_a_named_pipe_where_a_file_belongs_is_never_waited_on(archive, seed_files, tmp_path):
    import signal

    def waited(*_):
        pytest.fail("the download waited on the named pipe")

    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    (target / ".djarchive" / "verified.bin").unlink()  # a first pass: every file is opened
    (target / "root.dat").unlink()
    os.mkfifo(target / "root.dat")  # opening it to read would wait for a writer
    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(30)
    try:
        summary = client().download("some-set", "000", target)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert summary.fetched_files == 1
    assert read_tree(target) == seed_files


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="a bind mount needs root")
def test_one_file_reached_by_two_paths_is_used_by_neither(archive, tmp_path):
    import shutil
    import subprocess

    files = {"a.dat": b"abcdef", "d/b.dat": b"1234567"}
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    (target / ".djarchive" / "verified.bin").unlink()  # a first pass: no stat before opening
    other = target / "d" / "b.dat"  # becomes a.dat itself, of another size than b.dat should be
    mount = subprocess.run(["mount", "--bind", str(target / "a.dat"), str(other)], capture_output=True)
    if mount.returncode != 0 or not shutil.which("umount"):
        pytest.skip(f"no bind mount here: {mount.stderr.decode(errors='replace').strip()}")
    try:
        plan = client().download("ds", "1", target, dry_run=True)
    finally:
        subprocess.run(["umount", str(other)], check=True)
    assert plan.present_files == 0  # a.dat is right, but it is also d/b.dat: not kept
    assert sorted(entry.subpath for entry in plan.planned) == ["a.dat", "d/b.dat"]


@pytest.mark.skipif(not hasattr(os, "O_NONBLOCK") or not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_file_under_a_lease_is_opened_after_waiting_a_pipe_is_not(tmp_path, monkeypatch):
    from djarchive_common import localfs

    (tmp_path / "leased").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe")
    real_open, waited = os.open, []

    def open_as_if_leased(path, flags, *args, **kwargs):
        waited.append(not flags & os.O_NONBLOCK)
        if flags & os.O_NONBLOCK:  # what a lease held elsewhere (Samba, NFS) answers
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_open(path, flags, *args, **kwargs)

    with localfs.open_root(tmp_path) as root:
        monkeypatch.setattr(os, "open", open_as_if_leased)
        os.close(root.open("leased", os.O_RDONLY))
        assert waited == [False, True]  # tried without waiting, then waited: a regular file
        with pytest.raises(BlockingIOError):
            root.open("pipe", os.O_RDONLY)  # never waited on
        assert waited == [False, True, False]


def test_resume_fetches_only_missing_and_modified_files(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    (target / "root.dat").unlink()
    (target / "sub" / "sub.dat").write_bytes(b"changed by a user")
    same_size = target / "root2.dat"
    same_size.write_bytes(b"\0" * len(seed_files["root2.dat"]))
    summary = client().download("some-set", "000", target)
    assert summary.fetched_files == 3
    assert read_tree(target) == seed_files


def test_recheck_hashes_everything_again(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    path = target / "root.dat"
    stat = path.stat()
    path.write_bytes(b"\1" * stat.st_size)  # same size, and the same mtime: the record cannot notice
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert client().download("some-set", "000", target).fetched_files == 0
    assert client().download("some-set", "000", target, recheck=True).fetched_files == 1
    assert read_tree(target) == seed_files


def test_include_exclude_and_dry_run(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    plan = client().download("some-set", "000", target, create_target=True, include=["sub/*"], dry_run=True)
    assert [e.subpath for e in plan.planned] == ["sub/dir/dir.dat", "sub/other/other.dat", "sub/sub.dat"]
    assert not target.exists()  # a dry run writes nothing
    client().download("some-set", "000", target, create_target=True, include=["sub/*"], exclude=["*/other/*"])
    assert sorted(read_tree(target)) == ["sub/dir/dir.dat", "sub/sub.dat"]
    plan = client().download("some-set", "000", target, dry_run=True)
    assert plan.present_files == 2
    assert len(plan.planned) == len(seed_files) - 2


def test_missing_target_needs_create_target(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    with pytest.raises(NotFoundError, match=r"target directory .* does not exist"):
        client().download("some-set", "000", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_unpublished_revision_is_not_downloadable(archive, tmp_path):
    archive.put("ds/000/a.dat", b"a")
    archive.publish("ds", "001", {"a.dat": b"a"})
    with pytest.raises(RevisionNotFoundError, match="not published"):
        client().download("ds", "000", tmp_path / "t", create_target=True)
    assert not (tmp_path / "t").exists()


def test_corrupted_object_is_retried_reported_and_never_placed(archive, seed_files, tmp_path, caplog):
    archive.publish("some-set", "000", seed_files)
    original = seed_files["sub/dir/dir.dat"]
    archive.put("some-set/000/sub/dir/dir.dat", bytes(b ^ 0xFF for b in original))  # same size, wrong bytes
    target = tmp_path / "copy"
    caplog.set_level("INFO", logger="djarchive_common")
    with pytest.raises(PartialFailureError, match="1 of 6 files of some-set 000 failed") as caught:
        DJArchiveClient(options=FAST_RETRIES).download("some-set", "000", target, create_target=True)
    assert list(caught.value.failures) == ["sub/dir/dir.dat"]
    assert "does not match the manifest" in caught.value.failures["sub/dir/dir.dat"]
    assert len([r for r in caplog.records if "sub/dir/dir.dat failed" in r.getMessage()]) == 2  # 3 attempts
    assert not (target / "sub" / "dir" / "dir.dat").exists()
    assert not list(target.rglob("*.part"))
    others = {k: v for k, v in seed_files.items() if k != "sub/dir/dir.dat"}
    assert read_tree(target) == others
    assert caught.value.summary.fetched_files == len(others)


def test_corrupted_large_object_fails_as_a_whole(archive, tmp_path):
    data = os.urandom(512 * KiB)
    archive.publish("ds", "1", {"big.bin": data})
    archive.put("ds/1/big.bin", data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(PartialFailureError) as caught:
        DJArchiveClient(options=FAST_RETRIES).download(
            "ds", "1", tmp_path / "t", create_target=True, **SMALL_PARTS
        )
    assert "sha256" in caught.value.failures["big.bin"]
    assert os.listdir(tmp_path / "t") == [".djarchive"]


def test_transient_corruption_heals_on_retry(archive, seed_files, tmp_path, monkeypatch):
    archive.publish("some-set", "000", seed_files)
    good = seed_files["root.dat"]
    archive.put("some-set/000/root.dat", b"X" * len(good))
    sleeps = []

    def repair_then_continue(policy, attempt):  # the pause before a retry, on either transport
        sleeps.append(attempt)
        archive.put("some-set/000/root.dat", good)
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", repair_then_continue)
    summary = client().download("some-set", "000", tmp_path / "t", create_target=True)
    assert summary.ok
    assert sleeps  # it backed off before the retry
    assert (tmp_path / "t" / "root.dat").read_bytes() == good


def test_short_object_is_a_failure(archive, tmp_path):
    archive.publish("ds", "1", {"a.bin": b"abcdef"})
    archive.put("ds/1/a.bin", b"abc")
    with pytest.raises(PartialFailureError, match="1 of 1 file of ds 1 failed") as caught:
        DJArchiveClient(options=FAST_RETRIES).download("ds", "1", tmp_path / "t", create_target=True)
    assert "the object is 3 bytes, the manifest says 6" in caught.value.failures["a.bin"]
    assert not (tmp_path / "t" / "a.bin").exists()


HOSTILE = {
    "traversal": b'"1","' + b"0" * 64 + b'","../../escaped"\n',
    "absolute": b'"1","' + b"0" * 64 + b'","/tmp/escaped"\n',
    "duplicate": manifest_bytes({"a": b"1"}) * 2,
    "own-folder": manifest_bytes({".djarchive/verified.json": b"{}"}),
    "not-csv": b'"1","abc\n',
    "binary": os.urandom(64) + b"\xff",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_manifest_writes_nothing_anywhere(archive, tmp_path, name):
    archive.publish("ds", "1", {"a": b"1"}, manifest=HOSTILE[name])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises((ManifestError, LocalPathError)):
        client().download("ds", "1", tmp_path / "t", create_target=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("/tmp/escaped").exists()


def test_symlink_in_target_leading_outside_is_refused(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "copy"
    target.mkdir()
    (target / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LocalPathError, match=r"copy/sub is a symbolic link; djarchive does not follow links"):
        client().download("some-set", "000", target)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in target.iterdir()) == ["sub"]


def test_dangling_symlink_in_target_is_refused(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    target.mkdir()
    (target / "names").symlink_to(tmp_path / "not-yet-there")
    with pytest.raises(LocalPathError, match=r"copy/names is a symbolic link"):
        client().download("some-set", "000", target)
    assert not (tmp_path / "not-yet-there").exists()


def test_a_symlink_between_folders_inside_target_is_refused_too(archive, seed_files, tmp_path):
    """A link inside TARGET could make two manifest paths one file: no link is followed."""
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    (target / "elsewhere").mkdir(parents=True)
    (target / "sub").symlink_to(target / "elsewhere", target_is_directory=True)
    with pytest.raises(LocalPathError, match="sub is a symbolic link"):
        client().download("some-set", "000", target)
    assert list((target / "elsewhere").iterdir()) == []


def test_a_second_download_into_the_same_target_is_refused(archive, seed_files, tmp_path):
    from djarchive_client.localcopy import LocalCopy

    archive.publish("some-set", "000", seed_files)
    holder = LocalCopy(tmp_path / "t", create=True)
    holder.lock()
    try:
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            client().download("some-set", "000", tmp_path / "t")
    finally:
        holder.unlock()
    assert client().download("some-set", "000", tmp_path / "t").ok


def test_temporary_files_of_a_killed_run_are_swept_and_only_those(archive, seed_files, tmp_path):
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "t"
    (target / ".djarchive" / "tmp" / "0123456789ab").mkdir(parents=True)
    leftover = target / ".djarchive" / "tmp" / "0123456789ab" / "7.part"
    leftover.write_bytes(b"partial")
    (target / "sub").mkdir()
    users = target / "sub" / ".djarchive-0123456789ab.part"  # named like an old temporary file: the user's
    users.write_bytes(b"mine")
    client().download("some-set", "000", target)
    assert not leftover.exists()
    assert list((target / ".djarchive" / "tmp").iterdir()) == []
    assert users.read_bytes() == b"mine"


def test_seed_python_examples(archive, seed_files, tmp_path, isolated_config):
    archive.publish("some-set", "000", seed_files)
    archive.publish("workflow-array-ephys-benchmark", "v1", {"session/probe.npy": b"ephys"})
    c = client()
    assert (c.endpoint, c.bucket) == (archive.server.endpoint, archive.bucket)
    assert list(c.datasets()) == ["some-set", "workflow-array-ephys-benchmark"]
    assert list(c.revisions()) == [("some-set", "000"), ("workflow-array-ephys-benchmark", "v1")]
    assert list(c.revisions("some-set")) == [("some-set", "000")]
    c.download("some-set", "000", "./some-set-000", create_target=True)
    assert read_tree(isolated_config / "some-set-000") == seed_files
    test_data = tmp_path / "test_data"
    test_data.mkdir()
    c.download("workflow-array-ephys-benchmark", target_directory=str(test_data), revision="v1")
    assert (test_data / "session" / "probe.npy").read_bytes() == b"ephys"
    report = c.verify("some-set", "000", "./some-set-000")
    assert report.intact


def test_dry_run_checks_files_already_there(archive, seed_files, tmp_path):
    """Without a record a dry run hashes what is there, as the download would, and writes nothing."""
    archive.publish("some-set", "000", seed_files)
    target = tmp_path / "copy"
    client().download("some-set", "000", target, create_target=True)
    (target / ".djarchive" / "verified.bin").unlink()
    (target / "root.dat").unlink()
    (target / "sub" / "sub.dat").write_bytes(b"\0" * len(seed_files["sub/sub.dat"]))
    plan = client().download("some-set", "000", target, dry_run=True)
    assert sorted(e.subpath for e in plan.planned) == ["root.dat", "sub/sub.dat"]
    assert plan.present_files == len(seed_files) - 2
    assert not (target / ".djarchive" / "verified.bin").exists()
    assert client().download("some-set", "000", target).fetched_files == 2

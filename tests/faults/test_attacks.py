"""Attacks on the promises, one class at a time (issue 13): nothing outside TARGET changes, no
wrong bytes with exit 0, bounded time and memory, one line and the right exit code, secrets
absent, one lease holder, no republish without --force."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from djarchive_client import DJArchiveClient, client
from djarchive_client.cli import main
from djarchive_common.errors import (
    LocalPathError,
    ManifestError,
    PartialFailureError,
    RevisionPublishedError,
)
from djarchive_common.layout import lock_key
from tests.faults.support import SMALL_PARTS, KiB, error_lines, fast_options, popen
from tests.helpers import manifest_bytes, part_files, read_tree, sha256, write_tree
from tests.helpers import run_client as run_cli

FILES = {"a/x.bin": b"a" * 100, "b/y.bin": b"b" * 200, "top.bin": b"top"}


def snapshot(folder: Path) -> dict[str, tuple[str, bytes | str]]:
    """Everything under ``folder``: files with content, links with their target, folders."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", "")
        else:
            found[name] = ("file", path.read_bytes())
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every TARGET with one precious file; tests assert it never changes."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"precious")
    return folder


# -- 1. writes never follow a link the tool did not create -------------------------------------


@pytest.mark.parametrize("planted", ["lock", "verified.bin", "tmp"])
def test_links_planted_among_the_tools_own_files_are_not_followed(
    archive, tmp_path, outside, planted, capsys
):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    (target / ".djarchive").mkdir(parents=True)
    (target / ".djarchive" / planted).symlink_to(outside / ("precious.txt" if planted != "tmp" else ""))
    before = snapshot(outside)
    code, _, err = run_cli(capsys, "download", "ds", "1", str(target), "-q")
    assert snapshot(outside) == before
    if code == 0:  # the record's link is replaced, never written through
        assert read_tree(target) == FILES
    else:
        [line] = error_lines(err, "djarchive")
        assert "symbolic link" in line


def test_the_record_written_through_a_planted_temporary_name_is_refused(archive, tmp_path, outside):
    """The record's temporary file is created new (O_EXCL, no link followed), never opened."""
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    for name in os.listdir(target / ".djarchive"):
        assert not name.endswith(".tmp")
    (target / "top.bin").unlink()
    before = snapshot(outside)
    for run in ("0000", "ffff"):
        (target / ".djarchive" / f"verified.bin.{run}.tmp").symlink_to(outside / "precious.txt")
    client().download("ds", "1", target)
    assert snapshot(outside) == before


def test_the_admins_temporary_manifest_never_follows_a_link(tmp_path, outside, monkeypatch):
    from djarchive_admin import admin

    source = write_tree(tmp_path / "source", {"a.dat": b"a"})
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    monkeypatch.setattr("secrets.token_hex", lambda n=None: "feedbeef")
    (source / ".djarchive-manifest.csv.4242-feedbeef.tmp").symlink_to(outside / "precious.txt")
    before = snapshot(outside)
    with pytest.raises(OSError, match="exists"):
        admin().write_manifest(source)
    assert snapshot(outside) == before
    assert not (source / "djarchive-manifest.csv").exists()


# -- 2. folders are checked at the moment of use -----------------------------------------------


def test_a_folder_swapped_for_a_link_during_the_download_cannot_redirect_writes(
    archive, tmp_path, outside, via_proxy
):
    files = {f"data/{n:02d}.bin": os.urandom(2 * KiB) for n in range(12)}
    archive.publish("ds", "1", files)
    swapped = threading.Event()
    target = tmp_path / "t"

    def slow_after_a_few(request) -> float:
        if "/data/" in request.path and not swapped.is_set():
            data = target / "data"
            if data.is_dir() and len(os.listdir(data)) >= 3:
                for attempt in range(10):
                    data.rename(tmp_path / f"moved-away-{attempt}")
                    try:
                        data.symlink_to(outside, target_is_directory=True)
                    except FileExistsError:  # the download made the folder again in between
                        continue
                    swapped.set()
                    break
        return 0.02

    via_proxy(delay=slow_after_a_few)
    before = snapshot(outside)
    with pytest.raises(PartialFailureError) as caught:
        DJArchiveClient(options=fast_options(attempts=1)).download(
            "ds", "1", target, create_target=True, jobs=1
        )
    assert swapped.is_set()
    assert snapshot(outside) == before
    assert any("symbolic link" in reason for reason in caught.value.failures.values())


def test_verify_never_counts_files_reached_through_a_linked_folder(archive, tmp_path):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    (target / "a").rename(tmp_path / "real-a")
    (target / "a").symlink_to(tmp_path / "real-a", target_is_directory=True)
    report = client().verify("ds", "1", target)
    assert not report.intact
    assert "symbolic link" in report.modified["a/x.bin"]


# -- 3. two paths, one file --------------------------------------------------------------------


def test_a_link_between_two_folders_cannot_make_two_paths_one_file(archive, tmp_path, capsys):
    files = {"a/x": b"first", "b/x": b"second"}
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    (target / "a").mkdir(parents=True)
    (target / "b").symlink_to(target / "a", target_is_directory=True)
    code, _, err = run_cli(capsys, "download", "ds", "1", str(target), "-q")
    assert code == 1
    assert "b is a symbolic link" in err
    assert list((target / "a").iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["Data/x.bin", "data/x.bin"], "name the same file"),
        (["caf\u00e9.bin", "cafe\u0301.bin"], "name the same file"),
        (["A", "a/b"], "both a file and a folder"),
        (["evil\u202egnp.exe"], "U+202E"),
        (["zero\u200bwidth"], "U+200B"),
        (["line\u2028break"], "U+2028"),
        (["\ufeffbom"], "U+FEFF"),
    ],
)
def test_manifests_naming_one_file_twice_or_spoofing_names_are_refused(
    archive, tmp_path, capsys, paths, message
):
    data = {path: path.encode() for path in paths}
    archive.publish("ds", "1", data, manifest=manifest_bytes(data))
    for argv in (["files", "ds", "1"], ["download", "ds", "1", str(tmp_path / "t")]):
        code, out, err = run_cli(capsys, *argv)
        assert (code, out) == (1, "")
        [line] = error_lines(err, "djarchive")
        assert message in line
    assert not (tmp_path / "t").exists()


# -- 4. claimed sizes ----------------------------------------------------------------------------


def test_a_size_no_store_can_hold_is_a_manifest_error(archive, tmp_path):
    line = f'"{10**15}","{"0" * 64}","huge.bin"\n'.encode()
    archive.publish("ds", "1", {"huge.bin": b"x"}, manifest=line)
    with pytest.raises(ManifestError, match="larger than the largest object S3 can hold"):
        client().download("ds", "1", tmp_path / "t", create_target=True)
    assert not (tmp_path / "t").exists()


def test_a_terabyte_claim_for_a_ten_byte_object_allocates_nothing(archive, tmp_path):
    claim = 10**12
    line = f'"{claim}","{sha256(b"0123456789")}","big.bin"\n'.encode()
    archive.publish("ds", "1", {"big.bin": b"0123456789"}, manifest=line)
    started = time.monotonic()
    with pytest.raises(PartialFailureError) as caught:
        DJArchiveClient(options=fast_options(attempts=2)).download(
            "ds", "1", tmp_path / "t", create_target=True
        )
    assert time.monotonic() - started < 20
    reason = caught.value.failures["big.bin"]
    assert reason.endswith(f"the object is 10 bytes, the manifest says {claim}") or reason.endswith(
        "the object is shorter than the byte range asked for"
    ), reason
    assert part_files(tmp_path / "t") == []
    assert sum(p.stat().st_blocks for p in (tmp_path / "t").rglob("*") if p.is_file()) < 100


# -- 5. the tool's own names ----------------------------------------------------------------------


def test_files_named_like_temporary_files_are_data_like_any_other(archive, tmp_path):
    files = {".djarchive-0123.part": b"data", "sub/.djarchive-x-1.part": b"more", "tmp/1.part": b"one"}
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    assert read_tree(target) == files
    assert client().download("ds", "1", target).present_files == 3  # a re-run deletes none of them
    assert read_tree(target) == files


def test_manifest_paths_inside_the_tools_own_folder_are_refused(archive, tmp_path):
    for path in (".djarchive/tmp/x/1.part", ".DJARCHIVE/lock"):
        archive.publish("ds", "1", {"a": b"1"}, manifest=manifest_bytes({path: b"1"}))
        with pytest.raises(ManifestError, match=r"\.djarchive is reserved"):
            client().download("ds", "1", tmp_path / "t", create_target=True)


# -- 6. a misbehaving server ------------------------------------------------------------------------

ENDLESS = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
    b"<NextContinuationToken>again</NextContinuationToken><EncodingType>url</EncodingType></ListBucketResult>"
)


def response(body: bytes, content_type: str = "application/xml") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


def test_a_listing_that_never_ends_is_stopped(archive, via_proxy, capsys):
    via_proxy(answer=lambda request: [response(ENDLESS)] if "list-type=2" in request.target else None)
    started = time.monotonic()
    code, _, err = run_cli(capsys, "datasets")
    assert time.monotonic() - started < 20
    assert code == 1
    [line] = error_lines(err, "djarchive")
    assert "would never end" in line


def test_a_scan_that_never_moves_on_is_stopped(archive, via_proxy, capsys):
    """A server that answers every page of a key scan with the same truncated page: the scan stops
    instead of asking for ever."""
    archive.put("a/1/x", b"x")
    same = ENDLESS.replace(
        b"<KeyCount>0</KeyCount>",
        b"<KeyCount>1</KeyCount><Contents><Key>a/1/x</Key><Size>1</Size></Contents>",
    )
    via_proxy(answer=lambda request: [response(same)] if "start-after=" in request.target else None)
    code, _, err = run_cli(capsys, "datasets")
    assert code == 1
    [line] = error_lines(err, "djarchive")
    assert "answers 'truncated' without a later key; its listing would never end" in line


def test_a_trickled_manifest_is_cut(archive, via_proxy, capsys, monkeypatch):
    archive.publish("ds", "1", FILES)
    manifest = manifest_bytes(FILES)

    def trickle(request):
        if not request.path.endswith("djarchive-manifest.csv") or request.method != "GET":
            return None

        def chunks():
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(manifest)}\r\nConnection: close\r\n\r\n"
            yield head.encode()
            for byte in manifest:
                time.sleep(0.3)
                yield bytes([byte])

        return chunks()

    via_proxy(answer=trickle)
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "1")
    started = time.monotonic()
    code, _, err = run_cli(capsys, "files", "ds", "1")
    assert time.monotonic() - started < 40
    assert code == 1
    assert "slower than 1024 bytes/s" in error_lines(err, "djarchive")[-1]


def test_a_server_that_ignores_ranges_gets_large_files_as_one_stream(archive, via_proxy, tmp_path):
    files = {"big.bin": os.urandom(300 * KiB), "small.bin": b"small"}
    archive.publish("ds", "1", files)
    proxy = via_proxy(ignore_range=True)
    summary = client().download("ds", "1", tmp_path / "t", create_target=True, **SMALL_PARTS)
    assert summary.ok
    assert read_tree(tmp_path / "t") == files
    big = [r for r in proxy.requests if r.path.endswith("big.bin")]
    assert 2 <= len(big) <= 6  # a ranged try or a few, then one stream


def test_deep_paths_are_validated_in_linear_time():
    from djarchive_common.manifest import parse_manifest

    lines = []
    for n in range(20_000):
        path = "/".join(["d"] * 300) + f"/{n}"
        lines.append(f'"1","{"0" * 64}","{path}"\n')
    data = "".join(lines).encode()
    started = time.monotonic()
    assert len(parse_manifest(data)) == 20_000
    assert time.monotonic() - started < 15  # was over a minute when every prefix was rebuilt


# -- 7. one line, never a traceback ---------------------------------------------------------------


def test_local_faults_are_one_line(archive, tmp_path, capsys, monkeypatch):
    archive.publish("ds", "1", FILES)
    cases = []
    locked_parent = tmp_path / "locked"
    locked_parent.mkdir()
    locked_parent.chmod(0o500)
    if os.geteuid() != 0:  # root writes anywhere: the mode locks nobody out
        cases.append(["download", "ds", "1", str(locked_parent / "t")])
    lock_is_a_folder = tmp_path / "lockdir"
    (lock_is_a_folder / ".djarchive" / "lock").mkdir(parents=True)
    cases.append(["download", "ds", "1", str(lock_is_a_folder)])
    cases.append(["download", "ds", "1", "~no-such-user-djarchive/t"])
    cases.append(["download", "ds", "1", str(tmp_path / ("n" * 300))])
    try:
        for argv in cases:
            code, _, err = run_cli(capsys, *argv)
            assert code == 1, (argv, err)
            assert len(error_lines(err, "djarchive")) == 1, err
    finally:
        locked_parent.chmod(0o700)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e400", "abc"])
def test_bad_timeouts_are_a_usage_error(archive, capsys, monkeypatch, value):
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", value)
    code, out, err = run_cli(capsys, "datasets")
    assert (code, out) == (2, "")
    [line] = error_lines(err, "djarchive")
    assert "DJARCHIVE_READ_TIMEOUT" in line


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("verified.json", b"[" * 100_000 + b"]" * 100_000),  # a record of an earlier version, nested deep
        ("verified.bin", b"djarchive record 1 little\n" + b"\xff" * 8 + b"short"),  # claims 2**64 entries
        ("verified.bin", b"djarchive record 1 big\n" + bytes(8)),  # nothing, from the other byte order
    ],
)
def test_a_deeply_nested_record_is_ignored_not_a_crash(archive, tmp_path, capsys, name, content):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    (target / ".djarchive").mkdir(parents=True)
    (target / ".djarchive" / name).write_bytes(content)
    code, _, err = run_cli(capsys, "download", "ds", "1", str(target), "-q")
    assert code == 0, err
    assert read_tree(target) == FILES


# -- 8. redaction in every format -------------------------------------------------------------------


def test_a_secret_echoed_by_the_server_is_redacted_in_json_too(archive, via_proxy, capsys, monkeypatch):
    secret = "Echoed-S3cret-Value-123"
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", "client-access-key-1")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", secret)
    body = (
        f'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>bad key {secret}</Message>'
        f"<Resource>/</Resource><RequestId>1</RequestId></Error>"
    ).encode()
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    via_proxy(answer=lambda request: [head.encode() + body])
    code, out, err = run_cli(capsys, "datasets", "--json")
    assert code == 1
    assert secret not in out + err
    assert json.loads(out)["type"] == "PermissionDeniedError"


# -- 9. immutability after a retraction --------------------------------------------------------------


def test_a_retracted_revision_is_not_republished_with_other_bytes(archive, tmp_path):
    from djarchive_admin import admin

    source = write_tree(tmp_path / "source", {"a.dat": b"original"})
    tool = admin()
    tool.upload("ds", "1", source)
    copy = tmp_path / "copy"
    client().download("ds", "1", copy, create_target=True)
    tool.retract("ds", "1", reason="wrong calibration", superseded_by="2", force=True)  # 2: next
    (source / "a.dat").write_bytes(b"different")
    with pytest.raises(RevisionPublishedError, match="retracted"):
        tool.upload("ds", "1", source)
    tool.upload("ds", "1", write_tree(tmp_path / "same", {"a.dat": b"original"}))  # the same bytes: fine
    assert client().verify("ds", "1", copy).intact
    tool.retract("ds", "1")
    tool.upload("ds", "1", source, force=True)  # and --force is the way to change it
    assert archive.get("ds/1/a.dat") == b"different"


# -- 10. leases -------------------------------------------------------------------------------------


def test_two_admins_taking_over_one_stale_lease_cannot_both_hold_it(archive, monkeypatch):
    from djarchive_admin import admin
    from djarchive_admin.lease import RevisionLease
    from djarchive_common.errors import LockedError

    stale = {"token": "dead", "host": "gone", "pid": 1, "heartbeat": time.time() - 7200}
    archive.put(lock_key("ds", "1"), json.dumps(stale).encode())
    store = admin().store
    barrier = threading.Barrier(2)
    original = type(store).read_tagged

    def in_step(self, key, limit):
        result = original(self, key, limit)
        if json.loads(result[0]).get("token") == "dead":
            barrier.wait(10)  # both have read the stale lease before either writes
        return result

    monkeypatch.setattr(type(store), "read_tagged", in_step)
    outcomes: list[str] = []

    def contender() -> None:
        lease = RevisionLease(store, "ds", "1", heartbeat=3600)
        try:
            lease.acquire()
            outcomes.append("held")
        except LockedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["held", "refused"]


@pytest.mark.parametrize(
    "lease",
    [
        json.dumps({"token": "x", "host": "h", "pid": 1, "heartbeat": time.time() + 10**9}).encode(),
        b'{"token": "x", "pad": "' + b"x" * 100_000 + b'"}',
        b"[" * 50_000 + b"]" * 50_000,
    ],
    ids=["future", "oversized", "nested"],
)
def test_a_lease_from_the_future_or_oversized_does_not_lock_forever(archive, tmp_path, lease):
    from djarchive_admin import admin

    archive.put(lock_key("ds", "1"), lease)
    source = write_tree(tmp_path / "source", {"a.dat": b"a"})
    assert admin().upload("ds", "1", source).published


def test_break_lease_asks_then_breaks(archive, capsys):
    from djarchive_admin.cli import main as admin_main

    holder = {"token": "t", "host": "elsewhere", "pid": 7, "heartbeat": time.time(), "since": "earlier"}
    archive.put(lock_key("ds", "1"), json.dumps(holder).encode())
    assert admin_main(["break-lease", "ds", "1"]) == 1  # no terminal to ask: refused
    assert "pass --yes" in capsys.readouterr().err
    assert lock_key("ds", "1") in archive.keys()
    assert admin_main(["break-lease", "ds", "1", "--yes"]) == 0
    assert "broke the lease on ds 1 (pid 7 on elsewhere" in capsys.readouterr().out
    assert lock_key("ds", "1") not in archive.keys()


# -- 11. Ctrl-C ---------------------------------------------------------------------------------------


def test_one_sigint_stops_a_download_with_a_large_file_in_flight(archive, make_proxy, tmp_path):
    files = {"big.bin": os.urandom(8 * 1024 * KiB), "small.bin": b"s"}
    archive.publish("ds", "1", files)
    # The large file's body stops halfway and the connection is held: a read waits on the network.
    proxy = make_proxy(rule=lambda request, n: ("stall", 0.5) if "big.bin" in request.path else None)
    target = tmp_path / "t"
    env = {**archive.client_env, "DJARCHIVE_CLIENT_ENDPOINT": proxy.url}
    process = popen(
        ["-m", "djarchive_client.cli", "download", "ds", "1", str(target), "-j", "2"],
        env=env,
        interactive=True,
    )
    deadline = time.monotonic() + 30
    while not part_files(target) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 3
    assert process.returncode == 130, err
    assert "Traceback" not in err
    for subpath, data in read_tree(target).items():
        assert data == files[subpath]


def test_one_sigint_stops_an_upload_and_leaves_no_multipart_upload(archive, make_proxy, tmp_path):
    source = write_tree(tmp_path / "source", {"big.bin": os.urandom(24 * 1024 * KiB), "a.dat": b"a"})
    proxy = make_proxy(
        delay=lambda request: 0.3 if request.method == "PUT" and "partNumber" in request.target else 0
    )
    env = {**archive.admin_env, "DJARCHIVE_ADMIN_ENDPOINT": proxy.url}
    process = popen(
        ["-m", "djarchive_admin.cli", "upload", "ds", "1", str(source)], env=env, interactive=True
    )
    minio = archive.minio
    deadline = time.monotonic() + 30
    while not minio._list_multipart_uploads(archive.bucket, prefix="ds/1/").uploads:
        assert time.monotonic() < deadline, "no multipart upload started"
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130, err
    assert minio._list_multipart_uploads(archive.bucket, prefix="ds/1/").uploads == []
    assert "ds/1/djarchive-manifest.csv" not in archive.keys()


# -- 12. careless input ---------------------------------------------------------------------------------


def test_an_empty_target_is_bad_usage(archive, capsys, isolated_config):
    archive.publish("ds", "1", FILES)
    for command in ("download", "verify"):
        try:
            code = main([command, "ds", "1", ""])
        except SystemExit as exit_:  # argparse's own usage error
            code = exit_.code
        assert code == 2
        assert "empty folder name" in capsys.readouterr().err
    assert list(isolated_config.iterdir()) == [isolated_config / ".git"]
    with pytest.raises(LocalPathError, match="empty"):
        client().download("ds", "1", "")


def test_patterns_that_select_nothing_are_an_error_and_create_nothing(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    for argv in (
        ["files", "ds", "1", "--include", "*.nope"],
        ["download", "ds", "1", str(target), "--include", "*.nope"],
        ["verify", "ds", "1", str(target), "--exclude", "*"],
    ):
        code, out, err = run_cli(capsys, *argv)
        assert (code, out) == (1, ""), argv
        [line] = error_lines(err, "djarchive")
        assert "no file of ds 1 matches the patterns" in line
        assert "'*.nope'" in line or "'*'" in line
    assert not target.exists()

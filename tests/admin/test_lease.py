"""The revision lease: one writer per revision, stale leases taken over, uploads refused while held."""

from __future__ import annotations

import json
import socket
import time

import pytest
import urllib3

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_admin.lease import RevisionLease
from djarchive_common.errors import LockedError

LOCK = ".djarchive~locks~ds~1.lock"


@pytest.fixture
def store(archive):
    return admin().store


def test_writes_are_conditional(archive, store):
    """moto honours If-None-Match and If-Match; s3rver ignores them (every write and delete goes
    through), which is why writing there needs --single-writer (tests/admin/test_servers.py)."""
    first = store.write_if("x/once", b"{}")
    assert first
    if not archive.server.conditional_writes:
        assert store.write_if("x/once", b'{"b": 2}') is not None  # If-None-Match: * ignored
        assert store.write_if("x/once", b'{"c": 3}', etag='"not-its-etag"') is not None  # If-Match too
        assert archive.get("x/once") == b'{"c": 3}'
        assert store.remove_if("x/once", '"not-its-etag"') is True
        assert store.stat("x/once") is None
        return
    assert store.write_if("x/once", b"{}") is None  # If-None-Match: *
    second = store.write_if("x/once", b'{"a": 1}', etag=first)  # If-Match: what we read
    assert second
    assert second != first
    assert store.write_if("x/once", b"{}", etag=first) is None
    assert store.remove_if("x/once", first) is False
    assert store.remove_if("x/once", second) is True
    assert store.stat("x/once") is None


def test_one_holder_at_a_time(archive, store):
    with RevisionLease(store, "ds", "1"):
        assert LOCK in archive.keys()
        holder = json.loads(archive.get(LOCK))
        assert (holder["host"], holder["pid"]) == (socket.gethostname(), __import__("os").getpid())
        with pytest.raises(
            LockedError, match=r"ds 1 is being changed by another djarchive-admin \(pid \d+ on "
        ):
            RevisionLease(store, "ds", "1").acquire()
    assert LOCK not in archive.keys()
    with RevisionLease(store, "ds", "1"):
        pass


def test_stale_lease_is_taken_over(archive, store):
    archive.put(
        LOCK,
        json.dumps({"token": "old", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600}).encode(),
    )
    with RevisionLease(store, "ds", "1") as lease:
        assert json.loads(archive.get(LOCK))["token"] == lease.token


def test_lease_of_a_dead_process_on_this_host_is_taken_over(archive, store):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    holder = {"token": "old", "host": socket.gethostname(), "pid": int(dead.stdout), "heartbeat": time.time()}
    archive.put(LOCK, json.dumps(holder).encode())
    with RevisionLease(store, "ds", "1") as lease:
        assert json.loads(archive.get(LOCK))["token"] == lease.token


def test_a_takeover_says_whose_lease_it_was_and_why_it_was_stale(archive, store, caplog):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    here, pid = socket.gethostname(), int(dead.stdout)
    old = time.time() - 3600
    for holder, why in (
        (
            {
                "token": "old",
                "host": here,
                "pid": pid,
                "since": "2026-01-02T03:04:05+00:00",
                "heartbeat": time.time(),
            },
            f"pid {pid} on {here}, since 2026-01-02T03:04:05+00:00: its process is gone",
        ),
        (
            {"token": "old", "host": "elsewhere", "pid": 7, "heartbeat": old},
            "pid 7 on elsewhere: no heartbeat for 60 minutes",
        ),
        (
            {"token": "old", "heartbeat": time.time() + 3600},
            "an unknown writer: its heartbeat is in the future",
        ),
        ({}, "an unknown writer: unreadable"),
    ):
        archive.put(LOCK, json.dumps(holder).encode())
        caplog.clear()
        with RevisionLease(store, "ds", "1"):
            pass
        [message] = [record.getMessage() for record in caplog.records if "taking over" in record.getMessage()]
        assert message == f"taking over the lease on ds 1 left by {why}"
        assert "token" not in message


def test_live_lease_elsewhere_is_respected(archive, store):
    archive.put(
        LOCK, json.dumps({"token": "t", "host": "other-host", "pid": 42, "heartbeat": time.time()}).encode()
    )
    with pytest.raises(LockedError, match="pid 42 on other-host"):
        RevisionLease(store, "ds", "1").acquire()
    assert json.loads(archive.get(LOCK))["token"] == "t"


def test_heartbeat_keeps_the_lease_fresh(archive, store):
    def heartbeat() -> float:
        """The lease's heartbeat; read again when the read met a rewrite (s3rver's are not atomic)."""
        for _ in range(50):
            try:
                return json.loads(archive.get(LOCK))["heartbeat"]
            except (urllib3.exceptions.HTTPError, ValueError):
                time.sleep(0.01)
        raise AssertionError("the lease could not be read whole")

    with RevisionLease(store, "ds", "1", heartbeat=0.05):
        first = heartbeat()
        deadline = time.monotonic() + 5
        while heartbeat() == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert heartbeat() > first


def test_upload_publish_retract_refused_while_another_writer_holds_the_revision(archive, store, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.dat").write_bytes(b"a")
    archive.put(
        LOCK, json.dumps({"token": "t", "host": "other-host", "pid": 7, "heartbeat": time.time()}).encode()
    )
    tool = admin()
    for action in (
        lambda: tool.upload("ds", "1", source),
        lambda: tool.publish("ds", "1"),
        lambda: tool.retract("ds", "1"),
    ):
        with pytest.raises(LockedError, match="being changed by another djarchive-admin"):
            action()
    assert archive.keys() == [LOCK]


def test_without_conditions_a_lease_is_read_before_and_after_every_write(archive, store):
    """Where conditional writes are ignored (s3rver; ``conditional=False`` on any server), a live
    lease is respected, a takeover is noticed by the next heartbeat and by check(), and a release
    never deletes another writer's lease."""
    first = RevisionLease(store, "ds", "1", conditional=False)
    with first, pytest.raises(LockedError, match="being changed by another djarchive-admin"):
        RevisionLease(store, "ds", "1", conditional=False).acquire()
    assert LOCK not in archive.keys()

    lease = RevisionLease(store, "ds", "1", conditional=False, heartbeat=0.05)
    lease.acquire()
    try:
        # Another writer that did not look first, and keeps writing its lease as its heartbeat does
        # (a single write could fall between a heartbeat's read and its write, and be overwritten:
        # the race that servers without conditional writes leave open).
        deadline = time.monotonic() + 30
        while not lease.lost and time.monotonic() < deadline:
            other = {"token": "other", "host": "other-host", "pid": 9, "heartbeat": time.time()}
            archive.put(LOCK, json.dumps(other).encode())
            time.sleep(0.02)
        assert lease.lost
        with pytest.raises(LockedError, match="was taken over by another djarchive-admin"):
            lease.check()
    finally:
        lease.release()
    assert json.loads(archive.get(LOCK))["token"] == "other"  # still theirs


def test_without_conditions_check_reads_the_lease(archive, store):
    lease = RevisionLease(store, "ds", "1", conditional=False, heartbeat=3600)
    lease.acquire()
    lease.check()  # still ours
    other = {"token": "other", "host": "h", "pid": 1, "heartbeat": time.time()}
    archive.put(LOCK, json.dumps(other).encode())
    with pytest.raises(LockedError, match="was taken over"):
        lease.check()
    lease.release()
    assert json.loads(archive.get(LOCK))["token"] == "other"

"""An upload killed with SIGKILL resumes without sending again what the store already holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_client import client
from djarchive_common.store import Store
from tests.admin.support import DATASET, REVISION, revision_keys, staged_key
from tests.helpers import read_tree, write_tree

FILES = {f"part-{index:03d}/file-{index:03d}.dat": os.urandom(1000 + index) for index in range(40)}
STORED_BEFORE_KILL = 15

# Runs the real command line, with Store.put_file letting exactly LIMIT uploads through; the next
# upload announces "READY" on stdout once those have completed, then blocks until the process is killed.
CHILD = """
import sys, threading
from djarchive_common.store import Store
from djarchive_admin.cli import main

LIMIT = int(sys.argv[1])
original = Store.put_file
condition = threading.Condition()
state = {"started": 0, "done": 0, "announced": False}

def put_file(self, *args, **kwargs):
    with condition:
        state["started"] += 1
        admitted = state["started"] <= LIMIT
    if admitted:
        original(self, *args, **kwargs)
        with condition:
            state["done"] += 1
            condition.notify_all()
        return
    with condition:
        condition.wait_for(lambda: state["done"] == LIMIT)
        if not state["announced"]:
            state["announced"] = True
            print("READY", flush=True)
    threading.Event().wait()

Store.put_file = put_file
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_killed_upload_resumes_without_resending(archive, tmp_path, monkeypatch):
    source = write_tree(tmp_path / "source", FILES)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(STORED_BEFORE_KILL),
            "upload",
            DATASET,
            REVISION,
            str(source),
            "-j",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(60, child.kill)  # never hang the suite
    guard.start()
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line == "READY\n", child.stderr.read()  # type: ignore[union-attr]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        guard.cancel()
        child.kill()
        child.communicate()

    lock = f".djarchive~locks~{DATASET}~{REVISION}.lock"
    stored = [key for key in archive.keys() if key != lock]
    assert lock in archive.keys()  # the killed upload's lease is left behind ...
    assert len(stored) == STORED_BEFORE_KILL
    assert all(key.startswith(f"{DATASET}/{REVISION}/part-") for key in stored)  # no manifest of any kind
    assert list(client().revisions()) == []  # never visible half-done
    tool = admin()
    assert tool.revision_info(DATASET, REVISION).state == "incomplete"

    sent: list[str] = []
    sent_lock = threading.Lock()
    original = Store.put_file

    def counting_put_file(self, key, *args, **kwargs):
        with sent_lock:
            sent.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(Store, "put_file", counting_put_file)
    summary = tool.upload(DATASET, REVISION, source)

    assert len(sent) == len(FILES) - STORED_BEFORE_KILL
    assert not set(sent) & set(stored)  # nothing the store held was sent again
    assert (summary.stored_files, summary.uploaded_files, summary.published) == (
        STORED_BEFORE_KILL,
        len(FILES) - STORED_BEFORE_KILL,
        True,
    )
    keys = archive.keys()
    assert keys == revision_keys(
        DATASET, REVISION, FILES
    )  # ... taken over (its process is dead), then released
    assert staged_key(DATASET, REVISION) not in keys
    client().download(DATASET, REVISION, tmp_path / "copy", create_target=True)
    assert read_tree(tmp_path / "copy") == FILES

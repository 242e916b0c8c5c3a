"""Downloads that are killed, hit a file-size limit or cannot reach the endpoint (subprocesses)."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_common.errors import EndpointUnreachableError
from tests.helpers import read_tree

KiB = 1024


def start_download(archive, target: Path, *extra: str, **popen) -> subprocess.Popen:
    env = {**os.environ, **archive.client_env}
    return subprocess.Popen(
        [sys.executable, "-m", "djarchive_client.cli", "download", "ds", "1", str(target), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.slow
def test_sigkill_leaves_no_wrong_file_and_the_next_run_completes(archive, tmp_path):
    files = {f"session{i // 20}/chunk{i:03d}.bin": os.urandom(256 * KiB) for i in range(120)}
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    process = start_download(archive, target, "--jobs", "2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(read_tree(target) if target.exists() else {}) < 10:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    placed = read_tree(target)
    assert 10 <= len(placed) < len(files), "the kill should land mid-download"
    for subpath, data in placed.items():
        assert data == files[subpath], f"{subpath} at its final name differs from the manifest"

    summary = client().download("ds", "1", target)
    assert summary.ok
    assert summary.fetched_files == len(files) - summary.present_files
    assert summary.present_files >= len(placed) - 2  # files renamed after the last record save are re-hashed
    assert read_tree(target) == files
    assert not list(target.rglob("*.part"))


@pytest.mark.slow
def test_file_size_limit_is_a_clear_error_and_leaves_nothing_half_written(archive, seed_files, tmp_path):
    seed_files["big.bin"] = os.urandom(600 * KiB)
    archive.publish("ds", "1", seed_files)
    target = tmp_path / "t"

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * KiB, 256 * KiB))

    process = start_download(archive, target, "--jobs", "1", preexec_fn=limit_file_size)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines()[-1].startswith("djarchive: error: file size limit exceeded while writing")
    assert "Traceback" not in err
    for subpath, data in read_tree(target).items():
        assert data == seed_files[subpath]
    assert not (target / "big.bin").exists()
    assert not list(target.rglob("*.part"))


def test_unreachable_endpoint_fails_within_seconds():
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError, match=r"cannot reach 127\.0\.0\.1:9"):
        list(client(endpoint="http://127.0.0.1:9").datasets())
    assert time.monotonic() - started < 15


def test_downloaded_bytes_hash_like_the_manifest(archive, tmp_path):
    """A cross-check independent of djarchive's own verify: sha256sum-style hashing of the result."""
    files = {"a.bin": os.urandom(3000), "b/c.bin": os.urandom(70 * KiB)}
    archive.publish("ds", "1", files)
    client().download(
        "ds", "1", tmp_path / "t", create_target=True, multipart_threshold=32 * KiB, part_size=16 * KiB
    )
    for subpath, data in files.items():
        digest = hashlib.sha256((tmp_path / "t" / subpath).read_bytes()).hexdigest()
        assert digest == hashlib.sha256(data).hexdigest()

"""djarchive's own files in TARGET (issue 24): never written through a link, read when they are
damaged or cannot be written, and what ``status`` says of a copy that is not complete."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_common.errors import LocalPathError
from tests.faults.support import error_lines
from tests.helpers import read_tree
from tests.helpers import run_client as run

FILES = {"a/x.bin": b"x" * 100, "top.bin": b"top"}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every TARGET; tests assert it never changes."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(b"precious")
    return path


# -- 1. djarchive's own files are replaced, never written in place -------------------------------------


def test_a_lock_hard_linked_to_a_file_outside_is_refused_not_rewritten(archive, tmp_path, outside, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    (target / ".djarchive").mkdir(parents=True)
    os.link(outside, target / ".djarchive" / "lock")
    code, _, err = run(capsys, "download", "ds", "1", str(target), "-q")
    assert outside.read_bytes() == b"precious"
    assert code == 1
    [line] = error_lines(err, "djarchive")
    assert "lock has 2 names (a hard link" in line
    assert read_tree(target) == {}  # refused before anything was written


def test_the_holders_mark_replaces_a_linked_mark_file_and_the_lock_file_is_never_written(
    archive, tmp_path, outside
):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    lock = target / ".djarchive" / "lock"
    before = lock.stat()
    for name in os.listdir(target / ".djarchive"):
        if name.endswith(".pid"):
            (target / ".djarchive" / name).unlink()
            os.link(outside, target / ".djarchive" / name)
    (target / "top.bin").unlink()
    client().download("ds", "1", target)
    assert outside.read_bytes() == b"precious"
    assert (lock.stat().st_size, lock.stat().st_mtime_ns) == (0, before.st_mtime_ns)
    assert read_tree(target) == FILES


# -- 5. receipts of the wrong shape are damaged: one line, never a traceback ---------------------------

DAMAGE = {
    "not an object": [],
    "a string": "receipt",
    "no dataset": {"revision": "1", "endpoint": "e", "bucket": "b", "manifest_sha256": "0" * 64},
    "files is text": {"files": "many"},
    "bytes is a list": {"bytes": [1]},
    "signature is a list": {"signature": ["key"]},
    "include is a string": {"include": "a/*"},
    "exclude holds a number": {"exclude": [1]},
    "secure is text": {"secure": "yes"},
    "state is a number": {"state": 5},
    "an unknown state": {"state": "finished-ish"},
    "previous is a number": {"previous": 3, "state": "upgrading"},
    "manifest sha256 is a number": {"manifest_sha256": 7},
    "verified_at is an object": {"verified_at": {}},
}


def damage(target: Path, how: object) -> None:
    """Replace TARGET's receipt with ``how``: a whole document, or fields changed in the real one."""
    path = target / ".djarchive" / "receipt.json"
    if isinstance(how, dict) and ("manifest_sha256" not in how or how == {"manifest_sha256": 7}):
        how = {**json.loads(path.read_text()), **how}  # type: ignore[dict-item]
    path.write_text(json.dumps(how))


@pytest.mark.parametrize("how", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_receipt_of_the_wrong_shape_is_damaged_in_one_line(archive, tmp_path, capsys, how):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    damage(target, how)
    for argv in (["status", str(target)], ["verify", str(target)], ["download", "ds", "1", str(target)]):
        code, out, err = run(capsys, *argv, "-q")
        assert code == 1, (argv, out, err)
        [line] = error_lines(err, "djarchive")
        assert re.search(r"the receipt .*receipt\.json is damaged \(", line), line
    report = client().verify("ds", "1", target)  # online: the files are checked all the same
    assert report.intact
    assert "is damaged" in report.unrecorded
    with pytest.raises(LocalPathError, match="is damaged"):
        client().status(target)


def test_a_record_of_the_wrong_shape_is_ignored_and_the_files_hashed_again(archive, tmp_path, hashed):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    state = target / ".djarchive"
    (state / "verified.bin").unlink()
    for document in ([1, 2], {"version": 1, "files": []}, {"version": 1, "files": {"top.bin": "abc"}}):
        (state / "verified.json").write_text(json.dumps(document))
        hashed.clear()
        assert client().download("ds", "1", target).present_files == len(FILES)
        assert sorted(hashed) == sorted(len(data) for data in FILES.values())
        (state / "verified.bin").unlink()


# -- 6. verify reads a copy it cannot write ------------------------------------------------------------

# Run as root, a process writes anywhere; this one drops the capabilities that let root ignore
# permissions (from its bounding set, so the program it then runs never has them), so the
# copy's read-only permissions hold for it as for any other user.
WITHOUT_OVERRIDE = """
import ctypes, os, sys
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            sys.exit(f"cannot drop capability {capability}: errno {ctypes.get_errno()}")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def read_only(root: Path, writable: bool = False) -> None:
    """Make ``root`` and everything under it read-only (or writable again)."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755 if writable else 0o555)
        else:
            path.chmod(0o644 if writable else 0o444)


def as_a_reader(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python args`` in a process that the permissions of files apply to, even as root."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OVERRIDE, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_verify_of_a_copy_it_cannot_write_reports_its_findings(archive, tmp_path):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    receipt = (target / ".djarchive" / "receipt.json").read_bytes()
    read_only(target)
    try:
        probe = as_a_reader({}, "-c", f"open({str(target / 'probe')!r}, 'w')")
        assert "PermissionError" in probe.stderr, f"the reader can write the copy: {probe.stderr}"
        cli = ("-m", "djarchive_client.cli", "verify")
        for argv in (["--fast"], [], ["ds", "1"]):
            result = as_a_reader(archive.client_env, *cli, *argv, str(target))
            assert (result.returncode, result.stderr) == (0, ""), (argv, result.stderr)
            assert ": intact, 2 files verified" in result.stdout
            assert "not recorded in the copy (cannot write" in result.stdout
        result = as_a_reader({}, *cli, str(target), "--json")
        assert json.loads(result.stdout)["unrecorded"].startswith("cannot write")
    finally:
        read_only(target, writable=True)
    assert (target / ".djarchive" / "receipt.json").read_bytes() == receipt
    assert read_tree(target) == FILES

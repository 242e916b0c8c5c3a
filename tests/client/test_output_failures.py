"""Output that cannot be written (issue 24): a reader that went away, stdout or stderr on a full
disk. Both command lines end with one line or silence and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")

CLIENT = "djarchive_client.cli"
ADMIN = "djarchive_admin.cli"


def run(module: str, *args: str, stdout=None, stderr=None, env=None) -> subprocess.CompletedProcess:
    """Run a command line in a fresh interpreter, its stdout and stderr where the test says."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            stdout=full if stdout == "full" else subprocess.PIPE,
            stderr=full if stderr == "full" else subprocess.PIPE,
            env={**os.environ, **(env or {})},
            text=True,
            timeout=120,
        )


def closed_pipe(module: str, *args: str, env=None) -> tuple[int, str]:
    """Run a command line whose reader has gone away before it writes (``... | head -0``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    with process.stderr:
        err = process.stderr.read()
    return process.wait(120), err


@pytest.fixture
def published(archive):
    archive.publish("ds", "1", {f"f{n:02d}.bin": bytes([n]) * 10 for n in range(20)})
    return archive


def test_a_full_stdout_is_one_line_and_exit_1(published):
    for args in (["--version"], ["datasets", "--json"], ["files", "ds", "1"], ["files", "ds", "1", "--json"]):
        result = run(CLIENT, *args, stdout="full")
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr == "djarchive: error: cannot write the output: No space left on device\n", args


def test_a_failing_command_with_a_full_stdout_is_one_line_too(published):
    result = run(CLIENT, "files", "ds", "9", "--json", stdout="full")
    assert result.returncode == 1
    assert result.stderr == "djarchive: error: cannot write the output: No space left on device\n"


def test_a_full_stderr_is_silence_and_a_non_zero_exit(published):
    result = run(CLIENT, "files", "ds", "9", stderr="full")
    assert (result.returncode, result.stdout) == (1, "")
    result = run(CLIENT, "download", "ds", "1", stderr="full")  # a usage error: argparse writes to stderr
    assert result.returncode != 0
    assert result.stdout == ""


def test_a_reader_that_went_away_is_silence_and_exit_1(published):
    code, err = closed_pipe(CLIENT, "files", "ds", "1")
    assert (code, err) == (1, "")
    code, err = closed_pipe(CLIENT, "revisions", "--json")
    assert (code, err) == (1, "")


def test_the_admin_command_line_too(published):
    result = run(ADMIN, "revisions", "--json", stdout="full")
    assert result.returncode == 1
    assert result.stderr == "djarchive-admin: error: cannot write the output: No space left on device\n"
    code, err = closed_pipe(ADMIN, "revisions", "--all")
    assert (code, err) == (1, "")
    result = run(ADMIN, "publish", "ds", "9", stderr="full")
    assert (result.returncode, result.stdout) == (1, "")

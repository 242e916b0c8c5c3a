"""Helpers shared by the fault tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from djarchive_common.store import StoreOptions
from djarchive_common.transfer import RetryPolicy

KiB = 1024
MiB = 1024 * KiB
SMALL_PARTS = {"part_size": 64 * KiB, "multipart_threshold": 128 * KiB}
MANIFEST = "djarchive-manifest.csv"

# Legal names that look dangerous or unusual: they must round-trip and download exactly.
INJECTION = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)",
    "-2+3",
    "@SUM(A1:A2)",
    '=HYPERLINK("example.com","click")',
    "reports/=1+1.csv",
    "a,b;c.csv",
]
WINDOWS = [
    "CON",
    "nul.txt",
    "aux/prn.dat",
    "COM1",
    "LPT9.log",
    "trailing space ",
    "trailing dot.",
    "dir./inside",
    "dir /inside",
    "...",
    "..more",
    " leading space",
    "con.tar.gz",
    "what?*<>|:.txt",
]
DEEP = "/".join(["d"] * 500) + "/f.bin"  # 500 folders, 1006 bytes
LONGEST = "/".join(["p" * 255] * 3 + ["q" * 250 + ".bin", "z"])  # exactly 1024 bytes, 255-byte components


def fast_options(attempts: int = 8, read_timeout: float | None = None) -> StoreOptions:
    """Store options with quick retries (and the environment's timeouts unless given)."""
    retry = RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05, unreachable_attempts=attempts)
    overrides = {"read_timeout": read_timeout} if read_timeout is not None else {}
    return StoreOptions.from_environment(retry=retry, **overrides)


def dataset(
    count: int, size: int, *, big: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, bytes]:
    """``count`` files of ``size`` bytes in a few folders, plus ``big`` (subpath -> size); fixed bytes."""
    import random

    rng = random.Random(seed)
    files = {f"session{i % 5}/chunk{i:03d}.bin": rng.randbytes(size + i) for i in range(count)}
    for subpath, length in (big or {}).items():
        files[subpath] = rng.randbytes(length)
    return files


def env_with(overrides: Mapping[str, str]) -> dict[str, str]:
    """The current environment with ``overrides``."""
    return {**os.environ, **overrides}


def python(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run this interpreter with ``args``; capture text output."""
    return subprocess.run(
        [sys.executable, *args],
        env=env_with(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Runs ``-m MODULE ARGS...`` with Ctrl-C raising KeyboardInterrupt, as in a terminal, even when
# this process was started with SIGINT ignored (a background job of a non-interactive shell),
# which a child would otherwise inherit.
_INTERACTIVE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def popen(
    args: Sequence[str], env: Mapping[str, str] | None = None, *, interactive: bool = False
) -> subprocess.Popen:
    """Start this interpreter with ``args`` (stdout and stderr piped, text); ``interactive``:
    ``-m MODULE ...`` with Ctrl-C (SIGINT) handled as in a terminal."""
    if interactive:
        assert args[0] == "-m", args
        args = ["-c", _INTERACTIVE, *args[1:]]
    return subprocess.Popen(
        [sys.executable, *args],
        env=env_with(env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def error_lines(stderr: str, prog: str) -> list[str]:
    """The lines of ``stderr``, checked to be only the tool's own one-line messages."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    for line in lines:
        assert line.startswith(f"{prog}: "), f"unexpected stderr line: {line!r}"
    return lines

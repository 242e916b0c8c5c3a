"""Plain helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(files: Mapping[str, bytes]) -> bytes:
    """The manifest of ``files``, written independently of the code under test."""
    lines = []
    for subpath in sorted(files):
        quoted = subpath.replace('"', '""')
        lines.append(f'"{len(files[subpath])}","{sha256(files[subpath])}","{quoted}"\n')
    return "".join(lines).encode("utf-8")


def run_module(
    module: str, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, **kwargs
):
    """Run ``python -m module args`` in a subprocess with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 120),
        **kwargs,
    )

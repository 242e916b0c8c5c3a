"""Plain helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
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


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Create ``root`` holding ``files`` (posix subpath -> content); return it."""
    root.mkdir(parents=True, exist_ok=True)
    for subpath, data in files.items():
        path = root.joinpath(*subpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (posix subpath -> content), djarchive's own state excluded."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".djarchive" not in path.relative_to(root).parts
    }


def rendered_man_page(page: Path) -> str | None:
    """The page as ``man`` renders it, whitespace collapsed, or None where man is missing."""
    if not shutil.which("man"):
        return None
    wide = {**os.environ, "MANWIDTH": "400"}  # no line breaks inside the phrases looked for
    result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, check=True, env=wide)
    assert result.stderr == ""
    return " ".join(result.stdout.split())


def overlapping_calls(monkeypatch, owner: object, name: str, size_of: Callable[..., int]) -> list[list[int]]:
    """Patch ``owner.name`` so each call lasts 50 ms longer and, as it starts, records the sizes
    (``size_of(*args)``) of every call then running; return those snapshots."""
    lock, active, seen = threading.Lock(), [], []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        size = size_of(*args, **kwargs)
        with lock:
            active.append(size)
            seen.append(sorted(active))
        time.sleep(0.05)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                active.remove(size)

    monkeypatch.setattr(owner, name, spy)
    return seen


def most_at_once(seen: list[list[int]], small: int = 256 * 1024) -> dict[str, int]:
    """The most transfers of small (<= ``small`` bytes) and of large sizes running at once."""
    return {
        "small": max((sum(size <= small for size in sizes) for sizes in seen), default=0),
        "large": max((sum(size > small for size in sizes) for sizes in seen), default=0),
    }

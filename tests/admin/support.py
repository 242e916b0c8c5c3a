"""Helpers for the admin tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DATASET = "my-dataset"
REVISION = "001"


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


def revision_keys(dataset: str, revision: str, files: Mapping[str, bytes]) -> list[str]:
    """The keys a published revision holds: its data objects and its manifest."""
    return sorted(
        [f"{dataset}/{revision}/{subpath}" for subpath in files]
        + [f"{dataset}/{revision}/djarchive-manifest.csv"]
    )


def staged_key(dataset: str, revision: str) -> str:
    return f".djarchive/staging/{dataset}/{revision}/djarchive-manifest.csv"

"""Helpers for the admin tests."""

from __future__ import annotations

from collections.abc import Mapping

DATASET = "my-dataset"
REVISION = "001"


def revision_keys(dataset: str, revision: str, files: Mapping[str, bytes]) -> list[str]:
    """The keys a published revision holds: its data objects and its manifest."""
    return sorted(
        [f"{dataset}/{revision}/{subpath}" for subpath in files]
        + [f"{dataset}/{revision}/djarchive-manifest.csv"]
    )


def staged_key(dataset: str, revision: str) -> str:
    """Where a staged manifest is written: a flat top-level key (no top-level prefix)."""
    return f".djarchive~staging~{dataset}~{revision}~djarchive-manifest.csv"


def legacy_staged_key(dataset: str, revision: str) -> str:
    """Where earlier versions staged a manifest: still read, never written."""
    return f".djarchive/staging/{dataset}/{revision}/djarchive-manifest.csv"

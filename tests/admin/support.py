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
    return f".djarchive/staging/{dataset}/{revision}/djarchive-manifest.csv"

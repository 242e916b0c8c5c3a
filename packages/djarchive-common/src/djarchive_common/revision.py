"""One revision as the catalog describes it: its state and size, and why it was retracted.

A revision is *published* (its manifest at the published key), *staged* (uploaded, the
manifest waiting at the staging key), *retracted* (hidden by its curators, a :class:`Tombstone`
saying why, the manifest kept aside) or *incomplete* (data objects without any manifest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .layout import is_valid_name
from .text import files, human_bytes

__all__ = ["INCOMPLETE", "PUBLISHED", "RETRACTED", "STAGED", "RevisionInfo", "Tombstone"]

PUBLISHED = "published"  # the manifest is at its published key: clients see the revision
STAGED = "staged"  # uploaded completely; the manifest waits at the staging key for publish
RETRACTED = "retracted"  # hidden by its curators; a tombstone says why, the manifest is kept aside
INCOMPLETE = "incomplete"  # data objects without any manifest: an upload that did not finish


@dataclass(frozen=True)
class Tombstone:
    """Why and when a revision was retracted, and what supersedes it."""

    reason: str
    superseded_by: str | None
    retracted_at: str

    @classmethod
    def from_bytes(cls, data: bytes) -> Tombstone:
        """Read a tombstone; anything unreadable becomes a tombstone without details."""
        try:
            fields = json.loads(data)
        except (ValueError, RecursionError):
            fields = {}
        if not isinstance(fields, dict):
            fields = {}
        successor = fields.get("superseded_by")

        def text(value: object) -> str:
            return value[:500] if isinstance(value, str) else ""

        return cls(
            text(fields.get("reason")),
            successor if is_valid_name(successor) else None,
            text(fields.get("retracted_at")),
        )

    def to_bytes(self) -> bytes:
        """The tombstone object's content."""
        return json.dumps(
            {"reason": self.reason, "superseded_by": self.superseded_by, "retracted_at": self.retracted_at}
        ).encode()

    def describe(self, dataset: str, revision: str) -> str:
        """One sentence for people."""
        text = f"{dataset} {revision} was retracted"
        if self.retracted_at:
            text += f" on {self.retracted_at[:10]}"
        text += f": {self.reason}" if self.reason else " (no reason given)"
        if self.superseded_by:
            text += f"; use {self.superseded_by} instead"
        return text


@dataclass(frozen=True)
class RevisionInfo:
    """One revision with its state, file count and size."""

    dataset: str
    revision: str
    state: str
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": self.state,
            "files": self.files,
            "bytes": self.bytes,
        }

    def __str__(self) -> str:
        size = human_bytes(self.bytes)
        return f"{self.dataset} {self.revision}: {self.state}, {files(self.files)} ({size})"

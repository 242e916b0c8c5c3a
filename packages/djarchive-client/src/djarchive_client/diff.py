"""What changes between two revisions, from their manifests alone: added, removed, changed and
moved files, and the bytes an upgrade from one to the other would have to fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from djarchive_common.chunks import ChunkIndex
from djarchive_common.manifest import Entry, Manifest, diff_manifests
from djarchive_common.text import files, human_bytes

__all__ = ["ManifestDiff", "diff_revisions"]


@dataclass
class ManifestDiff:
    """The difference from revision ``old`` to revision ``new`` of one dataset."""

    dataset: str
    old: str
    new: str
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[tuple[Entry, Entry]] = field(default_factory=list)  # (old, new) at one path
    moved: list[tuple[Entry, Entry]] = field(default_factory=list)  # (old, new): same content, new path
    unchanged: int = 0
    fetch_bytes: int = 0  # what an upgrade fetches: new content found nowhere in the old revision
    delta_bytes: int | None = None  # the same, changed large files fetched by their new chunks only
    retracted: list[str] = field(default_factory=list)  # why either revision was retracted, if it was

    @property
    def identical(self) -> bool:
        """Whether the two revisions hold the same files."""
        return not (self.added or self.removed or self.changed or self.moved)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""

        def entry(item: Entry) -> dict[str, Any]:
            return {"path": item.subpath, "size": item.size, "sha256": item.sha256}

        return {
            "dataset": self.dataset,
            "from": self.old,
            "to": self.new,
            "added": [entry(item) for item in self.added],
            "removed": [entry(item) for item in self.removed],
            "changed": [
                {"path": new.subpath, "old": entry(old), "new": entry(new)} for old, new in self.changed
            ],
            "moved": [{"from": old.subpath, "to": new.subpath, "size": new.size} for old, new in self.moved],
            "unchanged": self.unchanged,
            "fetch_bytes": self.fetch_bytes,
            "delta_bytes": self.delta_bytes,
            "retracted": self.retracted,
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """One row per difference: what, size, path (``old -> new`` for moves)."""
        found = [("added", str(item.size), item.subpath) for item in self.added]
        found += [("removed", str(item.size), item.subpath) for item in self.removed]
        found += [("changed", str(new.size), new.subpath) for _, new in self.changed]
        found += [("moved", str(new.size), f"{old.subpath} -> {new.subpath}") for old, new in self.moved]
        return found

    def __str__(self) -> str:
        if self.identical:
            return f"{self.dataset} {self.old} and {self.new} hold the same {files(self.unchanged)}"
        return (
            f"{self.dataset} {self.old} -> {self.new}: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {len(self.moved)} moved, {self.unchanged} unchanged; "
            f"an upgrade fetches {human_bytes(self.fetch_bytes)}"
            + (
                f" ({human_bytes(self.delta_bytes)} by the chunks of changed large files)"
                if self.delta_bytes is not None and self.delta_bytes < self.fetch_bytes
                else ""
            )
        )


def diff_revisions(
    dataset: str,
    old_name: str,
    old: Manifest,
    new_name: str,
    new: Manifest,
    *,
    indexes: tuple[ChunkIndex | None, ChunkIndex | None] = (None, None),
) -> ManifestDiff:
    """The report of what changes from revision ``old_name`` to ``new_name``, from the comparison
    of their manifests (:func:`djarchive_common.manifest.diff_manifests`). A path whose content
    is new but exists elsewhere in ``old`` costs no transfer (an upgrade reuses it); a file whose
    content left one path for another, which ``old`` no longer has, is moved (not added and
    removed). With both revisions' chunk ``indexes``, a changed large file costs only its new
    chunks (``delta_bytes``)."""
    changes = diff_manifests(old, new)
    delta_bytes = None
    before, after = indexes
    if before is not None and after is not None:
        delta_bytes = changes.new_content_bytes - _saved(changes.changed, before, after)
    moved_from = {before.subpath for before, _ in changes.moved}
    moved_to = {after.subpath for _, after in changes.moved}
    return ManifestDiff(
        dataset,
        old_name,
        new_name,
        added=[entry for entry in changes.added if entry.subpath not in moved_to],
        removed=[entry for entry in changes.removed if entry.subpath not in moved_from],
        changed=changes.changed,
        moved=changes.moved,
        unchanged=changes.unchanged,
        fetch_bytes=changes.new_content_bytes,
        delta_bytes=delta_bytes,
    )


def _saved(changed: list[tuple[Entry, Entry]], old: ChunkIndex, new: ChunkIndex) -> int:
    """What fetching the changed files both indexes have by their new chunks saves."""
    saved = 0
    for before, after in changed:
        was = old.matching(before.subpath, before.size, before.sha256)
        now = new.matching(after.subpath, after.size, after.sha256)
        if was is not None and now is not None:
            held = {sha256 for _, sha256 in was.chunks}
            saved += sum(length for length, sha256 in now.chunks if sha256 in held)
    return saved

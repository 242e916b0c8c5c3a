"""What changes between two revisions, from their manifests alone: added, removed, changed and
moved files, and the bytes an upgrade from one to the other would have to fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from djarchive_common.manifest import Entry, Manifest
from djarchive_common.text import files, human_bytes

__all__ = ["ManifestDiff", "diff_manifests"]


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
        }

    def lines(self) -> list[str]:
        """One tab-separated line per difference: what, size, path (``old -> new`` for moves)."""
        found = [f"added\t{item.size}\t{item.subpath}" for item in self.added]
        found += [f"removed\t{item.size}\t{item.subpath}" for item in self.removed]
        found += [f"changed\t{new.size}\t{new.subpath}" for _, new in self.changed]
        found += [f"moved\t{new.size}\t{old.subpath} -> {new.subpath}" for old, new in self.moved]
        return found

    def __str__(self) -> str:
        if self.identical:
            return f"{self.dataset} {self.old} and {self.new} hold the same {files(self.unchanged)}"
        return (
            f"{self.dataset} {self.old} -> {self.new}: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {len(self.moved)} moved, {self.unchanged} unchanged; "
            f"an upgrade fetches {human_bytes(self.fetch_bytes)}"
        )


def diff_manifests(dataset: str, old_name: str, old: Manifest, new_name: str, new: Manifest) -> ManifestDiff:
    """Compare two manifests. A path whose content is new but exists elsewhere in ``old`` costs
    no transfer (an upgrade reuses it); a file whose content left one path for another, which
    ``old`` no longer has, is moved."""
    result = ManifestDiff(dataset, old_name, new_name)
    old_contents = {entry.sha256: entry for entry in old}
    new_paths = {entry.subpath for entry in new}
    for entry in new:
        before = old.get(entry.subpath)
        if before is not None and before.sha256 == entry.sha256:
            result.unchanged += 1
            continue
        source = old_contents.get(entry.sha256)
        if source is not None and source.subpath not in new_paths and before is None:
            result.moved.append((source, entry))
            continue
        if before is None:
            result.added.append(entry)
        else:
            result.changed.append((before, entry))
        if source is None:
            result.fetch_bytes += entry.size
    moved_from = {source.subpath for source, _ in result.moved}
    result.removed = [
        entry for entry in old if entry.subpath not in new_paths and entry.subpath not in moved_from
    ]
    return result

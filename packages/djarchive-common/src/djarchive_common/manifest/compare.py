"""Comparing two manifests: the one comparison both roles use (the client's ``djarchive diff``
report, the admin's account of what a forced upload overwrites)."""

from __future__ import annotations

from array import array

from .entries import Entry, Manifest, Picked

__all__ = ["ManifestChanges", "diff_manifests"]

_BATCH = 65536  # digests read at a time while looking for moved content


class ManifestChanges:
    """How manifest ``new`` differs from ``old``.

    Path by path: ``added`` (entries of ``new`` at paths ``old`` lacks), ``removed`` (entries of
    ``old`` at paths ``new`` lacks), ``changed`` ((old, new) entries at one path whose size or
    sha256 differ) and ``unchanged`` (how many paths hold the same content). By content:
    ``moved`` ((old, new) entries, a subset of the removed and added ones: the content of a path
    ``new`` lacks, now at a path ``old`` lacked) and ``new_content_bytes`` (the bytes of added
    and changed files whose content ``old`` holds at no path: what an upgrade must transfer).
    """

    __slots__ = ("added", "changed", "moved", "new_content_bytes", "removed", "unchanged")

    def __init__(
        self,
        added: Picked,
        removed: Picked,
        changed: list[tuple[Entry, Entry]],
        unchanged: int,
        moved: list[tuple[Entry, Entry]],
        new_content_bytes: int,
    ):
        self.added = added
        self.removed = removed
        self.changed = changed
        self.unchanged = unchanged
        self.moved = moved
        self.new_content_bytes = new_content_bytes

    def __repr__(self) -> str:
        return (
            f"<ManifestChanges: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {len(self.moved)} moved, {self.unchanged} unchanged>"
        )


def diff_manifests(old: Manifest, new: Manifest) -> ManifestChanges:
    """Compare ``old`` with ``new``: one walk along both sorted path lists, then one pass over
    ``old``'s digests for the content of the added and changed files (see
    :class:`ManifestChanges`). A move's source is the last path of ``old`` holding that content,
    when ``new`` no longer has that path."""
    old_paths, old_sizes, _ = old.columns
    new_paths, new_sizes, _ = new.columns
    added, removed = array("Q"), array("Q")
    changed: list[tuple[int, int]] = []
    unchanged = 0
    i = j = 0
    while i < len(old_paths) and j < len(new_paths):
        if old_paths[i] < new_paths[j]:
            removed.append(i)
            i += 1
        elif new_paths[j] < old_paths[i]:
            added.append(j)
            j += 1
        else:
            if old_sizes[i] == new_sizes[j] and old.sha256_at(i) == new.sha256_at(j):
                unchanged += 1
            else:
                changed.append((i, j))
            i += 1
            j += 1
    removed.extend(range(i, len(old_paths)))
    added.extend(range(j, len(new_paths)))

    wanted = {new.sha256_at(index) for index in added}
    wanted.update(new.sha256_at(index) for _, index in changed)
    holders: dict[str, int] = {}  # content -> the last index of old holding it
    for start in range(0, len(old_paths) if wanted else 0, _BATCH):
        for index, sha256 in enumerate(old.sha256s(start, start + _BATCH), start):
            if sha256 in wanted:
                holders[sha256] = index
    moved: list[tuple[Entry, Entry]] = []
    new_content_bytes = 0
    for index in added:
        source = holders.get(new.sha256_at(index))
        if source is None:
            new_content_bytes += new_sizes[index]
        elif old_paths[source] not in new:
            moved.append((old[source], new[index]))
    for _, index in changed:
        if new.sha256_at(index) not in holders:
            new_content_bytes += new_sizes[index]
    return ManifestChanges(
        Picked(new, added),
        Picked(old, removed),
        [(old[before], new[after]) for before, after in changed],
        unchanged,
        moved,
        new_content_bytes,
    )

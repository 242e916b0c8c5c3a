"""Choosing a manifest's entries: by glob (``--include``/``--exclude``), by shard (``--shard K/N``),
and their sizes and paths, read from the manifest's columns where it can be done without making
entries."""

from __future__ import annotations

import fnmatch
import heapq
from collections.abc import Iterable, Sequence

from ..errors import NotFoundError
from .entries import Entry, Manifest, Picked

__all__ = ["matches", "select", "select_or_fail", "shard", "size_of", "subpaths_of"]


def size_of(entries: Iterable[Entry]) -> int:
    """The bytes of ``entries``; for a manifest or entries picked from one, without making entries."""
    if isinstance(entries, Manifest):
        return entries.total_size
    if isinstance(entries, Picked) and isinstance(entries.base, Manifest):
        sizes = entries.base.columns[1]
        return sum(map(sizes.__getitem__, entries.indexes))
    return sum(entry.size for entry in entries)


def subpaths_of(entries: Iterable[Entry]) -> Sequence[str]:
    """The subpaths of ``entries``; for a manifest, its own list (no entries made)."""
    if isinstance(entries, Manifest):
        return entries.subpaths
    if isinstance(entries, Picked) and isinstance(entries.base, Manifest):
        paths = entries.base.subpaths
        return [paths[index] for index in entries.indexes]
    return [entry.subpath for entry in entries]


def matches(subpath: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """Whether ``subpath`` matches any ``include`` glob (or there are none) and no ``exclude`` glob.

    Globs match the whole posix subpath and ``*`` crosses folders, as in ``aws s3 --include``.
    """
    return (not include or any(fnmatch.fnmatchcase(subpath, pattern) for pattern in include)) and not any(
        fnmatch.fnmatchcase(subpath, pattern) for pattern in exclude
    )


def select(
    entries: Sequence[Entry], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Sequence[Entry]:
    """The entries whose subpath :func:`matches` the globs (all of them, as they are, without any)."""
    if not include and not exclude:
        return entries
    return [entry for entry in entries if matches(entry.subpath, include, exclude)]


def select_or_fail(
    entries: Sequence[Entry], include: Sequence[str], exclude: Sequence[str], what: str
) -> Sequence[Entry]:
    """:func:`select`, refusing patterns that leave nothing: a typo must not pass as 'done'."""
    selected = select(entries, include, exclude)
    if not selected and (include or exclude):
        patterns = ", ".join([*(f"include {p!r}" for p in include), *(f"exclude {p!r}" for p in exclude)])
        raise NotFoundError(f"no file of {what} matches the patterns ({patterns}); nothing was done")
    return selected


def shard(entries: Iterable[Entry], index: int, count: int) -> list[Entry]:
    """Shard ``index`` (1-based) of ``count``: a split of ``entries`` balanced by bytes and fixed
    by the entries alone (largest first, each to the lightest shard so far, ties to the lowest),
    so every machine computes the same split and the shards together are every entry once."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: use K/N with 1 <= K <= N")
    loads = [(0, number) for number in range(count)]  # a heap of (bytes so far, shard)
    mine = []
    for entry in sorted(entries, key=lambda entry: (-entry.size, entry.subpath)):
        load, lightest = heapq.heappop(loads)
        heapq.heappush(loads, (load + max(entry.size, 1), lightest))
        if lightest == index - 1:
            mine.append(entry)
    return sorted(mine, key=lambda entry: entry.subpath)

"""Where the archive's revisions are, found by listing keys: requests that do not grow with names.

Asking each top-level name for its revisions, and each revision for its manifest, costs a
request per name: a bucket with 200,000 top-level prefixes took longer than five minutes to
list its datasets. :func:`survey` lists the names once (a page per 1,000), cuts them into up
to :data:`LISTING_WORKERS` runs of neighbouring names and scans the keys of each run in parallel, in
the store's order, a page of 1,000 keys per request. After each page the scan jumps over what
cannot matter (:func:`skip_to`): the rest of a revision once its manifest and tombstone
positions are passed, to just before those keys inside a large revision, past every key of a
name that is no dataset or revision name. So a name with few objects costs a share of one
page, a large revision about two requests, whatever the number of names.

Every revision holding at least one object is seen (a jump lands on the first key after the
one it skips), with the markers among its keys: its manifest (published) and its tombstone
(retracted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .layout import MANIFEST_NAME, TOMBSTONE_NAME, is_valid_name, natural_key
from .transfer import map_parallel

if TYPE_CHECKING:
    from .store import Store

__all__ = ["LISTING_WORKERS", "MARKERS", "Survey", "skip_to", "survey"]

LISTING_WORKERS = 16  # listing requests at once (runs of names scanned at once)
MARKERS = (MANIFEST_NAME, TOMBSTONE_NAME)  # in the store's order
_PAST = chr(ord("/") + 1)  # name + _PAST sorts after every key under name + "/"


@dataclass(frozen=True)
class Survey:
    """Every (dataset, revision) holding objects, with the :data:`MARKERS` among its keys."""

    marks: dict[tuple[str, str], frozenset[str]]

    def having(self, marker: str) -> list[tuple[str, str]]:
        """(dataset, revision) of every revision holding ``marker``, in natural order."""
        return sorted((pair for pair, found in self.marks.items() if marker in found), key=_natural)

    def published(self) -> list[tuple[str, list[str]]]:
        """(dataset, its published revisions) for every dataset with one, in natural order."""
        found: dict[str, list[str]] = {}
        for dataset, revision in self.having(MANIFEST_NAME):
            found.setdefault(dataset, []).append(revision)
        return list(found.items())


def survey(store: Store, dataset: str | None = None) -> Survey:
    """The revisions of the whole bucket, or of ``dataset`` (a valid name), as one scan finds them."""
    prefix = "" if dataset is None else f"{dataset}/"
    names = [name for name in store.prefixes(prefix) if is_valid_name(name[len(prefix) :].rstrip("/"))]
    size = -(-len(names) // LISTING_WORKERS)  # ceiling: at most LISTING_WORKERS runs
    runs = [
        (names[start], names[min(start + size, len(names)) - 1]) for start in range(0, len(names), size or 1)
    ]
    marks: dict[tuple[str, str], frozenset[str]] = {}
    for found in map_parallel(lambda run: _scan(store, *run), runs, LISTING_WORKERS).values():
        marks.update(found)
    return Survey(marks)


def _scan(store: Store, first: str, last: str) -> dict[tuple[str, str], frozenset[str]]:
    """The revisions among the keys from prefix ``first`` to prefix ``last`` (both end in '/'),
    listed under the prefix they share (servers that walk folders then walk fewer)."""
    stop = last[:-1] + _PAST
    found: dict[tuple[str, str], set[str]] = {}
    for key in store.keys(_shared(first, last), after=first, jump=skip_to):
        if key >= stop:
            break
        dataset, _, rest = key.partition("/")
        revision, slash, name = rest.partition("/")
        if slash and is_valid_name(dataset) and is_valid_name(revision):
            markers = found.setdefault((dataset, revision), set())
            if name in MARKERS:
                markers.add(name)
    return {pair: frozenset(markers) for pair, markers in found.items()}


def skip_to(key: str) -> str:
    """The key to list on after ``key``, the last of a page: past the keys that cannot matter."""
    dataset, slash, rest = key.partition("/")
    if not slash:
        return key  # a top-level object
    if not is_valid_name(dataset):
        return dataset + _PAST
    revision, slash, name = rest.partition("/")
    if not slash:
        return key  # an object directly under a dataset
    if not is_valid_name(revision):
        return f"{dataset}/{revision}{_PAST}"
    for marker in MARKERS:
        if name < marker:
            return f"{dataset}/{revision}/{marker[:-1]}"  # just before the marker's key
    return f"{dataset}/{revision}{_PAST}"


def _shared(first: str, last: str) -> str:
    """The longest prefix of both strings (character by character: keys, not paths)."""
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _natural(pair: tuple[str, str]) -> tuple[object, ...]:
    return (natural_key(pair[0]), natural_key(pair[1]))

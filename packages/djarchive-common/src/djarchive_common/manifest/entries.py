"""A manifest's entries: :class:`Entry`, the validated :class:`Manifest` that holds them in
compact columns, :class:`Picked` entries of it, and the rules a set of paths must keep.

The sha256 digests of a manifest (and of the record of verified files) are packed end to end as
raw 32-byte strings; :func:`sha256_at` and :func:`sha256s` read them back as hex, so no caller
slices the packing by hand.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import operator
import re
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple, overload

from ..errors import ManifestError
from ..layout import subpath_problem
from ..text import files

__all__ = [
    "MAX_OBJECT_SIZE",
    "Entry",
    "Manifest",
    "Picked",
    "path_identity",
    "sha256_at",
    "sha256s",
]

MAX_OBJECT_SIZE = 5 * 1024**4  # S3's largest object: any larger size is a lie
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_BATCH = 65536  # entries made at a time from the columns


def sha256_at(digests: bytes, index: int) -> str:
    """The sha256 at ``index`` of raw 32-byte digests packed end to end, in hex."""
    start = 32 * index
    return digests[start : start + 32].hex()


def sha256s(digests: bytes, start: int = 0, stop: int | None = None) -> list[str]:
    """The hex sha256s from ``start`` to ``stop`` of packed raw digests (one hex string cut up)."""
    text = digests[32 * start : None if stop is None else 32 * stop].hex()
    return [text[position : position + 64] for position in range(0, len(text), 64)]


class Entry(NamedTuple):
    """One file of a revision."""

    subpath: str
    size: int
    sha256: str


class Manifest(Sequence[Entry]):
    """A validated manifest: entries sorted by subpath, unique, safe to place under a target.

    Stored compactly (paths in a list, sizes in an array, digests as 32 raw bytes each: about
    150 bytes per entry with its path), entries are made as they are read, and lookups by path
    are binary searches: a million entries fit in a few hundred megabytes.
    """

    __slots__ = ("_digests", "_paths", "_sha256", "_sizes")

    def __init__(self, entries: Iterable[Entry], source: str = "manifest"):
        ordered = sorted(entries, key=lambda entry: entry.subpath)
        _check_entries(ordered, source)
        self._paths = [entry.subpath for entry in ordered]
        self._sizes = array("Q", (entry.size for entry in ordered))
        self._digests = b"".join(bytes.fromhex(entry.sha256) for entry in ordered)
        self._sha256: str | None = None

    @classmethod
    def _compact(
        cls, paths: list[str], sizes: array[int], digests: bytes, sha256: str | None = None
    ) -> Manifest:
        """A manifest of fields the parser has checked and sorted (no second pass); ``sha256``
        of its exact bytes, when the parser saw them."""
        manifest = cls.__new__(cls)
        manifest._paths, manifest._sizes, manifest._digests = paths, sizes, digests
        manifest._sha256 = sha256
        return manifest

    @property
    def sha256(self) -> str:
        """The sha256 of :meth:`to_bytes` (known without writing them when parsed from them)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.to_bytes()).hexdigest()
        return self._sha256

    def sha256_at(self, index: int) -> str:
        """The sha256 of the entry at ``index`` (no entry made)."""
        return sha256_at(self._digests, index)

    def sha256s(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The sha256s of the entries from ``start`` to ``stop``, made together (no entries made)."""
        return sha256s(self._digests, start, stop)

    def _entry(self, index: int) -> Entry:
        return Entry(self._paths[index], self._sizes[index], sha256_at(self._digests, index))

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(len(self._paths)))]
        if index < 0:
            index += len(self._paths)
        if not 0 <= index < len(self._paths):
            raise IndexError("manifest index out of range")
        return self._entry(index)

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[Entry]:
        return map(Entry._make, zip(self._paths, self._sizes, self._sha256s(), strict=True))

    def _sha256s(self) -> Iterator[str]:
        """Every sha256 in order, made a batch at a time."""
        starts = range(0, len(self._paths), _BATCH)
        return itertools.chain.from_iterable(map(self.sha256s, starts, itertools.count(_BATCH, _BATCH)))

    def _find(self, subpath: str) -> int:
        index = bisect.bisect_left(self._paths, subpath)
        return index if index < len(self._paths) and self._paths[index] == subpath else -1

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return self._find(item) >= 0
        if isinstance(item, Entry):
            return self.get(item.subpath) == item
        return False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Manifest):
            return (self._paths, self._sizes, self._digests) == (other._paths, other._sizes, other._digests)
        return NotImplemented

    def __hash__(self) -> int:  # mutable-looking but never changed: equal manifests hash alike
        return hash((len(self._paths), self._digests[:64]))

    def __repr__(self) -> str:
        return f"<Manifest: {files(len(self))}, {self.total_size} bytes>"

    def get(self, subpath: str) -> Entry | None:
        """The entry for ``subpath``, or None."""
        index = self._find(subpath)
        return self._entry(index) if index >= 0 else None

    @property
    def subpaths(self) -> Sequence[str]:
        """Every path, sorted (no entries made)."""
        return self._paths

    @property
    def columns(self) -> tuple[list[str], array[int], bytes]:
        """The stored columns: sorted paths, sizes, raw 32-byte digests (for comparisons in bulk;
        not to be changed; :func:`sha256_at` reads a digest)."""
        return self._paths, self._sizes, self._digests

    @property
    def total_size(self) -> int:
        """The sum of all file sizes in bytes."""
        return sum(self._sizes)

    def to_bytes(self) -> bytes:
        """The manifest file's exact bytes."""
        out = io.StringIO()
        for path, size, sha256 in zip(self._paths, self._sizes, self._sha256s(), strict=True):
            quoted = path.replace('"', '""')
            out.write(f'"{size}","{sha256}","{quoted}"\n')
        return out.getvalue().encode("utf-8")


class Picked(Sequence[Entry]):
    """Some entries of a sequence (a manifest), by index: a million of them cost 8 MB, not the
    200 MB of their Entry objects, which are made as they are read."""

    __slots__ = ("_base", "_indexes")

    def __init__(self, base: Sequence[Entry], indexes: Iterable[int] = ()):
        self._base = base
        self._indexes = array("Q", indexes)

    @property
    def base(self) -> Sequence[Entry]:
        """The sequence the entries are picked from."""
        return self._base

    @property
    def indexes(self) -> Sequence[int]:
        """The indexes of the picked entries in :attr:`base` (not to be changed)."""
        return self._indexes

    def append_index(self, index: int) -> None:
        """Pick one more entry of the base."""
        self._indexes.append(index)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(index, slice):
            return [self._base[i] for i in self._indexes[index]]
        return self._base[self._indexes[index]]

    def __len__(self) -> int:
        return len(self._indexes)

    def __iter__(self) -> Iterator[Entry]:
        base = self._base
        return (base[index] for index in self._indexes)

    def __repr__(self) -> str:
        return f"<{len(self)} of {len(self._base)} entries>"


# -- the rules a set of paths keeps ---------------------------------------------------------


def path_identity(subpath: str) -> str:
    """The name a case-insensitive, normalizing file system (macOS, Windows, many network shares)
    sees for ``subpath``: NFC-normalized and case-folded."""
    if subpath.isascii():
        return subpath.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", subpath).casefold())


def path_clash(paths: Sequence[str]) -> tuple[int, int, str] | None:
    """Two of the sorted ``paths`` (their indexes, and why) that cannot both be files on every
    file system: equal, equal once normalized and case-folded (:func:`path_identity`), or a file
    that is also a folder of the other. Linear in time (but for sorting identities out of order),
    with neighbours compared in C and one set of the folders every file is checked against."""
    for index in itertools.compress(range(1, len(paths)), map(operator.eq, paths, paths[1:])):
        return index - 1, index, "duplicate"
    if _own_identities(paths):
        ids = ordered = list(paths)
    else:
        ids = [path if path.isascii() and path.islower() else path_identity(path) for path in paths]
        ordered = sorted(ids) if any(map(operator.gt, ids, ids[1:])) else ids
        for index in itertools.compress(range(1, len(ordered)), map(operator.eq, ordered, ordered[1:])):
            first, second = itertools.islice((i for i, key in enumerate(ids) if key == ordered[index]), 2)
            return first, second, "identity"
    folders: set[str] = set()
    for parent in set(map(operator.itemgetter(0), map(str.rpartition, ordered, itertools.repeat("/")))):
        while parent and parent not in folders:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    if folders.isdisjoint(ordered):
        return None
    index = next(i for i, key in enumerate(ids) if key in folders)
    below = ids[index] + "/"
    return index, next(i for i, key in enumerate(ids) if key.startswith(below)), "folder"


def _own_identities(paths: Sequence[str], batch: int = 65536) -> bool:
    """Whether every path is its own :func:`path_identity` (ASCII, nothing upper-case), checked
    a batch of paths at a time in C."""
    for start in range(0, len(paths), batch):
        text = "\n".join(paths[start : start + batch])
        if not text.isascii() or text.lower() != text:
            return False
    return True


def clash_message(
    subpaths: Sequence[str], clash: tuple[int, int, str], number: Callable[[int], int], unit: str
) -> str:
    """``<unit> <number>: <what>`` for a clash found by :func:`path_clash`, the later line (or
    entry) named first."""
    one, other, kind = clash
    if kind != "folder":
        one, other = sorted((one, other), key=number)
    where = {index: f"{unit} {number(index)}" for index in (one, other)}
    if kind == "duplicate":
        return f"{where[other]}: duplicate path {subpaths[other]!r} (first on {where[one]})"
    if kind == "identity":
        return (
            f"{where[other]}: {subpaths[other]!r} and {subpaths[one]!r} ({where[one]}) name the same file "
            "on case-insensitive or normalizing file systems"
        )
    return (
        f"{where[other]}: {subpaths[one]!r} ({where[one]}) is both a file and a folder of {subpaths[other]!r}"
    )


def _check_entries(entries: Sequence[Entry], source: str) -> None:
    """Reject invalid fields, repeats, and paths that name one file or are a file and a folder
    (``entries`` sorted by path)."""
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            raise ManifestError(f"invalid entry in {source} ({entry.subpath!r}): {problem}")
    subpaths = [entry.subpath for entry in entries]
    clash = path_clash(subpaths)
    if clash:
        message = clash_message(subpaths, clash, lambda index: index + 1, "entry")
        raise ManifestError(f"invalid entry in {source}, " + message)


def _entry_problem(entry: Entry) -> str | None:
    if not isinstance(entry.size, int) or isinstance(entry.size, bool) or entry.size < 0:
        return f"size {entry.size!r} is not a non-negative integer"
    if entry.size > MAX_OBJECT_SIZE:
        return f"size {entry.size} is larger than the largest object S3 can hold (5 TiB)"
    if not isinstance(entry.sha256, str) or not SHA256_RE.fullmatch(entry.sha256):
        return f"sha256 {entry.sha256!r} is not 64 lowercase hex digits"
    return subpath_problem(entry.subpath)

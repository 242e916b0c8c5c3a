"""The record of verified files (``TARGET/.djarchive/verified.bin``): the size, mtime and sha256
of each file a run verified, so the next run trusts files unchanged since instead of hashing them.

A binary file that loads in a few C-level passes, so a million files take a fraction of a
second and about 150 MB: a header line, the count, then the sizes, the mtimes (nanoseconds)
and the raw sha256 digests as arrays, then the sorted paths joined by newlines. In memory the
same columns, with this run's changes kept beside them until the record is saved. The JSON
record of earlier versions (``verified.json``: ``{"version": 1, "files": {path: [size, mtime,
sha256]}}``) is still read.
"""

from __future__ import annotations

import bisect
import json
import operator
import re
import struct
import sys
from array import array
from collections.abc import Iterator

from djarchive_common.manifest import sha256_at

__all__ = ["Record"]

Fields = tuple[int, int, str]  # size, mtime_ns, sha256
_MAGIC = f"djarchive record 1 {sys.byteorder}\n".encode()
_OTHER_ORDER = f"djarchive record 1 {'big' if sys.byteorder == 'little' else 'little'}\n".encode()
_COUNT = struct.Struct("<Q")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ABSENT = object()


class Record:
    """Verified files by path: a sorted base read from disk and this run's changes over it."""

    __slots__ = ("_base", "_changes")

    def __init__(self) -> None:
        self._base: tuple[list[str], array[int], array[int], bytes] = ([], array("Q"), array("q"), b"")
        self._changes: dict[str, Fields | None] = {}  # None: forgotten

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """A record from its file's bytes (this format or the JSON of earlier versions);
        ValueError when it is damaged."""
        try:
            if data.startswith((_MAGIC, _OTHER_ORDER)):
                return cls._from_columns(data)
            return cls._from_json(data)
        except (KeyError, TypeError, OverflowError, RecursionError, UnicodeDecodeError, struct.error) as exc:
            raise ValueError(f"malformed record ({exc.__class__.__name__}: {exc})") from None

    @classmethod
    def _from_columns(cls, data: bytes) -> Record:
        start = data.index(b"\n") + 1
        (count,) = _COUNT.unpack_from(data, start)
        start += _COUNT.size
        if len(data) < start + 48 * count:
            raise ValueError("the record is cut short")
        sizes, mtimes = array("Q"), array("q")
        sizes.frombytes(data[start : start + 8 * count])
        mtimes.frombytes(data[start + 8 * count : start + 16 * count])
        if not data.startswith(_MAGIC):  # written on a machine of the other byte order
            sizes.byteswap()
            mtimes.byteswap()
        digests = data[start + 16 * count : start + 48 * count]
        paths = data[start + 48 * count :].decode("utf-8").split("\n") if count else []
        if len(paths) != count or any(map(operator.ge, paths, paths[1:])) or "" in paths[:1]:
            raise ValueError("the record's paths are not sorted, unique and as many as its entries")
        record = cls()
        record._base = (paths, sizes, mtimes, digests)
        return record

    @classmethod
    def _from_json(cls, data: bytes) -> Record:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("version") != 1:
            raise ValueError("unknown record version")
        files = document["files"]
        if not isinstance(files, dict):
            raise ValueError("the files of the record are not an object")
        record = cls()
        for path, value in files.items():
            if _valid(path, value):
                record._changes[path] = (value[0], value[1], value[2])
        return record

    def to_bytes(self) -> bytes:
        """The record's file: every entry, changes included."""
        if self._changes:
            merged = self.items() if self._base[0] else sorted(self._changes.items())
            pairs = [(path, fields) for path, fields in merged if fields is not None]
            paths = [path for path, _ in pairs]
            sizes = array("Q", [fields[0] for _, fields in pairs])
            mtimes = array("q", [fields[1] for _, fields in pairs])
            digests = bytes.fromhex("".join([fields[2] for _, fields in pairs]))
        else:
            paths, sizes, mtimes, digests = self._base
        return b"".join(
            (
                _MAGIC,
                _COUNT.pack(len(paths)),
                sizes.tobytes(),
                mtimes.tobytes(),
                digests,
                "\n".join(paths).encode("utf-8"),
            )
        )

    def __bool__(self) -> bool:
        return bool(self._base[0] or self._changes)

    def get(self, path: str) -> Fields | None:
        """What the record holds for ``path``, or None."""
        changed = self._changes.get(path, _ABSENT)
        if changed is not _ABSENT:
            return changed  # type: ignore[return-value]
        paths, sizes, mtimes, digests = self._base
        index = bisect.bisect_left(paths, path)
        if index < len(paths) and paths[index] == path:
            return sizes[index], mtimes[index], sha256_at(digests, index)
        return None

    def mtimes_if_of(self, paths: list[str], sizes: array[int], digests: bytes) -> array[int] | None:
        """The recorded mtimes, when the record holds exactly these paths with these sizes and raw
        digests (a record of this very manifest: then the files' stats alone decide); else None.
        Compared in C, so a million entries take milliseconds."""
        base_paths, base_sizes, mtimes, base_digests = self._base
        if self._changes or base_digests != digests or base_sizes != sizes or base_paths != paths:
            return None
        return mtimes

    def set(self, path: str, fields: Fields) -> None:
        """Record ``fields`` for ``path``."""
        self._changes[path] = fields

    def discard(self, path: str) -> bool:
        """Forget ``path``; whether the record held it."""
        if self.get(path) is None:
            return False
        self._changes[path] = None
        return True

    def update(self, other: Record) -> None:
        """Take every entry of ``other`` (its word wins)."""
        if not self._base[0] and not self._changes:
            self._base, self._changes = other._base, dict(other._changes)
            return
        for path, fields in other.items():
            self._changes[path] = fields

    def items(self) -> Iterator[tuple[str, Fields]]:
        """Every (path, fields), sorted by path."""
        paths, sizes, mtimes, digests = self._base
        changed = sorted(self._changes.items())
        later = 0
        for index, path in enumerate(paths):
            while later < len(changed) and changed[later][0] < path:
                if changed[later][1] is not None:
                    yield changed[later]  # type: ignore[misc]
                later += 1
            if later < len(changed) and changed[later][0] == path:
                if changed[later][1] is not None:
                    yield changed[later]  # type: ignore[misc]
                later += 1
                continue
            yield path, (sizes[index], mtimes[index], sha256_at(digests, index))
        for path, fields in changed[later:]:
            if fields is not None:
                yield path, fields


def _valid(path: object, value: object) -> bool:
    """Whether a JSON record's entry is a path and [size, mtime, sha256] of the right types."""
    return (
        isinstance(path, str)
        and bool(path)
        and "\n" not in path
        and isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], int)
        and 0 <= value[0] < 2**64
        and isinstance(value[1], int)
        and -(2**63) <= value[1] < 2**63
        and isinstance(value[2], str)
        and _SHA256.fullmatch(value[2]) is not None
    )

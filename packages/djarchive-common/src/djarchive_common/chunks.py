"""Content-defined chunks of large files, and a revision's chunk index (DESIGN §13).

A chunk ends after an *anchor*: a fixed two-byte sequence whose following byte has its low
``bits`` bits zero, found by a regular expression (C speed, the standard library only), at least
``min_size`` and at most ``max_size`` bytes after the chunk's start (a cut at ``max_size``
where no anchor comes). Boundaries depend on the bytes around them only, so an insertion or an
overwrite changes the chunks it touches and no others: the next anchor resynchronises. On
random data a chunk averages ``min_size + 2 ** (16 + bits)`` bytes. Each chunk is named by its
sha256, hashed in threads (hashlib runs without the GIL).

Why not FastCDC (a rolling gear hash per byte): a per-byte loop in Python is two orders of
magnitude too slow, and the PyPI packages that do it in C ship binary wheels for few platforms
and Pythons (``fastcdc`` 1.7.0: Linux cp311 and Windows cp310 only, with three more run-time
dependencies). Anchors on byte patterns are weaker on data without entropy (long runs of one
value have none, and are cut at ``max_size``, where they resynchronise at the next anchor), which
costs bandwidth only: every assembled file is verified whole.

The index of a revision, ``<dataset>/<revision>/djarchive-chunks.json``, lists for each large file
its size, its sha256 and its chunks (length, sha256) in order, with the chunker's parameters, so
that a client cuts its own old copy the same way. It comes from the bucket: it is parsed
strictly and bounded, and trusted only to save bandwidth.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .errors import ManifestError
from .layout import CHUNKS_NAME
from .localfs import pread

__all__ = [
    "CHUNKS_NAME",
    "MAX_INDEX_BYTES",
    "ChunkIndex",
    "Chunker",
    "FileChunks",
    "chunk_file",
    "file_chunks",
]

INDEX_FORMAT = "djarchive-chunks/1"
MAX_INDEX_BYTES = 256 * 1024 * 1024  # 1 % of a 25 TB revision with 1 MiB chunks
KiB = 1024
MiB = 1024 * KiB
BLOCK = 8 * MiB  # read at a time while cutting (under the allocator's mmap threshold: no page faults)
HASH_THREADS = 4
_SHA256 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Chunker:
    """Where chunks end (see the module's docstring): the anchor ``needle``, then a byte whose
    low ``bits`` bits are zero, between ``min_size`` and ``max_size`` bytes from the start."""

    min_size: int = 128 * KiB
    max_size: int = 2 * MiB
    bits: int = 3
    needle: bytes = b"\x9d\xe3"

    def __post_init__(self) -> None:
        if not (4 * KiB <= self.min_size < self.max_size <= 64 * MiB):
            raise ValueError(f"chunk sizes must be 4 KiB <= min < max <= 64 MiB: {self}")
        if not (0 <= self.bits <= 8 and len(self.needle) == 2):
            raise ValueError(f"a chunker needs a two-byte anchor and 0-8 bits: {self}")

    @property
    def average(self) -> int:
        """The average chunk on random data."""
        return min(self.max_size, self.min_size + 2 ** (16 + self.bits))

    @functools.cached_property
    def _anchor(self) -> re.Pattern[bytes]:
        """The anchor as a regular expression: the needle, then one of the bytes allowed after it."""
        mask = (1 << self.bits) - 1
        allowed = b"".join(re.escape(bytes([byte])) for byte in range(256) if byte & mask == 0)
        return re.compile(re.escape(self.needle) + b"[" + allowed + b"]")

    def cut(self, data: bytes | bytearray, start: int, end: int, final: bool) -> int:
        """Where the chunk starting at ``start`` of ``data`` ends (the data run to ``end``); -1
        when more data is needed to tell (``final``: there is none, the rest is a chunk)."""
        limit = start + self.max_size
        found = self._anchor.search(data, start + self.min_size, min(limit, end))
        if found is not None:
            return found.end()
        if limit <= end:
            return limit
        return end if final else -1

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min_size, "max": self.max_size, "bits": self.bits, "needle": self.needle.hex()}

    @classmethod
    def from_dict(cls, value: Any) -> Chunker:
        if not isinstance(value, dict) or set(value) != {"min", "max", "bits", "needle"}:
            raise ValueError("a chunker is {min, max, bits, needle}")
        numbers = (value["min"], value["max"], value["bits"])
        if not all(type(number) is int for number in numbers) or not isinstance(value["needle"], str):
            raise ValueError("a chunker's fields have the wrong types")
        return cls(value["min"], value["max"], value["bits"], bytes.fromhex(value["needle"]))


def chunk_file(fd: int, size: int, chunker: Chunker) -> Iterator[tuple[int, int, bytes]]:
    """The chunks of an open file of ``size`` bytes: (offset, length, bytes), in order. The file
    is read in blocks into one buffer (no allocation per block); what is left of the current
    chunk moves to its start before the next block."""
    limit = BLOCK + chunker.max_size + 3
    buffer = bytearray(limit)
    view = memoryview(buffer)
    filled, base, start = 0, 0, 0  # buffer[:filled] holds the file from ``base``; a chunk starts at ``start``
    while start < size:
        if filled - (start - base) < chunker.max_size + 3 and base + filled < size:
            keep = filled - (start - base)
            buffer[:keep] = view[start - base : filled]
            base, filled = start, keep
            got = _read_into(
                fd, view[filled : filled + min(limit - filled, size - base - filled)], base + filled
            )
            if got <= 0:
                raise OSError(f"the file ended at {base + filled} of {size} bytes")
            filled += got
            continue
        cut = chunker.cut(buffer, start - base, filled, final=base + filled >= size)
        if cut < 0:
            continue
        yield start, cut - (start - base), bytes(view[start - base : cut])
        start = base + cut


def _read_into(fd: int, target: memoryview, position: int) -> int:
    """Read into ``target`` from ``position``; the bytes read (0 at the end of the file)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [target], position)
    data = pread(fd, len(target), position)
    target[: len(data)] = data
    return len(data)


@dataclass
class FileChunks:
    """One file's chunks: its size and sha256, and (length, sha256) of each chunk in order."""

    size: int
    sha256: str
    chunks: list[tuple[int, str]] = field(default_factory=list)

    def spans(self) -> Iterator[tuple[int, int, str]]:
        """(offset, length, sha256) of each chunk."""
        offset = 0
        for length, sha256 in self.chunks:
            yield offset, length, sha256
            offset += length


def file_chunks(fd: int, size: int, sha256: str, chunker: Chunker) -> FileChunks:
    """The chunks of an open file, hashed in threads while it is cut."""
    pending: list[Future[str]] = []
    lengths: list[int] = []
    with ThreadPoolExecutor(min(HASH_THREADS, os.cpu_count() or 1), "djarchive-chunk") as pool:
        for _, length, data in chunk_file(fd, size, chunker):
            lengths.append(length)
            pending.append(pool.submit(_sha256, data))
        return FileChunks(size, sha256, [(n, f.result()) for n, f in zip(lengths, pending, strict=True)])


@dataclass
class ChunkIndex:
    """A revision's chunk index: the chunker, and the chunks of each large file by subpath."""

    chunker: Chunker
    files: dict[str, FileChunks] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The index object's bytes (canonical JSON)."""
        document = {
            "format": INDEX_FORMAT,
            "chunker": self.chunker.to_dict(),
            "files": {
                subpath: {"size": item.size, "sha256": item.sha256, "chunks": [list(c) for c in item.chunks]}
                for subpath, item in sorted(self.files.items())
            },
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = CHUNKS_NAME) -> ChunkIndex:
        """Parse and check an index; ManifestError names what is wrong."""
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
                raise ValueError(f"not a {INDEX_FORMAT} document")
            chunker = Chunker.from_dict(document.get("chunker"))
            files = document.get("files")
            if not isinstance(files, dict):
                raise ValueError("no files")
            return cls(chunker, {subpath: _file(value, chunker, subpath) for subpath, value in files.items()})
        except (ValueError, TypeError, RecursionError) as exc:
            raise ManifestError(f"the chunk index {source} is invalid: {exc}") from None

    def matching(self, subpath: str, size: int, sha256: str) -> FileChunks | None:
        """The chunks of ``subpath`` when the index has them for this content."""
        found = self.files.get(subpath)
        return found if found is not None and (found.size, found.sha256) == (size, sha256) else None


def _file(value: Any, chunker: Chunker, subpath: str) -> FileChunks:
    if not isinstance(value, dict) or set(value) != {"size", "sha256", "chunks"}:
        raise ValueError(f"{subpath!r}: a file is {{size, sha256, chunks}}")
    size, sha256, chunks = value["size"], value["sha256"], value["chunks"]
    if type(size) is not int or size < 0 or not _is_sha256(sha256) or not isinstance(chunks, list):
        raise ValueError(f"{subpath!r}: wrong size, sha256 or chunks")
    if len(chunks) > size // chunker.min_size + 1:
        raise ValueError(f"{subpath!r}: more chunks than its size allows")
    parsed: list[tuple[int, str]] = []
    total = 0
    for item in chunks:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and _is_sha256(item[1])):
            raise ValueError(f"{subpath!r}: a chunk is [length, sha256]")
        if not 0 < item[0] <= chunker.max_size:
            raise ValueError(f"{subpath!r}: a chunk of {item[0]} bytes")
        total += item[0]
        parsed.append((item[0], item[1]))
    if total != size:
        raise ValueError(f"{subpath!r}: its chunks add up to {total} bytes, not {size}")
    return FileChunks(size, sha256, parsed)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256


def by_sha256(chunks: Sequence[tuple[int, int, str]]) -> Mapping[str, tuple[int, int]]:
    """sha256 -> (offset, length) of the first chunk with it."""
    found: dict[str, tuple[int, int]] = {}
    for offset, length, sha256 in chunks:
        found.setdefault(sha256, (offset, length))
    return found

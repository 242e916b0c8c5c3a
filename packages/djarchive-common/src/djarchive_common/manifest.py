"""The manifest: parse, validate and write ``djarchive-manifest.csv``.

One line per file, no header, every field double-quoted::

    "<size in bytes>","<sha256, 64 lowercase hex>","<posix subpath>"

written as UTF-8 with ``\\n`` line ends, sorted by subpath. A manifest that breaks
any rule is rejected as a whole, with an error naming the line.

Compatibility with the archive's original tool is of the *format*, both ways; the bytes
are not the same file for file, because the original wrote its lines in directory-walk
order and this module sorts them (the order means nothing to either reader):

* we read the manifests the original wrote: the same three quoted fields with ``\\n``
  ends, in any order (CRLF ends and a UTF-8 BOM are accepted too);
* the original reads the manifests we write: its reader splits a line at commas and
  drops every double quote, which works for every path without ``,`` or ``"``.

A path with ``,`` or ``"`` never worked with the original, whoever wrote the manifest:
its reader breaks on it. We write such a path as standard CSV (the field quoted, inner
quotes doubled); the original wrote a ``"`` unescaped, a line that is not valid CSV and
that we refuse, naming the line, as we refuse any path that breaks the naming rules of
:mod:`djarchive_common.layout`.
"""

from __future__ import annotations

import csv
import fnmatch
import heapq
import io
import itertools
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, overload

from .errors import ManifestError, NotFoundError
from .layout import MANIFEST_NAME, subpath_problem
from .text import files

__all__ = [
    "MANIFEST_NAME",
    "Entry",
    "Manifest",
    "matches",
    "parse_manifest",
    "read_manifest",
    "select",
    "select_or_fail",
    "shard",
    "write_manifest",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SIZE_RE = re.compile(r"[0-9]{1,20}")
MAX_LINE_CHARS = 8192  # a valid line is at most ~1.1 KB; longer ones are hostile
MAX_OBJECT_SIZE = 5 * 1024**4  # S3's largest object: any larger size is a lie


class Entry(NamedTuple):
    """One file of a revision."""

    subpath: str
    size: int
    sha256: str


class Manifest(Sequence[Entry]):
    """A validated manifest: entries sorted by subpath, unique, safe to place under a target."""

    __slots__ = ("_by_subpath", "_entries")

    def __init__(self, entries: Iterable[Entry], source: str = "manifest"):
        self._entries = sorted(entries, key=lambda entry: entry.subpath)
        _check_entries(self._entries, source)
        self._by_subpath = {entry.subpath: entry for entry in self._entries}

    @classmethod
    def _validated(cls, entries: list[Entry]) -> Manifest:
        """A manifest of entries :func:`parse_manifest` has just checked (no second pass)."""
        manifest = cls.__new__(cls)
        manifest._entries = sorted(entries, key=lambda entry: entry.subpath)
        manifest._by_subpath = {entry.subpath: entry for entry in manifest._entries}
        return manifest

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._by_subpath
        return item in self._entries

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Manifest):
            return self._entries == other._entries
        return NotImplemented

    def __repr__(self) -> str:
        return f"<Manifest: {files(len(self))}, {self.total_size} bytes>"

    def get(self, subpath: str) -> Entry | None:
        """The entry for ``subpath``, or None."""
        return self._by_subpath.get(subpath)

    @property
    def total_size(self) -> int:
        """The sum of all file sizes in bytes."""
        return sum(entry.size for entry in self._entries)

    def to_bytes(self) -> bytes:
        """The manifest file's exact bytes."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for entry in self._entries:
            writer.writerow((str(entry.size), entry.sha256, entry.subpath))
        return buffer.getvalue().encode("utf-8")


def matches(subpath: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """Whether ``subpath`` matches any ``include`` glob (or there are none) and no ``exclude`` glob.

    Globs match the whole posix subpath and ``*`` crosses folders, as in ``aws s3 --include``.
    """
    return (not include or any(fnmatch.fnmatchcase(subpath, pattern) for pattern in include)) and not any(
        fnmatch.fnmatchcase(subpath, pattern) for pattern in exclude
    )


def select(entries: Iterable[Entry], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Entry]:
    """The entries whose subpath :func:`matches` the globs."""
    return [entry for entry in entries if matches(entry.subpath, include, exclude)]


def select_or_fail(
    entries: Iterable[Entry], include: Sequence[str], exclude: Sequence[str], what: str
) -> list[Entry]:
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


def path_identity(subpath: str) -> str:
    """The name a case-insensitive, normalizing file system (macOS, Windows, many network shares)
    sees for ``subpath``: NFC-normalized and case-folded."""
    if subpath.isascii():
        return subpath.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", subpath).casefold())


def _path_clash(subpaths: Sequence[str]) -> tuple[int, int, str] | None:
    """The first two paths (their indexes, and why) that cannot both be files on every file
    system: equal, equal once normalized and case-folded, or a file that is also a folder of
    the other. Sorting with '/' below every character puts a folder's contents right after it,
    so one pass over neighbours finds every folder clash: O(n log n), not O(n * depth)."""
    first: dict[str, int] = {}
    keys = []
    for index, subpath in enumerate(subpaths):
        key = path_identity(subpath)
        seen = first.setdefault(key, index)
        if seen != index:
            return seen, index, "duplicate" if subpaths[seen] == subpath else "identity"
        keys.append(key)
    order = sorted(range(len(keys)), key=lambda index: keys[index].replace("/", "\0"))
    for folder, below in itertools.pairwise(order):
        if keys[below].startswith(keys[folder] + "/"):
            return folder, below, "folder"
    return None


def _clash_message(subpaths: Sequence[str], clash: tuple[int, int, str], where: Callable[[int], str]) -> str:
    """``<where>: <what>`` for a clash found by :func:`_path_clash`."""
    one, other, kind = clash
    if kind == "duplicate":
        return f"{where(other)}: duplicate path {subpaths[other]!r} (first on {where(one)})"
    if kind == "identity":
        return (
            f"{where(other)}: {subpaths[other]!r} and {subpaths[one]!r} ({where(one)}) name the same file "
            "on case-insensitive or normalizing file systems"
        )
    return (
        f"{where(other)}: {subpaths[one]!r} ({where(one)}) is both a file and a folder of {subpaths[other]!r}"
    )


def _check_entries(entries: Sequence[Entry], source: str) -> None:
    """Reject invalid fields, repeats, and paths that name one file or are a file and a folder."""
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            raise ManifestError(f"invalid entry in {source} ({entry.subpath!r}): {problem}")
    subpaths = [entry.subpath for entry in entries]
    clash = _path_clash(subpaths)
    if clash:
        raise ManifestError(
            f"invalid entry in {source}, " + _clash_message(subpaths, clash, lambda i: f"entry {i + 1}")
        )


def _entry_problem(entry: Entry) -> str | None:
    if not isinstance(entry.size, int) or isinstance(entry.size, bool) or entry.size < 0:
        return f"size {entry.size!r} is not a non-negative integer"
    if entry.size > MAX_OBJECT_SIZE:
        return f"size {entry.size} is larger than the largest object S3 can hold (5 TiB)"
    if not isinstance(entry.sha256, str) or not _SHA256_RE.fullmatch(entry.sha256):
        return f"sha256 {entry.sha256!r} is not 64 lowercase hex digits"
    return subpath_problem(entry.subpath)


def parse_manifest(data: bytes, source: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes; raise ManifestError naming the line on any fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"invalid manifest {source}, line {line}: not valid UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:  # the csv module of some Pythons refuses NUL with a vaguer message
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ManifestError(f"invalid manifest {source}, line {line}: control character '\\x00' (NUL)")
    entries: list[Entry] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 0
    try:
        for row in reader:
            line = reader.line_num
            if len(row) != 3:
                raise ManifestError(
                    f"{_where(source, line)}: expected 3 fields (size, sha256, path), got {len(row)}"
                )
            size_text, sha256, subpath = row
            if len(size_text) + len(sha256) + len(subpath) > MAX_LINE_CHARS:
                raise ManifestError(f"{_where(source, line)}: line longer than {MAX_LINE_CHARS} characters")
            if not _SIZE_RE.fullmatch(size_text):
                raise ManifestError(
                    f"{_where(source, line)}: size {size_text!r} is not a non-negative integer"
                )
            size = int(size_text)
            if size > MAX_OBJECT_SIZE:
                largest = "is larger than the largest object S3 can hold (5 TiB)"
                raise ManifestError(f"{_where(source, line)}: size {size} {largest}")
            if not _SHA256_RE.fullmatch(sha256):
                raise ManifestError(
                    f"{_where(source, line)}: sha256 {sha256!r} is not 64 lowercase hex digits"
                )
            problem = subpath_problem(subpath)
            if problem:
                raise ManifestError(f"{_where(source, line)}: {problem}: {subpath!r}")
            entries.append(Entry(subpath, size, sha256))
            lines.append(line)
    except csv.Error as exc:
        line = reader.line_num or line + 1
        raise ManifestError(f"{_where(source, line)}: not valid CSV ({exc})") from None
    subpaths = [entry.subpath for entry in entries]
    clash = _path_clash(subpaths)
    if clash:
        message = _clash_message(subpaths, clash, lambda index: f"line {lines[index]}")
        raise ManifestError(f"invalid manifest {source}, {message}")
    return Manifest._validated(entries)


def _where(source: str, line: int) -> str:
    return f"invalid manifest {source}, line {line}"


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file."""
    path = Path(path)
    return parse_manifest(path.read_bytes(), source=str(path))


def write_manifest(path: str | os.PathLike[str], manifest: Manifest | Iterable[Entry]) -> Path:
    """Write a manifest file atomically (a new temporary file beside it, then a rename); neither
    name is followed if it is a link. Return its path."""
    from .localfs import open_root

    if not isinstance(manifest, Manifest):
        manifest = Manifest(manifest)
    path = Path(path)
    with open_root(path.parent) as folder:
        temporary = f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        folder.write_atomically(path.name, manifest.to_bytes(), temporary)
    return path

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

import bisect
import csv
import fnmatch
import hashlib
import heapq
import io
import itertools
import operator
import os
import re
import secrets
import unicodedata
from array import array
from binascii import a2b_hex
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, overload

from .errors import ManifestError, NotFoundError
from .layout import (
    MANIFEST_NAME,
    MAX_COMPONENT_BYTES,
    MAX_SUBPATH_BYTES,
    RESERVED_NAMES,
    STATE_FOLDER,
    subpath_problem,
)
from .text import files

__all__ = [
    "MANIFEST_NAME",
    "Entry",
    "Manifest",
    "Picked",
    "matches",
    "parse_manifest",
    "read_manifest",
    "select",
    "select_or_fail",
    "shard",
    "size_of",
    "subpaths_of",
    "write_manifest",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CANONICAL = re.compile(rb'"([0-9]{1,20})","([0-9a-f]{64})","([^"\r\n]*(?:""[^"\r\n]*)*)"\r?(?:\n|\Z)')
# printable ASCII components of 1-255 characters, no '.' or '..', no backslash, no empty one
_SAFE_ASCII_PATH = re.compile(
    r"(?:(?!\.\.?/)[\x20-\x2e\x30-\x5b\x5d-\x7e]{1,255}/)*(?!\.\.?\Z)[\x20-\x2e\x30-\x5b\x5d-\x7e]{1,255}"
)
# Bytes a plain line may hold: printable ASCII but the backslash, and its line end (quotes,
# commas and slashes are allowed here; where they stand is checked by splitting).
_PLAIN_BYTES = bytes([10, *range(0x20, 0x5C), *range(0x5D, 0x7F)])
_STATE_FOLDER_PATH = re.compile('","' + re.escape(STATE_FOLDER), re.IGNORECASE)  # a path in .djarchive
_CHUNK_BYTES = 1024 * 1024
_LEADING_ZERO = re.compile(rb'\n"0[0-9]')  # a size that would be written differently (after line 1)
_SIZE_RE = re.compile(r"[0-9]{1,20}")
MAX_LINE_CHARS = 8192  # a valid line is at most ~1.1 KB; longer ones are hostile
MAX_OBJECT_SIZE = 5 * 1024**4  # S3's largest object: any larger size is a lie


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
        """A manifest of fields :func:`parse_manifest` has checked and sorted (no second pass);
        ``sha256`` of its exact bytes, when the parser saw them."""
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

    def _entry(self, index: int) -> Entry:
        return Entry(
            self._paths[index], self._sizes[index], self._digests[32 * index : 32 * index + 32].hex()
        )

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
        digests = self._digests
        hexes = (digests[start : start + 32].hex() for start in range(0, len(digests), 32))
        return map(Entry._make, zip(self._paths, self._sizes, hexes, strict=True))

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
        not to be changed)."""
        return self._paths, self._sizes, self._digests

    @property
    def total_size(self) -> int:
        """The sum of all file sizes in bytes."""
        return sum(self._sizes)

    def to_bytes(self) -> bytes:
        """The manifest file's exact bytes."""
        out = io.StringIO()
        digests = self._digests
        for index, path in enumerate(self._paths):
            quoted = path.replace('"', '""')
            out.write(f'"{self._sizes[index]}","{digests[32 * index : 32 * index + 32].hex()}","{quoted}"\n')
        return out.getvalue().encode("utf-8")


class Picked(Sequence[Entry]):
    """Some entries of a sequence (a manifest), by index: a million of them cost 8 MB, not the
    200 MB of their Entry objects, which are made as they are read."""

    __slots__ = ("_base", "_indexes")

    def __init__(self, base: Sequence[Entry], indexes: Iterable[int] = ()):
        self._base = base
        self._indexes = array("Q", indexes)

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


def size_of(entries: Iterable[Entry]) -> int:
    """The bytes of ``entries``; for a manifest or entries picked from one, without making entries."""
    if isinstance(entries, Manifest):
        return entries.total_size
    if isinstance(entries, Picked) and isinstance(entries._base, Manifest):
        return sum(map(entries._base._sizes.__getitem__, entries._indexes))
    return sum(entry.size for entry in entries)


def subpaths_of(entries: Iterable[Entry]) -> Sequence[str]:
    """The subpaths of ``entries``; for a manifest, its own list (no entries made)."""
    if isinstance(entries, Manifest):
        return entries.subpaths
    if isinstance(entries, Picked) and isinstance(entries._base, Manifest):
        return [entries._base._paths[index] for index in entries._indexes]
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


def path_identity(subpath: str) -> str:
    """The name a case-insensitive, normalizing file system (macOS, Windows, many network shares)
    sees for ``subpath``: NFC-normalized and case-folded."""
    if subpath.isascii():
        return subpath.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", subpath).casefold())


def _path_clash(paths: Sequence[str]) -> tuple[int, int, str] | None:
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


def _clash_message(
    subpaths: Sequence[str], clash: tuple[int, int, str], number: Callable[[int], int], unit: str
) -> str:
    """``<unit> <number>: <what>`` for a clash found by :func:`_path_clash`, the later line (or
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
    clash = _path_clash(subpaths)
    if clash:
        message = _clash_message(subpaths, clash, lambda index: index + 1, "entry")
        raise ManifestError(f"invalid entry in {source}, " + message)


def _entry_problem(entry: Entry) -> str | None:
    if not isinstance(entry.size, int) or isinstance(entry.size, bool) or entry.size < 0:
        return f"size {entry.size!r} is not a non-negative integer"
    if entry.size > MAX_OBJECT_SIZE:
        return f"size {entry.size} is larger than the largest object S3 can hold (5 TiB)"
    if not isinstance(entry.sha256, str) or not _SHA256_RE.fullmatch(entry.sha256):
        return f"sha256 {entry.sha256!r} is not 64 lowercase hex digits"
    return subpath_problem(entry.subpath)


def parse_manifest(data: bytes, source: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes; raise ManifestError naming the line on any fault.

    Lines in the canonical form (what djarchive and the original tool write) are read straight
    from the bytes, one regular expression per line; anything else is read by the csv module.
    """
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if b"\x00" in data:  # the csv module of some Pythons refuses NUL with a vaguer message
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ManifestError(f"{_where(source, line)}: control character '\\x00' (NUL)")
    fields = _parse_canonical(data, start, source)
    canonical = (
        fields is not None
        and start == 0
        and b"\r" not in data
        and not re.match(rb'"0[0-9]', data)
        and not _LEADING_ZERO.search(data)
    )
    if fields is None:
        fields = _parse_csv(data, start, source)
    paths, sizes, digests, lines = fields
    if any(map(operator.lt, paths[1:], paths)):
        canonical = False
        order = sorted(range(len(paths)), key=paths.__getitem__)
        paths = [paths[index] for index in order]
        sizes = array("Q", (sizes[index] for index in order))
        digests = bytearray(b"".join(digests[32 * index : 32 * index + 32] for index in order))
        lines = array("L", (lines[index] for index in order))
    clash = _path_clash(paths)
    if clash:
        message = _clash_message(paths, clash, lines.__getitem__, "line")
        raise ManifestError(f"invalid manifest {source}, {message}")
    sha256 = hashlib.sha256(data).hexdigest() if canonical and data.endswith(b"\n") else None
    return Manifest._compact(paths, sizes, bytes(digests), sha256)


Fields = tuple[list[str], "array[int]", bytearray, "array[int]"]


def _parse_canonical(data: bytes, start: int, source: str) -> Fields | None:
    """Every line as ``"size","sha256","path"``: the fields, or None at the first line in any
    other form (then the csv module reads the whole). Read in chunks of about a megabyte: a
    chunk of plain lines (:func:`_plain_chunk`) in a few C-level passes, any other line by line."""
    paths: list[str] = []
    sizes = array("Q")
    digests = bytearray()
    position = start
    while position < len(data):
        cut = data.find(b"\n", position + _CHUNK_BYTES)
        end = len(data) if cut < 0 else cut + 1
        if not _plain_chunk(data[position:end], paths, sizes, digests) and not _chunk_by_line(
            data, position, end, len(paths) + 1, source, paths, sizes, digests
        ):
            return None
        position = end
    return paths, sizes, digests, array("L", range(1, len(paths) + 1))


def _plain_chunk(chunk: bytes, paths: list[str], sizes: array[int], digests: bytearray) -> bool:
    """Add the fields of ``chunk`` when every line of it is plain (canonical, printable ASCII,
    nothing reserved, nothing to unquote); False, adding nothing, when any is not.

    Checked and split in C-level passes over the whole chunk: lines split at ``"\n"``, each with
    exactly two ``","``, then fields at ``","``; three fields a line, none holding a quote or a
    line end, means the chunk is exactly these lines (splitting is undone by joining)."""
    if not chunk.startswith(b'"') or not chunk.endswith(b'"\n') or chunk.translate(None, _PLAIN_BYTES):
        return False
    text = chunk.decode("ascii")
    lines = text[1:-2].split('"\n"')
    if set(map(str.count, lines, itertools.repeat('","'))) != {2}:
        return False
    fields = '","'.join(lines).split('","')
    if len(fields) != 3 * len(lines):
        return False
    raw_sizes, hexes, names = fields[0::3], fields[1::3], fields[2::3]
    all_sizes, all_hexes, all_names = "".join(raw_sizes), "".join(hexes), "\n".join(names)
    if (
        not all_sizes.isdigit()
        or max(map(len, raw_sizes)) > 20
        or set(map(len, hexes)) != {64}
        or all_hexes.lower() != all_hexes
        or '"' in all_names
        or all_names.count("\n") != len(names) - 1
    ):
        return False
    # components: none empty, '.' or '..' (the line ends become separators), none too long
    slashed = f"/{all_names}/".replace("\n", "/")
    if "//" in slashed or "/./" in slashed or "/../" in slashed:
        return False
    longest = max(map(len, names))
    if longest > MAX_SUBPATH_BYTES or (
        longest > MAX_COMPONENT_BYTES and max(map(len, slashed.split("/"))) > MAX_COMPONENT_BYTES
    ):
        return False
    if not RESERVED_NAMES.isdisjoint(names) or _STATE_FOLDER_PATH.search(text):
        return False
    try:
        numbers = array("Q", map(int, raw_sizes))
        raw = a2b_hex(all_hexes)
    except (OverflowError, ValueError):
        return False
    if max(numbers) > MAX_OBJECT_SIZE:
        return False
    paths.extend(names)
    sizes.extend(numbers)
    digests += raw
    return True


def _chunk_by_line(
    data: bytes,
    position: int,
    end: int,
    first: int,
    source: str,
    paths: list[str],
    sizes: array[int],
    digests: bytearray,
) -> bool:
    """Add the fields of the lines from ``position`` to ``end`` (the first is line ``first``),
    each checked on its own; False at a line not in the canonical form."""
    expected = position
    for line, found in enumerate(_CANONICAL.finditer(data, position, end), first):
        if found.start() != expected:
            return False
        expected = found.end()
        if expected - found.start() > MAX_LINE_CHARS + 2:
            raise ManifestError(f"{_where(source, line)}: line longer than {MAX_LINE_CHARS} characters")
        raw_size, digest, raw_path = found.groups()
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{_where(source, line)}: not valid UTF-8") from None
        if '"' in path:
            path = path.replace('""', '"')
        size = int(raw_size)
        if size > MAX_OBJECT_SIZE or not _plainly_safe(path):
            _check_fields(size, path, source, line)
        paths.append(path)
        sizes.append(size)
        digests += a2b_hex(digest)
    return expected == end


def _plainly_safe(path: str) -> bool:
    """A quick yes for the common case (printable ASCII, nothing reserved); False means "look
    closer" (:func:`layout.subpath_problem` says what, if anything, is wrong)."""
    return (
        len(path) <= MAX_SUBPATH_BYTES
        and _SAFE_ASCII_PATH.fullmatch(path) is not None
        and path not in RESERVED_NAMES
        and path[:10].lower() != STATE_FOLDER
    )


def _check_fields(size: int, path: str, source: str, line: int) -> None:
    if size > MAX_OBJECT_SIZE:
        raise ManifestError(
            f"{_where(source, line)}: size {size} is larger than the largest object S3 can hold (5 TiB)"
        )
    problem = subpath_problem(path)
    if problem:
        raise ManifestError(f"{_where(source, line)}: {problem}: {path!r}")


def _parse_csv(data: bytes, start: int, source: str) -> Fields:
    """Any manifest the csv module can read (fields quoted or not, any line ends)."""
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, start + exc.start) + 1
        raise ManifestError(f"{_where(source, line)}: not valid UTF-8") from None
    paths: list[str] = []
    sizes = array("Q")
    digests = bytearray()
    lines = array("L")
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
            if not _SHA256_RE.fullmatch(sha256):
                raise ManifestError(
                    f"{_where(source, line)}: sha256 {sha256!r} is not 64 lowercase hex digits"
                )
            _check_fields(int(size_text), subpath, source, line)
            paths.append(subpath)
            sizes.append(int(size_text))
            digests += bytes.fromhex(sha256)
            lines.append(line)
    except csv.Error as exc:
        line = reader.line_num or line + 1
        raise ManifestError(f"{_where(source, line)}: not valid CSV ({exc})") from None
    return paths, sizes, digests, lines


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

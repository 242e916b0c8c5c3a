"""The manifest file, ``djarchive-manifest.csv``: read, validate and write it.

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
import hashlib
import io
import itertools
import operator
import os
import re
import secrets
from array import array
from binascii import a2b_hex
from collections.abc import Iterable
from pathlib import Path

from ..errors import ManifestError
from ..layout import (
    MAX_COMPONENT_BYTES,
    MAX_SUBPATH_BYTES,
    RESERVED_NAMES,
    STATE_FOLDER,
    subpath_problem,
)
from .entries import MAX_OBJECT_SIZE, SHA256_RE, Entry, Manifest, clash_message, path_clash

__all__ = ["MAX_LINE_CHARS", "parse_manifest", "read_manifest", "write_manifest"]

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
    clash = path_clash(paths)
    if clash:
        message = clash_message(paths, clash, lines.__getitem__, "line")
        raise ManifestError(f"invalid manifest {source}, {message}")
    sha256 = hashlib.sha256(data).hexdigest() if canonical and data.endswith(b"\n") else None
    return Manifest._compact(paths, sizes, bytes(digests), sha256)


Fields = tuple[list[str], "array[int]", bytearray, "array[int]"]


def _parse_canonical(data: bytes, start: int, source: str) -> Fields | None:
    """Every line as ``"size","sha256","path"``: the fields, or None at the first line in any
    other form (then the csv module reads the whole). Read in chunks of about a megabyte: a
    chunk of plain lines (:func:`plain_chunk`) in a few C-level passes, any other line by line."""
    paths: list[str] = []
    sizes = array("Q")
    digests = bytearray()
    position = start
    while position < len(data):
        cut = data.find(b"\n", position + _CHUNK_BYTES)
        end = len(data) if cut < 0 else cut + 1
        if not plain_chunk(data[position:end], paths, sizes, digests) and not chunk_by_line(
            data, position, end, len(paths) + 1, source, paths, sizes, digests
        ):
            return None
        position = end
    return paths, sizes, digests, array("L", range(1, len(paths) + 1))


def plain_chunk(chunk: bytes, paths: list[str], sizes: array[int], digests: bytearray) -> bool:
    """Add the fields of ``chunk`` when every line of it is plain (canonical, printable ASCII,
    nothing reserved, nothing to unquote); False, adding nothing, when any is not. The fast
    reader; public so that its refusals can be checked against :func:`chunk_by_line`'s.

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


def chunk_by_line(
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
    each checked on its own; False at a line not in the canonical form. The careful reader, and
    the reference for :func:`plain_chunk`."""
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
            if not SHA256_RE.fullmatch(sha256):
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
    from ..localfs import open_root

    if not isinstance(manifest, Manifest):
        manifest = Manifest(manifest)
    path = Path(path)
    with open_root(path.parent) as folder:
        temporary = f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        folder.write_atomically(path.name, manifest.to_bytes(), temporary)
    return path

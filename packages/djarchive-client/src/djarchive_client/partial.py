"""Partly fetched large files, kept across runs so that an interrupted download resumes inside a file.

A large file fetched as byte ranges, or in one stream, is written into ``TARGET/.djarchive/partial/<id>.data``
(``id``: the sha256 of its path in TARGET) beside a journal, ``<id>.journal``: what the file is
(its path, size and sha256 per the manifest) and the byte ranges written so far, each with the
sha256 of its bytes. The journal is rewritten as ranges grow (every few MiB or second): the data
synced to disk first, then the journal written to a new file, synced, and renamed over the old
one, so that a kill at any moment leaves the last journal or the one before it, never half of
one. The next run re-hashes every range the journal names from the file on disk and fetches only
what is missing; a journal for other content, or a range whose bytes do not hash as recorded,
discards the whole partial file: nothing partial is trusted unchecked. The whole file is still
verified against the manifest before it is placed (:mod:`djarchive_client.fetch`).

:class:`Partials` is the area; :class:`Partial` one file, with a narrow interface for the fetch
path: what is present from an offset (:meth:`Partial.present`), record bytes written
(:meth:`Partial.wrote`), save the journal (:meth:`Partial.flush`), place or discard the file.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from djarchive_common.errors import LocalPathError
from djarchive_common.localfs import Folder, pread, storage_error
from djarchive_common.manifest import Entry
from djarchive_common.transfer import BUFFER_SIZE

if TYPE_CHECKING:
    from .files import TargetFiles

__all__ = ["FLUSH_BYTES", "FLUSH_SECONDS", "PARTIAL_FOLDER", "Partial", "Partials"]

PARTIAL_FOLDER = "partial"
JOURNAL_VERSION = 1
FLUSH_BYTES = 8 * 1024 * 1024  # bytes written between two journals, at most (what a kill may cost)
MIN_FLUSH_BYTES = 256 * 1024  # ... and at least (each journal costs a sync of the data)
FLUSH_SECONDS = 1.0  # a journal at least this often while bytes arrive
STREAM_FLUSHES = 16  # a file in one stream: a journal every 16th of it at most (each costs a sync)
MAX_JOURNAL_BYTES = 4 * 1024 * 1024
log = logging.getLogger("djarchive_client")


def partial_id(subpath: str) -> str:
    """The name of a path's partial file in the area (no path component of its own)."""
    return hashlib.sha256(subpath.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class Partial:
    """One partly fetched file: the ranges held (checked), and those written by this run."""

    def __init__(self, area: Partials, entry: Entry, held: list[tuple[int, int, str]], fd: int | None):
        self.area, self.entry = area, entry
        self.name = partial_id(entry.subpath)
        self.held = held  # (start, length, sha256) of the ranges found on disk and re-hashed
        self.fd = fd
        self._runs: dict[int, tuple[int, Any]] = {}  # start -> (length, sha256 so far) of this run's
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._flush_bytes = min(FLUSH_BYTES, max(MIN_FLUSH_BYTES, entry.size // 64))

    def __repr__(self) -> str:
        return f"<Partial {self.entry.subpath}: {self.held_bytes} bytes held>"

    @property
    def held_bytes(self) -> int:
        """The bytes found on disk from an earlier run (checked)."""
        return sum(length for _, length, _ in self.held)

    def present(self, offset: int, length: int) -> int:
        """How many bytes from ``offset`` (of at most ``length``) an earlier run left, checked."""
        end = offset
        for start, size, _ in sorted(self.held):
            if start <= end < start + size:
                end = start + size
        return min(end - offset, length)

    # -- writing -----------------------------------------------------------------------

    def open(self) -> int:
        """The data file's descriptor (created, and allocated to the file's size, on first use)."""
        with self._lock:
            if self.fd is None:
                self.fd = self.area.create(self.name, self.entry)
            return self.fd

    def wrote(self, start: int, position: int, data: bytes | memoryview) -> None:
        """``data`` was written at ``position``, in the run of bytes that began at ``start`` this
        run (a range's first missing byte); the journal is saved when enough is unsaved."""
        with self._lock:
            length, digest = self._runs.get(start) or (0, hashlib.sha256())
            if position != start + length:
                return  # not the run's next bytes (cannot happen in order): left unrecorded
            digest.update(data)
            self._runs[start] = (length + len(data), digest)
            self._unsaved += len(data)
            due = self._unsaved >= self._flush_bytes or time.monotonic() - self._saved_at >= FLUSH_SECONDS
        if due:
            self.flush(wait=False)

    def streamed(self, length: int, digest: Any) -> None:
        """The file's first ``length`` bytes are written, in one stream from its start, and
        ``digest`` is their sha256 (the stream's own hash, copied: the bytes are not hashed
        twice); the journal is saved when enough is unsaved. A length of 0: the stream started
        over."""
        with self._lock:
            before = self._runs[0][0] if 0 in self._runs else 0
            self._runs = {0: (length, digest.copy())} if length else {}
            self._unsaved += max(0, length - before)
            enough = max(self._flush_bytes, self.entry.size // STREAM_FLUSHES)
            due = self._unsaved >= enough or time.monotonic() - self._saved_at >= FLUSH_SECONDS
        if due:
            self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Save the journal: the data synced first, then the journal replaced atomically. Without
        ``wait``, a flush already under way is enough."""
        if not self._flushing.acquire(blocking=wait):
            return
        try:
            with self._lock:
                if self.fd is None or (not self._unsaved and wait is False):
                    return
                runs = [(start, size, sha.copy().hexdigest()) for start, (size, sha) in self._runs.items()]
                # a range held from before that a run of this one overlaps may be rewritten: not kept
                ranges = [item for item in self.held if not any(_overlap(item, run) for run in runs)] + runs
                self._unsaved = 0
                self._saved_at = time.monotonic()
                fd = self.fd
            try:
                os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
                self.area.write_journal(self.name, self.entry, [item for item in ranges if item[1] > 0])
            except OSError as exc:  # the partial file stays what it was: a later run fetches more
                log.info("could not save the journal of %s: %s", self.entry.subpath, exc)
        finally:
            self._flushing.release()

    # -- the end -----------------------------------------------------------------------

    def close(self) -> None:
        """Save the journal and close the file, kept for the next run."""
        self.flush()
        with self._lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def place(self, files: TargetFiles) -> None:
        """Move the (verified) file to its path in TARGET and forget its journal."""
        with self._lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        self.area.place(self.name, files, self.entry.subpath)

    def discard(self) -> None:
        """Delete the file and its journal (its bytes cannot be trusted)."""
        with self._lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        self.area.remove(self.name)


class Partials:
    """The partial files of one TARGET, in ``.djarchive/partial/`` (``state``: ``.djarchive``)."""

    def __init__(self, state: Folder):
        try:
            self.folder = state.child(PARTIAL_FOLDER, create=True)
        except OSError as exc:
            raise storage_error(exc, state.path / PARTIAL_FOLDER) from None

    def close(self) -> None:
        self.folder.close()

    def held(self, subpath: str) -> bool:
        """Whether an earlier run left a journal of ``subpath``'s partial file (not checked yet)."""
        return self.folder.lstat(f"{partial_id(subpath)}.journal") is not None

    def fresh(self, entry: Entry) -> Partial:
        """A partial file for ``entry`` with nothing held (one an earlier run left is deleted
        when the new one is created)."""
        return Partial(self, entry, [], None)

    def resume(self, entry: Entry) -> Partial:
        """``entry``'s partial file with the ranges an earlier run wrote, each re-hashed from the
        disk (none when there is no usable journal); a foreign or damaged one is discarded."""
        name = partial_id(entry.subpath)
        try:
            journal = self._journal(name, entry)
        except (OSError, LocalPathError, ValueError) as exc:
            log.info("discarding the partial file of %s: %s", entry.subpath, exc)
            self.remove(name)
            return Partial(self, entry, [], None)
        if journal is None:
            self.remove(name)  # a data file without a journal says nothing about its bytes
            return Partial(self, entry, [], None)
        fd, held = journal
        found = sum(length for _, length, _ in held)
        log.info("resuming %s: %d of %d bytes on disk, checked", entry.subpath, found, entry.size)
        return Partial(self, entry, held, fd)

    def _journal(self, name: str, entry: Entry) -> tuple[int, list[tuple[int, int, str]]] | None:
        """The data file (open) and its checked ranges; None without a journal, ValueError when
        the journal is for other content or a range does not hash as recorded."""
        try:
            raw = self.folder.read_bytes(f"{name}.journal", MAX_JOURNAL_BYTES)
        except FileNotFoundError:
            return None
        journal = json.loads(raw)
        if not isinstance(journal, dict) or journal.get("version") != JOURNAL_VERSION:
            raise ValueError("a journal of another version")
        if (journal.get("path"), journal.get("size"), journal.get("sha256")) != (
            entry.subpath,
            entry.size,
            entry.sha256,
        ):
            raise ValueError("it was fetching other content")
        ranges = _ranges(journal.get("ranges"), entry.size)
        fd = self.folder.open(f"{name}.data", os.O_RDWR)
        try:
            if os.fstat(fd).st_size > entry.size:
                raise ValueError("the file is larger than the content")
            for start, length, sha256 in ranges:
                if _hash_range(fd, start, length) != sha256:
                    raise ValueError(f"bytes {start}-{start + length - 1} are not what was written")
        except BaseException:
            os.close(fd)
            raise
        return fd, ranges

    def create(self, name: str, entry: Entry) -> int:
        """A new, empty data file for ``entry``, allocated to its size where the system can."""
        self.remove(name)
        try:
            fd = self.folder.create(f"{name}.data")
        except OSError as exc:
            raise storage_error(exc, self.folder.path / f"{name}.data") from None
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, entry.size)  # a full disk fails now, not halfway
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # the file system cannot
                    os.close(fd)
                    raise storage_error(exc, self.folder.path / f"{name}.data") from None
        return fd

    def write_journal(self, name: str, entry: Entry, ranges: Iterable[tuple[int, int, str]]) -> None:
        """Replace the journal of ``name`` (written beside it, synced, renamed over it)."""
        journal = {
            "version": JOURNAL_VERSION,
            "path": entry.subpath,
            "size": entry.size,
            "sha256": entry.sha256,
            "ranges": [list(item) for item in sorted(ranges)],
        }
        self.folder.write_atomically(f"{name}.journal", json.dumps(journal).encode())

    def place(self, name: str, files: TargetFiles, subpath: str) -> None:
        """Move the data file ``name`` to ``subpath`` in TARGET, then delete its journal."""
        files.place_from(self.folder, f"{name}.data", subpath)
        self.folder.unlink(f"{name}.journal", missing_ok=True)

    def remove(self, name: str) -> None:
        """Delete a partial file and its journal (the journal first: no journal, no trust)."""
        for suffix in (".journal", ".data"):
            try:
                self.folder.unlink(name + suffix, missing_ok=True)
            except OSError as exc:
                log.info("could not delete %s: %s", self.folder.path / (name + suffix), exc)

    def clear(self, keep: Callable[[], Iterable[str]] = tuple) -> None:
        """Delete every partial file but those of the paths ``keep()`` names (asked only when
        there is any): a copy whose download completed needs none of the others."""
        found = [item.name for item in self.folder.entries() if not item.is_dir(follow_symlinks=False)]
        if not found:
            return
        kept = {partial_id(subpath) for subpath in keep()}
        for name in found:
            if name.partition(".")[0] not in kept:
                self.folder.unlink(name, missing_ok=True)


def _ranges(value: object, size: int) -> list[tuple[int, int, str]]:
    """The journal's ranges, checked: inside the file, not overlapping, each with a sha256."""
    if not isinstance(value, list):
        raise ValueError("no list of ranges")
    ranges = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3):
            raise ValueError("a range that is not [start, length, sha256]")
        start, length, sha256 = item
        if not (type(start) is int and type(length) is int and isinstance(sha256, str)):
            raise ValueError("a range that is not [start, length, sha256]")
        if start < 0 or length <= 0 or start + length > size or len(sha256) != 64:
            raise ValueError(f"a range outside the file: {item}")
        ranges.append((start, length, sha256))
    ranges.sort()
    for (start, length, _), (following, _, _) in itertools.pairwise(ranges):
        if start + length > following:
            raise ValueError("overlapping ranges")
    return ranges


def _overlap(one: tuple[int, int, str], other: tuple[int, int, str]) -> bool:
    return one[0] < other[0] + other[1] and other[0] < one[0] + one[1]


def _hash_range(fd: int, start: int, length: int) -> str:
    """The sha256 of ``length`` bytes of an open file from ``start`` (short: another digest)."""
    digest, position, end = hashlib.sha256(), start, start + length
    while position < end:
        chunk = pread(fd, min(BUFFER_SIZE, end - position), position)
        if not chunk:
            break
        digest.update(chunk)
        position += len(chunk)
    return digest.hexdigest()

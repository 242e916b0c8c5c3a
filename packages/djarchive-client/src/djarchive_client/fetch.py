"""Fetch one file of a revision and put it in place: whole or as byte ranges, verified.

A file streams into a temporary file in this run's folder under ``TARGET/.djarchive/tmp/``
while its sha256 is computed; only a file whose size and hash match the manifest is renamed
into place (:meth:`LocalCopy.place`, which opens every folder on the way at that moment and
refuses links). Small files are one GET each. A large one is cut into byte ranges fetched by
several workers and written at their offsets into its partial file, kept across runs with a
journal of what was written (:mod:`djarchive_client.partial`): a run after an interruption
fetches only the bytes still missing. The first answer states the object's real size, and only
when it matches the manifest is a new file pre-allocated. The hash follows a cursor
through the file: bytes arriving at the cursor are hashed from memory, bytes written ahead of
it are read back when it gets there. A server that ignores ``Range`` gets the file as one
stream. Each GET (a whole file, or one range) runs on a source :class:`~djarchive_client.sources.Sources`
chooses, the store or a mirror, and on another when it fails; the bytes each source served are
counted per file. Scheduling is :mod:`djarchive_client.schedule`'s.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from djarchive_common.errors import Cancelled, DJArchiveError, IntegrityError, LocalStorageError
from djarchive_common.errors import RangesIgnored as RangesIgnored  # download imports it from here
from djarchive_common.layout import object_key
from djarchive_common.localfs import pread, pwrite
from djarchive_common.manifest import Entry
from djarchive_common.store import Store
from djarchive_common.transfer import Progress
from djarchive_common.transport import Stream
from djarchive_common.verified import Source, check_sha256, check_size, opened, receive

from .localcopy import LocalCopy, storage_error
from .partial import Partial
from .sources import Sources

if TYPE_CHECKING:
    from djarchive_common.curl import CurlEngine

__all__ = ["WRITE_SIZE", "Fetcher", "LargeFile", "Range", "WholeFile"]

WRITE_SIZE = 64 * 1024  # bytes per write system call (see _write_all)


def _write_all(fd: int, data: bytes | bytearray, position: int | None = None) -> None:
    """Write all of ``data`` (at ``position``, if given), at most WRITE_SIZE per system call.

    The kernel sizes new page-cache folios by the write, and on the benchmark VM large ones
    cost several times the kernel time (1 GiB: 0.3 s in 64 KiB writes, 1.3-2.3 s in 256 KiB
    ones; see benchmarks/README.md). One write may also take only part of what it is given.
    """
    view = memoryview(data)
    while view:
        chunk = view[:WRITE_SIZE]
        written = os.write(fd, chunk) if position is None else pwrite(fd, chunk, position)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no byte written")
        view = view[written:]
        if position is not None:
            position += written


def _write_pieces(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` one after the other, gathered by ``writev`` into system calls of at most
    WRITE_SIZE (as :func:`_write_all`), without joining them first."""
    group: list[bytes] = []
    size = 0
    for piece in [*pieces, b""]:
        if group and (not piece or size + len(piece) > WRITE_SIZE):
            written = os.writev(fd, group) if hasattr(os, "writev") else 0
            if written < size:  # a short write (or no writev): the rest the plain way
                _write_all(fd, b"".join(group)[written:])
            group, size = [], 0
        if piece:
            group.append(piece)
            size += len(piece)


class WholeFile:
    """A file fetched with one GET and hashed as it streams; ``resumable``: a large file written
    into a partial file with its journal, so that a later run resumes it (by ranges)."""

    __slots__ = ("entry", "resumable")

    def __init__(self, entry: Entry, resumable: bool = False):
        self.entry, self.resumable = entry, resumable


class LargeFile:
    """A large file fetched as byte ranges into one temporary file."""

    def __init__(self, entry: Entry, part_size: int):
        self.entry, self.part_size = entry, part_size
        self.ranges = [
            (offset, min(part_size, entry.size - offset)) for offset in range(0, entry.size, part_size)
        ]
        self.written = [0] * len(self.ranges)  # bytes in place from the start of each range
        self.remaining = len(self.ranges)
        self.cursor = 0  # bytes hashed so far
        self.digest = hashlib.sha256()
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.partial: Partial | None = None  # the file being written, with its journal
        self.base = [offset for offset, _ in self.ranges]  # where this run's bytes of each range start
        self.error: BaseException | None = None
        self.served: dict[str, int] = {}  # bytes in place, by the source that sent them

    def units(self) -> list[Range]:
        """One unit of work per byte range."""
        return [Range(self, index) for index in range(len(self.ranges))]


class Range:
    """One byte range of a large file."""

    __slots__ = ("index", "job")

    def __init__(self, job: LargeFile, index: int):
        self.job, self.index = job, index

    @property
    def entry(self) -> Entry:
        return self.job.entry


class Fetcher:
    """Fetches files of one revision into a local copy, each verified before it is placed.
    ``sources`` choose where each GET goes (default: ``store`` alone, under its retry policy);
    :meth:`served_by` says which sources sent a placed file's bytes."""

    def __init__(
        self,
        store: Store,
        dataset: str,
        revision: str,
        local: LocalCopy,
        progress: Progress,
        *,
        buffer_size: int,
        keys: Mapping[str, str] | None = None,
        sources: Sources | None = None,
    ):
        self.store = store
        self.sources = sources or Sources([store], store.options.retry)
        self.dataset = dataset
        self.revision = revision
        self.local = local
        self.progress = progress
        self.buffer_size = buffer_size
        self.keys = dict(keys or {})  # {local subpath: the revision's subpath} of renamed files
        self._stop = threading.Event()
        self._streams: set[Stream] = set()
        self._streams_lock = threading.Lock()
        self._partials: set[Partial] = set()  # the partial files open in this run
        self._served: dict[str, dict[str, int]] = {}
        self.engine: CurlEngine | None = None  # the libcurl engine of a batch (djarchive_client.batch)

    def served_by(self, subpath: str) -> dict[str, int]:
        """The bytes of the placed file ``subpath`` by the source that sent them (once: forgotten
        after this call)."""
        with self._streams_lock:
            return self._served.pop(subpath, {})

    def count_served(self, subpath: str, served: dict[str, int]) -> None:
        with self._streams_lock:
            self._served[subpath] = served

    def key(self, entry: Entry) -> str:
        return object_key(self.dataset, self.revision, self.keys.get(entry.subpath, entry.subpath))

    def stop(self) -> None:
        """Stop every transfer now: open connections are shut down, workers leave; the journals
        of the partial files say what they hold, for the next run."""
        self._stop.set()
        self.sources.stop()
        if self.engine is not None:
            self.engine.cancel()
        with self._streams_lock:
            streams = list(self._streams)
            partials = list(self._partials)
        for stream in streams:
            stream.abort()
        for partial in partials:
            partial.flush()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Cancelled("download stopped")

    @contextmanager
    def _stream(
        self, source: Source, entry: Entry, key: str, offset: int = 0, length: int = 0
    ) -> Iterator[Stream]:
        """A GET from ``source`` of ``entry``'s object at ``key`` (a byte range when ``length``), known to
        :meth:`stop`, opened by :func:`~djarchive_common.verified.opened`: the object's real size
        is checked against the manifest (and a range answered whole is RangesIgnored) before any
        byte is used or any room allocated."""
        self._check_stop()
        with opened(
            source,
            key,
            offset=offset,
            length=length,
            size=entry.size,
            what=f"downloading {key}",
            label="",
        ) as stream:
            with self._streams_lock:
                self._streams.add(stream)
            try:
                self._check_stop()
                yield stream
            finally:
                with self._streams_lock:
                    self._streams.discard(stream)

    def _receive(
        self, stream: Stream, start: int, end: int, write: Callable[[bytes, int], None], *, keep: bool = False
    ) -> int:
        """Pass each chunk of ``stream`` and its position to ``write`` (nothing past ``end``);
        return the bytes received. On an error the progress bar takes them back, unless ``keep``
        (they stay in place)."""
        chunks = stream.chunks(self.buffer_size)
        return receive(chunks, write, start=start, end=end, what="", advance=self.progress.advance, keep=keep)

    def write(self, fd: int, data: bytes | bytearray, position: int | None = None) -> None:
        """Write ``data`` to the temporary file ``fd`` (at ``position``); a failure is the disk's."""
        try:
            _write_all(fd, data, position)
        except OSError as exc:
            raise storage_error(exc, self.local.root / ".djarchive" / "tmp") from None

    def write_pieces(self, fd: int, pieces: list[bytes]) -> None:
        """Write ``pieces`` in order at the temporary file's position; a failure is the disk's."""
        try:
            _write_pieces(fd, pieces)
        except OSError as exc:
            raise storage_error(exc, self.local.root / ".djarchive" / "tmp") from None

    def allocate(self, fd: int, entry: Entry) -> None:
        """Reserve the room of ``entry`` in its temporary file: a full disk fails now, not halfway."""
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, entry.size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # the file system cannot
                    raise storage_error(exc, self.local.destination(entry.subpath)) from None

    # -- one file in one stream --------------------------------------------------------

    def fetch_whole(self, entry: Entry) -> os.stat_result:
        """Fetch ``entry`` in one GET (on another source, or again, as :class:`Sources` allows),
        verify it and place it; return the placed file's status."""

        def attempt(source: Source) -> os.stat_result:
            key = self.key(entry)
            part, fd = self.local.new_part()
            placed = False
            try:
                digest = hashlib.sha256()

                def write(data: bytes, position: int) -> None:
                    self._check_stop()
                    digest.update(data)
                    self.write(fd, data)

                with self._stream(source, entry, key) as stream:
                    received = self._receive(stream, 0, entry.size, write)
                try:
                    check_size("", received, entry.size)
                    check_sha256("", digest.hexdigest(), entry.sha256)
                except DJArchiveError:
                    self.progress.advance(-received)
                    raise
                status = os.fstat(fd)
                os.close(fd)
                fd = -1
                self.local.place(part, entry.subpath)
                placed = True
                self.count_served(entry.subpath, {source.name: entry.size})
                return status
            finally:
                if fd >= 0:
                    os.close(fd)
                if not placed:
                    self.local.discard(part)

        return self.sources.call(attempt, f"downloading {entry.subpath}", size=entry.size)

    # -- one range of a large file -----------------------------------------------------

    def fetch_range(self, unit: Range) -> os.stat_result | None:
        """Fetch one range; when this call finished the whole file, place it and return its
        status (or raise its error); None otherwise."""
        job = unit.job
        try:
            if job.error is None:
                offset, length = job.ranges[unit.index]
                self.sources.call(
                    lambda source: self._fetch_range_once(job, unit.index, source),
                    f"downloading {job.entry.subpath} bytes {offset}-{offset + length - 1}",
                    size=length,
                    ranged=True,
                )
        except BaseException as exc:
            with job.lock:
                job.error = job.error or exc
        with job.lock:
            job.remaining -= 1
            last = job.remaining == 0
        return self.finish_large(job) if last else None

    def resume(self, job: LargeFile) -> Partial:
        """The job's partial file, found by the first range to run: what an earlier run wrote
        (checked) counts as written, and only the rest of each range is fetched."""
        with job.lock:
            if job.partial is None:
                partial = self.local.partials.resume(job.entry)
                for index, (offset, length) in enumerate(job.ranges):
                    job.written[index] = partial.present(offset, length)
                    job.base[index] = offset + job.written[index]
                job.fd = partial.fd
                job.partial = partial
                with self._streams_lock:
                    self._partials.add(partial)
                self.progress.advance(sum(job.written))
            return job.partial

    def new_partial(self, entry: Entry) -> Partial:
        """A new partial file for ``entry``, fetched in one stream (one an earlier run left is
        replaced); :meth:`stop` saves its journal."""
        partial = self.local.partials.fresh(entry)
        with self._streams_lock:
            self._partials.add(partial)
        return partial

    def forget_partial(self, partial: Partial) -> None:
        """A partial file of this run is placed, kept or discarded: :meth:`stop` leaves it be."""
        with self._streams_lock:
            self._partials.discard(partial)

    def open_large(self, job: LargeFile) -> int:
        """The job's file, created and pre-allocated by the first range to arrive when no earlier
        run left one (the object's size is known to match the manifest by then)."""
        with job.lock:
            if job.fd is None:
                job.fd = job.partial.open()  # type: ignore[union-attr]
            return job.fd

    def _fetch_range_once(self, job: LargeFile, index: int, source: Source) -> None:
        """Fetch what the range still lacks. A retry resumes where the last attempt stopped: bytes
        in place may already be hashed, and must never be overwritten by bytes that are not."""
        offset, length = job.ranges[index]
        end = offset + length
        partial = self.resume(job)
        with job.lock:
            start = offset + job.written[index]
        if start >= end:
            return

        key = self.key(job.entry)
        name = source.name
        with self._stream(source, job.entry, key, start, end - start) as stream:
            fd = self.open_large(job)

            def write(data: bytes, position: int) -> None:
                self._check_stop()
                self.write(fd, data, position)
                with job.lock:
                    job.written[index] = position + len(data) - offset
                    job.served[name] = job.served.get(name, 0) + len(data)
                    if position <= job.cursor < position + len(data):
                        job.digest.update(memoryview(data)[job.cursor - position :])
                        job.cursor = position + len(data)
                    self.catch_up(job, limit=self.buffer_size * 4)
                partial.wrote(job.base[index], position, data)

            received = self._receive(stream, start, end, write, keep=True)
        check_size(f"bytes {start}-{end - 1}", received, end - start)

    def catch_up(self, job: LargeFile, limit: int | None = None) -> None:
        """Hash bytes already in the file just past the cursor (at most ``limit``); hold job.lock."""
        budget = job.entry.size if limit is None else limit
        while budget > 0 and job.cursor < job.entry.size:
            index = job.cursor // job.part_size
            available = job.ranges[index][0] + job.written[index]
            if available <= job.cursor:
                return
            size = min(self.buffer_size, available - job.cursor, budget)
            data = pread(job.fd, size, job.cursor)  # type: ignore[arg-type]
            if not data:
                raise LocalStorageError(f"{job.entry.subpath}: temporary file shrank while hashing")
            job.digest.update(data)
            job.cursor += len(data)
            budget -= len(data)

    def finish_large(self, job: LargeFile) -> os.stat_result:
        """Verify the whole file and place it; on failure keep it for the next run, unless its
        bytes are wrong (the whole file's sha256, or a server that ignored the ranges)."""
        status = None
        partial = job.partial
        try:
            if job.error is None and partial is not None:
                with job.lock:
                    self.catch_up(job)
                check_size("", job.cursor, job.entry.size)
                check_sha256("", job.digest.hexdigest(), job.entry.sha256)
                status = os.fstat(job.fd)  # type: ignore[arg-type]
                job.fd = None
                partial.place(self.local.files)
                self.count_served(job.entry.subpath, job.served)
        except BaseException as exc:
            job.error = exc
        finally:
            job.fd = None
            if partial is not None:
                self.forget_partial(partial)
                if isinstance(job.error, (IntegrityError, RangesIgnored)):
                    partial.discard()
                elif job.error is not None:
                    partial.close()
        if job.error is not None:
            raise job.error
        return status  # type: ignore[return-value]

"""Fetch one file of a revision and put it in place: whole or as byte ranges, verified.

A file streams into a temporary file beside its destination while its sha256 is
computed; only a file whose size and hash match the manifest is renamed into place.
Small files are one GET each; a large one is cut into byte ranges, fetched by several
workers, written at their offsets, and hashed in order as the ranges complete (a cursor
follows the file: bytes arriving at the cursor are hashed from memory, bytes written ahead
of it are read back when it gets there). Scheduling is :mod:`djarchive_client.download`'s.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from djarchive_common.errors import DJArchiveError, IntegrityError, LocalStorageError, TransferError
from djarchive_common.layout import object_key
from djarchive_common.manifest import Entry
from djarchive_common.store import Store
from djarchive_common.transfer import Progress, retry_call

from .localcopy import LocalCopy, storage_error

__all__ = ["WRITE_SIZE", "Cancelled", "Fetcher", "LargeFile", "Range", "WholeFile"]

WRITE_SIZE = 64 * 1024  # bytes per write system call (see _write_all)


def _create_part(path: Path) -> int:
    """Create a temporary download file and return its descriptor, explaining failures.

    A bare descriptor, not a Python file object: one system call per write and none to set
    up buffering, which counts when thousands of small files are fetched by many threads.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise storage_error(exc, path) from None


def _write_all(fd: int, data: bytes, position: int | None = None) -> None:
    """Write all of ``data`` (at ``position``, if given), at most WRITE_SIZE per system call.

    The kernel sizes new page-cache folios by the write, and on the benchmark VM large ones
    cost several times the kernel time (1 GiB: 0.3 s in 64 KiB writes, 1.3-2.3 s in 256 KiB
    ones; see benchmarks/README.md). One write may also take only part of what it is given.
    """
    view = memoryview(data)
    while view:
        chunk = view[:WRITE_SIZE]
        written = os.write(fd, chunk) if position is None else os.pwrite(fd, chunk, position)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no byte written")
        view = view[written:]
        if position is not None:
            position += written


@contextmanager
def _local_writes(destination: Path) -> Iterator[None]:
    """Turn a local write failure (full disk, size limit) into a clear project error."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, destination) from None


class Cancelled(DJArchiveError):
    """The download is being stopped; workers leave quickly and clean up."""


class WholeFile:
    """A file fetched with one GET and hashed as it streams."""

    __slots__ = ("destination", "entry")

    def __init__(self, entry: Entry, destination: Path):
        self.entry, self.destination = entry, destination


class LargeFile:
    """A large file fetched as byte ranges into a preallocated temporary file."""

    def __init__(self, entry: Entry, destination: Path, part_size: int):
        self.entry, self.destination, self.part_size = entry, destination, part_size
        self.ranges = [
            (offset, min(part_size, entry.size - offset)) for offset in range(0, entry.size, part_size)
        ]
        self.written = [0] * len(self.ranges)  # bytes in place from the start of each range
        self.remaining = len(self.ranges)
        self.cursor = 0  # bytes hashed so far
        self.digest = hashlib.sha256()
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.part: Path | None = None
        self.error: BaseException | None = None

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

    @property
    def destination(self) -> Path:
        return self.job.destination


class Fetcher:
    """Fetches files of one revision into a local copy, each verified before it is placed."""

    def __init__(
        self,
        store: Store,
        dataset: str,
        revision: str,
        local: LocalCopy,
        progress: Progress,
        *,
        buffer_size: int,
    ):
        self.store = store
        self.dataset = dataset
        self.revision = revision
        self.local = local
        self.progress = progress
        self.buffer_size = buffer_size
        self.abort = threading.Event()

    def key(self, entry: Entry) -> str:
        return object_key(self.dataset, self.revision, entry.subpath)

    def _stream(self, key: str, offset: int, length: int, write: Callable[[bytes, int], None]) -> int:
        """GET ``length`` bytes of ``key`` from ``offset`` (0: all), passing each chunk and its
        position to ``write``; return the number of bytes received."""
        position = offset
        try:
            with self.store.stream(key, offset=offset, length=length) as stream:
                for data in stream.chunks(self.buffer_size):
                    if self.abort.is_set():
                        raise Cancelled("download stopped")
                    write(data, position)
                    position += len(data)
                    self.progress.advance(len(data))
        except BaseException:
            self.progress.advance(offset - position)
            raise
        return position - offset

    @staticmethod
    def _check_content(entry: Entry, size: int, sha256: str) -> None:
        if size != entry.size:
            raise TransferError(f"received {size} bytes, the manifest says {entry.size}", retryable=True)
        if sha256 != entry.sha256:
            raise IntegrityError(
                f"sha256 {sha256} does not match the manifest's {entry.sha256}", retryable=True
            )

    # -- one file in one stream --------------------------------------------------------

    def fetch_whole(self, entry: Entry, destination: Path) -> None:
        """Fetch ``entry`` in one GET (retried as the policy allows) and place it."""
        key = self.key(entry)

        def attempt() -> None:
            part = self.local.part_path(destination)
            digest = hashlib.sha256()
            try:
                fd = _create_part(part)

                def write(data: bytes, position: int) -> None:
                    if position + len(data) > entry.size:  # stop before a huge object fills the disk
                        raise IntegrityError(
                            f"the object is larger than the {entry.size} bytes the manifest says",
                            retryable=True,
                        )
                    digest.update(data)
                    with _local_writes(destination):
                        _write_all(fd, data)

                try:
                    received = self._stream(key, 0, 0, write)
                finally:
                    with _local_writes(destination):
                        os.close(fd)
                try:
                    self._check_content(entry, received, digest.hexdigest())
                except DJArchiveError:
                    self.progress.advance(-received)
                    raise
                os.replace(part, destination)
            except BaseException:
                part.unlink(missing_ok=True)
                raise

        retry_call(attempt, f"downloading {entry.subpath}", self.store.options.retry)

    # -- one range of a large file -----------------------------------------------------

    def fetch_range(self, unit: Range) -> bool:
        """Fetch one range; return True when this call finished the whole file (and placed it,
        or raised its error)."""
        job = unit.job
        try:
            if job.error is None:
                self._open_large(job)
                offset, length = job.ranges[unit.index]
                retry_call(
                    lambda: self._fetch_range_once(job, unit.index),
                    f"downloading {job.entry.subpath} bytes {offset}-{offset + length - 1}",
                    self.store.options.retry,
                )
        except BaseException as exc:
            with job.lock:
                job.error = job.error or exc
        with job.lock:
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self._finish_large(job)
        return last

    def _open_large(self, job: LargeFile) -> None:
        with job.lock:
            if job.fd is not None:
                return
            part = self.local.part_path(job.destination)
            fd = _create_part(part)
            job.fd, job.part = fd, part
            try:
                os.posix_fallocate(fd, 0, job.entry.size)  # a full disk fails now, not halfway
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # the file system cannot preallocate
                    raise storage_error(exc, job.destination) from None

    def _fetch_range_once(self, job: LargeFile, index: int) -> None:
        offset, length = job.ranges[index]
        end = offset + length

        def write(data: bytes, position: int) -> None:
            if position + len(data) > end:
                raise TransferError(f"{job.entry.subpath}: the server sent more than the range asked for")
            with _local_writes(job.destination):
                _write_all(job.fd, data, position)  # type: ignore[arg-type]
            with job.lock:
                job.written[index] = position + len(data) - offset
                if position <= job.cursor < position + len(data):
                    job.digest.update(memoryview(data)[job.cursor - position :])
                    job.cursor = position + len(data)
                self._catch_up(job, limit=self.buffer_size * 4)

        received = self._stream(self.key(job.entry), offset, length, write)
        if received != length:
            self.progress.advance(-received)
            raise TransferError(
                f"short read: {received} of {length} bytes at offset {offset}", retryable=True
            )

    def _catch_up(self, job: LargeFile, limit: int | None = None) -> None:
        """Hash bytes already in the file just past the cursor (at most ``limit``); hold job.lock."""
        budget = job.entry.size if limit is None else limit
        while budget > 0 and job.cursor < job.entry.size:
            index = job.cursor // job.part_size
            available = job.ranges[index][0] + job.written[index]
            if available <= job.cursor:
                return
            size = min(self.buffer_size, available - job.cursor, budget)
            data = os.pread(job.fd, size, job.cursor)  # type: ignore[arg-type]
            if not data:
                raise LocalStorageError(f"{job.destination}: temporary file shrank while hashing")
            job.digest.update(data)
            job.cursor += len(data)
            budget -= len(data)

    def _finish_large(self, job: LargeFile) -> None:
        try:
            if job.error is None:
                with job.lock:
                    self._catch_up(job)
                self._check_content(job.entry, job.cursor, job.digest.hexdigest())
                os.close(job.fd)  # type: ignore[arg-type]
                job.fd = None
                os.replace(job.part, job.destination)  # type: ignore[arg-type]
        except BaseException as exc:
            job.error = exc
        finally:
            if job.fd is not None:
                os.close(job.fd)
                job.fd = None
            if job.error is not None and job.part is not None:
                job.part.unlink(missing_ok=True)
        if job.error is not None:
            raise job.error

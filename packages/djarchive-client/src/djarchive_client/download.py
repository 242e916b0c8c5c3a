"""Download one revision into TARGET: planned from the manifest, verified byte for byte.

Every file streams into a temporary file beside its destination while its sha256 is
computed; only a file whose size and hash match the manifest is renamed into place.
Small files are one GET each; large ones are fetched as parallel byte ranges written
at their offsets and hashed in order as the ranges complete. All transfers share one
worker pool and one connection pool. Files already present and verified are skipped.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from djarchive_common.errors import (
    DJArchiveError,
    IntegrityError,
    LocalStorageError,
    PartialFailureError,
    TransferError,
)
from djarchive_common.layout import object_key
from djarchive_common.manifest import Entry, Manifest
from djarchive_common.store import Store
from djarchive_common.transfer import (
    DEFAULT_WORKERS,
    Progress,
    Slots,
    files,
    hash_file,
    human_bytes,
    retry_call,
    run_parallel,
)

from .localcopy import LocalCopy, check_not_reserved, select, storage_error

__all__ = ["DownloadOptions", "DownloadSummary", "download_revision"]

log = logging.getLogger("djarchive_client")
MiB = 1024 * 1024
RECORD_SAVE_SECONDS = 2.0
WRITE_SIZE = 64 * 1024  # bytes per write system call (see _write_all)
ROUNDS = 3  # each round retries a file as the retry policy allows


@dataclass(frozen=True)
class DownloadOptions:
    """Tuning for one download."""

    jobs: int = DEFAULT_WORKERS  # transfers at once; small files get up to twice as many (Slots)
    part_size: int = 64 * MiB  # the byte range of one request for a large file
    multipart_threshold: int = 64 * MiB  # files at least this big are fetched in ranges
    buffer_size: int = 256 * 1024  # per read; small, so that many workers stay in little memory
    recheck: bool = False  # hash every local file again instead of trusting the record


@dataclass
class DownloadSummary:
    """What a download did. ``failed`` maps subpaths to the reason they failed."""

    dataset: str
    revision: str
    target: str
    files: int = 0
    bytes: int = 0
    fetched_files: int = 0
    fetched_bytes: int = 0
    present_files: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False
    planned: list[Entry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected file is in place and verified."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "revision": self.revision,
            "target": self.target,
            "files": self.files,
            "bytes": self.bytes,
            "fetched_files": self.fetched_files,
            "fetched_bytes": self.fetched_bytes,
            "present_files": self.present_files,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
            "ok": self.ok,
        }
        if self.dry_run:
            data["planned"] = [{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in self.planned]
        return data

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}"
        if self.dry_run:
            return (
                f"would download {len(self.planned)} of {files(self.files)} of {name} "
                f"({human_bytes(sum(e.size for e in self.planned))}) into {self.target}; "
                f"{self.present_files} already present"
            )
        text = (
            f"{name}: {files(self.files)} ({human_bytes(self.bytes)}) in {self.target}; "
            f"fetched {self.fetched_files} ({human_bytes(self.fetched_bytes)}), "
            f"{self.present_files} already present"
        )
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        rate = self.fetched_bytes / self.seconds if self.seconds > 0 else 0
        return f"{text} in {self.seconds:.1f} s" + (f" ({human_bytes(rate)}/s)" if self.fetched_bytes else "")


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


class _Cancelled(DJArchiveError):
    """The download is being stopped; workers leave quickly and clean up."""


class _Whole:
    """A file fetched with one GET and hashed as it streams."""

    __slots__ = ("destination", "entry")

    def __init__(self, entry: Entry, destination: Path):
        self.entry, self.destination = entry, destination


class _LargeFile:
    """A large file fetched as byte ranges into a preallocated temporary file.

    The digest follows a cursor through the file: a chunk arriving at the cursor is hashed
    from memory, bytes written ahead of it are read back from the file when it gets there.
    """

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


class _Range:
    """One byte range of a large file."""

    __slots__ = ("index", "job")

    def __init__(self, job: _LargeFile, index: int):
        self.job, self.index = job, index

    @property
    def entry(self) -> Entry:
        return self.job.entry

    @property
    def destination(self) -> Path:
        return self.job.destination


def _interleave(groups: Sequence[Sequence[_Range]]) -> list[_Range]:
    """Ranges of several large files in turn, so that workers spread over the files."""
    longest = max((len(group) for group in groups), default=0)
    return [group[index] for index in range(longest) for group in groups if index < len(group)]


class _Downloader:
    def __init__(
        self,
        store: Store,
        dataset: str,
        revision: str,
        local: LocalCopy,
        options: DownloadOptions,
        progress: Progress,
    ):
        self.store = store
        self.dataset = dataset
        self.revision = revision
        self.local = local
        self.options = options
        self.progress = progress
        self.abort = threading.Event()

    def key(self, entry: Entry) -> str:
        return object_key(self.dataset, self.revision, entry.subpath)

    def _check_abort(self) -> None:
        if self.abort.is_set():
            raise _Cancelled("download stopped")

    def _stream(self, key: str, offset: int, length: int, write: Callable[[bytes, int], None]) -> int:
        """GET ``length`` bytes of ``key`` from ``offset`` (0: all), passing each chunk and its
        position to ``write``; return the number of bytes received."""
        response = self.store.open(key, offset=offset, length=length)
        position = offset
        try:
            with self.store.translated(f"downloading {key}"):
                while True:
                    self._check_abort()
                    data = response.read(self.options.buffer_size, decode_content=False)
                    if not data:
                        break
                    write(data, position)
                    position += len(data)
                    self.progress.advance(len(data))
            response.release_conn()
        except BaseException:
            self.progress.advance(offset - position)
            raise
        finally:
            response.close()
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

    def fetch_range(self, unit: _Range) -> bool:
        """Fetch one range; return True when this call finished the whole file."""
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

    def _open_large(self, job: _LargeFile) -> None:
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

    def _fetch_range_once(self, job: _LargeFile, index: int) -> None:
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
                self._catch_up(job, limit=self.options.buffer_size * 4)

        received = self._stream(self.key(job.entry), offset, length, write)
        if received != length:
            self.progress.advance(-received)
            raise TransferError(
                f"short read: {received} of {length} bytes at offset {offset}", retryable=True
            )

    def _catch_up(self, job: _LargeFile, limit: int | None = None) -> None:
        """Hash bytes already in the file just past the cursor (at most ``limit``); hold job.lock."""
        budget = job.entry.size if limit is None else limit
        while budget > 0 and job.cursor < job.entry.size:
            index = job.cursor // job.part_size
            available = job.ranges[index][0] + job.written[index]
            if available <= job.cursor:
                return
            size = min(self.options.buffer_size, available - job.cursor, budget)
            data = os.pread(job.fd, size, job.cursor)  # type: ignore[arg-type]
            if not data:
                raise LocalStorageError(f"{job.destination}: temporary file shrank while hashing")
            job.digest.update(data)
            job.cursor += len(data)
            budget -= len(data)

    def _finish_large(self, job: _LargeFile) -> None:
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

    # -- the run -----------------------------------------------------------------------

    def run(self, todo: Sequence[tuple[Entry, Path]], summary: DownloadSummary) -> None:
        """Fetch every (entry, destination); what failed for a transient reason gets up to two more rounds."""
        rounds = min(ROUNDS, self.store.options.retry.attempts)
        for round_number in range(1, rounds + 1):
            retry_later = self._round(todo, summary, final=round_number == rounds, ranges=round_number == 1)
            if not retry_later:
                return
            pause = self.store.options.retry.delay(round_number)
            log.info("retrying %d files in %.1f s", len(retry_later), pause)
            time.sleep(pause)
            todo = retry_later

    def _plan(
        self, todo: Sequence[tuple[Entry, Path]], summary: DownloadSummary, ranges: bool
    ) -> list[_Whole | _Range]:
        """Create the folders (each once) and cut the work into units: whole files, then ranges."""
        failed_folders: dict[Path, str] = {}
        for folder in sorted({destination.parent for _, destination in todo}):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                failed_folders[folder] = str(storage_error(exc, folder))
        wholes: list[_Whole | _Range] = []
        large: list[list[_Range]] = []
        for entry, destination in todo:
            if destination.parent in failed_folders:
                summary.failed[entry.subpath] = failed_folders[destination.parent]
                continue
            self.local.forget(entry.subpath)
            if ranges and entry.size >= self.options.multipart_threshold:
                job = _LargeFile(entry, destination, self.options.part_size)
                large.append([_Range(job, index) for index in range(len(job.ranges))])
            else:
                wholes.append(_Whole(entry, destination))
        wholes.sort(key=lambda unit: unit.entry.size, reverse=True)
        return _interleave(large) + wholes  # the largest first: the shortest tail

    def _round(
        self, todo: Sequence[tuple[Entry, Path]], summary: DownloadSummary, *, final: bool, ranges: bool
    ) -> list[tuple[Entry, Path]]:
        """One pass over ``todo``. After a first pass, large files come as one stream, hashed as
        it arrives: a bad range cannot be told from the others, a bad stream is retried in place."""

        slots = Slots(self.options.jobs, self.store.options.pool_size)

        def fetch(unit: _Whole | _Range) -> bool:
            if isinstance(unit, _Whole):
                self.fetch_whole(unit.entry, unit.destination)
                return True
            return self.fetch_range(unit)

        def work(unit: _Whole | _Range) -> bool:
            return slots.run(unit.entry.size, lambda: fetch(unit))

        retry_later: list[tuple[Entry, Path]] = []
        last_save = time.monotonic()
        try:
            for unit, finished, error in run_parallel(work, self._plan(todo, summary, ranges), slots.workers):
                entry = unit.entry
                if error is not None:
                    if isinstance(error, LocalStorageError):
                        raise error
                    # Whole files were retried in place, so they get another round only for network
                    # trouble (a corrupt object stays corrupt); a large file gets one as a whole.
                    again = isinstance(error, TransferError) or isinstance(unit, _Range)
                    if again and getattr(error, "retryable", False) and not final:
                        retry_later.append((entry, unit.destination))
                        continue
                    summary.failed[entry.subpath] = str(error)
                    log.debug("failed: %s: %s", entry.subpath, error)
                    self.progress.file_done()
                    continue
                if not finished:
                    continue
                self.local.remember(entry, unit.destination)
                summary.fetched_files += 1
                summary.fetched_bytes += entry.size
                self.progress.file_done()
                log.debug("fetched %s (%d bytes)", entry.subpath, entry.size)
                if time.monotonic() - last_save > RECORD_SAVE_SECONDS:
                    self.local.save_record()
                    last_save = time.monotonic()
        except BaseException:
            self.abort.set()
            raise
        return retry_later


def _check_present(
    local: LocalCopy,
    candidates: Sequence[tuple[Entry, Path]],
    jobs: int,
    summary: DownloadSummary,
    progress: bool = False,
) -> list[tuple[Entry, Path]]:
    """Hash local files that have the right size; return those that still need fetching."""
    need: list[tuple[Entry, Path]] = []
    to_hash: list[tuple[Entry, Path]] = []
    for entry, destination in candidates:
        try:
            status = destination.lstat()
        except OSError:
            need.append((entry, destination))
            continue
        if stat.S_ISREG(status.st_mode) and status.st_size == entry.size:
            to_hash.append((entry, destination))
        else:
            need.append((entry, destination))
    total = sum(entry.size for entry, _ in to_hash)
    with Progress(total, len(to_hash), enabled=progress and bool(to_hash), description="checking") as bar:

        def check(item: tuple[Entry, Path]) -> tuple[int, str]:
            result = hash_file(item[1])
            bar.advance(item[0].size)
            bar.file_done()
            return result

        for (entry, destination), result, error in run_parallel(check, to_hash, jobs):
            if error is None and result is not None and result[1] == entry.sha256:
                local.remember(entry, destination)
                summary.present_files += 1
            else:
                need.append((entry, destination))
    return need


def download_revision(
    store: Store,
    manifest: Manifest,
    dataset: str,
    revision: str,
    target: str | os.PathLike[str],
    *,
    create_target: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    options: DownloadOptions | None = None,
    progress: bool = False,
    dry_run: bool = False,
) -> DownloadSummary:
    """Download the selected files of a revision into ``target``; raise if any file failed."""
    options = options or DownloadOptions()
    started = time.monotonic()
    selected = select(manifest, include, exclude)
    summary = DownloadSummary(
        dataset,
        revision,
        str(target),
        files=len(selected),
        bytes=sum(e.size for e in selected),
        dry_run=dry_run,
    )
    check_not_reserved(entry.subpath for entry in selected)
    if dry_run and not Path(target).exists():
        summary.planned = list(selected)
        return summary
    local = LocalCopy(target, create=create_target)
    destinations = local.check_destinations(selected)  # refuses unsafe paths before any write

    def still_needed() -> list[tuple[Entry, Path]]:
        """What is not verified by the record (or everything, with recheck) nor by hashing."""
        unverified = [
            (entry, destinations[entry.subpath])
            for entry in selected
            if options.recheck or not local.is_verified(entry, destinations[entry.subpath])
        ]
        summary.present_files = len(selected) - len(unverified)
        return _check_present(local, unverified, options.jobs, summary, progress)

    if dry_run:  # the same checks as a download, hashes included, but nothing is written
        local.load_record()
        summary.planned = [entry for entry, _ in still_needed()]
        return summary
    with local:
        local.sweep_parts(path.parent for path in destinations.values())
        todo = still_needed()
        total = sum(entry.size for entry, _ in todo)
        with Progress(
            total, len(todo), enabled=progress and bool(todo), description=f"{dataset} {revision}"
        ) as bar:
            _Downloader(store, dataset, revision, local, options, bar).run(todo, summary)
    summary.seconds = time.monotonic() - started
    log.debug("%s", summary)
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(summary.files)} of {dataset} {revision} failed to download",
            summary.failed,
            summary,
        )
    return summary

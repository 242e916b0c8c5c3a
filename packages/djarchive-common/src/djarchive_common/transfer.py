"""Transfer helpers shared by downloads and uploads: retries, a worker pool, hashing, progress.

Where retries happen, once for the whole tool:

* **urllib3** reconnects once when a pooled keep-alive connection turns out to be closed
  (``Store``'s pool, ``connect=1``); that is part of one attempt, not an attempt of its own.
* **One operation, one budget**: every store call (a listing page, a stat, a manifest read, a
  PUT, one GET of a file or of one byte range) runs under :func:`retry_call` with a
  :class:`RetryPolicy`: at most ``attempts`` (5) tries for retryable errors (connection reset,
  timeout, 5xx and SlowDown, short read, hash mismatch), ``unreachable_attempts`` (3) when no
  connection can be made at all, with exponential backoff and jitter. Nothing retries around it.
* **One exception, in the download**: a file fetched as parallel byte ranges that fails a check
  with a retryable IntegrityError (an assembled sha256 that is wrong cannot say which range was
  bad; a range of the wrong size may be a proxy's doing) is fetched once more as one stream (one
  more operation). So a small file gets at most 5 GETs, a file of ``n`` ranges at most
  ``5 n + 5``.

Every size and sha256 check is :mod:`djarchive_common.verified`'s: a mismatch is a retryable
IntegrityError, a failure to get bytes at all a TransferError.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import DJArchiveError, EndpointUnreachableError

if TYPE_CHECKING:
    from .events import Events

__all__ = [
    "BUFFER_SIZE",
    "DEFAULT_WORKERS",
    "MAX_JOBS",
    "SMALL_FILE",
    "Progress",
    "RetryPolicy",
    "Slots",
    "back_off",
    "hash_file",
    "hash_files",
    "hash_jobs",
    "job_count",
    "map_parallel",
    "retry_call",
    "run_parallel",
]

T = TypeVar("T")
R = TypeVar("R")
BUFFER_SIZE = 1024 * 1024
DEFAULT_WORKERS = 32  # parallel transfers unless --jobs says otherwise
MAX_JOBS = 64  # the most --jobs accepts, and the connection pool's size
SMALL_FILE = 256 * 1024  # a file this small costs a round trip more than bandwidth or memory
STOP_WAIT = 1.0  # seconds an interrupted pool waits for its workers to leave
log = logging.getLogger("djarchive_common")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, transient failures are retried (exponential backoff, jitter)."""

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    unreachable_attempts: int = 3  # an endpoint that refuses connections fails within seconds

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): half fixed, half random."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def allows(self, attempt: int, error: BaseException) -> bool:
        """Whether another attempt may follow failed attempt number ``attempt``."""
        if not getattr(error, "retryable", False):
            return False
        limit = self.unreachable_attempts if isinstance(error, EndpointUnreachableError) else self.attempts
        return attempt < limit


def job_count(jobs: int | None) -> int:
    """``jobs`` clamped to 1..MAX_JOBS; None means the default."""
    return max(1, min(MAX_JOBS, jobs or DEFAULT_WORKERS))


def retry_call(func: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
    """Call ``func`` until it succeeds, retrying errors marked ``retryable`` as ``policy`` allows."""
    policy = policy or RetryPolicy()
    attempt = 1
    while True:
        try:
            return func()
        except DJArchiveError as error:
            if not policy.allows(attempt, error):
                raise
            back_off(policy, attempt, error, what)
            attempt += 1


def back_off(policy: RetryPolicy, attempt: int, error: BaseException, what: str) -> None:
    """Wait as ``policy`` says after failed attempt number ``attempt`` of ``what``, saying so."""
    pause = policy.delay(attempt)
    log.info("%s failed (%s); retrying in %.1f s (attempt %d)", what, error, pause, attempt + 1)
    time.sleep(pause)


class Slots:
    """Concurrency by size: at most ``jobs`` transfers of large files at once, while small files,
    bound by round trips rather than bandwidth, may keep up to twice as many workers busy
    (no more than ``limit``, the connection pool). With a ``memory`` budget, a large transfer
    also waits until the bytes it holds in memory fit in what the others leave (one that is
    larger than the whole budget runs alone)."""

    def __init__(self, jobs: int, limit: int, memory: int | None = None):
        self.workers = max(jobs, min(2 * jobs, limit))
        self._large = threading.BoundedSemaphore(jobs)
        self._memory = memory
        self._held = 0
        self._room = threading.Condition()

    def run(self, size: int, func: Callable[[], R], memory: int = 0) -> R:
        """Run ``func``, the transfer of ``size`` bytes holding ``memory`` bytes in memory; a
        large one first waits for a slot, then for room in the memory budget."""
        if size <= SMALL_FILE:
            return func()
        with self._large, self._room_for(memory):
            return func()

    @contextmanager
    def _room_for(self, memory: int) -> Iterator[None]:
        """Hold ``memory`` bytes of the budget (none without a budget) while the block runs."""
        budget = self._memory
        if not budget or memory <= 0:
            yield
            return
        with self._room:
            self._room.wait_for(lambda: self._held == 0 or self._held + memory <= budget)
            self._held += memory
        try:
            yield
        finally:
            with self._room:
                self._held -= memory
                self._room.notify_all()


def run_parallel(
    work: Callable[[T], R], items: Iterable[T], workers: int
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Run ``work`` on every item with at most ``workers`` threads; yield (item, result, error).

    Workers take items from the iterable as they become free (so memory stays bounded) and
    report on one queue. Project errors and OSErrors are yielded per item; anything else (a
    bug) stops the rest and propagates. Closing the generator stops the workers after their
    current item. One worker is the calling thread itself (no hand-over of the GIL per item).
    """
    if isinstance(items, Sized):
        workers = min(workers, len(items))
    workers = max(1, int(workers))
    if workers == 1:
        for item in items:
            try:
                result = work(item)
            except (DJArchiveError, OSError) as failure:
                yield item, None, failure
                continue
            yield item, result, None
        return
    iterator = iter(items)
    take = threading.Lock()
    reports: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()
    finished = object()

    def worker() -> None:
        try:
            while not stop.is_set():
                with take:
                    item = next(iterator, finished)
                if item is finished:
                    return
                try:
                    reports.put((item, work(item), None))  # type: ignore[arg-type]
                except BaseException as error:
                    reports.put((item, None, error))
        finally:
            reports.put(finished)

    threads = [threading.Thread(target=worker, name=f"djarchive-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    running = len(threads)
    finished_normally = False
    try:
        while running:
            try:  # a timeout, so that Ctrl-C reaches this thread while the workers are busy
                report = reports.get(timeout=0.2)
            except queue.Empty:
                continue
            if report is finished:
                running -= 1
                continue
            item, result, error = report
            if error is not None and not isinstance(error, (DJArchiveError, OSError)):
                raise error
            yield item, result, error
        finished_normally = True
    finally:
        stop.set()
        # Interrupted or stopped early: the (daemon) workers leave after their current item;
        # wait a moment for them, not for a large transfer to finish.
        deadline = None if finished_normally else time.monotonic() + STOP_WAIT
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def map_parallel(function: Callable[[T], R], items: Sequence[T], workers: int) -> dict[T, R]:
    """``{item: function(item)}`` for every item, ``workers`` at once (:func:`run_parallel`);
    the first error is raised."""
    results: dict[T, R] = {}
    for item, result, error in run_parallel(function, items, workers):
        if error is not None:
            raise error
        results[item] = result  # type: ignore[assignment]
    return results


def hash_file(path: str | os.PathLike[str] | int, buffer_size: int = BUFFER_SIZE) -> tuple[int, str]:
    """Size and sha256 hex digest of a file (a path, or a descriptor, read from where it is and
    left open), read in fixed-size chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0, closefd=not isinstance(path, int)) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


# Below this average size one thread hashes faster than several: hashlib holds the GIL for small
# updates, and threads spend their time passing it (100k files of 1-4 KiB: 1.2 s vs 6-13 s).
HASH_ALONE_BELOW = 256 * 1024


def hash_jobs(jobs: int, total_bytes: int, count: int) -> int:
    """How many threads should hash ``count`` files of ``total_bytes``: one when they are small."""
    return 1 if total_bytes < HASH_ALONE_BELOW * count else jobs


def hash_files(
    items: Sequence[T],
    hash_one: Callable[[T], tuple[int, str]],
    size: Callable[[T], int],
    *,
    jobs: int,
    progress: bool = False,
    description: str = "hashing",
) -> Iterator[tuple[T, tuple[int, str] | None, BaseException | None]]:
    """Hash the file of every item in parallel (small files: :func:`hash_jobs`), with a progress
    bar when asked; yield (item, (size, sha256), error) as each finishes. ``hash_one`` hashes one
    item's file (e.g. :func:`hash_file` of its path); ``size`` says how big it is expected to be."""
    total = sum(size(item) for item in items)
    jobs = hash_jobs(jobs, total, len(items))
    with Progress(total, len(items), enabled=progress and bool(items), description=description) as bar:

        def work(item: T) -> tuple[int, str]:
            result = hash_one(item)
            bar.advance(result[0])
            bar.file_done()
            return result

        yield from run_parallel(work, items, jobs)


class Progress:
    """One progress bar (bytes, files, rate, ETA) on stderr; a silent counter when disabled."""

    def __init__(
        self,
        total_bytes: int,
        total_files: int,
        *,
        enabled: bool,
        description: str = "",
        events: Events | None = None,
    ):
        self.total_files = total_files
        self.events = events
        self.files_done = 0
        self.bytes_done = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,  # MB as in the summaries (powers of 1000, like aws and dandi)
                desc=description,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
                leave=True,
            )
            self._bar.set_postfix_str(self._files_text(), refresh=False)

    def _files_text(self) -> str:
        return f"{self.files_done}/{self.total_files} files"

    def advance(self, count: int) -> None:
        """Count ``count`` bytes moved."""
        if self.events is not None:
            self.events.advance(count)
        with self._lock:
            self.bytes_done += count
            if self._bar is not None:
                self._bar.update(count)

    def file_done(self, count: int = 1) -> None:
        """Count one file (or ``count``) finished."""
        with self._lock:
            self.files_done += count
            if self._bar is not None:
                self._bar.set_postfix_str(self._files_text(), refresh=False)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(self._files_text(), refresh=True)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

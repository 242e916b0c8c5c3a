"""Transfer helpers shared by downloads and uploads: retries, a worker pool, hashing, progress."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import DJArchiveError, EndpointUnreachableError

__all__ = [
    "BUFFER_SIZE",
    "DEFAULT_WORKERS",
    "Progress",
    "SMALL_FILE",
    "RetryPolicy",
    "Slots",
    "hash_file",
    "files",
    "human_bytes",
    "retry_call",
    "run_parallel",
]

T = TypeVar("T")
R = TypeVar("R")
BUFFER_SIZE = 1024 * 1024
DEFAULT_WORKERS = 32
SMALL_FILE = 256 * 1024  # a file this small costs a round trip more than bandwidth or memory
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
            pause = policy.delay(attempt)
            log.info("%s failed (%s); retrying in %.1f s (attempt %d)", what, error, pause, attempt + 1)
            time.sleep(pause)
            attempt += 1


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
        if not self._memory or memory <= 0:
            yield
            return
        with self._room:
            self._room.wait_for(lambda: self._held == 0 or self._held + memory <= self._memory)
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
    current item.
    """
    if isinstance(items, Sized):
        workers = min(workers, len(items))
    workers = max(1, int(workers))
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
    try:
        while running:
            report = reports.get()
            if report is finished:
                running -= 1
                continue
            item, result, error = report
            if error is not None and not isinstance(error, (DJArchiveError, OSError)):
                raise error
            yield item, result, error
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def hash_file(path: str | os.PathLike[str], buffer_size: int = BUFFER_SIZE) -> tuple[int, str]:
    """Size and sha256 hex digest of a file, read in fixed-size chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


def files(count: int) -> str:
    """'1 file', '2 files'."""
    return f"{count} file" if count == 1 else f"{count} files"


def human_bytes(count: float) -> str:
    """A byte count for people: 1.5 MB, 20 GB (powers of 1000, as aws and dandi print them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class Progress:
    """One progress bar (bytes, files, rate, ETA) on stderr; a silent counter when disabled."""

    def __init__(self, total_bytes: int, total_files: int, *, enabled: bool, description: str = ""):
        self.total_files = total_files
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
        with self._lock:
            self.bytes_done += count
            if self._bar is not None:
                self._bar.update(count)

    def file_done(self) -> None:
        """Count one file finished."""
        with self._lock:
            self.files_done += 1
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

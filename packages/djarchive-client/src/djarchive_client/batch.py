"""The fetch stage on libcurl: a download's units as GETs on one engine, driven by the caller.

:func:`fetch_batch` hands the scheduler's units (whole files; byte ranges of large ones) to one
:class:`~djarchive_common.curl.CurlEngine` as :class:`~djarchive_common.curl.Get` requests, taken
lazily, and yields the same (unit, placed file's status, error) triples as the worker pool of
:mod:`djarchive_client.schedule`. The calling thread drives libcurl's event loop, so Ctrl-C
reaches it, and :meth:`Fetcher.stop <djarchive_client.fetch.Fetcher.stop>` cancels the engine.

Each body is hashed from memory and written as it arrives, in the engine's callbacks: a file in
one GET (small, or large in one stream) is never read back (a large one goes into a partial file
whose journal follows the stream: a later run resumes it); byte ranges of a large file follow
:mod:`djarchive_client.fetch`'s hash cursor. The first answer's size is checked against the
manifest before a byte is written, a range answered whole is :class:`RangesIgnored`, and a body
of the wrong size or sha256 is refused at its end. File-system work that may wait stays off the
driver: helper threads create the temporary files ahead of their GETs, and close, check and
place each finished file.

Retries are the engine's, one budget per GET under the store's policy: a GET cut short resumes
after the bytes already delivered (``If-Match`` the first answer's ETag), a refused body starts
over from its first byte. A large file whose assembled sha256 is wrong is the scheduler's to
fetch again as one stream.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from djarchive_common.curl import Done, Get, Head
from djarchive_common.errors import DJArchiveError, IntegrityError, RangesIgnored
from djarchive_common.transfer import SMALL_FILE
from djarchive_common.verified import check_sha256, check_size

from .fetch import Fetcher, Range, WholeFile
from .partial import Partial

__all__ = ["HELPERS", "fetch_batch"]

HELPERS = 3  # threads creating, closing and placing files beside the driver
HASHERS = 2  # threads hashing and writing the streams of large files beside the driver
STREAMED = 4 * 1024 * 1024  # files at least this large are hashed and written by a hasher
BLOCK = 1024 * 1024  # bytes gathered before they are hashed and written (libcurl hands over 16 KiB)
IN_FLIGHT = 32 * 1024 * 1024  # bytes received and not yet hashed and written, at most
Unit = WholeFile | Range
Result = tuple[Unit, os.stat_result | None, BaseException | None]


def _object_size(head: Head, size: int) -> None:
    """Refuse an answer whose object is not the manifest's size (retried: a proxy may cut it)."""
    if head.object_size is not None and head.object_size != size:
        raise IntegrityError(
            f"the object is {head.object_size} bytes, the manifest says {size}", retryable=True
        )


class _Room:
    """A budget of bytes held in memory between the driver and the hashers."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.changed = threading.Condition()

    def take(self, count: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.used == 0 or self.used + count <= self.limit)
            self.used += count

    def give(self, count: int) -> None:
        with self.changed:
            self.used -= count
            self.changed.notify_all()


class _Hashed:
    """A large file's bytes, hashed and written in order by a hasher thread while the driver
    receives (hashlib and os.write release the GIL, so another core takes part)."""

    def __init__(self, sink: _WholeSink, pool: ThreadPoolExecutor, room: _Room):
        self.sink, self.pool, self.room = sink, pool, room
        self.chunks: deque[tuple[list[bytes], int]] = deque()
        self.lock = threading.Lock()
        self.idle = threading.Event()
        self.idle.set()
        self.error: BaseException | None = None

    def put(self, block: list[bytes], size: int) -> None:
        """Queue ``block`` of ``size`` bytes (the driver waits while the budget is spent); a
        hasher's error is raised."""
        if self.error is not None:
            raise self.error
        self.room.take(size)
        with self.lock:
            self.chunks.append((block, size))
            if self.idle.is_set():
                self.idle.clear()
                self.pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.chunks:
                    self.idle.set()
                    return
                block, size = self.chunks.popleft()
            try:
                if self.error is None:
                    self.sink.take(block)
            except BaseException as exc:
                self.error = exc
            finally:
                self.room.give(size)

    def wait(self) -> None:
        """Until every byte queued is hashed and written; a hasher's error is raised."""
        self.idle.wait()
        if self.error is not None:
            raise self.error


class _WholeSink:
    """One file in one GET: written into a temporary file (created ahead by a helper) and hashed
    as it arrives, checked at its end; a refused body starts over in the same file. A resumable
    one (a large file) is written into a partial file whose journal follows the stream, kept when
    the GET fails or the download stops, so that the next run fetches only the rest."""

    def __init__(self, batch: _Batch, unit: WholeFile):
        self.batch, self.unit, self.entry = batch, unit, unit.entry
        self.large = self.entry.size > SMALL_FILE
        self.partial: Partial | None = None  # the partial file of a resumable one
        self.creating: Future[tuple[str | None, int]] = batch.helpers.submit(self._create)
        self.part: str | None = None  # the temporary file, once taken from ``creating``
        self.fd = -1
        self.opened = False  # taken from ``creating`` (``fd`` is -1 again once closed)
        self.placed = False
        self.error: BaseException | None = None
        self.written = 0  # bytes hashed and written
        self.digest = hashlib.sha256()
        self.received = 0  # bytes of the body so far (this attempt's and the ones it resumes)
        self.block: list[bytes] = []  # received, not yet hashed and written: ``pending`` bytes
        self.pending = 0
        self.hashed = _Hashed(self, batch.hashers, batch.room) if self.entry.size >= STREAMED else None

    def _create(self) -> tuple[str | None, int]:
        """The file the body goes to (on a helper): a temporary file, or a new partial file."""
        fetcher = self.batch.fetcher
        if not self.unit.resumable:
            return fetcher.local.new_part()
        self.partial = fetcher.new_partial(self.entry)
        return None, self.partial.open()

    def request(self) -> Get:
        key = self.batch.fetcher.key(self.entry)
        return Get(key, self.on_data, on_head=self.on_head, on_end=self.on_end, tag=self)

    def on_head(self, head: Head) -> None:
        _object_size(head, self.entry.size)
        if not self.opened:
            self.part, self.fd = self.creating.result()
            self.opened = True
            if self.large and self.partial is None:  # a partial file is allocated when created
                self.batch.fetcher.allocate(self.fd, self.entry)
        if head.offset != self.received:  # the body was refused: it starts over
            if self.hashed is not None:
                self.hashed.wait()
            if self.partial is not None:
                self.partial.streamed(0, self.digest)
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            self.written = 0
            self.batch.fetcher.progress.advance(self.pending - self.received)
            self.digest, self.received, self.block, self.pending = hashlib.sha256(), 0, [], 0

    def on_data(self, data: bytes, position: int) -> None:
        # libcurl hands over 16 KiB at a time: they are gathered (not copied) into blocks, hashed
        # and written (writev, WRITE_SIZE per system call) a block at a time, by a hasher for a
        # large file.
        self.block.append(data)
        self.pending += len(data)
        self.received += len(data)
        if self.pending >= BLOCK:
            self.pass_block()

    def pass_block(self) -> None:
        """Hash and write the block received (or queue it for the hasher)."""
        block, size, self.block, self.pending = self.block, self.pending, [], 0
        if self.hashed is not None:
            self.hashed.put(block, size)
        else:
            self.take(block)
        self.batch.fetcher.progress.advance(size)

    def take(self, block: list[bytes]) -> None:
        """Hash ``block`` and write it, in the order received."""
        for piece in block:
            self.digest.update(piece)
        self.batch.fetcher.write_pieces(self.fd, block)
        if self.partial is not None:
            self.written += sum(map(len, block))
            self.partial.streamed(self.written, self.digest)

    def on_end(self) -> None:
        if self.block:
            self.pass_block()
        if self.hashed is not None:
            self.hashed.wait()
        check_size("", self.received, self.entry.size)
        check_sha256("", self.digest.hexdigest(), self.entry.sha256)

    def ended(self, done: Done) -> None:
        """The GET is over: place the file, or forget it."""
        batch = self.batch
        if done.error is None:
            batch.finish(self.unit, self._place)
            return
        batch.fetcher.progress.advance(self.pending - self.received)
        batch.report(self.unit, None, done.error)
        self.error = done.error
        batch.helpers.submit(self.discard)

    def _place(self) -> os.stat_result:
        fd, self.fd = self.fd, -1
        status = os.fstat(fd)
        fetcher = self.batch.fetcher
        if self.partial is not None:
            fetcher.forget_partial(self.partial)
            self.partial.place(fetcher.local.files)  # closes the file
        else:
            os.close(fd)
            fetcher.local.place(self.part, self.entry.subpath)  # type: ignore[arg-type]
        fetcher.count_served(self.entry.subpath, {fetcher.store.name: self.entry.size})
        self.placed = True
        return status

    def discard(self) -> None:
        """Close and delete the temporary file, if it was made and not placed (on a helper, or
        once the helpers are gone)."""
        if self.placed:
            return
        if self.hashed is not None:
            self.hashed.idle.wait()
        if not self.opened:
            if self.creating.cancel() or self.creating.exception() is not None:
                return
            self.part, self.fd = self.creating.result()
            self.opened = True
        self.placed = True  # nothing left to discard
        if self.partial is not None:  # kept for the next run, unless its bytes are wrong
            self.fd = -1  # the partial file's own
            wrong = isinstance(self.error, IntegrityError)
            self.batch.fetcher.forget_partial(self.partial)
            if wrong:
                self.partial.discard()
            else:
                self.partial.close()
            return
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.batch.fetcher.local.discard(self.part)  # type: ignore[arg-type]


class _RangeSink:
    """One byte range of a large file (:class:`~djarchive_client.fetch.LargeFile`), written at
    its offsets into the file's partial file (its journal kept, so a later run resumes it); the
    hash follows the file's cursor, from memory when the bytes arrive at it."""

    def __init__(self, batch: _Batch, unit: Range):
        self.batch, self.unit, self.job = batch, unit, unit.job
        self.large = True
        self.fd = -1
        self.pending = bytearray()  # received, not yet written: the bytes from ``pending_at``
        self.pending_at = 0

    def missing(self) -> int:
        """The bytes of the range still to fetch (an earlier run may have left some, checked)."""
        job = self.job
        self.batch.fetcher.resume(job)
        return job.ranges[self.unit.index][1] - job.written[self.unit.index]

    def request(self) -> Get:
        job, fetcher = self.job, self.batch.fetcher
        offset, length = job.ranges[self.unit.index]
        start = offset + job.written[self.unit.index]
        key = fetcher.key(job.entry)
        return Get(key, self.on_data, start, offset + length - start, on_head=self.on_head, tag=self)

    def on_head(self, head: Head) -> None:
        fetcher = self.batch.fetcher
        if head.status != 206:
            raise RangesIgnored(f"{fetcher.store.name} ignores byte ranges")
        _object_size(head, self.job.entry.size)
        if self.fd < 0:
            self.fd = fetcher.open_large(self.job)
        self.flush()  # a resumed GET: what the last attempt delivered goes to the file first

    def on_data(self, data: bytes, position: int) -> None:
        if not self.pending:
            self.pending_at = position
        self.pending += data
        if len(self.pending) >= BLOCK:
            self.flush()

    def flush(self) -> None:
        """Write what was received and not written yet, hash it from memory if it is at the
        cursor, then hash what the cursor can reach of the bytes written ahead of it."""
        if not self.pending:
            return
        job, fetcher = self.job, self.batch.fetcher
        block, start = self.pending, self.pending_at
        fetcher.write(self.fd, block, start)
        end, self.pending = start + len(block), bytearray()
        with job.lock:
            if start <= job.cursor < end:
                job.digest.update(memoryview(block)[job.cursor - start :])
                job.cursor = end
            job.written[self.unit.index] = end - job.ranges[self.unit.index][0]
            job.served[fetcher.store.name] = job.served.get(fetcher.store.name, 0) + len(block)
            fetcher.catch_up(job, limit=fetcher.buffer_size * 4)
        job.partial.wrote(job.base[self.unit.index], start, memoryview(block))  # type: ignore[union-attr]
        fetcher.progress.advance(len(block))

    def ended(self, done: Done) -> None:
        """One range fewer to wait for; the last one finishes the file (or reports its error)."""
        job, error = self.job, done.error
        try:
            self.flush()
        except (DJArchiveError, OSError) as exc:
            error = error or exc
        if error is not None and job.error is None:
            job.error = error
        job.remaining -= 1
        if not job.remaining:
            self.batch.finish(self.unit, lambda: self.batch.fetcher.finish_large(job))

    def discard(self) -> None:
        """Nothing of its own: the file is the job's (finish_large deletes it on an error)."""


_Sink = _WholeSink | _RangeSink


class _Batch:
    """The state of one batch: what is ahead, what runs, what the helpers finished."""

    def __init__(
        self,
        fetcher: Fetcher,
        jobs: int,
        helpers: ThreadPoolExecutor,
        hashers: ThreadPoolExecutor,
        lookahead: int,
    ):
        self.fetcher, self.jobs, self.helpers, self.lookahead = fetcher, jobs, helpers, lookahead
        self.hashers, self.room = hashers, _Room(IN_FLIGHT)
        self.large_running = 0
        self.reports: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.pending = 0  # helper tasks whose report is still to come
        self.sinks: list[_Sink] = []  # every sink made, for the clean-up

    def report(self, unit: Unit, placed: os.stat_result | None, error: BaseException | None) -> None:
        self.pending += 1
        self.reports.put((unit, placed, error))

    def finish(self, unit: Unit, work: Callable) -> None:
        """Run ``work`` (close, check, place) on a helper; its outcome becomes ``unit``'s report."""

        def run() -> None:
            try:
                self.reports.put((unit, work(), None))
            except BaseException as exc:
                self.reports.put((unit, None, exc))

        self.pending += 1
        self.helpers.submit(run)

    def requests(self, units: Iterable[Unit]) -> Iterator[Get | None]:
        """The GETs of ``units`` in their order, each file created ahead of its GET; a large
        transfer waits (None: nothing to start now) while ``jobs`` of them run."""
        ahead: deque[_Sink] = deque()
        source = iter(units)
        while True:
            while len(ahead) < self.lookahead:
                unit = next(source, None)
                if unit is None:
                    break
                whole = isinstance(unit, WholeFile)
                sink: _Sink = _WholeSink(self, unit) if whole else _RangeSink(self, unit)  # type: ignore[arg-type]
                self.sinks.append(sink)
                ahead.append(sink)
            if not ahead:
                return
            chosen = next((s for s in ahead if not s.large or self.large_running < self.jobs), None)
            if chosen is None:
                yield None
                continue
            ahead.remove(chosen)
            if isinstance(chosen, _RangeSink) and (chosen.job.error is not None or not chosen.missing()):
                chosen.ended(Done(chosen.request(), chosen.job.error))  # type: ignore[arg-type]
                continue  # the file failed, or an earlier run left the whole range
            if chosen.large:
                self.large_running += 1
            yield chosen.request()

    def ended(self, done: Done) -> None:
        sink: _Sink = done.request.tag
        if sink.large:
            self.large_running -= 1
        sink.ended(done)

    def take(self, block: bool) -> Iterator[Result]:
        """The reports that are in (``block``: wait for at least one)."""
        while self.pending:
            try:
                report = self.reports.get(block=block, timeout=0.2 if block else None)
            except queue.Empty:
                if block:
                    continue
                return
            self.pending -= 1
            block = False
            yield report


def fetch_batch(fetcher: Fetcher, units: Iterable[Unit], *, jobs: int, transfers: int) -> Iterator[Result]:
    """Fetch ``units`` on one engine, at most ``transfers`` at once of which at most ``jobs``
    large (more than SMALL_FILE bytes); yield (unit, placed file's status or None, error or None)
    as files are placed or fail (a range's triple comes when its whole file is done). Errors of
    one file are reported in its triple; anything else propagates and stops everything."""
    engine = fetcher.store.engine(transfers)
    helpers = ThreadPoolExecutor(HELPERS, "djarchive-files")
    hashers = ThreadPoolExecutor(HASHERS, "djarchive-hash")
    batch = _Batch(fetcher, jobs, helpers, hashers, lookahead=transfers)
    fetcher.engine = engine
    running = engine.run(batch.requests(units))
    try:
        for done in running:
            batch.ended(done)
            yield from batch.take(block=False)
        while batch.pending:
            yield from batch.take(block=True)
    finally:
        running.close()
        hashers.shutdown(wait=True)
        helpers.shutdown(wait=True, cancel_futures=True)
        for sink in batch.sinks:
            sink.discard()
        fetcher.engine = None
        engine.close()

"""The fetch stage of a download: what is left to fetch, cut into units and run on one pool.

Small files are one unit each; a large one (at least ``multipart_threshold``) is cut into byte
ranges of ``part_size``. Ranges of several large files come first, interleaved so that workers
spread over the files, then whole files, the largest first: the shortest tail. Where the store's
bulk bodies go through libcurl (:attr:`Store.curl <djarchive_common.store.Store.curl>`) and the
store is the only source, the units are GETs on one engine driven by this thread
(:mod:`djarchive_client.batch`), and large files come in one stream each when there are at least
``STREAMS`` of them (hashed from memory, never read back, each into a partial file whose journal
a later run resumes by ranges); otherwise they run on one worker pool
over one connection pool (:class:`djarchive_common.transfer.Slots`), each unit's GET on the
source :class:`~djarchive_client.sources.Sources` chooses (the store, or a mirror the request
names), and :mod:`djarchive_client.fetch` fetches, verifies and places each file. What was placed
is recorded as verified (the record saved every few seconds, so a killed run loses little), with
the bytes each source served.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing

from djarchive_common.errors import IntegrityError, LocalStorageError
from djarchive_common.manifest import Entry, size_of
from djarchive_common.store import Store
from djarchive_common.text import files
from djarchive_common.transfer import Progress, Slots, run_parallel

from .fetch import Fetcher, LargeFile, Range, RangesIgnored, WholeFile
from .localcopy import LocalCopy
from .request import DownloadOptions, DownloadRequest
from .sources import Sources
from .summary import DownloadSummary

__all__ = ["Scheduler", "fetch_all"]

log = logging.getLogger("djarchive_client")
RECORD_SAVE_SECONDS = 2.0
STREAMS = 4  # large files that keep a link busy in one stream each (libcurl: no ranges then)


def fetch_all(
    store: Store,
    local: LocalCopy,
    todo: Sequence[Entry],
    *,
    request: DownloadRequest,
    keys: Mapping[str, str],
    summary: DownloadSummary,
) -> None:
    """Fetch ``todo`` into ``local`` (the lock held), with a progress bar; ``keys`` maps local
    paths to the revision's subpaths of files placed under other names. What was fetched and
    what failed is counted in ``summary``, with the bytes each source served."""
    sources = Sources([store, *request.mirrors], store.options.retry, down=request.down)
    with Progress(
        size_of(todo),
        len(todo),
        enabled=request.progress and bool(todo),
        description=request.name,
        events=request.events,
    ) as bar:
        fetcher = Fetcher(
            store,
            request.dataset,
            request.revision,
            local,
            bar,
            buffer_size=request.options.buffer_size,
            keys=keys,
            sources=sources,
        )
        try:
            Scheduler(fetcher, request.options, summary).run(todo)
        finally:
            summary.dropped_sources.update(sources.dropped)


class Scheduler:
    """Runs the fetches of one download on one worker pool, and counts what they did."""

    def __init__(self, fetcher: Fetcher, options: DownloadOptions, summary: DownloadSummary):
        self.fetcher = fetcher
        self.local = fetcher.local
        self.record = fetcher.local.verified
        self.options = options
        self.summary = summary
        self.events = fetcher.progress.events

    def run(self, todo: Sequence[Entry]) -> None:
        """Fetch every entry. A large file whose assembled sha256 is wrong cannot say which range
        was bad, and a server may ignore byte ranges: such files are fetched once more, as one
        stream each (see the retry story in :mod:`djarchive_common.transfer`)."""
        again = self._pass(todo, ranges=True)
        if again:
            log.info("fetching %s again as one stream each", files(len(again)))
            self._pass(again, ranges=False)

    def _plan(self, todo: Sequence[Entry], ranges: bool) -> list[WholeFile | Range]:
        """Cut the work into units: whole files, and byte ranges of large ones, the largest first."""
        wholes: list[WholeFile | Range] = []
        large: list[list[Range]] = []
        self.record.forget_all(entry.subpath for entry in todo)
        threshold = self.options.multipart_threshold
        resume: Callable[[Entry], bool] = lambda entry: True  # noqa: E731
        streams = False
        if ranges and self._curl(todo):  # enough large files to keep the link busy: one stream each,
            count = sum(entry.size >= threshold for entry in todo)  # but what a run left is resumed
            if count >= min(STREAMS, self.options.jobs):
                partials = self.local.partials
                resume = lambda entry: partials.held(entry.subpath)  # noqa: E731
                streams = True
        for entry in todo:
            if ranges and entry.size >= threshold and resume(entry):
                large.append(LargeFile(entry, self.options.part_size).units())
            else:
                wholes.append(WholeFile(entry, resumable=streams and entry.size >= threshold))
        wholes.sort(key=lambda unit: unit.entry.size, reverse=True)
        return _interleave(large) + wholes  # the largest first: the shortest tail

    def _curl(self, todo: Sequence[Entry]) -> bool:
        """Whether ``todo`` goes through libcurl: something to fetch, the store the only source
        (mirrors stay on the worker pool, which chooses a source per GET) and libcurl chosen."""
        return bool(todo) and not self.fetcher.sources.several and self.fetcher.store.curl

    def _units(
        self, units: list[WholeFile | Range], slots: Slots
    ) -> Iterator[tuple[WholeFile | Range, os.stat_result | None, BaseException | None]]:
        """Fetch ``units``: on libcurl's engine, or on the worker pool; (unit, placed, error)."""
        fetcher = self.fetcher
        if self._curl([unit.entry for unit in units[:1]]):
            from .batch import fetch_batch

            return fetch_batch(fetcher, units, jobs=self.options.jobs, transfers=slots.workers)

        def fetch(unit: WholeFile | Range) -> os.stat_result | None:
            if isinstance(unit, WholeFile):
                return fetcher.fetch_whole(unit.entry)
            return fetcher.fetch_range(unit)

        def work(unit: WholeFile | Range) -> os.stat_result | None:
            return slots.run(unit.entry.size, lambda: fetch(unit))

        return run_parallel(work, units, slots.workers)

    def _pass(self, todo: Sequence[Entry], *, ranges: bool) -> list[Entry]:
        """One pass over ``todo``; return the large files to fetch again as one stream."""
        slots = Slots(self.options.jobs, self.fetcher.store.options.pool_size)
        fetcher, summary = self.fetcher, self.summary
        again: list[Entry] = []
        last_save = time.monotonic()
        try:
            with closing(self._units(self._plan(todo, ranges), slots)) as results:  # type: ignore[type-var]
                for unit, placed, error in results:
                    entry = unit.entry
                    if error is not None:
                        if isinstance(error, LocalStorageError):
                            raise error
                        if isinstance(unit, Range) and (
                            isinstance(error, RangesIgnored)
                            or (isinstance(error, IntegrityError) and error.retryable)
                        ):
                            again.append(entry)
                            continue
                        summary.failed[entry.subpath] = str(error)
                        log.debug("failed: %s: %s", entry.subpath, error)
                        fetcher.progress.file_done()
                        if self.events is not None:
                            self.events.file(entry.subpath, entry.size, "failed", str(error))
                        continue
                    if placed is None:  # a range of a file that is not complete yet
                        continue
                    self.record.remember(entry, placed)
                    summary.fetched_files += 1
                    summary.fetched_bytes += entry.size
                    served = fetcher.served_by(entry.subpath)
                    for name, count in served.items():
                        summary.sources[name] = summary.sources.get(name, 0) + count
                    fetcher.progress.file_done()
                    if self.events is not None:
                        self.events.file(entry.subpath, entry.size, "fetched", sources=served)
                    log.debug("fetched %s (%d bytes)", entry.subpath, entry.size)
                    if time.monotonic() - last_save > RECORD_SAVE_SECONDS:
                        self.local.save_record()
                        last_save = time.monotonic()
        except BaseException:
            fetcher.stop()
            raise
        return again


def _interleave(groups: Sequence[Sequence[Range]]) -> list[Range]:
    """Ranges of several large files in turn, so that workers spread over the files."""
    longest = max((len(group) for group in groups), default=0)
    return [group[index] for index in range(longest) for group in groups if index < len(group)]

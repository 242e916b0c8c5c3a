"""The fetch stage of a download: what is left to fetch, cut into units and run on one pool.

Small files are one unit each; a large one (at least ``multipart_threshold``) is cut into byte
ranges of ``part_size``. Ranges of several large files come first, interleaved so that workers
spread over the files, then whole files, the largest first: the shortest tail. The units run on
one worker pool over one connection pool (:class:`djarchive_common.transfer.Slots`);
:mod:`djarchive_client.fetch` fetches, verifies and places each file, and what was placed is
recorded as verified (the record saved every few seconds, so a killed run loses little). Each
unit's GET goes to the source :class:`~djarchive_client.sources.Sources` chooses (the store, or
a mirror the request names), and the bytes of each placed file are counted by source.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence

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
        for entry in todo:
            if ranges and entry.size >= self.options.multipart_threshold:
                large.append(LargeFile(entry, self.options.part_size).units())
            else:
                wholes.append(WholeFile(entry))
        wholes.sort(key=lambda unit: unit.entry.size, reverse=True)
        return _interleave(large) + wholes  # the largest first: the shortest tail

    def _pass(self, todo: Sequence[Entry], *, ranges: bool) -> list[Entry]:
        """One pass over ``todo``; return the large files to fetch again as one stream."""
        slots = Slots(self.options.jobs, self.fetcher.store.options.pool_size)
        fetcher, summary = self.fetcher, self.summary

        def fetch(unit: WholeFile | Range) -> os.stat_result | None:
            if isinstance(unit, WholeFile):
                return fetcher.fetch_whole(unit.entry)
            return fetcher.fetch_range(unit)

        def work(unit: WholeFile | Range) -> os.stat_result | None:
            return slots.run(unit.entry.size, lambda: fetch(unit))

        again: list[Entry] = []
        last_save = time.monotonic()
        try:
            for unit, placed, error in run_parallel(work, self._plan(todo, ranges), slots.workers):
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

"""Download one revision into TARGET: planned from the manifest, then scheduled.

The plan comes from the manifest alone: the selected entries, minus the files already
present and verified (by the record of verified files, else by hashing). The rest is cut
into units (whole small files, byte ranges of large ones, the largest first) and run on
one worker pool over one connection pool; :mod:`djarchive_client.fetch` fetches, verifies
and places each file.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from djarchive_common.errors import IntegrityError, LocalStorageError, NotFoundError, PartialFailureError
from djarchive_common.manifest import Entry, Manifest, select_or_fail
from djarchive_common.manifest import shard as split
from djarchive_common.store import Store
from djarchive_common.text import files, human_bytes
from djarchive_common.transfer import DEFAULT_WORKERS, Progress, Slots, hash_files, run_parallel

from .fetch import Fetcher, LargeFile, Range, RangesIgnored, WholeFile
from .localcopy import LocalCopy, target_path

__all__ = ["DownloadOptions", "DownloadSummary", "download_revision"]

log = logging.getLogger("djarchive_client")
MiB = 1024 * 1024
RECORD_SAVE_SECONDS = 2.0


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
    shard: tuple[int, int] | None = None  # (K, N) when only the K-th of N parts was asked for

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
            "shard": list(self.shard) if self.shard else None,
            "ok": self.ok,
        }
        if self.dry_run:
            data["planned"] = [{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in self.planned]
        return data

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}" + (
            f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        )
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


class _Scheduler:
    """Runs the fetches of one download on one worker pool, and counts what they did."""

    def __init__(self, fetcher: Fetcher, options: DownloadOptions, summary: DownloadSummary):
        self.fetcher = fetcher
        self.local = fetcher.local
        self.options = options
        self.summary = summary

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
        for entry in todo:
            self.local.forget(entry.subpath)
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
                    continue
                if placed is None:  # a range of a file that is not complete yet
                    continue
                self.local.remember(entry, placed)
                summary.fetched_files += 1
                summary.fetched_bytes += entry.size
                fetcher.progress.file_done()
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


def _regular(status: os.stat_result | str | None) -> bool:
    return isinstance(status, os.stat_result) and stat.S_ISREG(status.st_mode)


def _still_needed(
    local: LocalCopy,
    selected: Sequence[Entry],
    options: DownloadOptions,
    summary: DownloadSummary,
    progress: bool = False,
) -> list[Entry]:
    """The selected entries not in place: not vouched for by the record (unless ``recheck``),
    and, among files of the right size, not matching when hashed."""
    statuses = local.stats(entry.subpath for entry in selected)
    need: list[Entry] = []
    to_hash: list[Entry] = []
    for entry in selected:
        status = statuses[entry.subpath]
        if not options.recheck and local.is_verified(entry, status):
            summary.present_files += 1
        elif (
            isinstance(status, os.stat_result)
            and stat.S_ISREG(status.st_mode)
            and status.st_size == entry.size
        ):
            to_hash.append(entry)
        else:
            need.append(entry)
    checked = hash_files(
        to_hash,
        lambda entry: local.hash(entry.subpath),
        lambda entry: entry.size,
        jobs=options.jobs,
        progress=progress,
        description="checking",
    )
    for entry, result, error in checked:
        if error is None and result is not None and result[1] == entry.sha256:
            status = statuses[entry.subpath]
            local.remember(entry, status)  # type: ignore[arg-type]
            summary.present_files += 1
        else:
            need.append(entry)
    return need


def _named(
    entries: Sequence[Entry], paths: Iterable[str] | Mapping[str, str], what: str
) -> tuple[list[Entry], dict[str, str]]:
    """The entries ``paths`` names, each under its own subpath, or under the local path (relative
    to TARGET) that ``paths`` maps it to; and ``{local path: subpath}`` of those placed under
    another name. Local paths obey the manifest's rules (relative, unique, none of djarchive's
    names): they are checked as one, before anything is written."""
    by_subpath = {entry.subpath: entry for entry in entries}
    places = dict(paths) if isinstance(paths, Mapping) else {subpath: subpath for subpath in paths}
    missing = [subpath for subpath in places if subpath not in by_subpath]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFoundError(f"{what} has no file {missing[0]!r}{more}; nothing was done")
    named = Manifest(
        (
            Entry(local, by_subpath[subpath].size, by_subpath[subpath].sha256)
            for subpath, local in places.items()
        ),
        source="the local paths asked for",
    )
    return list(named), {local: subpath for subpath, local in places.items() if local != subpath}


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
    shard: tuple[int, int] | None = None,
    paths: Iterable[str] | Mapping[str, str] | None = None,
) -> DownloadSummary:
    """Download the selected files of a revision into ``target``; raise if any file failed.

    ``shard`` (K, N) takes only the K-th of N byte-balanced parts of the selection: N runs, on
    one machine or many sharing TARGET, together download it all (see :func:`manifest.shard`).
    ``paths`` names the files exactly (no globs; see :func:`_named`).
    """
    options = options or DownloadOptions()
    started = time.monotonic()
    selected = select_or_fail(manifest, include, exclude, f"{dataset} {revision}")
    keys: dict[str, str] = {}
    if paths is not None:
        selected, keys = _named(selected, paths, f"{dataset} {revision}")
    if shard is not None:
        selected = split(selected, *shard)
    summary = DownloadSummary(
        dataset,
        revision,
        str(target),
        files=len(selected),
        bytes=sum(e.size for e in selected),
        dry_run=dry_run,
        shard=shard,
    )
    if dry_run and not target_path(target).exists():
        summary.planned = list(selected)
        return summary
    local = LocalCopy(target, create=create_target and not dry_run, shard=shard)
    try:
        local.check_destinations(selected)  # refuses links and aliased folders before any write
        if dry_run:  # the same checks as a download, hashes included, but nothing is written
            local.load_record()
            summary.planned = _still_needed(local, selected, options, summary, progress)
            return summary
        with local:
            todo = _still_needed(local, selected, options, summary, progress)
            total = sum(entry.size for entry in todo)
            with Progress(
                total, len(todo), enabled=progress and bool(todo), description=f"{dataset} {revision}"
            ) as bar:
                fetcher = Fetcher(
                    store, dataset, revision, local, bar, buffer_size=options.buffer_size, keys=keys
                )
                _Scheduler(fetcher, options, summary).run(todo)
    finally:
        local.close()
    summary.seconds = time.monotonic() - started
    log.debug("%s", summary)
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(summary.files)} of {dataset} {revision} failed to download",
            summary.failed,
            summary,
        )
    return summary

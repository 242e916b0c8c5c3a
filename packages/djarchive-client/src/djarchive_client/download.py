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
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djarchive_common import __version__
from djarchive_common.errors import (
    DJArchiveError,
    IntegrityError,
    LocalPathError,
    LocalStorageError,
    NotFoundError,
    PartialFailureError,
)
from djarchive_common.events import Events
from djarchive_common.manifest import Entry, Manifest, select, select_or_fail, size_of
from djarchive_common.manifest import shard as split
from djarchive_common.store import Store
from djarchive_common.text import files, human_bytes
from djarchive_common.transfer import DEFAULT_WORKERS, Progress, Slots, run_parallel

from .fetch import Fetcher, LargeFile, Range, RangesIgnored, WholeFile
from .localcopy import LocalCopy, target_path
from .plan import Plan, plan_download
from .receipt import COMPLETE, UPGRADING, Receipt, now

if TYPE_CHECKING:
    from djarchive_common.signing import SignatureStatus

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
    """What a download did. ``failed`` maps subpaths to the reason they failed.

    It also unpacks as the original tool's pair, ``found, errors = c.download(...)``:

    * ``found``: the selected files that are in place and verified after the call,
      fetched now or already present (``fetched_files + present_files``); in a dry run,
      those already present;
    * ``errors``: the selected files that failed (``len(failed)``). A download with
      failures raises :class:`~djarchive_common.errors.PartialFailureError`, whose
      ``.summary`` is this object, so a returned summary always has ``errors == 0``.
    """

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
    planned: Sequence[Entry] = field(default_factory=list)
    shard: tuple[int, int] | None = None  # (K, N) when only the K-th of N parts was asked for
    reused_files: int = 0  # content found on local disk (moved, or copied from --reuse copies)
    reused_bytes: int = 0
    removed: list[str] = field(default_factory=list)  # files of the previous revision removed
    conflicts: dict[str, str] = field(default_factory=dict)  # files of yours left alone, and why
    upgraded_from: str | None = None  # the revision TARGET held before this download
    retracted: str | None = None  # why the revision was retracted, when downloaded anyway
    signature: SignatureStatus | None = None  # the revision's signature, as checked before the download
    plan: Plan | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when every selected file is in place and verified."""
        return not self.failed

    @property
    def found(self) -> int:
        """Selected files in place and verified after the call (fetched now or already present)."""
        return self.fetched_files + self.present_files

    @property
    def errors(self) -> int:
        """Selected files that failed."""
        return len(self.failed)

    def __iter__(self) -> Iterator[int]:
        """``found, errors = summary``: the original tool's return value."""
        return iter((self.found, self.errors))

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
            "reused_files": self.reused_files,
            "reused_bytes": self.reused_bytes,
            "removed": self.removed,
            "conflicts": self.conflicts,
            "upgraded_from": self.upgraded_from,
            "retracted": self.retracted,
            "ok": self.ok,
            "signature": self.signature.to_dict() if self.signature is not None else None,
        }
        if self.dry_run:
            data["planned"] = [{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in self.planned]
            data["actions"] = [line.split("\t", 2) for line in self.plan.lines()] if self.plan else []
        return data

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}" + (
            f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        )
        if self.upgraded_from:
            name += f" ({'upgrading' if self.dry_run else 'upgraded'} from {self.upgraded_from})"
        if self.dry_run:
            text = (
                f"would download {len(self.planned)} of {files(self.files)} of {name} "
                f"({human_bytes(size_of(self.planned))}) into {self.target}; "
                f"{self.present_files} already present"
            )
            if self.plan and (self.plan.move or self.plan.copy or self.plan.remove or self.plan.conflicts):
                text += (
                    f", {len(self.plan.move) + len(self.plan.copy)} from local disk, "
                    f"{len(self.plan.remove)} to remove, {len(self.plan.conflicts)} conflicts"
                )
            return text
        text = (
            f"{name}: {files(self.files)} ({human_bytes(self.bytes)}) in {self.target}; "
            f"fetched {self.fetched_files} ({human_bytes(self.fetched_bytes)}), "
            f"{self.present_files} already present"
        )
        if self.reused_files:
            text += f", {self.reused_files} from local disk ({human_bytes(self.reused_bytes)})"
        if self.removed:
            text += f", {len(self.removed)} of the old revision removed"
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
                    if self.events is not None:
                        self.events.file(entry.subpath, entry.size, "failed", str(error))
                    continue
                if placed is None:  # a range of a file that is not complete yet
                    continue
                self.local.remember(entry, placed)
                summary.fetched_files += 1
                summary.fetched_bytes += entry.size
                fetcher.progress.file_done()
                if self.events is not None:
                    self.events.file(entry.subpath, entry.size, "fetched")
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


def _upgrade_from(
    local: LocalCopy, dataset: str, revision: str
) -> tuple[str, Manifest, Sequence[Entry]] | None:
    """(the revision TARGET holds, its manifest, the files of it that were downloaded) when it
    holds another revision of ``dataset`` (or an unfinished upgrade to ``revision``); refuse a
    TARGET holding another dataset."""
    receipt = local.receipt()
    if receipt is None:
        return None
    if receipt.dataset != dataset:
        raise LocalPathError(
            f"{local.path} holds {receipt.dataset} {receipt.revision}, not {dataset}: download {dataset} "
            "into another folder"
        )
    if receipt.revision == revision and receipt.state != UPGRADING:
        return None
    manifest, previous = local.stored_manifests(receipt)
    if receipt.state == UPGRADING and previous is not None and receipt.previous:
        return receipt.previous, previous, select(previous, receipt.include, receipt.exclude)
    if receipt.revision == revision:
        return None
    return receipt.revision, manifest, select(manifest, receipt.include, receipt.exclude)


def _reuse_sources(folders: Sequence[str | os.PathLike[str]]) -> list[tuple[LocalCopy, Manifest]]:
    """Other local copies to take content from, with the manifests their receipts hold."""
    sources = []
    for folder in folders:
        copy = LocalCopy(folder)
        held = copy.receipt()
        if held is None:
            copy.close()
            raise LocalPathError(
                f"--reuse {folder}: not a djarchive copy (it has no receipt to say what it holds)"
            )
        copy.load_record()  # what it verified, and when: copies of its unchanged files are not re-hashed
        sources.append((copy, copy.stored_manifests(held)[0]))
    return sources


def _use_local_content(
    local: LocalCopy, plan: Plan, summary: DownloadSummary, link: bool, trust: bool, events: Events | None
) -> list[Entry]:
    """Stage the copies (every source read before anything is replaced), move what moved, then
    place the copies; return the entries whose local content turned out unusable (to fetch)."""
    staged: list[tuple[Entry, str, os.stat_result]] = []
    unusable: list[Entry] = []
    for item in plan.copy:
        try:
            part, status = local.copy_in(
                item.source, item.subpath, item.entry, link=link and item.source is not local, trust=trust
            )
        except (IntegrityError, LocalPathError, OSError) as error:
            log.info("cannot reuse %s for %s (%s): fetching it", item.subpath, item.entry.subpath, error)
            unusable.append(item.entry)
            continue
        staged.append((item.entry, part, status))
    for entry, old in plan.move:
        local.forget(old)
        local.remember(entry, local.move(old, entry.subpath))
        summary.reused_files += 1
        summary.reused_bytes += entry.size
        if events is not None:
            events.file(entry.subpath, entry.size, "reused")
    for entry, part, status in staged:
        local.forget(entry.subpath)
        local.place(part, entry.subpath)
        local.remember(entry, status)
        summary.reused_files += 1
        summary.reused_bytes += entry.size
        if events is not None:
            events.file(entry.subpath, entry.size, "reused")
    return unusable


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
    reuse: Sequence[str | os.PathLike[str]] = (),
    link: bool = False,
    retracted: str | None = None,
    events: Events | None = None,
    signature: SignatureStatus | None = None,
    paths: Iterable[str] | Mapping[str, str] | None = None,
) -> DownloadSummary:
    """Download the selected files of a revision into ``target``; raise if any file failed.

    What the download does is planned first (:func:`plan.plan_download`): files in place are
    kept, content already on disk (in TARGET, or in the copies named by ``reuse``) is moved or
    copied instead of fetched, and when TARGET holds another revision of the dataset it is
    upgraded in place. A successful download leaves a receipt (:mod:`receipt`). ``shard`` (K, N)
    takes only the K-th of N byte-balanced parts of the selection: N runs, on one machine or many
    sharing TARGET, together download it all (see :func:`manifest.shard`). ``events`` receives
    machine-readable progress (:mod:`djarchive_common.events`). ``signature``, the manifest's
    signature status, is carried by the summary.

    ``paths`` names the files exactly (no globs), each placed at its subpath or at the local
    path it maps to (see :func:`_named`): files added to TARGET, as fsspec's ``get`` wants, not a
    copy of the revision, so TARGET is neither upgraded nor given a receipt (nor is it by shards).
    """
    try:
        summary = _download(
            store, manifest, dataset, revision, target, create_target, include, exclude,
            options or DownloadOptions(), progress, dry_run, shard, reuse, link, retracted, events,
            signature, paths,
        )  # fmt: skip
    except DJArchiveError as error:
        if events is not None:
            result = error.summary if isinstance(error, PartialFailureError) else None
            data = result.to_dict() if isinstance(result, DownloadSummary) else {"ok": False}
            events.end({**data, "error": str(error)})
        raise
    if events is not None:
        events.end(summary.to_dict())
    return summary


def _download(
    store: Store,
    manifest: Manifest,
    dataset: str,
    revision: str,
    target: str | os.PathLike[str],
    create_target: bool,
    include: Sequence[str],
    exclude: Sequence[str],
    options: DownloadOptions,
    progress: bool,
    dry_run: bool,
    shard: tuple[int, int] | None,
    reuse: Sequence[str | os.PathLike[str]],
    link: bool,
    retracted: str | None,
    events: Events | None,
    signature: SignatureStatus | None,
    paths: Iterable[str] | Mapping[str, str] | None,
) -> DownloadSummary:
    """:func:`download_revision`, without the last event."""
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
        bytes=size_of(selected),
        dry_run=dry_run,
        shard=shard,
        retracted=retracted,
        signature=signature,
    )
    if events is not None and not dry_run:
        events.start(len(selected), summary.bytes, dataset=dataset, revision=revision, target=str(target))
    if dry_run and not target_path(target).exists():
        summary.planned = selected
        summary.plan = Plan(fetch=selected)
        return summary
    local = LocalCopy(target, create=create_target and not dry_run, shard=shard)
    sources: list[tuple[LocalCopy, Manifest]] = []
    try:
        local.check_destinations(selected)  # refuses links and aliased folders before any write
        loose = shard is not None or paths is not None  # files added to TARGET, not a copy of the revision
        upgrade = _upgrade_from(local, dataset, revision) if not loose else None
        previous = upgrade[2] if upgrade is not None else None
        summary.upgraded_from = upgrade[0] if upgrade is not None else None
        sources = _reuse_sources(reuse)

        def plan() -> Plan:
            found = plan_download(
                local,
                selected,
                previous=previous,
                reuse=sources,
                recheck=options.recheck,
                jobs=options.jobs,
                progress=progress,
            )
            summary.plan, summary.planned = found, found.fetch
            summary.present_files = len(found.keep)
            summary.conflicts = {**found.conflicts, **found.left}
            return found

        if dry_run:  # the same checks as a download, hashes included, but nothing is written
            local.load_record()
            plan()
            return summary
        with local:
            actions = plan()
            if upgrade is not None:  # from here on TARGET is neither revision until this run ends
                receipt = _receipt(store, manifest, summary, include, exclude, UPGRADING, previous=upgrade[0])
                local.write_receipt(receipt, manifest, upgrade[1])
            if events is not None:
                for entry in actions.keep:
                    events.file(entry.subpath, entry.size, "present")
            unusable = _use_local_content(local, actions, summary, link, not options.recheck, events)
            todo = [*actions.fetch, *unusable]
            total = size_of(todo)
            with Progress(
                total,
                len(todo),
                enabled=progress and bool(todo),
                description=f"{dataset} {revision}",
                events=events,
            ) as bar:
                fetcher = Fetcher(
                    store, dataset, revision, local, bar, buffer_size=options.buffer_size, keys=keys
                )
                _Scheduler(fetcher, options, summary).run(todo)
            for entry in actions.remove:
                local.remove(entry.subpath)
                local.forget(entry.subpath)
                summary.removed.append(entry.subpath)
            for subpath, why in actions.conflicts.items():
                summary.failed[subpath] = f"{why}; move it away (or delete it) and download again"
                if events is not None:
                    events.file(subpath, 0, "failed", summary.failed[subpath])
            if not summary.failed and not loose:
                local.write_receipt(_receipt(store, manifest, summary, include, exclude, COMPLETE), manifest)
    finally:
        local.close()
        for copy, _ in sources:
            copy.close()
    summary.seconds = time.monotonic() - started
    log.debug("%s", summary)
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(summary.files)} of {dataset} {revision} failed to download",
            summary.failed,
            summary,
        )
    return summary


def _receipt(
    store: Store,
    manifest: Manifest,
    summary: DownloadSummary,
    include: Sequence[str],
    exclude: Sequence[str],
    state: str,
    previous: str | None = None,
) -> Receipt:
    stamp = now()
    return Receipt(
        summary.dataset,
        summary.revision,
        store.settings.endpoint,
        store.settings.bucket,
        "",
        secure=store.settings.secure,
        state=state,
        files=summary.files,
        bytes=summary.bytes,
        include=list(include),
        exclude=list(exclude),
        previous=previous,
        signature=summary.signature.to_dict() if summary.signature is not None else None,
        tool=f"djarchive-client {__version__}",
        downloaded_at=stamp,
        verified_at=stamp,
    )

"""Download one revision into TARGET: one request through select, plan, apply and receipt.

:func:`download_revision` takes the revision's manifest and one :class:`DownloadRequest` and runs
the stages, each a small function reading the part of the request it needs:

1. select: the files the request's :class:`Selection` names (globs, exact names, a shard);
2. plan: :func:`djarchive_client.plan.plan_download` decides, from the manifest and what is on
   disk, what is kept, moved, copied, fetched and removed, and what hashing proved along the way;
3. apply, the target's lock held: what planning proved is recorded, an upgrade is marked in the
   receipt, local content is used, the rest fetched (:func:`djarchive_client.schedule.fetch_all`),
   the old revision's files removed, conflicts reported;
4. receipt: a complete copy of the revision says what it holds (:mod:`djarchive_client.receipt`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import NamedTuple

from djarchive_common import __version__
from djarchive_common.errors import (
    DJArchiveError,
    Hint,
    IntegrityError,
    LocalPathError,
    NotFoundError,
    PartialFailureError,
    RevisionChangedError,
)
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.manifest import Entry, Manifest, matches, select, select_or_fail, size_of
from djarchive_common.manifest import shard as split
from djarchive_common.store import Store
from djarchive_common.text import files

from .delta import describe_deltas, fetch_deltas
from .files import Digest, target_path
from .localcopy import LocalCopy
from .plan import Plan, plan_download
from .receipt import COMPLETE, UPGRADING, Receipt, now, republished
from .request import DownloadOptions, DownloadRequest, Selection
from .reuse import copy_in
from .schedule import fetch_all
from .summary import DownloadSummary

__all__ = ["DownloadOptions", "DownloadRequest", "DownloadSummary", "download_revision"]

log = logging.getLogger("djarchive_client")


class Upgrade(NamedTuple):
    """The revision TARGET holds when a download brings another one: what the upgrade starts from."""

    revision: str
    manifest: Manifest
    entries: Sequence[Entry]  # the files of it that were downloaded (its receipt's selection)


def download_revision(store: Store, manifest: Manifest, request: DownloadRequest) -> DownloadSummary:
    """Download the files ``request`` selects of the revision whose ``manifest`` it is into its
    target; raise PartialFailureError (with the summary) if any file failed.

    Files in place are kept, content already on disk (in TARGET, or in the copies named by
    ``reuse``) is moved or copied instead of fetched, and when TARGET holds another revision of
    the dataset it is upgraded in place. A successful download of the revision (not a shard, nor
    files named exactly: those add files to TARGET) leaves a receipt; files named exactly into a
    folder that is not a copy leave nothing else there (no ``.djarchive``). ``request.events``
    receives machine-readable progress, its last event included (:mod:`djarchive_common.events`).
    """
    events = request.events
    try:
        summary = _download(store, manifest, request)
    except DJArchiveError as error:
        if events is not None:
            result = error.summary if isinstance(error, PartialFailureError) else None
            data = result.to_dict() if isinstance(result, DownloadSummary) else {"ok": False}
            events.end({**data, "error": str(error)})
        raise
    if events is not None:
        events.end(summary.to_dict())
    return summary


def _download(store: Store, manifest: Manifest, request: DownloadRequest) -> DownloadSummary:
    """:func:`download_revision`, without the last event."""
    started = time.monotonic()
    selected, keys = select_files(manifest, request.selection, request.name)
    summary = _start(request, selected)
    if request.dry_run and not target_path(request.target).exists():
        summary.planned, summary.plan = selected, Plan(fetch=selected)
        return summary
    create = request.create_target and not request.dry_run
    local = LocalCopy(request.target, create=create, shard=request.selection.shard)
    sources: list[tuple[LocalCopy, Manifest]] = []
    try:
        if request.selection.paths is not None and local.folder.lstat(STATE_FOLDER) is None:
            local.keep_no_state()  # named files added to a folder that is not a copy: nothing else
        local.files.check_destinations(selected)  # refuses links and aliased folders before any write
        upgrade = None if request.selection.paths is not None else _upgrade_from(local, request, manifest)
        summary.upgraded_from = upgrade.revision if upgrade is not None else None
        sources = _reuse_sources(request.reuse)
        if request.dry_run:  # the same checks as a download, hashes included, but nothing is written
            local.load_record()
            plan, _ = _plan(
                local, selected, upgrade=upgrade, sources=sources, request=request, summary=summary
            )
            if (upgrade is not None or sources) and request.options.delta:
                copies = [local.files, *(copy.files for copy, _ in sources)]
                plan.deltas = summary.deltas = describe_deltas(store, request, plan.fetch, copies)
            return summary
        with local:
            plan, proved = _plan(
                local, selected, upgrade=upgrade, sources=sources, request=request, summary=summary
            )
            local.verified.remember_found(proved)  # what planning proved: the planner writes nothing
            if upgrade is not None and not request.selection.loose:  # neither revision until it ends
                receipt = _receipt(store, request, summary, UPGRADING, previous=upgrade.revision)
                local.write_receipt(receipt, manifest, upgrade.manifest)
            others = [copy for copy, _ in sources] if upgrade is not None or sources else None
            _apply(store, local, plan, keys=keys, request=request, summary=summary, copies=others)
            if not summary.failed and not request.selection.loose:
                receipt = _receipt(store, request, summary, COMPLETE, held=local.receipt())
                local.write_receipt(receipt, manifest)
                local.clear_partials(lambda: _unselected(manifest, selected))
    finally:
        local.close()
        for copy, _ in sources:
            copy.close()
    summary.seconds = time.monotonic() - started
    log.debug("%s", summary)
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(summary.files)} of {request.name} failed to download",
            summary.failed,
            summary,
        )
    return summary


def _unselected(manifest: Manifest, selected: Sequence[Entry]) -> list[str]:
    """The paths of the revision this download did not select."""
    chosen = {entry.subpath for entry in selected}
    return [subpath for subpath in manifest.subpaths if subpath not in chosen]


# -- 1. select -------------------------------------------------------------------------------


def select_files(
    manifest: Manifest, selection: Selection, what: str
) -> tuple[Sequence[Entry], dict[str, str]]:
    """The entries ``selection`` names (each under the local path it goes to), and ``{local
    path: subpath}`` of those placed under another name. Patterns or names that select nothing
    are refused (NotFoundError): a typo must not pass as 'done'."""
    selected = select_or_fail(manifest, selection.include, selection.exclude, what)
    keys: dict[str, str] = {}
    if selection.paths is not None:
        selected, keys = _named(selected, selection.paths, what)
    if selection.shard is not None:
        selected = split(selected, *selection.shard)
    return selected, keys


def _named(
    entries: Sequence[Entry], places: Sequence[tuple[str, str]], what: str
) -> tuple[list[Entry], dict[str, str]]:
    """The entries ``places`` names, each under the local path (relative to TARGET) it pairs the
    subpath with; and ``{local path: subpath}`` of those placed under another name. Local paths
    obey the manifest's rules (relative, unique, none of djarchive's names): they are checked as
    one, before anything is written."""
    by_subpath = {entry.subpath: entry for entry in entries}
    wanted = dict(places)
    missing = [subpath for subpath in wanted if subpath not in by_subpath]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFoundError(f"{what} has no file {missing[0]!r}{more}; nothing was done")
    named = Manifest(
        (
            Entry(local, by_subpath[subpath].size, by_subpath[subpath].sha256)
            for subpath, local in wanted.items()
        ),
        source="the local paths asked for",
    )
    return list(named), {local: subpath for subpath, local in wanted.items() if local != subpath}


def _start(request: DownloadRequest, selected: Sequence[Entry]) -> DownloadSummary:
    """The summary of a download of ``selected``, before anything happened (and its first event)."""
    summary = DownloadSummary(
        request.dataset,
        request.revision,
        str(request.target),
        files=len(selected),
        bytes=size_of(selected),
        dry_run=request.dry_run,
        shard=request.selection.shard,
        retracted=request.retracted,
        signature=request.signature,
        mirrors=tuple(source.name for source in request.mirrors),
        note=request.note,
    )
    if request.events is not None and not request.dry_run:
        request.events.start(
            len(selected),
            summary.bytes,
            dataset=request.dataset,
            revision=request.revision,
            target=str(request.target),
        )
    return summary


# -- 2. plan ---------------------------------------------------------------------------------


def _upgrade_from(local: LocalCopy, request: DownloadRequest, manifest: Manifest) -> Upgrade | None:
    """What TARGET holds when it is another revision of the dataset, an unfinished upgrade to this
    one, or this one as it was published before a forced republish (``manifest`` is the revision
    as published now: a change stops the download unless the request accepts it); refuse a
    TARGET holding another dataset. The old revision's files are those its receipt selected and
    the request selects: an upgrade with ``--include/--exclude`` changes nothing else."""
    receipt = local.receipt()
    if receipt is None:
        return None
    dataset, revision = request.dataset, request.revision
    if receipt.dataset != dataset:
        raise LocalPathError(
            f"{local.path} holds {receipt.dataset} {receipt.revision}, not {dataset}: download {dataset} "
            "into another folder"
        )
    changed = republished(receipt, manifest.sha256) if receipt.revision == revision else ""
    if changed and not request.accept_republished:
        raise RevisionChangedError(
            f"{changed}; nothing was changed in {local.path}",
            recorded=receipt.manifest_sha256,
            published=manifest.sha256,
            hint=Hint(
                "accept_republished",
                flag="--accept-republished",
                text=": download with {} to bring the copy to the revision as it is published now",
            ),
        )
    if receipt.revision == revision and receipt.state != UPGRADING and not changed:
        return None
    stored, previous = local.stored_manifests(receipt)
    selection = request.selection
    if receipt.state == UPGRADING and previous is not None and receipt.previous:
        stored = previous
        held = receipt.previous
    elif receipt.revision == revision and not changed:
        return None
    else:
        held = receipt.revision
    entries = select(stored, receipt.include, receipt.exclude)
    if selection.include or selection.exclude:
        entries = [entry for entry in entries if matches(entry.subpath, selection.include, selection.exclude)]
    return Upgrade(held, stored, entries)


def _reuse_sources(folders: Sequence[str | os.PathLike[str]]) -> list[tuple[LocalCopy, Manifest]]:
    """Other local copies to take content from, with the manifests their receipts hold (which
    say where the content could be; every file taken is hashed: their records are no evidence)."""
    sources: list[tuple[LocalCopy, Manifest]] = []
    try:
        for folder in folders:
            copy = LocalCopy(folder)
            try:
                held = copy.receipt()
                if held is None:
                    raise LocalPathError(
                        f"cannot reuse {folder}: not a djarchive copy (no receipt says what it holds)"
                    )
                sources.append((copy, copy.stored_manifests(held)[0]))
            except BaseException:
                copy.close()
                raise
    except BaseException:
        for copy, _ in sources:
            copy.close()
        raise
    return sources


def _plan(
    local: LocalCopy,
    selected: Sequence[Entry],
    *,
    upgrade: Upgrade | None,
    sources: Sequence[tuple[LocalCopy, Manifest]],
    request: DownloadRequest,
    summary: DownloadSummary,
) -> tuple[Plan, dict[str, Digest]]:
    """What the download does (:func:`plan_download`), told to the summary; and what hashing
    proved, to record."""
    plan, proved = plan_download(
        local,
        selected,
        previous=upgrade.entries if upgrade is not None else None,
        reuse=sources,
        recheck=request.options.recheck,
        remove_old=request.selection.shard is None,
        jobs=request.options.jobs,
        progress=request.progress,
    )
    summary.plan, summary.planned = plan, plan.fetch
    summary.present_files = len(plan.keep)
    summary.conflicts = {**plan.conflicts, **plan.left}
    return plan, proved


# -- 3. apply --------------------------------------------------------------------------------


def _apply(
    store: Store,
    local: LocalCopy,
    plan: Plan,
    *,
    keys: dict[str, str],
    request: DownloadRequest,
    summary: DownloadSummary,
    copies: Sequence[LocalCopy] | None = None,
) -> None:
    """Carry out ``plan`` in ``local`` (the lock held): report what is kept, use the content on
    local disk, fetch the rest (large files by their changed chunks where an upgrade or the
    ``copies`` given with ``--reuse`` hold earlier versions: ``copies`` is None when neither is
    there), remove the old revision's files, fail the conflicts."""
    events = request.events
    if events is not None:
        for entry in plan.keep:
            events.file(entry.subpath, entry.size, "present")
    unusable = _use_local_content(local, plan, request, summary)
    todo = [*plan.fetch, *unusable]
    if copies is not None and request.options.delta:
        named = [entry for entry in todo if entry.subpath not in keys]  # renamed ones: fetched whole
        left = fetch_deltas(store, local, named, request=request, summary=summary, copies=copies)
        todo = left + [entry for entry in todo if entry.subpath in keys]
    fetch_all(store, local, todo, request=request, keys=keys, summary=summary)
    for entry in plan.remove:
        local.files.remove(entry.subpath)
        local.verified.forget(entry.subpath)
        summary.removed.append(entry.subpath)
    for subpath, why in plan.conflicts.items():
        summary.failed[subpath] = f"{why}; move it away (or delete it) and download again"
        if events is not None:
            events.file(subpath, 0, "failed", summary.failed[subpath])


def _use_local_content(
    local: LocalCopy, plan: Plan, request: DownloadRequest, summary: DownloadSummary
) -> list[Entry]:
    """Stage the copies (every source read before anything is replaced), move what moved, then
    place the copies; return the entries whose local content turned out unusable (to fetch).
    Copies from other folders are hashed as they are staged; TARGET's own record vouches for
    its own files unless the request asks to hash everything again."""
    staged: list[tuple[Entry, str, os.stat_result]] = []
    unusable: list[Entry] = []
    record = local.verified
    for item in plan.copy:
        try:
            part, status = copy_in(
                local.files,
                item.source.files,
                item.subpath,
                item.entry,
                link=request.link and item.source is not local,
                record=local.verified if item.source is local and not request.options.recheck else None,
            )
        except (IntegrityError, LocalPathError, OSError) as error:
            log.info("cannot reuse %s for %s (%s): fetching it", item.subpath, item.entry.subpath, error)
            unusable.append(item.entry)
            continue
        staged.append((item.entry, part, status))
    for entry, old in plan.move:
        record.forget(old)
        record.remember(entry, local.files.move(old, entry.subpath))
        _reused(entry, request, summary)
    for entry, part, status in staged:
        record.forget(entry.subpath)
        local.files.place(part, entry.subpath)
        record.remember(entry, status)
        _reused(entry, request, summary)
    return unusable


def _reused(entry: Entry, request: DownloadRequest, summary: DownloadSummary) -> None:
    summary.reused_files += 1
    summary.reused_bytes += entry.size
    if request.events is not None:
        request.events.file(entry.subpath, entry.size, "reused")


# -- 4. receipt ------------------------------------------------------------------------------


def _receipt(
    store: Store,
    request: DownloadRequest,
    summary: DownloadSummary,
    state: str,
    previous: str | None = None,
    *,
    held: Receipt | None = None,
) -> Receipt:
    """What TARGET holds after (``COMPLETE``) or during (``UPGRADING`` from ``previous``) the
    download; :meth:`LocalCopy.write_receipt` adds the manifests' sha256. The bytes by source
    add to those of ``held``, the receipt there, when it is of this revision."""
    stamp = now()
    sources = dict(summary.sources)
    if held is not None and (held.dataset, held.revision) == (request.dataset, request.revision):
        for name, count in held.sources.items():
            sources[name] = sources.get(name, 0) + count
    return Receipt(
        request.dataset,
        request.revision,
        store.settings.endpoint,
        store.settings.bucket,
        "",
        secure=store.settings.secure,
        state=state,
        files=summary.files,
        bytes=summary.bytes,
        include=list(request.selection.include),
        exclude=list(request.selection.exclude),
        previous=previous,
        signature=request.signature.to_dict() if request.signature is not None else None,
        sources=sources,
        tool=f"djarchive-client {__version__}",
        downloaded_at=stamp,
        verified_at=stamp,
    )

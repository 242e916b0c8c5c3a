"""The upload engine: plan against the store, copy what the archive holds, send the rest.

Planning (:mod:`.plan`) skips the objects already stored with the right size and sha256, so
re-running an interrupted upload sends only what is missing, and finds the content earlier
published revisions hold, which is copied server-side (:mod:`.reuse`). Files are uploaded by the shared
worker pool over the store's connection pool, large ones as multipart uploads, each
object carrying its sha256 as ``x-amz-meta-sha256`` and as the digests the server checks
(:mod:`djarchive_common.writes`); the ETag of each is recorded for publish to prove the
revision. A file that changes while it is uploaded is removed from the store again and reported.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from djarchive_common.catalog import Catalog
from djarchive_common.chunks import Chunker
from djarchive_common.copies import MAX_COPY_SIZE
from djarchive_common.errors import (
    Cancelled,
    DJArchiveError,
    IntegrityError,
    ManifestError,
    PartialFailureError,
    RevisionPublishedError,
)
from djarchive_common.events import Events
from djarchive_common.layout import (
    chunks_key,
    manifest_key,
    object_key,
    revision_prefix,
    staged_manifest_key,
    staged_manifest_keys,
)
from djarchive_common.manifest import Entry, Manifest, diff_manifests, subpaths_of
from djarchive_common.store import Store
from djarchive_common.text import files, human_bytes, plural, some
from djarchive_common.transfer import DEFAULT_WORKERS, Progress, Slots, run_parallel
from djarchive_common.writes import Written

from .delta import send_less
from .lease import RevisionLease
from .plan import UploadPlan, archive_holdings, plan_upload
from .publish import force_hint, publish_revision, refuse_changed_retraction
from .scan import SourceFile, source_manifest
from .sign import sign_revision

if TYPE_CHECKING:
    from djarchive_common.signing import SigningKey

__all__ = [
    "Overwrite",
    "UploadOptions",
    "UploadPlan",
    "UploadSummary",
    "plan_upload",
    "send",
    "upload_revision",
]

log = logging.getLogger("djarchive_admin")
MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's smallest multipart part
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_PARALLEL_PARTS = 8


@dataclass(frozen=True)
class UploadOptions:
    """Tuning for one upload."""

    jobs: int = DEFAULT_WORKERS
    part_size: int = 16 * MiB  # files larger than this are sent as multipart uploads of this part size
    memory: int = 128 * MiB  # file data held in memory by all uploads at once (minio reads parts whole)
    reuse: bool = True  # copy content earlier revisions hold, index large files, send their deltas
    max_copy_size: int = MAX_COPY_SIZE  # larger objects are copied as multipart uploads of ranges
    delta_threshold: int = 64 * MiB  # files at least this large get a chunk index (and deltas)
    chunker: Chunker = field(default_factory=Chunker)

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")

    def part_size_for(self, size: int) -> int:
        """The part size for a file of ``size`` bytes: the configured one, doubled until parts <= 10000."""
        part = self.part_size
        while math.ceil(size / part) > MAX_PARTS and part < MAX_PART_SIZE:
            part = min(part * 2, MAX_PART_SIZE)
        return part


@dataclass(frozen=True)
class Overwrite:
    """What a forced upload replaces in a published revision."""

    files: int
    bytes: int
    changed: list[str]
    removed: list[str]
    added: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "changed": self.changed,
            "removed": self.removed,
            "added": self.added,
        }

    def __str__(self) -> str:
        return (
            f"the published revision ({files(self.files)}, {human_bytes(self.bytes)}): "
            f"{files(len(self.changed))} changed, {len(self.removed)} removed, {len(self.added)} added"
        )


def _overwrite(old: Manifest, new: Manifest) -> Overwrite:
    """What replacing ``old`` by ``new`` changes, path by path."""
    changes = diff_manifests(old, new)
    changed = [after.subpath for _, after in changes.changed]
    return Overwrite(
        len(old),
        old.total_size,
        changed,
        list(subpaths_of(changes.removed)),
        list(subpaths_of(changes.added)),
    )


@dataclass
class UploadSummary:
    """What an upload did. ``failed`` maps subpaths to the reason they failed."""

    dataset: str
    revision: str
    source: str
    files: int = 0
    bytes: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    stored_files: int = 0  # already in the store with the same size and sha256: not sent again
    copied_files: int = 0  # copied from earlier revisions in the archive: not sent
    copied_bytes: int = 0
    removed: list[str] = field(default_factory=list)  # stray objects deleted (forced upload)
    failed: dict[str, str] = field(default_factory=dict)
    overwrote: Overwrite | None = None  # set when a published revision was replaced
    manifest_source: str = "built"  # "built" in memory, or the path of SOURCE's own manifest
    staged: bool = False
    published: bool = False
    seconds: float = 0.0
    signed_by: str | None = None  # the key id that signed the revision as it was published
    written: dict[str, Written] = field(default_factory=dict, repr=False)  # subpath -> what was sent

    @property
    def ok(self) -> bool:
        """True when every file is in the store."""
        return not self.failed

    @property
    def state(self) -> str:
        """Where the revision stands: published, staged, or incomplete."""
        return "published" if self.published else "staged" if self.staged else "incomplete"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "source": self.source,
            "files": self.files,
            "bytes": self.bytes,
            "uploaded_files": self.uploaded_files,
            "uploaded_bytes": self.uploaded_bytes,
            "stored_files": self.stored_files,
            "copied_files": self.copied_files,
            "copied_bytes": self.copied_bytes,
            "removed": self.removed,
            "failed": self.failed,
            "overwrote": self.overwrote.to_dict() if self.overwrote else None,
            "manifest": self.manifest_source,
            "state": self.state,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "signed_by": self.signed_by,
        }

    def __str__(self) -> str:
        text = (
            f"{self.dataset} {self.revision}: {files(self.files)} ({human_bytes(self.bytes)}) "
            f"from {self.source}; sent {self.uploaded_files} ({human_bytes(self.uploaded_bytes)}), "
        )
        if self.copied_files:
            text += f"copied {self.copied_files} in the archive ({human_bytes(self.copied_bytes)}), "
        text += f"{self.stored_files} already stored"
        if self.removed:
            text += f", {plural(len(self.removed), 'stray object')} deleted"
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        rate = self.uploaded_bytes / self.seconds if self.seconds > 0 else 0
        text += f" in {self.seconds:.1f} s" + (f" ({human_bytes(rate)}/s)" if self.uploaded_bytes else "")
        if self.published:
            return text + "; published" + (f", signed with key {self.signed_by}" if self.signed_by else "")
        if self.staged:
            command = f"djarchive-admin publish {self.dataset} {self.revision}"
            return f"{text}; staged, not published (publish with: {command})"
        return text


def send(
    store: Store,
    dataset: str,
    revision: str,
    todo: Sequence[tuple[Entry, SourceFile]],
    summary: UploadSummary,
    *,
    options: UploadOptions,
    progress: bool = False,
    events: Events | None = None,
) -> None:
    """Upload every (entry, file) of ``todo``; raise PartialFailureError after the rest if any failed.

    Interrupted (Ctrl-C) or failed, it stops starting uploads at once and aborts the multipart
    uploads left open under the revision (the lease makes them all this writer's)."""
    stopping = threading.Event()
    parallel_parts = max(
        1,
        min(MAX_PARALLEL_PARTS, options.jobs // max(1, len(todo)), options.memory // options.part_size - 1),
    )
    total = sum(entry.size for entry, _ in todo)
    todo = sorted(todo, key=lambda item: item[0].size, reverse=True)  # the largest first: the shortest tail
    slots = Slots(options.jobs, store.options.pool_size, memory=options.memory)

    def in_memory(size: int) -> int:
        """What minio holds of a file while sending it: all of it, or the parts in flight and the next."""
        part = options.part_size_for(size)
        return size if size <= part else (parallel_parts + 1) * part

    with Progress(
        total, len(todo), enabled=progress and bool(todo), description=f"{dataset} {revision}", events=events
    ) as bar:

        def work(item: tuple[Entry, SourceFile]) -> Entry:
            return slots.run(item[0].size, lambda: put(item), memory=in_memory(item[0].size))

        def put(item: tuple[Entry, SourceFile]) -> Entry:
            entry, source = item
            if stopping.is_set():
                raise Cancelled("upload stopped")
            key = object_key(dataset, revision, entry.subpath)
            summary.written[entry.subpath] = store.put_file(
                key,
                source.path,
                entry.sha256,
                part_size=options.part_size_for(entry.size),
                parallel_parts=parallel_parts,
            )
            if source.changed():
                store.remove(key)
                raise IntegrityError(f"{source.path} changed while it was being uploaded; upload again")
            bar.advance(entry.size)
            bar.file_done()
            return entry

        try:
            for (entry, _), _, error in run_parallel(work, todo, slots.workers):
                if error is not None:
                    reason = str(error)
                    summary.failed[entry.subpath] = reason
                    log.debug("failed: %s: %s", entry.subpath, reason)
                    if events is not None:
                        events.file(entry.subpath, entry.size, "failed", reason)
                    continue
                summary.uploaded_files += 1
                summary.uploaded_bytes += entry.size
                if events is not None:
                    events.file(entry.subpath, entry.size, "uploaded")
                log.debug("uploaded %s (%d bytes)", entry.subpath, entry.size)
        except BaseException:
            stopping.set()
            _abort_open_uploads(store, dataset, revision)
            raise
    if summary.failed:
        _abort_open_uploads(store, dataset, revision)
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(len(todo))} of {dataset} {revision} failed to upload; "
            "nothing was published: run the upload again to send the rest",
            summary.failed,
            summary,
        )


def _abort_open_uploads(store: Store, dataset: str, revision: str) -> None:
    """Abort the multipart uploads left open under the revision (billed until aborted)."""
    try:
        count = store.abort_uploads(revision_prefix(dataset, revision))
    except DJArchiveError as error:
        log.warning("could not abort the unfinished uploads under %s/%s/: %s", dataset, revision, error)
        return
    if count:
        log.info("aborted %d unfinished multipart uploads under %s/%s/", count, dataset, revision)


def upload_revision(
    catalog: Catalog,
    dataset: str,
    revision: str,
    root: Path,
    filename_filter: str | re.Pattern[str] | None,
    *,
    publish: bool,
    force: bool,
    options: UploadOptions,
    progress: bool = False,
    lease: RevisionLease | None = None,
    events: Events | None = None,
    signer: SigningKey | None = None,
    checksums_trusted: bool = False,
) -> UploadSummary:
    """The whole upload of SOURCE (``root``) as ``dataset`` ``revision``; hold ``lease``.

    1. refuse a published revision unless ``force``; 2. the manifest: SOURCE's own, checked
    against every file, or one built in memory; 3. plan against the store (what is stored
    already, stray objects); 4. hide a published revision that is being replaced; 5. send;
    6. stage the manifest; 7. publish, signed by ``signer`` when given (what was sent is proven by
    its ETags, the rest as :func:`.publish.check_store` does with ``checksums_trusted``).
    """
    started = time.monotonic()
    store = catalog.store
    summary = UploadSummary(dataset, revision, str(root))
    old, published = _published_manifest(catalog, dataset, revision, force)
    manifest, sources, summary.manifest_source = source_manifest(
        root, filename_filter, options.jobs, progress
    )
    summary.files, summary.bytes = len(manifest), manifest.total_size
    sources_by_path = {file.subpath: file for file in sources}
    if not force:
        refuse_changed_retraction(catalog, dataset, revision, manifest)

    plan = _plan(catalog, dataset, revision, manifest, sources, options)
    if plan.strays and not force:
        raise IntegrityError(
            f"{dataset}/{revision}/ in {store.settings.url} holds {plural(len(plan.strays), 'object')} "
            f"not in the manifest: {some(plan.strays)}; nothing was uploaded",
            hint=force_hint(": pass {} to delete them"),
        )
    summary.stored_files = len(plan.stored)
    if events is not None:
        events.start(summary.files, summary.bytes, dataset=dataset, revision=revision, source=str(root))
        for entry in plan.stored:
            events.file(entry.subpath, entry.size, "present")
    if published:
        summary.overwrote = _overwrite(old, manifest) if old is not None else None
        if old == manifest and not plan.todo and not plan.strays and publish:
            # forced over an identical, intact revision: nothing to change, and it stays visible
            summary.published = True
            if signer is not None:
                summary.signed_by = sign_revision(catalog, dataset, revision, signer, lease=lease).key_id
            summary.seconds = time.monotonic() - started
            log.info("%s %s is already published with this content", dataset, revision)
            return summary
        log.info(
            "overwriting published %s %s: %s", dataset, revision, summary.overwrote or "invalid manifest"
        )
        store.remove(manifest_key(dataset, revision))  # hidden from clients while it changes
    staged_key = staged_manifest_key(dataset, revision)
    for key in staged_manifest_keys(dataset, revision):  # the legacy key too: it is read as a fallback
        _drop_stale_staged(catalog, key, manifest)
    _abort_open_uploads(store, dataset, revision)  # left by an earlier run that died
    try:
        items = [(entry, sources_by_path[entry.subpath]) for entry in manifest]
        todo, index = send_less(catalog, dataset, revision, items, plan, summary, options, events)
        send(store, dataset, revision, todo, summary, options=options, progress=progress, events=events)
        if index is not None and index.files:
            store.put_bytes(chunks_key(dataset, revision), index.to_bytes())
        else:
            store.remove(chunks_key(dataset, revision))  # one of other content, left by an earlier upload
        if plan.strays:
            store.remove_many([revision_prefix(dataset, revision) + subpath for subpath in plan.strays])
            summary.removed = list(plan.strays)
        if lease is not None:
            lease.check()
        store.put_bytes(staged_key, manifest.to_bytes())
        summary.staged = True
        log.info("staged %s %s at %s", dataset, revision, staged_key)
        if publish:  # what this upload sent is proven by its ETags; the rest is checked
            result = publish_revision(
                catalog,
                dataset,
                revision,
                force=force,
                jobs=options.jobs,
                written=summary.written,
                checksums_trusted=checksums_trusted,
                lease=lease,
                signer=signer,
            )
            summary.published = True
            summary.signed_by = result.signed_by
    except DJArchiveError as error:
        if events is not None:
            events.end({**summary.to_dict(), "error": str(error)})
        raise
    finally:
        summary.seconds = time.monotonic() - started
    if events is not None:
        events.end(summary.to_dict())
    log.info("%s", summary)
    return summary


def _plan(
    catalog: Catalog,
    dataset: str,
    revision: str,
    manifest: Manifest,
    sources: list[SourceFile],
    options: UploadOptions,
) -> UploadPlan:
    """The upload's plan, with the content earlier revisions hold unless ``options.reuse`` is off."""
    store = catalog.store
    plan = plan_upload(store, dataset, revision, manifest, sources, jobs=options.jobs)
    if not options.reuse or not plan.todo:
        return plan
    holdings = archive_holdings(
        catalog, dataset, revision, (entry for entry, _ in plan.todo), jobs=options.jobs
    )
    return plan.copying(holdings)


def _published_manifest(
    catalog: Catalog, dataset: str, revision: str, force: bool
) -> tuple[Manifest | None, bool]:
    """(the published manifest or None when it is invalid, whether the revision is published);
    a published revision is refused unless ``force``."""
    key = manifest_key(dataset, revision)
    if catalog.store.stat(key) is None:
        return None, False
    old: Manifest | None = None
    try:
        old = catalog.stored_manifest(key)
    except ManifestError as error:
        log.info("the published manifest of %s %s is invalid: %s", dataset, revision, error)
    if not force:
        what = f" ({files(len(old))}, {human_bytes(old.total_size)})" if old is not None else ""
        raise RevisionPublishedError(
            f"{dataset} {revision} is already published{what} at {catalog.settings.url}; published "
            "revisions are immutable: choose a new revision",
            hint=force_hint(", or pass {} to overwrite it"),
        )
    return old, True


def _drop_stale_staged(catalog: Catalog, key: str, manifest: Manifest) -> None:
    """Delete a staged manifest unlike ``manifest``: a staged one always describes complete data."""
    try:
        staged = catalog.stored_manifest(key)
    except ManifestError:
        staged = None
        catalog.store.remove(key)
    if staged is not None and staged != manifest:
        catalog.store.remove(key)

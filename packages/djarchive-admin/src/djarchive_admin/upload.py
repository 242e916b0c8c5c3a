"""The upload engine: plan against the store, then send what is missing, concurrently.

Planning lists the revision's prefix once and asks the store for the sha256 metadata of
every object that already has the right size; those objects are skipped, so re-running
an interrupted upload sends only what is missing. Files are uploaded by the shared
worker pool over the store's connection pool, large ones as multipart uploads, each
object carrying its sha256 as ``x-amz-meta-sha256``. A file that changes while it is
uploaded is removed from the store again and reported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from djarchive_common.errors import IntegrityError, PartialFailureError
from djarchive_common.layout import manifest_key, object_key, revision_prefix, subpath_of
from djarchive_common.manifest import Entry, Manifest
from djarchive_common.store import Store
from djarchive_common.transfer import DEFAULT_WORKERS, Progress, Slots, human_bytes, run_parallel

from .scan import SourceFile

__all__ = [
    "Overwrite",
    "UploadOptions",
    "UploadPlan",
    "UploadSummary",
    "diff_manifests",
    "plan_upload",
    "send",
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
            f"the published revision ({self.files} files, {human_bytes(self.bytes)}): "
            f"{len(self.changed)} files changed, {len(self.removed)} removed, {len(self.added)} added"
        )


def diff_manifests(old: Manifest, new: Manifest) -> Overwrite:
    """What replacing ``old`` by ``new`` changes."""
    changed = [entry.subpath for entry in new if entry.subpath in old and old.get(entry.subpath) != entry]
    removed = [entry.subpath for entry in old if entry.subpath not in new]
    added = [entry.subpath for entry in new if entry.subpath not in old]
    return Overwrite(len(old), old.total_size, changed, removed, added)


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
    removed: list[str] = field(default_factory=list)  # stray objects deleted (forced upload)
    failed: dict[str, str] = field(default_factory=dict)
    overwrote: Overwrite | None = None  # set when a published revision was replaced
    manifest_source: str = "built"  # "built" in memory, or the path of SOURCE's own manifest
    staged: bool = False
    published: bool = False
    seconds: float = 0.0

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
            "removed": self.removed,
            "failed": self.failed,
            "overwrote": self.overwrote.to_dict() if self.overwrote else None,
            "manifest": self.manifest_source,
            "state": self.state,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
        }

    def __str__(self) -> str:
        text = (
            f"{self.dataset} {self.revision}: {self.files} files ({human_bytes(self.bytes)}) "
            f"from {self.source}; uploaded {self.uploaded_files} ({human_bytes(self.uploaded_bytes)}), "
            f"{self.stored_files} already stored"
        )
        if self.removed:
            text += f", {len(self.removed)} stray objects deleted"
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        rate = self.uploaded_bytes / self.seconds if self.seconds > 0 else 0
        text += f" in {self.seconds:.1f} s" + (f" ({human_bytes(rate)}/s)" if self.uploaded_bytes else "")
        if self.published:
            return text + "; published"
        if self.staged:
            command = f"djarchive-admin publish {self.dataset} {self.revision}"
            return f"{text}; staged, not published (publish with: {command})"
        return text


@dataclass
class UploadPlan:
    """What to send, what is already stored, and objects under the prefix the manifest does not list."""

    todo: list[tuple[Entry, SourceFile]]
    stored: list[Entry]
    strays: list[str]  # subpaths


def plan_upload(
    store: Store,
    dataset: str,
    revision: str,
    manifest: Manifest,
    files: Sequence[SourceFile],
    *,
    jobs: int = DEFAULT_WORKERS,
) -> UploadPlan:
    """Compare the manifest with the store: objects with the same size and sha256 need no upload."""
    prefix = revision_prefix(dataset, revision)
    listing = {info.key: info.size for info in store.objects(prefix)}
    sources = {item.subpath: item for item in files}
    published_key = manifest_key(dataset, revision)
    expected = {object_key(dataset, revision, entry.subpath) for entry in manifest}
    strays = sorted(
        subpath_of(prefix, key) for key in listing if key not in expected and key != published_key
    )
    same_size = [
        entry for entry in manifest if listing.get(object_key(dataset, revision, entry.subpath)) == entry.size
    ]
    stored: set[str] = set()

    def stored_sha256(entry: Entry) -> str | None:
        info = store.stat(object_key(dataset, revision, entry.subpath))
        return info.sha256 if info is not None else None

    for entry, sha256, error in run_parallel(stored_sha256, same_size, jobs):
        if error is not None:
            raise error
        if sha256 == entry.sha256:
            stored.add(entry.subpath)
    todo = [(entry, sources[entry.subpath]) for entry in manifest if entry.subpath not in stored]
    log.info(
        "%s: %d files to upload, %d already stored, %d stray objects",
        prefix,
        len(todo),
        len(stored),
        len(strays),
    )
    return UploadPlan(todo, [entry for entry in manifest if entry.subpath in stored], strays)


def send(
    store: Store,
    dataset: str,
    revision: str,
    todo: Sequence[tuple[Entry, SourceFile]],
    summary: UploadSummary,
    *,
    options: UploadOptions,
    progress: bool = False,
) -> None:
    """Upload every (entry, file) of ``todo``; raise PartialFailureError after the rest if any failed."""
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
        total, len(todo), enabled=progress and bool(todo), description=f"{dataset} {revision}"
    ) as bar:

        def work(item: tuple[Entry, SourceFile]) -> Entry:
            return slots.run(item[0].size, lambda: put(item), memory=in_memory(item[0].size))

        def put(item: tuple[Entry, SourceFile]) -> Entry:
            entry, source = item
            key = object_key(dataset, revision, entry.subpath)
            store.put_file(
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

        for (entry, _), _, error in run_parallel(work, todo, slots.workers):
            if error is not None:
                reason = str(error)
                summary.failed[entry.subpath] = reason
                log.debug("failed: %s: %s", entry.subpath, reason)
                continue
            summary.uploaded_files += 1
            summary.uploaded_bytes += entry.size
            log.debug("uploaded %s (%d bytes)", entry.subpath, entry.size)
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {len(todo)} files of {dataset} {revision} failed to upload; "
            "nothing was published: run the upload again to send the rest",
            summary.failed,
            summary,
        )

"""Large files at upload: their chunk index, and delta uploads of a changed one (DESIGN §13).

Every file of at least ``threshold`` bytes is cut into content-defined chunks
(:mod:`djarchive_common.chunks`); the revision's index lists them, written beside the manifest,
so that clients upgrading a copy fetch only the chunks they lack.

A changed large file whose previous version an earlier published revision holds at the same
path, with an index, is uploaded as a delta: a multipart upload whose parts are ranges of the old
object copied in the bucket (UploadPartCopy) where the chunks are unchanged, and parts sent from
the local file elsewhere. S3's parts are at least 5 MiB (the last aside), so a changed chunk is
sent within a part of that size. Copied parts are proven like any copy
(:mod:`djarchive_common.copies`); a delta that fails is sent whole instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from djarchive_common.catalog import Catalog
from djarchive_common.chunks import MAX_INDEX_BYTES, Chunker, ChunkIndex, FileChunks, file_chunks
from djarchive_common.copies import MAX_COPY_SIZE, MIN_PART_SIZE, Piece
from djarchive_common.errors import Cancelled, DJArchiveError, IntegrityError, NotFoundError
from djarchive_common.events import Events
from djarchive_common.layout import chunks_key, object_key
from djarchive_common.manifest import Entry
from djarchive_common.store import Store
from djarchive_common.text import files, human_bytes
from djarchive_common.transfer import map_parallel, run_parallel
from djarchive_common.writes import Written, file_reader

from .plan import MAX_REUSED_REVISIONS, UploadPlan
from .reuse import copy_in_archive
from .scan import SourceFile

if TYPE_CHECKING:
    from .upload import UploadOptions, UploadSummary

__all__ = ["Delta", "chunk_index", "earlier_chunks", "plan_delta", "send_deltas", "send_less"]

log = logging.getLogger("djarchive_admin")
MiB = 1024 * 1024
MAX_PARTS = 10_000
Segment = list  # [start, length, offset in the old object or None (sent)]


def chunk_index(items: Sequence[tuple[Entry, SourceFile]], chunker: Chunker, threshold: int) -> ChunkIndex:
    """The chunk index of the files of at least ``threshold`` bytes among ``items``."""
    index = ChunkIndex(chunker)
    for entry, file in items:
        if entry.size < threshold:
            continue
        fd = os.open(file.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            index.files[entry.subpath] = file_chunks(fd, entry.size, entry.sha256, chunker)
        finally:
            os.close(fd)
        if file.changed():
            raise IntegrityError(f"{file.path} changed while it was being read; upload again")
    if index.files:
        log.info(
            "chunk index of %s: %d chunks",
            files(len(index.files)),
            sum(len(f.chunks) for f in index.files.values()),
        )
    return index


def earlier_chunks(
    catalog: Catalog, dataset: str, revision: str, subpaths: Sequence[str], *, jobs: int
) -> dict[str, tuple[str, FileChunks]]:
    """subpath -> (the key of its object, its chunks) in the latest published revision of
    ``dataset`` (``revision`` aside) whose chunk index has it."""
    if not subpaths:
        return {}
    try:
        others = [name for _, name in catalog.revisions(dataset) if name != revision][-MAX_REUSED_REVISIONS:]
    except NotFoundError:
        return {}

    def index_of(other: str) -> ChunkIndex | None:
        try:
            return ChunkIndex.from_bytes(catalog.store.read(chunks_key(dataset, other), MAX_INDEX_BYTES))
        except DJArchiveError as error:  # none, or unreadable: that revision offers no chunks
            log.debug("no chunk index for %s %s: %s", dataset, other, error)
            return None

    indexes = map_parallel(index_of, others, jobs)
    found: dict[str, tuple[str, FileChunks]] = {}
    wanted = set(subpaths)
    for other in reversed(others):
        index = indexes.get(other)
        for subpath, chunks in index.files.items() if index is not None else ():
            if subpath in wanted and subpath not in found:
                found[subpath] = (object_key(dataset, other, subpath), chunks)
    return found


@dataclass
class Delta:
    """A file sent as a delta: its parts, and the bytes sent and copied."""

    entry: Entry
    file: SourceFile
    pieces: list[Piece]

    @property
    def sent(self) -> int:
        return sum(piece.length for piece in self.pieces if piece.source is None)

    @property
    def copied(self) -> int:
        return self.entry.size - self.sent


def plan_delta(
    new: FileChunks, old: FileChunks, source: str, *, part_size: int, min_part: int = MIN_PART_SIZE
) -> list[Piece] | None:
    """The parts of a delta upload of ``new`` over ``old`` (stored at ``source``): ranges of the old
    object for runs of unchanged chunks, local bytes elsewhere, every part but the last at least
    ``min_part``; None when it copies nothing worth a request or needs too many parts."""
    where = {sha256: offset for offset, _, sha256 in old.spans()}
    segments: list[Segment] = []
    for offset, length, sha256 in new.spans():
        at = where.get(sha256)
        last = segments[-1] if segments else None
        if last is not None and _continues(last, offset, at):
            last[1] += length
        else:
            segments.append([offset, length, at])
    pieces: list[Piece] = []
    for start, length, at in _sized(segments, min_part):
        # sent runs in parts of about part_size (at least it); copied ones under S3's limit
        count = max(1, length // part_size) if at is None else -(-length // MAX_COPY_SIZE)
        step = -(-length // count)
        for index in range(count):
            begin = start + index * step
            size = min(step, start + length - begin)
            if at is None:
                pieces.append(Piece(begin, size))
            else:
                pieces.append(Piece(begin, size, source, at + index * step))
    copied = sum(piece.length for piece in pieces if piece.source is not None)
    if copied < min_part or len(pieces) > MAX_PARTS:
        return None
    return pieces


def _continues(segment: Segment, offset: int, at: int | None) -> bool:
    """Whether a chunk at ``offset`` (found at ``at`` of the old object, or None) extends ``segment``."""
    _, length, source = segment
    if source is None or at is None:
        return source is None and at is None
    return at == source + length


def _sized(segments: list[Segment], min_part: int) -> list[Segment]:
    """The segments made valid parts: copied runs shorter than ``min_part`` are sent, and a sent
    run shorter than that takes bytes from the copied run after it (all of it when what is left
    would be too short), so that every part but the last is at least ``min_part``."""
    merged: list[Segment] = []
    for start, length, at in segments:
        if at is not None and length < min_part:
            at = None
        if merged and merged[-1][2] is None and at is None:
            merged[-1][1] += length
        else:
            merged.append([start, length, at])
    result: list[Segment] = []
    for segment in merged:
        start, length, at = segment
        previous = result[-1] if result else None
        if previous is not None and previous[2] is None:
            if at is None or length - max(0, min_part - previous[1]) < min_part:
                previous[1] += length  # sent with the run before it
                continue
            need = max(0, min_part - previous[1])
            previous[1] += need
            start, length, at = start + need, length - need, at + need
        result.append([start, length, at])
    return result


def send_deltas(
    store: Store,
    dataset: str,
    revision: str,
    deltas: Sequence[Delta],
    written: dict[str, Written],
    *,
    jobs: int,
    parallel_parts: int = 4,
    on_done: Callable[[Delta], None] = lambda delta: None,
) -> list[tuple[Entry, SourceFile]]:
    """Upload each delta; return the (entry, file) pairs to send whole instead (their delta failed)."""

    def work(delta: Delta) -> Written:
        key = object_key(dataset, revision, delta.entry.subpath)
        read = file_reader(delta.file.path, f"uploading {key}")
        found = store.compose(
            key, delta.entry.size, delta.entry.sha256, delta.pieces, read, parallel=parallel_parts
        )
        if delta.file.changed():
            raise IntegrityError(f"{delta.file.path} changed while it was being uploaded")
        return found

    again: list[tuple[Entry, SourceFile]] = []
    for delta, result, error in run_parallel(work, deltas, max(1, jobs // parallel_parts)):
        if isinstance(error, Cancelled) or (error is not None and not isinstance(error, DJArchiveError)):
            raise error
        if error is not None:
            log.info("the delta upload of %s failed (%s): sending it whole", delta.entry.subpath, error)
            again.append((delta.entry, delta.file))
            continue
        written[delta.entry.subpath] = result  # type: ignore[assignment]
        on_done(delta)
        log.info(
            "%s: sent %s of %s, the rest copied in the archive",
            delta.entry.subpath,
            human_bytes(delta.sent),
            human_bytes(delta.entry.size),
        )
    return again


def send_less(
    catalog: Catalog,
    dataset: str,
    revision: str,
    items: Sequence[tuple[Entry, SourceFile]],
    plan: UploadPlan,
    summary: UploadSummary,
    options: UploadOptions,
    events: Events | None = None,
) -> tuple[list[tuple[Entry, SourceFile]], ChunkIndex | None]:
    """Everything an upload does not send: the copies of content the archive holds, the chunk
    index of the large files among ``items`` (the whole revision) and the deltas of changed
    ones (unless ``options.reuse`` is off); return what is left to send, and the index."""
    store = catalog.store
    todo = list(plan.todo)
    if plan.copies:
        copied, failed = copy_in_archive(
            store,
            dataset,
            revision,
            plan.copies,
            summary.written,
            jobs=options.jobs,
            part_size_for=options.part_size_for,
            max_copy_size=options.max_copy_size,
            events=events,
        )
        summary.copied_files, summary.copied_bytes = len(copied), sum(entry.size for entry in copied)
        todo += failed
    if not options.reuse:
        return todo, None
    index = chunk_index(items, options.chunker, options.delta_threshold)
    large = [subpath for subpath in (entry.subpath for entry, _ in todo) if subpath in index.files]
    earlier = earlier_chunks(catalog, dataset, revision, large, jobs=options.jobs)
    deltas: list[Delta] = []
    rest: list[tuple[Entry, SourceFile]] = []
    for entry, file in todo:
        found = earlier.get(entry.subpath)
        pieces = None
        if found is not None:
            source, old = found
            part_size = options.part_size_for(entry.size)
            pieces = plan_delta(index.files[entry.subpath], old, source, part_size=part_size)
        if pieces is None:
            rest.append((entry, file))
        else:
            deltas.append(Delta(entry, file, pieces))

    def done(delta: Delta) -> None:
        summary.uploaded_files += 1
        summary.uploaded_bytes += delta.sent
        summary.copied_bytes += delta.copied
        if events is not None:
            events.file(delta.entry.subpath, delta.entry.size, "uploaded")

    if deltas:
        rest += send_deltas(
            store, dataset, revision, deltas, summary.written, jobs=options.jobs, on_done=done
        )
    return rest, index

"""Copying content the archive already holds, server-side, instead of sending it again (DESIGN §13).

A file whose content an earlier published revision of the dataset holds (:func:`.plan.archive_holdings`)
is copied from that revision's object: one CopyObject up to 5 GiB, a multipart upload of copied
ranges (UploadPartCopy) above. The copy gets the file's own ``x-amz-meta-sha256``, and what
proves it holds the file is recorded as for an upload (:mod:`djarchive_common.copies`), for
publish to check (:mod:`.proof`). A copy that fails, or turns out to hold other bytes than the
file, is sent instead: copying only ever saves bandwidth.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence

from djarchive_common.copies import MAX_COPY_SIZE, Piece
from djarchive_common.errors import Cancelled, DJArchiveError, IntegrityError
from djarchive_common.events import Events
from djarchive_common.layout import object_key
from djarchive_common.manifest import Entry
from djarchive_common.store import Store
from djarchive_common.transfer import BUFFER_SIZE, run_parallel
from djarchive_common.writes import Written, file_reader

from .scan import SourceFile

__all__ = ["copy_in_archive", "file_md5"]

log = logging.getLogger("djarchive_admin")


def file_md5(path: str | os.PathLike[str]) -> str:
    """The MD5 of a local file (what proves a copy on a server whose ETags are MD5s)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(BUFFER_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def copy_pieces(size: int, part_size: int, source: str) -> list[Piece]:
    """The whole of ``source`` (``size`` bytes) as copied parts of ``part_size``."""
    offsets = range(0, size, part_size)
    return [Piece(offset, min(part_size, size - offset), source, offset) for offset in offsets]


def copy_file(
    store: Store,
    key: str,
    entry: Entry,
    file: SourceFile,
    source: str,
    *,
    part_size: int,
    max_copy_size: int = MAX_COPY_SIZE,
    parallel_parts: int = 1,
) -> Written:
    """Copy ``source`` to ``key`` as the content of ``entry`` (the local ``file``): one CopyObject up
    to ``max_copy_size``, else copied ranges of ``part_size``."""
    if entry.size <= max_copy_size:
        return store.copy(key, source, entry.sha256, md5=lambda: file_md5(file.path))
    pieces = copy_pieces(entry.size, part_size, source)
    read = file_reader(file.path, f"copying {source} to {key}")
    return store.compose(key, entry.size, entry.sha256, pieces, read, parallel=parallel_parts)


def copy_in_archive(
    store: Store,
    dataset: str,
    revision: str,
    copies: Sequence[tuple[Entry, SourceFile, str]],
    written: dict[str, Written],
    *,
    jobs: int,
    part_size_for: Callable[[int], int],
    max_copy_size: int = MAX_COPY_SIZE,
    events: Events | None = None,
) -> tuple[list[Entry], list[tuple[Entry, SourceFile]]]:
    """Copy each (entry, file, key copied from) to its key in the revision, recording what was
    written in ``written``; return (the entries copied, the (entry, file) pairs to send instead)."""

    def work(item: tuple[Entry, SourceFile, str]) -> Written:
        entry, file, source = item
        key = object_key(dataset, revision, entry.subpath)
        found = copy_file(
            store,
            key,
            entry,
            file,
            source,
            part_size=part_size_for(entry.size),
            max_copy_size=max_copy_size,
            parallel_parts=2,
        )
        if file.changed():
            raise IntegrityError(f"{file.path} changed while it was being copied")
        return found

    copied: list[Entry] = []
    send: list[tuple[Entry, SourceFile]] = []
    for (entry, file, source), result, error in run_parallel(work, copies, jobs):
        if isinstance(error, Cancelled) or (error is not None and not isinstance(error, DJArchiveError)):
            raise error
        if error is not None:
            log.info("could not copy %s from %s (%s): sending it", entry.subpath, source, error)
            send.append((entry, file))
            continue
        written[entry.subpath] = result  # type: ignore[assignment]
        copied.append(entry)
        if events is not None:
            events.file(entry.subpath, entry.size, "copied")
        log.debug("copied %s from %s (%d bytes)", entry.subpath, source, entry.size)
    return copied, send

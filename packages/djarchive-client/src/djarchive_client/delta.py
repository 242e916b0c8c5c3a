"""Upgrading a large file by its chunks: fetch only the chunks no local file holds (DESIGN §13).

When a revision has a chunk index (:mod:`djarchive_common.chunks`) and a large file to fetch has
a local predecessor (the file at its path in TARGET, as an upgrade leaves it, or in a copy given
with ``--reuse``), that file is cut the same way and its chunks hashed; the new file is assembled
in a temporary file from the local chunks the index names and from ranged GETs of the rest
(adjacent ones coalesced), then hashed whole and placed only when its sha256 is the manifest's.
The index comes from the bucket and the local files may change meanwhile: neither is trusted, a
wrong one only costs a normal fetch after. Revisions without an index are fetched as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from djarchive_common.chunks import MAX_INDEX_BYTES, ChunkIndex, file_chunks
from djarchive_common.errors import (
    DJArchiveError,
    IntegrityError,
    LocalPathError,
    LocalStorageError,
    ObjectNotFoundError,
)
from djarchive_common.layout import chunks_key, object_key
from djarchive_common.localfs import pread, pwrite
from djarchive_common.manifest import Entry
from djarchive_common.store import Store
from djarchive_common.text import human_bytes, plural
from djarchive_common.transfer import Progress, retry_call, run_parallel
from djarchive_common.verified import check_sha256, check_size, opened, receive

from .files import TargetFiles, hash_file
from .localcopy import LocalCopy, storage_error
from .request import DownloadRequest
from .summary import DownloadSummary

if TYPE_CHECKING:
    from djarchive_common.signing import SignatureStatus

__all__ = ["DeltaPlan", "describe_deltas", "fetch_delta", "fetch_deltas", "plan_deltas", "read_index"]

log = logging.getLogger("djarchive_client")
COALESCE_GAP = 64 * 1024  # local bytes between two missing chunks fetched with them: one request
WORTH = 0.9  # a delta is tried when it fetches at most this share of the file


@dataclass
class DeltaPlan:
    """How to assemble one file: ranges copied from local files, and ranges to fetch."""

    entry: Entry
    sources: list[tuple[TargetFiles, str]]  # local files (folder, subpath) that hold chunks of it
    local: list[tuple[int, int, int, int, str]] = field(
        default_factory=list
    )  # offset, length, source, at, sha256
    remote: list[tuple[int, int]] = field(default_factory=list)  # (offset, length), coalesced
    chunks: int = 0  # chunks to fetch

    @property
    def fetch_bytes(self) -> int:
        return sum(length for _, length in self.remote)

    def __str__(self) -> str:
        return (
            f"fetch {human_bytes(self.fetch_bytes)} of {human_bytes(self.entry.size)}, "
            f"{plural(self.chunks, 'chunk')}"
        )


def read_index(
    store: Store, dataset: str, revision: str, signature: SignatureStatus | None = None
) -> ChunkIndex | None:
    """The revision's chunk index, or None without one (or with one that is invalid, or other
    than the one the revision's valid ``signature`` names)."""
    key = chunks_key(dataset, revision)
    try:
        data = store.read(key, MAX_INDEX_BYTES)
        signed = signature.chunks_sha256 if signature is not None and signature.valid else None
        if signed is not None and hashlib.sha256(data).hexdigest() != signed:
            raise IntegrityError(f"{key} is not the chunk index the revision's signature names")
        return ChunkIndex.from_bytes(data, source=key)
    except ObjectNotFoundError:
        return None
    except DJArchiveError as error:
        log.info("not using the chunk index of %s %s: %s", dataset, revision, error)
        return None


def plan_deltas(
    index: ChunkIndex, entries: Sequence[Entry], copies: Sequence[TargetFiles]
) -> dict[str, DeltaPlan]:
    """subpath -> how to assemble it, for the ``entries`` the index has whose path holds a local
    file in one of ``copies`` (TARGET first, then the ``--reuse`` copies) with chunks of it."""
    plans: dict[str, DeltaPlan] = {}
    for entry in entries:
        wanted = index.matching(entry.subpath, entry.size, entry.sha256)
        if wanted is None:
            continue
        plan = DeltaPlan(entry, [])
        held: dict[str, tuple[int, int]] = {}  # sha256 -> (source, offset)
        for files in copies:
            found = _local_chunks(files, entry.subpath, index)
            if found:
                plan.sources.append((files, entry.subpath))
                for sha256, at in found.items():
                    held.setdefault(sha256, (len(plan.sources) - 1, at))
        if not held:
            continue
        for offset, length, sha256 in wanted.spans():
            if sha256 in held:
                source, at = held[sha256]
                plan.local.append((offset, length, source, at, sha256))
                continue
            plan.chunks += 1
            last = plan.remote[-1] if plan.remote else None
            if last is not None and offset - (last[0] + last[1]) <= COALESCE_GAP:
                plan.remote[-1] = (last[0], offset + length - last[0])
            else:
                plan.remote.append((offset, length))
        if plan.fetch_bytes <= WORTH * entry.size:
            plans[entry.subpath] = plan
    return plans


def _local_chunks(files: TargetFiles, subpath: str, index: ChunkIndex) -> dict[str, int]:
    """sha256 -> offset of the chunks of the local file ``subpath`` (none when it is missing)."""
    try:
        fd = files.open_file(subpath)
    except (OSError, LocalPathError):
        return {}
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return {}
        chunks = file_chunks(fd, size, "", index.chunker)
    except OSError as exc:
        log.info("cannot read %s for its chunks: %s", files.destination(subpath), exc)
        return {}
    finally:
        os.close(fd)
    found: dict[str, int] = {}
    for offset, _, sha256 in chunks.spans():
        found.setdefault(sha256, offset)
    return found


def fetch_delta(
    store: Store,
    dataset: str,
    revision: str,
    local: LocalCopy,
    plan: DeltaPlan,
    *,
    jobs: int,
    buffer_size: int,
    progress: Progress,
    key_subpath: str | None = None,
) -> os.stat_result:
    """Assemble ``plan``'s file in a temporary file (local chunks copied, the rest fetched), verify
    it whole and place it; an IntegrityError when the result is not the manifest's content."""
    entry = plan.entry
    key = object_key(dataset, revision, key_subpath or entry.subpath)
    part, fd = local.new_part()
    placed = False
    try:
        _copy_local(plan, fd, local)
        lock = threading.Lock()
        advanced = [entry.size - plan.fetch_bytes]  # what local files lent, then each range fetched
        progress.advance(advanced[0])

        def fetch(span: tuple[int, int]) -> None:
            offset, length = span
            what = f"downloading {key} bytes {offset}-{offset + length - 1}"

            def write(data: bytes, position: int) -> None:
                _write(fd, data, position)

            def attempt() -> None:
                with opened(store, key, offset=offset, length=length, size=entry.size, what=what) as stream:
                    received = receive(
                        stream.chunks(buffer_size), write, start=offset, end=offset + length, what=what
                    )
                check_size(what, received, length)
                with lock:
                    progress.advance(length)
                    advanced[0] += length

            retry_call(attempt, what, store.options.retry)

        try:
            for _, _, error in run_parallel(fetch, plan.remote, jobs):
                if error is not None:
                    raise error
            size, sha256 = hash_file(fd, entry.size)
            check_size(f"{entry.subpath} (assembled)", size, entry.size)
            check_sha256(f"{entry.subpath} (assembled)", sha256, entry.sha256)
        except BaseException:
            progress.advance(-advanced[0])  # fetched again whole: counted again there
            raise
        status = os.fstat(fd)
        os.close(fd)
        fd = -1
        local.place(part, entry.subpath)
        placed = True
        return status
    finally:
        if fd >= 0:
            os.close(fd)
        if not placed:
            local.discard(part)


def _copy_local(plan: DeltaPlan, fd: int, local: LocalCopy) -> None:
    """Copy the chunks local files hold into the new file, each checked against its sha256 as it
    is copied: a local file that changed since it was cut must not lend other bytes."""
    handles: dict[int, int] = {}
    try:
        for offset, length, source, at, sha256 in plan.local:
            if source not in handles:
                files, subpath = plan.sources[source]
                handles[source] = files.open_file(subpath)
            data = pread(handles[source], length, at)
            if len(data) != length or hashlib.sha256(data).hexdigest() != sha256:
                raise IntegrityError(f"{plan.entry.subpath}: a local file changed while it was used")
            _write(fd, data, offset)
    except OSError as exc:
        raise storage_error(exc, local.root / ".djarchive" / "tmp") from None
    finally:
        for handle in handles.values():
            os.close(handle)


def _write(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = pwrite(fd, view, position)
        view, position = view[written:], position + written


def fetch_deltas(
    store: Store,
    local: LocalCopy,
    todo: Sequence[Entry],
    *,
    request: DownloadRequest,
    summary: DownloadSummary,
    copies: Sequence[LocalCopy] = (),
) -> list[Entry]:
    """Fetch by their chunks the files of ``todo`` that the revision's index and the local files
    allow (TARGET's, then those of ``copies``), as :func:`fetch_delta` does; return the entries
    left to fetch whole (a delta that failed included)."""
    if not todo:
        return list(todo)
    index = read_index(store, request.dataset, request.revision, request.signature)
    if index is None:
        return list(todo)
    plans = plan_deltas(index, todo, [local.files, *(copy.files for copy in copies)])
    if not plans:
        return list(todo)
    summary.deltas = {subpath: str(plan) for subpath, plan in plans.items()}
    total = sum(plan.entry.size for plan in plans.values())
    rest = [entry for entry in todo if entry.subpath not in plans]
    with Progress(
        total,
        len(plans),
        enabled=request.progress,
        description=f"{request.name} (delta)",
        events=request.events,
    ) as bar:
        for subpath, plan in plans.items():
            entry = plan.entry
            local.verified.forget(subpath)
            try:
                status = fetch_delta(
                    store,
                    request.dataset,
                    request.revision,
                    local,
                    plan,
                    jobs=request.options.jobs,
                    buffer_size=request.options.buffer_size,
                    progress=bar,
                )
            except LocalStorageError:
                raise
            except DJArchiveError as error:
                log.info("the delta of %s failed (%s): fetching it whole", subpath, error)
                rest.append(entry)
                continue
            local.verified.remember(entry, status)
            summary.fetched_files += 1
            summary.fetched_bytes += plan.fetch_bytes
            summary.delta_files += 1
            summary.delta_bytes += entry.size
            bar.file_done()
            if request.events is not None:
                request.events.file(subpath, entry.size, "fetched")
            log.info("%s: %s", subpath, plan)
    return rest


def describe_deltas(
    store: Store, request: DownloadRequest, todo: Sequence[Entry], copies: Sequence[TargetFiles]
) -> dict[str, str]:
    """subpath -> what fetching it by its chunks would fetch ("fetch 3.1 MB of 512 MB, 12 chunks"),
    for a dry run: the local files are read, nothing is written."""
    index = read_index(store, request.dataset, request.revision, request.signature) if todo else None
    if index is None:
        return {}
    return {subpath: str(plan) for subpath, plan in plan_deltas(index, todo, copies).items()}

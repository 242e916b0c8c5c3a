"""``djarchive-admin mirror``: a static copy of a published revision, which any web server serves
as a mirror.

The revision's objects, its signatures file and its manifest are written byte for byte under
``DIR/<dataset>/<revision>/``, the archive's own key layout, so that serving ``DIR`` over HTTP
(nginx, ``python -m http.server``, a bucket synced from it) makes ``http(s)://host/path/`` a
mirror (:mod:`djarchive_common.mirror`). ``DIR`` may hold other revisions and datasets: only
this revision's folder is written.

Every object is read through :mod:`djarchive_common.verified` and checked against the manifest
(size and sha256) before it is renamed into place, from a temporary file in this run's folder
under ``DIR/<dataset>/<revision>/.djarchive/tmp/`` (a name no manifest path can have). A re-run
keeps every file already there with the right size and sha256 (hashed again: the folder has no
record), so an interrupted copy resumes. The signatures file and then the manifest are written
last, so the folder never offers a manifest whose files are not all in place; when the archive's
manifest differs from the one there, the old one is removed first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from djarchive_common.errors import IntegrityError, LocalStorageError, PartialFailureError
from djarchive_common.layout import MANIFEST_NAME, SIGNATURE_NAME, STATE_FOLDER, object_key
from djarchive_common.localfs import Folder, open_root, storage_error
from djarchive_common.manifest import Entry, size_of
from djarchive_common.text import files, human_bytes
from djarchive_common.transfer import Progress, Slots, hash_file, retry_call, run_parallel
from djarchive_common.verified import check_sha256, check_size, opened, receive

if TYPE_CHECKING:
    from djarchive_common.catalog import Catalog
    from djarchive_common.events import Events

__all__ = ["MirrorResult", "mirror_revision"]

log = logging.getLogger("djarchive_admin")
READ_SIZE = 256 * 1024
STALE_RUN_SECONDS = 24 * 3600  # a temporary folder of a run this old belongs to a dead run


@dataclass
class MirrorResult:
    """What ``mirror`` wrote: the revision, where, and what was fetched or already there."""

    dataset: str
    revision: str
    folder: str
    files: int = 0
    bytes: int = 0
    fetched_files: int = 0
    fetched_bytes: int = 0
    present_files: int = 0
    signed: bool = False  # whether a signatures file was copied beside the manifest
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "folder": self.folder,
            "files": self.files,
            "bytes": self.bytes,
            "fetched_files": self.fetched_files,
            "fetched_bytes": self.fetched_bytes,
            "present_files": self.present_files,
            "signed": self.signed,
            "seconds": round(self.seconds, 3),
            "failed": self.failed,
            "ok": not self.failed,
        }

    def __str__(self) -> str:
        text = (
            f"mirrored {self.dataset} {self.revision} into {self.folder}: {files(self.files)} "
            f"({human_bytes(self.bytes)}), fetched {self.fetched_files} ({human_bytes(self.fetched_bytes)}), "
            f"{self.present_files} already present"
        )
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        return text + (", signed" if self.signed else ", not signed") + f" in {self.seconds:.1f} s"


def mirror_revision(
    catalog: Catalog,
    dataset: str,
    revision: str,
    directory: str | os.PathLike[str],
    *,
    jobs: int,
    progress: bool = False,
    events: Events | None = None,
) -> MirrorResult:
    """Copy the published revision into ``directory``/``dataset``/``revision`` (see the module);
    raise PartialFailureError (with the result) when a file could not be copied: the manifest is
    then not written."""
    started = time.monotonic()
    read = catalog.read_revision(dataset, revision, mirrors=False)  # the archive's, not a mirror's
    entries = list(read.manifest)
    result = MirrorResult(dataset, revision, str(Path(directory) / dataset / revision))
    result.files, result.bytes = len(entries), size_of(entries)
    with open_root(directory, create=True) as root, root.descend([dataset, revision], create=True) as home:
        held = _read_if_present(home, MANIFEST_NAME)
        if held is not None and held != read.data:  # a changed revision: no stale manifest meanwhile
            home.unlink(MANIFEST_NAME, missing_ok=True)
            home.unlink(SIGNATURE_NAME, missing_ok=True)
        with _RunFolder(home) as scratch:
            copier = _Copier(catalog, dataset, revision, home, scratch)
            _copy_all(copier, entries, jobs, progress, events, result)
        result.seconds = time.monotonic() - started
        if result.failed:
            raise PartialFailureError(
                f"{len(result.failed)} of {files(result.files)} of {dataset} {revision} could not be "
                "mirrored; run the same command again to finish",
                result.failed,
                result,
            )
        if read.signatures is not None:
            home.write_atomically(SIGNATURE_NAME, read.signatures)
        else:
            home.unlink(SIGNATURE_NAME, missing_ok=True)
        if held != read.data:
            home.write_atomically(MANIFEST_NAME, read.data)
    result.signed = read.signatures is not None
    result.seconds = time.monotonic() - started
    log.info("%s", result)
    return result


def _copy_all(
    copier: _Copier,
    entries: list[Entry],
    jobs: int,
    progress: bool,
    events: Events | None,
    result: MirrorResult,
) -> None:
    """Copy every entry (in parallel), counting what was fetched, present or failed."""
    slots = Slots(jobs, copier.store.options.pool_size)
    with Progress(
        result.bytes, len(entries), enabled=progress, description=f"{result.dataset} {result.revision}"
    ) as bar:
        if events is not None:
            events.start(len(entries), result.bytes, dataset=result.dataset, revision=result.revision)

        def work(entry: Entry) -> bool:
            return slots.run(entry.size, lambda: copier.copy(entry, bar))

        for entry, fetched, error in run_parallel(work, entries, slots.workers):
            bar.file_done()
            if error is not None:
                if isinstance(error, LocalStorageError):
                    raise error
                result.failed[entry.subpath] = str(error)
                status = "failed"
            elif fetched:
                result.fetched_files += 1
                result.fetched_bytes += entry.size
                status = "fetched"
            else:
                result.present_files += 1
                bar.advance(entry.size)
                status = "present"
            if events is not None:
                events.file(entry.subpath, entry.size, status, result.failed.get(entry.subpath))
        if events is not None:
            events.end({**result.to_dict(), "seconds": round(result.seconds, 3)})


class _RunFolder:
    """This run's temporary folder under ``.djarchive/tmp/`` of the revision's folder, removed at
    the end; those of runs dead for a day are removed at the start."""

    def __init__(self, home: Folder):
        self.home = home
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.folder: Folder | None = None

    def __enter__(self) -> Folder:
        tmp = self.home.descend([STATE_FOLDER, "tmp"], create=True)
        with tmp:
            for entry in list(tmp.entries()):
                status = tmp.lstat(entry.name)
                if status is not None and time.time() - status.st_mtime > STALE_RUN_SECONDS:
                    tmp.remove_tree(entry.name)
            self.folder = tmp.child(self.name, create=True)
        return self.folder

    def __exit__(self, *exc_info: object) -> None:
        if self.folder is not None:
            self.folder.close()
        with self.home.descend([STATE_FOLDER, "tmp"]) as tmp:
            tmp.remove_tree(self.name)


class _Copier:
    """Copies one file of the revision: kept when it is there already, else fetched, verified and
    renamed into place."""

    def __init__(self, catalog: Catalog, dataset: str, revision: str, home: Folder, scratch: Folder):
        self.store = catalog.store
        self.dataset, self.revision = dataset, revision
        self.home, self.scratch = home, scratch

    def copy(self, entry: Entry, bar: Progress) -> bool:
        """Make ``entry`` present; return whether it had to be fetched."""
        *folders, name = entry.subpath.split("/")
        with self.home.descend(folders, create=True) as folder:
            if self._present(folder, name, entry):
                return False
            what = f"mirroring {entry.subpath}"
            retry_call(lambda: self._fetch(entry, folder, name, bar), what, self.store.options.retry)
            return True

    def _present(self, folder: Folder, name: str, entry: Entry) -> bool:
        """Whether ``name`` in ``folder`` is a regular file with the entry's size and sha256."""
        status = folder.lstat(name)
        if status is None or not stat.S_ISREG(status.st_mode) or status.st_size != entry.size:
            return False
        fd = folder.open(name, os.O_RDONLY)
        try:
            return hash_file(fd) == (entry.size, entry.sha256)
        finally:
            os.close(fd)

    def _fetch(self, entry: Entry, folder: Folder, name: str, bar: Progress) -> None:
        """One GET of the entry's object into a temporary file, checked, then renamed into place."""
        key = object_key(self.dataset, self.revision, entry.subpath)
        part = secrets.token_hex(8)
        fd = self.scratch.create(part)
        placed = False
        try:
            digest = hashlib.sha256()

            def write(data: bytes, position: int) -> None:
                digest.update(data)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                except OSError as exc:
                    raise storage_error(exc, folder.path / name) from None

            with opened(self.store, key, size=entry.size, what=f"reading {key}", label="") as stream:
                received = receive(
                    stream.chunks(READ_SIZE), write, start=0, end=entry.size, what="", advance=bar.advance
                )
            try:
                check_size(entry.subpath, received, entry.size)
                check_sha256(entry.subpath, digest.hexdigest(), entry.sha256)
            except IntegrityError:
                bar.advance(-received)
                raise
            os.close(fd)
            fd = -1
            self.scratch.rename(part, folder, name)
            placed = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not placed:
                self.scratch.unlink(part, missing_ok=True)


def _read_if_present(folder: Folder, name: str) -> bytes | None:
    """The bytes of the file ``name`` in ``folder``, or None when it is not there."""
    try:
        return folder.read_bytes(name, 256 * 1024 * 1024)
    except FileNotFoundError:
        return None

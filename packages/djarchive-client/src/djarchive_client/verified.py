"""The record of verified files of one TARGET: what earlier runs verified, and what this one does.

A file the record vouches for (same size, mtime and sha256 as when it was verified) is trusted
without hashing it again. The record lives in ``TARGET/.djarchive/verified.bin`` (the format is
:mod:`djarchive_client.record`'s); shard runs each save their own ``verified.K-of-N.bin``, and
the next plain run folds them, with the JSON records of earlier versions, into one. A damaged
record is ignored: its files get hashed again.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from djarchive_common.errors import LocalPathError
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.localfs import Folder
from djarchive_common.manifest import Entry, Manifest

from .files import Digest
from .record import Record

__all__ = ["RECORD", "VerifiedFiles"]

RECORD = "verified.bin"  # earlier versions wrote verified.json
MAX_RECORD_BYTES = 512 * 1024 * 1024
# every record file: this one, the shards', and the JSON ones of earlier versions
_OTHER_RECORDS = re.compile(r"verified(?:\.[0-9]+-of-[0-9]+)?\.(?:bin|json)")
log = logging.getLogger("djarchive_client")


class VerifiedFiles:
    """The record of verified files of the TARGET at ``root``, as one run (plain, or the shard
    ``shard``; ``run`` names its temporary files) loads, changes and saves it. Thread-safe."""

    def __init__(self, root: Path, shard: tuple[int, int] | None = None, run: str = "run"):
        self.root = root
        self.shard = shard
        self.run = run
        self._record = Record()
        self._lock = threading.Lock()
        self._dirty = False
        self._merged: list[str] = []  # the records folded into this one (shards', earlier versions')

    def __bool__(self) -> bool:
        """Whether the record holds anything (else it vouches for nothing)."""
        return bool(self._record)

    @property
    def name(self) -> str:
        """Where this run saves the record: shards each their own file, merged by a plain run."""
        return f"verified.{self.shard[0]}-of-{self.shard[1]}.bin" if self.shard else RECORD

    # -- loading and saving ------------------------------------------------------------

    def load(self, target: Folder) -> None:
        """Read what earlier runs verified (shards' records too) from ``target``'s ``.djarchive``."""
        self._record = Record()
        try:
            with target.child(STATE_FOLDER) as state:
                names = sorted(  # older JSON records first, this one last: the later word wins
                    (item.name for item in state.entries() if _OTHER_RECORDS.fullmatch(item.name)),
                    key=lambda name: (name.endswith(".bin"), name == RECORD, name),
                )
                for name in names:
                    self._record.update(self._read(state, name))
                self._merged = [name for name in names if name != RECORD]
        except FileNotFoundError:
            pass
        except (OSError, LocalPathError) as exc:
            log.warning("ignoring the record of verified files in %s (%s)", self.root / STATE_FOLDER, exc)
        if self.shard is None and self._merged:
            self._dirty = True  # a plain run folds the shards' records into one

    def _read(self, state: Folder, name: str) -> Record:
        try:
            return Record.from_bytes(state.read_bytes(name, MAX_RECORD_BYTES))
        except (ValueError, OSError, LocalPathError) as exc:
            log.warning(
                "ignoring the damaged record of verified files %s (%s)", self.root / STATE_FOLDER / name, exc
            )
            return Record()

    def save(self, state: Callable[[], Folder], *, alone: bool) -> None:
        """Write the record atomically into the folder ``state()`` opens, if it changed; when
        this run holds the target ``alone``, the records folded into it are deleted."""
        with self._lock:
            if not self._dirty:
                return
            data = self._record.to_bytes()
            self._dirty = False
        name = self.name
        try:
            folder = state()
            folder.write_atomically(name, data, f"{name}.{self.run}.tmp")
            if self.shard is None and alone:
                for merged in self._merged:
                    folder.unlink(merged, missing_ok=True)
                self._merged = []
        except (OSError, LocalPathError) as exc:
            log.warning("could not save the record of verified files: %s", exc)

    # -- what it vouches for -----------------------------------------------------------

    def mask(self, manifest: Manifest, statuses: Sequence[os.stat_result | str | None]) -> list[bool]:
        """For each entry of ``manifest``, whether its file (with that status) is one the record
        vouches for (:meth:`vouches`). A record of this very manifest, the no-op re-run's case,
        is compared in a few C-level passes."""
        paths, sizes, digests = manifest.columns
        mtimes = self._record.mtimes_if_of(paths, sizes, digests)
        if mtimes is None:
            return list(map(self.vouches, manifest, statuses)) if self._record else [False] * len(paths)
        return [
            type(status) is os.stat_result
            and status.st_size == size
            and status.st_mtime_ns == mtime
            and stat.S_ISREG(status.st_mode)
            for status, size, mtime in zip(statuses, sizes, mtimes, strict=True)
        ]

    def vouches(self, entry: Entry, status: os.stat_result | str | None) -> bool:
        """Whether ``status`` is of a regular file the record says matches ``entry`` (no hashing)."""
        if not isinstance(status, os.stat_result):
            return False
        recorded = self._record.get(entry.subpath)  # reads only: no lock needed
        return (
            recorded is not None
            and recorded[2] == entry.sha256
            and recorded[0] == status.st_size == entry.size
            and recorded[1] == status.st_mtime_ns
            and stat.S_ISREG(status.st_mode)
        )

    # -- changes -----------------------------------------------------------------------

    def remember(self, entry: Entry, status: os.stat_result) -> None:
        """Record that the file with ``status`` was just verified to match ``entry``."""
        with self._lock:
            self._record.set(entry.subpath, (status.st_size, status.st_mtime_ns, entry.sha256))
            self._dirty = True

    def remember_found(self, found: Mapping[str, Digest]) -> None:
        """Record each path's digest: the sha256 hashing found, with the status the file had."""
        if not found:
            return
        with self._lock:
            for subpath, digest in found.items():
                status = digest.status
                self._record.set(subpath, (status.st_size, status.st_mtime_ns, digest.sha256))
            self._dirty = True

    def forget(self, subpath: str) -> None:
        """Drop a record entry (the file is being replaced)."""
        with self._lock:
            if self._record.discard(subpath):
                self._dirty = True

    def forget_all(self, subpaths: Iterable[str]) -> None:
        """:meth:`forget` each path."""
        with self._lock:
            for subpath in subpaths:
                if self._record.discard(subpath):
                    self._dirty = True

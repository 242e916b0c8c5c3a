"""``DJArchiveFile``: one published file opened for reading through ``djarchive://``.

Its bytes come by ranged GETs (:meth:`DJArchiveFileSystem._read_range
<djarchive_client.filesystem.DJArchiveFileSystem>`, a verified read) through fsspec's block
cache; what is read in order from the start is hashed on the way and checked at the end.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile

from djarchive_common.errors import IntegrityError
from djarchive_common.manifest import Entry
from djarchive_common.verified import check_sha256

if TYPE_CHECKING:
    from .filesystem import DJArchiveFileSystem

__all__ = ["EMPTY_SHA256", "DJArchiveFile"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class DJArchiveFile(AbstractBufferedFile):
    """A published file opened for reading: ranged GETs (verified reads) through fsspec's block
    cache. The bytes ``read`` returns in order from the start are hashed as they go (from the
    cache or the network alike); the read that reaches the end checks the sha256 against the
    manifest and raises IntegrityError instead of returning its bytes on a mismatch (every read
    after it too), or sets ``verified``. Bytes read out of order cannot be verified."""

    def __init__(self, fs: DJArchiveFileSystem, path: str, entry: Entry, key: str, **kwargs: Any):
        self.entry, self.key = entry, key
        self.verified = False
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes hashed, from the start
        self._error: IntegrityError | None = None
        if entry.size == 0:
            check_sha256(f"reading {key}", EMPTY_SHA256, entry.sha256, retryable=False)
            self.verified = True
        super().__init__(fs, path, mode="rb", size=entry.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs._read_range(self.key, self.entry, start, end)

    def read(self, length: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        start = self.loc
        data = super().read(length)
        self._follow(start, data)
        return data

    def _follow(self, start: int, data: bytes) -> None:
        """Hash the part of ``data`` (read at ``start``) that continues what was hashed so far;
        check the sha256 when it reaches the end of the file."""
        end = start + len(data)
        if not start <= self._hashed < end:
            return
        self._digest.update(memoryview(data)[self._hashed - start :])
        self._hashed = end
        if end < self.entry.size:
            return
        try:
            check_sha256(f"reading {self.key}", self._digest.hexdigest(), self.entry.sha256, retryable=False)
        except IntegrityError as error:
            self._error = error
            raise
        self.verified = True

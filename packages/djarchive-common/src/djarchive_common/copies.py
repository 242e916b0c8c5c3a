"""Server-side copies: content the bucket already holds, written at a new key without sending it.

:func:`copy_object` copies a whole object in one CopyObject request (up to 5 GiB). Anything
larger, and objects composed of byte ranges of other objects and of parts sent from a local file
(a delta upload), is a multipart upload (:func:`compose`) whose parts are UploadPartCopy requests
(``x-amz-copy-source-range``) or PUTs of local bytes with their digests
(:mod:`djarchive_common.writes`). Every copy carries the new object's ``x-amz-meta-sha256``: its
metadata is replaced, not copied.

What proves that a copy holds the local content it stands for (:class:`Written`'s ``proven``),
as :mod:`djarchive_common.writes` does for what is sent: on a server whose ETags are the MD5 of
what it stores, the ETag of the copy (of each copied part) compared with the MD5 of the local
bytes; on a server that checks checksums, the SHA256 checksum it computed of the copy (or the
per-part checksums it checks when the upload completes). Otherwise the copy is unproven, and
publish reads it back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from .errors import IntegrityError, TransferError
from .writes import (
    Multipart,
    WriteChecks,
    Written,
    _etag,
    _execute,
    _proof,
    _required,
    checksum_of,
    digest_headers,
    xml_text,
)

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MAX_COPY_SIZE", "MIN_PART_SIZE", "Piece", "compose", "copy_object", "copy_source"]

log = logging.getLogger("djarchive_common")
MiB = 1024 * 1024
MAX_COPY_SIZE = 5 * 1024 * MiB  # the largest object one CopyObject (and one part) may copy
MIN_PART_SIZE = 5 * MiB  # S3's smallest part, the last one aside
COPY_SOURCE = "x-amz-copy-source"
Read = Callable[[int, int], bytes]


class Piece(NamedTuple):
    """One part of a composed object: ``length`` bytes at ``offset``, copied from ``source``
    (a key of the bucket) at ``source_offset``, or, without a source, sent from the local file."""

    offset: int
    length: int
    source: str | None = None
    source_offset: int = 0


def copy_source(bucket: str, key: str) -> str:
    """The ``x-amz-copy-source`` value naming ``key`` of ``bucket`` (URL-encoded)."""
    return quote(f"/{bucket}/{key}", safe="/")


def _answer(what: str, data: bytes, result: str) -> str:
    """The ETag of a copy's answer; S3 may answer 200 with an error in the body, which is retried."""
    if b"<Error>" in data[:200] or b"<Error " in data[:200]:
        raise TransferError(f"{what}: {xml_text(data, 'Code') or 'an error'}", retryable=True)
    return _required(what, xml_text(data, "ETag").strip('"'), f"a {result} with an ETag")


def _by_md5(what: str, etag: str, md5_hex: str) -> bool:
    """Whether a copy's ETag proves it holds the bytes whose MD5 is ``md5_hex``; an MD5 ETag of
    other bytes is an IntegrityError (the source does not hold what its manifest says)."""
    if "-" in etag:  # a multipart ETag: no MD5 of the content
        return False
    if etag.lower() != md5_hex:
        raise IntegrityError(f"{what}: the copy holds other bytes than the local file (ETag {etag})")
    return True


def copy_object(
    store: Store,
    key: str,
    source_key: str,
    sha256_hex: str,
    headers: Mapping[str, str],
    *,
    md5: Callable[[], str] | None = None,
) -> Written:
    """Copy the object ``source_key`` to ``key`` with ``headers`` as its metadata (replaced);
    ``sha256_hex`` is the content's sha256, ``md5()`` the MD5 of the local file it stands for
    (asked only on a server whose ETags are MD5s, to prove the copy)."""
    checks = store.write_checks
    what = f"copying {source_key} to {key}"
    request = {
        **headers,
        COPY_SOURCE: copy_source(store.bucket, source_key),
        "x-amz-metadata-directive": "REPLACE",
    }
    if checks.digests_checked:
        request["x-amz-checksum-algorithm"] = "SHA256"  # the server computes the copy's checksum

    def attempt() -> tuple[str, str]:
        response = _execute(store, "PUT", key, headers=request)
        return _answer(what, response.data, "copy"), xml_text(response.data, "ChecksumSHA256")

    etag, checksum = store.call(what, attempt)
    if checks.digests_checked and checksum:
        return Written(etag, checksum == checksum_of(sha256_hex))
    if checks.etag_md5 and md5 is not None:
        return Written(etag, _by_md5(what, etag, md5()))
    return Written(etag, False)


def compose(
    store: Store,
    key: str,
    size: int,
    pieces: Sequence[Piece],
    headers: Mapping[str, str],
    read: Read,
    *,
    parallel: int = 1,
) -> Written:
    """Write ``key`` as a multipart upload of ``pieces`` (covering ``size`` bytes in order): copied
    ranges of other objects and parts sent from the local file that ``read(offset, length)``
    gives, ``parallel`` at a time; aborted when it fails."""
    position = 0
    for piece in pieces:
        if piece.offset != position or piece.length <= 0:
            raise ValueError(f"composing {key}: the pieces do not cover it in order")
        if piece.length > MAX_COPY_SIZE:
            raise ValueError(f"composing {key}: a part of {piece.length} bytes is over S3's limit")
        position += piece.length
    if position != size:
        raise ValueError(f"composing {key}: the pieces cover {position} of {size} bytes")
    return Composed(store, key, size, pieces, headers, read).send(parallel)


class Composed(Multipart):
    """A multipart upload whose parts are :class:`Piece`\\ s: copied by UploadPartCopy, or sent."""

    def __init__(
        self,
        store: Store,
        key: str,
        size: int,
        pieces: Sequence[Piece],
        headers: Mapping[str, str],
        read: Read,
    ):
        super().__init__(store, key, size, max(piece.length for piece in pieces), headers, read)
        self.pieces = list(pieces)
        self.count = len(self.pieces)

    def _part(self, number: int) -> tuple[int, str, str, bool]:
        piece = self.pieces[number - 1]
        if piece.source is None:
            return self._sent(number, piece)
        return self._copied(number, piece, piece.source)

    def _sent(self, number: int, piece: Piece) -> tuple[int, str, str, bool]:
        """A part of local bytes, sent with its digests as :class:`Multipart` sends its parts."""
        data = self.read(piece.offset, piece.length)
        digest = hashlib.sha256(data).hexdigest()
        what = f"uploading part {number} of {self.key}"
        query = {"partNumber": str(number), "uploadId": self.upload_id}
        checks = self.checks if self.checks.part_checksums else WriteChecks(checksum_header=False)

        def put() -> tuple[int, str, str, bool]:
            response = _execute(
                self.store, "PUT", self.key, body=data, headers=digest_headers(digest, checks), query=query
            )
            etag = _required(what, _etag(response), "an ETag")
            return number, etag, digest, _proof(self.store, what, data, etag, self.checks)

        return self.store.call(what, put)

    def _copied(self, number: int, piece: Piece, source: str) -> tuple[int, str, str, bool]:
        """A part copied from a range of ``source``; the local bytes it stands for are read (and
        hashed) only where that proves something: an MD5 ETag, or per-part checksums."""
        checks = self.checks
        digest, md5 = "", ""
        if checks.part_checksums or checks.etag_md5:
            data = self.read(piece.offset, piece.length)
            digest = hashlib.sha256(data).hexdigest()
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            del data
        end = piece.source_offset + piece.length - 1
        what = f"copying bytes {piece.source_offset}-{end} of {source} as part {number} of {self.key}"
        headers = {
            COPY_SOURCE: copy_source(self.store.bucket, source),
            "x-amz-copy-source-range": f"bytes={piece.source_offset}-{end}",
        }
        query = {"partNumber": str(number), "uploadId": self.upload_id}

        def copy() -> str:
            response = _execute(self.store, "PUT", self.key, headers=headers, query=query)
            return _answer(what, response.data, "part copy")

        etag = self.store.call(what, copy)
        if checks.etag_md5 and md5:
            return number, etag, digest, _by_md5(what, etag, md5)
        # with per-part checksums, completing the upload checks this part's against the local bytes
        return number, etag, digest, checks.part_checksums and checks.digests_checked

"""What an S3 server does that safe writing relies on, found out by trying it.

Many servers that speak S3 accept ``If-None-Match`` and ``If-Match`` and write anyway (S3 before
2024, older MinIO releases, s3rver, many S3-compatible stores); the revision's lease is made of
such conditional writes. So, before anything is written, a handful of requests on probe keys of
its own (``.djarchive~probe~<token>~...``, deleted again) find out, once per endpoint, bucket and
process (:func:`server_support`):

* conditional writes: a create of an existing key with ``If-None-Match: *``, and a write with a
  wrong ``If-Match`` ETag, must both answer 412 and leave the object as it was;
* digests: whether a wrong ``x-amz-content-sha256`` or a wrong ``x-amz-checksum-sha256`` is
  refused, whether the checksum is kept (``x-amz-checksum-mode``), whether ETags are MD5s;
* multipart: a one-part upload, with a per-part checksum if the server takes one;
* ranged reads: a ``Range`` GET answers 206 with those bytes;
* listing v2: ListObjectsV2 pages with a continuation token.

``djarchive-admin doctor`` prints the result, one line each.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from djarchive_common.errors import DJArchiveError, ObjectNotFoundError, TransferError
from djarchive_common.layout import PROBE_PREFIX
from djarchive_common.store import Answer, Store
from djarchive_common.writes import (
    CHECKSUM_SHA256,
    CONTENT_SHA256,
    Multipart,
    WriteChecks,
    checksum_of,
    xml_text,
)

__all__ = ["ServerSupport", "probe", "server_support"]

log = logging.getLogger("djarchive_admin")
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}
_CACHE: dict[tuple[str, str | None], ServerSupport] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ServerSupport:
    """What one server does, as :func:`probe` found it."""

    url: str
    conditional_create: bool  # If-None-Match: * on an existing key answered 412
    conditional_replace: bool  # If-Match with another ETag answered 412
    payload_checked: bool  # a body whose x-amz-content-sha256 does not match is refused
    checksum_accepted: bool  # a PUT may carry x-amz-checksum-sha256
    checksum_checked: bool  # a body whose x-amz-checksum-sha256 does not match is refused
    checksum_kept: bool  # the checksum comes back with x-amz-checksum-mode: ENABLED
    etag_md5: bool  # a PUT's ETag is the MD5 of its body
    multipart: bool
    part_checksums: bool  # multipart uploads take x-amz-checksum-algorithm and per-part checksums
    ranged_reads: bool
    listing_v2: bool

    @property
    def conditional_writes(self) -> bool:
        """Whether conditional writes keep concurrent writers apart (both conditions honoured)."""
        return self.conditional_create and self.conditional_replace

    @property
    def digests_checked(self) -> bool:
        """Whether the server refuses a body whose sha256 is not the one sent with it."""
        return self.payload_checked or self.checksum_checked

    @property
    def checksums_trusted(self) -> bool:
        """Whether a stored checksum proves an object's content (the server checked it on write)."""
        return self.checksum_checked and self.checksum_kept

    def write_checks(self) -> WriteChecks:
        """How writes to this server carry and check digests."""
        return WriteChecks(
            checksum_header=self.checksum_accepted,
            part_checksums=self.part_checksums,
            digests_checked=self.digests_checked,
            etag_md5=self.etag_md5,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            **asdict(self),
            "conditional_writes": self.conditional_writes,
            "digests_checked": self.digests_checked,
            "checksums_trusted": self.checksums_trusted,
        }

    def lines(self) -> list[str]:
        """What ``djarchive-admin doctor`` prints: one line per capability."""
        return [
            f"conditional writes: {self._conditional()}",
            f"checksums: {self._checksums()}",
            "multipart: "
            + (
                ("yes, with per-part checksums" if self.part_checksums else "yes, without per-part checksums")
                if self.multipart
                else "no: files larger than the part size cannot be uploaded"
            ),
            "ranged reads: "
            + ("yes" if self.ranged_reads else "no: large files are downloaded in one stream"),
            "listing v2: " + ("yes" if self.listing_v2 else "no: ListObjectsV2 paging failed"),
        ]

    def _conditional(self) -> str:
        if self.conditional_writes:
            return "yes (If-None-Match: * and If-Match answered 412): concurrent curators are kept apart"
        ignored = [
            name
            for name, honoured in (
                ("If-None-Match: *", self.conditional_create),
                ("If-Match", self.conditional_replace),
            )
            if not honoured
        ]
        return (
            f"NO ({' and '.join(ignored)} ignored): concurrent curators cannot be kept apart; writing needs "
            "--single-writer (see docs/servers.md)"
        )

    def _checksums(self) -> str:
        checked = [
            header
            for header, yes in (
                (CONTENT_SHA256, self.payload_checked),
                (CHECKSUM_SHA256, self.checksum_checked),
            )
            if yes
        ]
        if checked:
            text = f"checked (a body that does not match its {' or '.join(checked)} is refused"
            text += f"; {CHECKSUM_SHA256} is kept)" if self.checksum_kept else ")"
            return text
        text = "not checked (a body that does not match its sha256 is accepted"
        if self.etag_md5:
            return text + "; ETags are MD5s of the content, which every upload compares)"
        return text + "; publish reads objects back to check them)"

    def __str__(self) -> str:
        return "\n".join(self.lines())


def server_support(store: Store, *, fresh: bool = False) -> ServerSupport:
    """What the store's server does: probed once per endpoint, bucket and credentials in this process."""
    key = (store.settings.url, store.settings.access_key)
    with _CACHE_LOCK:
        found = None if fresh else _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = probe(store)
            log.info("%s: %s", store.settings.url, "; ".join(found.lines()))
        return found


def probe(store: Store) -> ServerSupport:
    """Find out what the store's server does (see the module's docstring); probe keys are deleted."""
    return _Probe(store).run()


class _Probe:
    def __init__(self, store: Store):
        self.store = store
        self.base = f"{PROBE_PREFIX}{uuid.uuid4().hex}~"
        self.keys: list[str] = []  # the probe objects written, to be deleted

    def _key(self, name: str) -> str:
        return self.base + name

    def _written(self, key: str) -> None:
        if key not in self.keys:
            self.keys.append(key)

    def _put(
        self, key: str, body: bytes, headers: dict[str, str] | None = None, *, refusal: bool = False
    ) -> Answer:
        answer = self.store.ask("PUT", key, body=body, headers=headers, refusal=refusal)
        if not answer.code or answer.code in _PRECONDITION:  # 412: the object exists
            self._written(key)
        return answer

    def run(self) -> ServerSupport:
        try:
            create, replace = self._conditional()
            digests = self._digests()
            multipart, part_checksums = self._multipart(digests["checksum_accepted"])
            return ServerSupport(
                self.store.settings.url,
                create,
                replace,
                multipart=multipart,
                part_checksums=part_checksums,
                listing_v2=self._listing(),
                **digests,
            )
        finally:
            try:
                for key in self.keys:  # one DELETE each: three at most
                    self.store.remove(key)
            except DJArchiveError as error:
                log.warning("could not delete the probe objects %s*: %s", self.base, error)

    def _conditional(self) -> tuple[bool, bool]:
        """(If-None-Match: * honoured, If-Match honoured), each checked by what the object holds."""
        key = self._key("conditional")
        first, second, third = (os.urandom(16).hex().encode() for _ in range(3))
        answer = self._put(key, first, {"If-None-Match": "*"})
        if answer.code and answer.code not in _PRECONDITION:  # 412: our own write, whose answer was lost
            raise TransferError(f"probing {self.store.settings.url}: a PUT of {key} answered {answer.code}")
        create = self._put(key, second, {"If-None-Match": "*"}).code in _PRECONDITION
        create = create and self.store.read(key, 1024) == first
        wrong = '"' + "0" * 32 + '"'
        replace = self._put(key, third, {"If-Match": wrong}).code in _PRECONDITION
        replace = replace and self.store.read(key, 1024) in (first, second)
        return create, replace

    def _digests(self) -> dict[str, bool]:
        store = self.store
        key = self._key("digest")
        body = os.urandom(64)
        digest, other = hashlib.sha256(body).hexdigest(), hashlib.sha256(b"other").hexdigest()
        payload = bool(self._put(key, body, {CONTENT_SHA256: other}, refusal=True).code)
        wrong = {CONTENT_SHA256: digest, CHECKSUM_SHA256: checksum_of(other)}
        checksum = bool(self._put(key, body, wrong, refusal=True).code)
        answer = self._put(key, body, {CONTENT_SHA256: digest, CHECKSUM_SHA256: checksum_of(digest)})
        accepted = not answer.code
        if not accepted:  # the header itself is refused: it is not sent again
            answer = self._put(key, body, {CONTENT_SHA256: digest})
            if answer.code:
                raise TransferError(f"probing {store.settings.url}: a PUT of {key} answered {answer.code}")
        etag = answer.headers.get("etag", "").strip('"')
        kept = store.ask("HEAD", key, headers={"x-amz-checksum-mode": "ENABLED"}).headers.get(CHECKSUM_SHA256)
        ranged = store.ask("GET", key, headers={"Range": "bytes=3-9"})
        return {
            "payload_checked": payload,
            "checksum_accepted": accepted,
            "checksum_checked": checksum and accepted,
            "checksum_kept": accepted and kept == checksum_of(digest),
            "etag_md5": etag.lower() == hashlib.md5(body, usedforsecurity=False).hexdigest(),
            "ranged_reads": ranged.status == 206 and ranged.body == body[3:10],
        }

    def _multipart(self, checksums: bool) -> tuple[bool, bool]:
        """(a one-part multipart upload works, it works with per-part checksums)."""
        key = self._key("multipart")
        body = os.urandom(32)
        for part_checksums in (True, False) if checksums else (False,):
            checks = WriteChecks(checksum_header=part_checksums, part_checksums=part_checksums)
            upload = Multipart(
                self.store, key, len(body), len(body), {}, lambda at, n: body[at : at + n], checks
            )
            self._written(key)
            try:
                upload.send(1)
            except DJArchiveError as error:  # a completion whose answer was lost still completed
                log.debug("probing a multipart upload (per-part checksums: %s): %s", part_checksums, error)
            try:
                if self.store.read(key, 1024) == body:
                    return True, part_checksums
            except ObjectNotFoundError:
                continue
        return False, False

    def _listing(self) -> bool:
        """Whether ListObjectsV2 pages the probe keys (two or three) one at a time with a continuation
        token, in key order."""
        query = {"list-type": "2", "prefix": self.base, "max-keys": "1"}
        try:
            first = self.store.ask("GET", query=query)
            token = xml_text(first.body, "NextContinuationToken")
            if first.code or not token or xml_text(first.body, "KeyCount") != "1":
                return False
            second = self.store.ask("GET", query={**query, "continuation-token": token})
        except TransferError as error:
            log.debug("probing ListObjectsV2: %s", error)
            return False
        keys = sorted(self.keys)
        pages = [xml_text(first.body, "Key"), xml_text(second.body, "Key")]
        return not second.code and xml_text(second.body, "KeyCount") == "1" and pages == keys[:2]

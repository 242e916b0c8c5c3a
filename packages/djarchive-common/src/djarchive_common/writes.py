"""Writing objects with their digests, so that the server checks what it stores.

Every PUT carries its body's sha256 twice: signed as SigV4's ``x-amz-content-sha256`` (minio-py
signs ``UNSIGNED-PAYLOAD`` over https and hashes the body again over http; :func:`signing_client`
makes it sign the digest already known) and, where the server accepts it, as
``x-amz-checksum-sha256`` (base64). A server that checks either refuses a body damaged on its
way. Files above the part size go as multipart uploads written here, part by part, each part with
its own digest (and its own checksum, ``x-amz-checksum-algorithm: SHA256``, where the server
supports them). On a server that checks no digest but whose ETags are the MD5 of what it stored
(moto, s3rver), each answer's ETag is compared with the MD5 of the bytes sent: a part or object
that arrived damaged is sent again. What the admin's probe found out about the server is a
:class:`WriteChecks`; the store applies it to every write.

The PUTs (whole objects and parts) go through libcurl where the store says so
(:attr:`Store.curl <djarchive_common.store.Store.curl>`: libcurl signs the same
``x-amz-content-sha256`` itself), else through minio; creating, completing and aborting a
multipart upload stay on minio.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from xml.etree import ElementTree

from .errors import DJArchiveError, IntegrityError, TransferError
from .transfer import retry_call
from .translation import translated

if TYPE_CHECKING:
    from minio import Minio

    from .store import Store

__all__ = [
    "CHECKSUM_SHA256",
    "CONTENT_SHA256",
    "Multipart",
    "WriteChecks",
    "Written",
    "checksum_of",
    "digest_headers",
    "file_reader",
    "put_bytes",
    "put_file",
    "signing_client",
    "xml_text",
]

log = logging.getLogger("djarchive_common")
CONTENT_SHA256 = "x-amz-content-sha256"
CHECKSUM_SHA256 = "x-amz-checksum-sha256"


@dataclass(frozen=True)
class WriteChecks:
    """What a server does with digests (the admin's probe finds out; the defaults assume nothing)."""

    checksum_header: bool = True  # send x-amz-checksum-sha256 with every PUT
    part_checksums: bool = False  # multipart uploads declare SHA256 and every part carries its checksum
    digests_checked: bool = False  # a body whose sha256 does not match is refused: an accepted PUT is proof
    etag_md5: bool = False  # a PUT's ETag is the MD5 of the bytes stored: compared with what was sent


class Written(NamedTuple):
    """An object this process wrote: its ETag (without quotes) and whether the write itself proved
    the content (the server checked its digest, or its ETag is the MD5 of what was sent)."""

    etag: str
    proven: bool


def checksum_of(sha256_hex: str) -> str:
    """The ``x-amz-checksum-sha256`` value of a sha256 given in hex: its bytes in base64."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def digest_headers(sha256_hex: str, checks: WriteChecks) -> dict[str, str]:
    """The headers that make a PUT of a body with this sha256 checkable by the server."""
    headers = {CONTENT_SHA256: sha256_hex}
    if checks.checksum_header:
        headers[CHECKSUM_SHA256] = checksum_of(sha256_hex)
    return headers


def signing_client(minio_class: type[Minio]) -> type[Minio]:
    """minio's client class, changed to sign every request body's real sha256: the one the
    request's ``x-amz-content-sha256`` header already gives (no second hashing), else the body's
    own, where minio would sign ``UNSIGNED-PAYLOAD`` (https)."""

    class SigningMinio(minio_class):  # type: ignore[valid-type,misc]
        def _build_headers(
            self, host: str, headers: Any = None, body: bytes | None = None, creds: Any = None
        ) -> tuple[Any, Any]:
            known = (headers or {}).get(CONTENT_SHA256)
            built, date = super()._build_headers(host, headers, None if known else body, creds)
            if known:
                built[CONTENT_SHA256] = known
                if body:
                    built["Content-Length"] = str(len(body))
            elif creds and built.get(CONTENT_SHA256) == "UNSIGNED-PAYLOAD":
                built[CONTENT_SHA256] = hashlib.sha256(body or b"").hexdigest()
            return built, date

    return SigningMinio


def _execute(
    store: Store,
    method: str,
    key: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> Any:
    """One request through minio's client (its public API sends neither digests nor part checksums)."""
    request: Any = dict(headers or {})
    parameters: Any = dict(query or {})
    return store.minio._execute(
        method, store.bucket, key, body=body, headers=request, query_params=parameters
    )


def _etag(response: Any) -> str:
    return str(response.headers.get("etag") or "").strip('"')


def _put(
    store: Store,
    what: str,
    key: str,
    data: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
) -> str:
    """One PUT of ``data`` with ``headers`` (``x-amz-content-sha256`` among them), translated, not
    retried; the ETag of the answer without quotes ('' when it gave none)."""
    if store.curl:
        from .curlrequest import Put

        sha256 = headers[CONTENT_SHA256]
        request = Put(key, -1, 0, len(data), sha256, headers, query or {}, what=what, data=data)
        done = store.send(request)
        if done.error is not None:
            raise done.error
        return done.etag.strip('"')
    with translated(what, store.settings):
        return _etag(_execute(store, "PUT", key, body=data, headers=headers, query=query))


def xml_text(answer: bytes, name: str) -> str:
    """The text of the first element called ``name`` in an XML answer, whatever its namespace;
    '' when there is none or the answer is no XML."""
    try:
        elements = list(ElementTree.fromstring(answer).iter())
    except ElementTree.ParseError:
        return ""
    for element in elements:
        if element.tag == name or element.tag.endswith("}" + name):
            return (element.text or "").strip()
    return ""


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _proof(store: Store, what: str, data: bytes, etag: str, checks: WriteChecks | None = None) -> bool:
    """Whether an accepted PUT of ``data`` answered with ``etag`` proves the server stored ``data``;
    a damaged body (an MD5 ETag of other bytes) is a retryable IntegrityError."""
    checks = checks or store.write_checks
    if checks.digests_checked:
        return True
    if not checks.etag_md5:
        return False
    if etag.lower() != _md5(data):
        raise IntegrityError(
            f"{what}: the server stored other bytes than were sent (ETag {etag}, not the MD5 of the body)",
            retryable=True,
        )
    return True


Recover = Callable[[], "Written | None"]


def put_bytes(
    store: Store,
    key: str,
    data: bytes,
    headers: Mapping[str, str],
    sha256_hex: str | None = None,
    *,
    recover: Recover | None = None,
) -> Written:
    """One PUT of ``data`` at ``key`` with ``headers`` and the body's digests, retried as the
    store's policy says. When an attempt fails in transit, ``recover`` may find the object stored
    after all (the answer was lost) and return it instead of sending the body again."""
    digest = sha256_hex or hashlib.sha256(data).hexdigest()
    what = f"writing {key}"

    def attempt() -> Written:
        request = {**headers, **digest_headers(digest, store.write_checks)}
        try:
            etag = _put(store, what, key, data, request)
        except TransferError:
            found = recover() if recover is not None else None
            if found is None:
                raise
            log.info("%s: the answer was lost, but the stored object is complete", what)
            return found
        etag = etag or _stored_etag(store, key)
        return Written(etag, _proof(store, what, data, etag))

    return retry_call(attempt, what, store.options.retry)


def _stored_etag(store: Store, key: str) -> str:
    """The ETag of an object just written, for a server whose answer did not give it."""
    stored = store.stat(key)
    return stored.etag or "" if stored is not None else ""


def _required(what: str, value: str, name: str) -> str:
    """``value``, which the server's answer must hold; its absence is a broken answer, retried."""
    if not value:
        raise TransferError(f"{what}: the server's answer holds no {name}", retryable=True)
    return value


def file_reader(path: str | os.PathLike[str], what: str) -> Callable[[int, int], bytes]:
    """``read(offset, length)``: bytes of a local file, all of them or an IntegrityError (the file
    changed size while it was being sent)."""

    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        if len(data) != length:
            raise IntegrityError(f"{what}: {path} changed size while it was being read")
        return data

    return read


def put_file(
    store: Store,
    key: str,
    path: str | os.PathLike[str],
    sha256_hex: str,
    headers: Mapping[str, str],
    *,
    part_size: int,
    parallel_parts: int = 1,
    recover: Recover | None = None,
) -> Written:
    """Upload a file with ``headers``: one PUT up to ``part_size`` bytes, else a multipart upload
    of parts that size, ``parallel_parts`` at a time, each request retried on its own. ``recover``
    as for :func:`put_bytes` (for a multipart upload: after the whole upload failed)."""
    size = os.stat(path).st_size
    if size <= part_size:
        with open(path, "rb") as handle:
            data = handle.read(size + 1)
        if len(data) != size:
            raise IntegrityError(f"uploading {key}: {path} changed size while it was being read")
        return put_bytes(store, key, data, headers, sha256_hex, recover=recover)

    try:
        read = file_reader(path, f"uploading {key}")
        return Multipart(store, key, size, part_size, headers, read).send(parallel_parts)
    except TransferError:
        found = recover() if recover is not None else None
        if found is None:
            raise
        log.info("uploading %s: the answer was lost, but the stored object is complete", key)
        return found


class Multipart:
    """One multipart upload of ``size`` bytes that ``read(offset, length)`` gives: create, the parts
    (each read, hashed and sent on its own, retried on its own), complete; aborted when it fails.
    ``checks`` default to the store's."""

    def __init__(
        self,
        store: Store,
        key: str,
        size: int,
        part_size: int,
        headers: Mapping[str, str],
        read: Callable[[int, int], bytes],
        checks: WriteChecks | None = None,
    ):
        self.store, self.key, self.size, self.part_size, self.read = store, key, size, part_size, read
        self.checks = checks or store.write_checks
        self.headers = {"Content-Type": "application/octet-stream", **headers}
        if self.checks.part_checksums:
            self.headers["x-amz-checksum-algorithm"] = "SHA256"
        self.count = -(-size // part_size)
        self.upload_id = ""

    def send(self, parallel: int) -> Written:
        what = f"starting the upload of {self.key}"
        store = self.store

        def start() -> str:
            response = _execute(store, "POST", self.key, headers=self.headers, query={"uploads": ""})
            return _required(what, xml_text(response.data, "UploadId"), "an upload id")

        self.upload_id = store.call(what, start)
        try:
            with ThreadPoolExecutor(max(1, min(parallel, self.count)), "djarchive-part") as pool:
                parts = list(pool.map(self._part, range(1, self.count + 1)))
            return self._complete(parts)
        except BaseException:
            self._abort()
            raise

    def _part(self, number: int) -> tuple[int, str, str, bool]:
        """Send part ``number``: (number, ETag, sha256 in hex, proven)."""
        offset = (number - 1) * self.part_size
        data = self.read(offset, min(self.part_size, self.size - offset))
        digest = hashlib.sha256(data).hexdigest()
        what = f"uploading part {number} of {self.key}"
        query = {"partNumber": str(number), "uploadId": self.upload_id}
        checks = self.checks if self.checks.part_checksums else WriteChecks(checksum_header=False)

        def put() -> tuple[int, str, str, bool]:
            headers = digest_headers(digest, checks)
            etag = _required(what, _put(self.store, what, self.key, data, headers, query), "an ETag")
            return number, etag, digest, _proof(self.store, what, data, etag, self.checks)

        return self.store.call(what, put)

    def _complete(self, parts: list[tuple[int, str, str, bool]]) -> Written:
        root = ElementTree.Element("CompleteMultipartUpload")
        for number, etag, digest, _ in parts:
            part = ElementTree.SubElement(root, "Part")
            ElementTree.SubElement(part, "PartNumber").text = str(number)
            ElementTree.SubElement(part, "ETag").text = f'"{etag}"'
            if self.checks.part_checksums:
                ElementTree.SubElement(part, "ChecksumSHA256").text = checksum_of(digest)
        body = ElementTree.tostring(root)
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        headers = {"Content-Type": "application/xml", "Content-MD5": md5}
        what = f"completing the upload of {self.key}"
        store = self.store

        def complete() -> str:
            query = {"uploadId": self.upload_id}
            response = _execute(store, "POST", self.key, body=body, headers=headers, query=query)
            if b"<Error>" in response.data[:200] or b"<Error " in response.data[:200]:
                # S3 may answer 200 and an error in the body when the completion failed late
                raise TransferError(
                    f"{what}: {xml_text(response.data, 'Code') or 'an error'}", retryable=True
                )
            return _required(what, xml_text(response.data, "ETag").strip('"'), "an ETag")

        etag = store.call(what, complete)
        return Written(etag, all(proven for *_, proven in parts))

    def _abort(self) -> None:
        store, what = self.store, f"aborting the upload of {self.key}"
        query = {"uploadId": self.upload_id}
        try:
            store.call(what, lambda: _execute(store, "DELETE", self.key, query=query))
        except DJArchiveError as exc:  # the prefix-wide abort after a failed upload gets another chance
            log.debug("%s: %s", what, exc)

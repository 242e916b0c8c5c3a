"""What :mod:`djarchive_common.curl` is asked and answers: requests, heads, outcomes, and the
translation of HTTP statuses and libcurl's error codes into :mod:`djarchive_common.errors`,
the same errors :mod:`djarchive_common.store` makes of minio's and urllib3's."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from xml.sax.saxutils import unescape

from .errors import (
    DJArchiveError,
    EndpointUnreachableError,
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    TransferError,
)
from .translation import _DENIED, _NOT_FOUND, _TRANSIENT, PLAIN_HTTP, access_denied

if TYPE_CHECKING:
    from .curl import CurlEngine, _Transfer

__all__ = ["Done", "Get", "Head", "Put", "translate_curl", "translate_status"]

# libcurl's error codes (CURLE_*), by what they mean for a retry.
_UNREACHABLE = {5, 6, 7}  # proxy or host not resolved, no connection
_TIMEOUT = 28
_TLS = {35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98}
_BROKEN = {8, 16, 18, 52, 55, 56, 65, 92, 95}  # odd or empty reply, short body, send/recv, rewind
_DIGEST_MISMATCH = {"XAmzContentSHA256Mismatch", "BadDigest"}  # AWS and MinIO check what is sent
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]{0,1000})</Message>")


class Head(NamedTuple):
    """The head of a 2xx answer to a GET, told before its first byte."""

    status: int  # 200 (the whole object) or 206 (a range)
    offset: int  # the position in the object of the answer's first byte
    object_size: int | None  # the whole object's size (Content-Range's total, else Content-Length)
    etag: str  # quotes included


@dataclass(eq=False)
class Get:
    """A GET of ``length`` bytes of ``key`` from ``offset`` (length 0: to the end).

    ``on_head`` sees each answer's head before its body and may refuse it by raising (a
    retryable error is retried); ``on_data(data, position)`` receives the body in pieces of at
    most :data:`djarchive_common.curl.RECEIVE_BUFFER` bytes, each at its position in the object,
    in order, never a byte twice nor outside the range asked for. A callback that raises must
    not have used the piece: a retry delivers it again. ``on_end`` sees a body that arrived
    whole and may refuse it (a sha256 that does not match): a retryable refusal starts the GET
    again from its first byte, and ``on_head`` then sees an answer at the request's offset.
    """

    key: str
    on_data: Callable[[bytes, int], object]
    offset: int = 0
    length: int = 0
    on_head: Callable[[Head], object] | None = None
    on_end: Callable[[], object] | None = None
    what: str = ""  # names the request in messages; "downloading KEY" by default
    tag: Any = None  # the caller's own


@dataclass(eq=False)
class Put:
    """A PUT of ``length`` bytes of the open file ``fd`` from ``offset``, or of ``data`` when it is
    given (fd, offset and length are then ignored): a whole object, or with ``query`` partNumber
    and uploadId a part of a multipart upload, whose sha256 is ``sha256``. ``headers`` may name
    the Content-Type (application/octet-stream otherwise)."""

    key: str
    fd: int
    offset: int
    length: int
    sha256: str  # sent as x-amz-content-sha256 and signed: the server may check the body against it
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. {"x-amz-meta-sha256": ...}
    query: Mapping[str, str] = field(default_factory=dict)
    what: str = ""  # "uploading KEY" by default
    tag: Any = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if self.data is not None:
            self.offset, self.length = 0, len(self.data)


@dataclass
class Done:
    """How a request ended: ``error`` None, or the error of its last attempt."""

    request: Get | Put
    error: DJArchiveError | OSError | None = None
    status: int = 0  # the last answer's HTTP status (0: none)
    etag: str = ""  # a GET's first answer's ETag; a PUT's stored ETag
    received: int = 0  # GET: body bytes delivered to on_data over all attempts
    attempts: int = 1


def translate_status(engine: CurlEngine, what: str, status: int, body: bytes) -> DJArchiveError:
    """The error of an HTTP answer that is not 2xx, from its S3 error code when it has one."""
    where = engine.settings.url
    found = _ERROR_CODE.search(body)
    if found is None:
        if status == 403:
            return access_denied(what, engine.settings, "HTTP 403")
        if status == 404:
            return ObjectNotFoundError(f"{what}: not found in {where}")
        return TransferError(f"{what}: {where} answered HTTP {status}", retryable=status >= 500)
    code = unescape(found[1].decode("utf-8", "replace")).strip()
    message_found = _ERROR_MESSAGE.search(body)
    message = unescape(message_found[1].decode("utf-8", "replace")) if message_found else ""
    if code == "NoSuchBucket":
        return NotFoundError(
            f"bucket {engine.settings.bucket!r} does not exist at {engine.settings.endpoint}"
        )
    if code in _NOT_FOUND:
        return ObjectNotFoundError(f"{what}: not found in {where}")
    if code in _DENIED:
        return access_denied(what, engine.settings, code)
    if code == "InvalidRange":
        return TransferError(f"{what}: the object is shorter than the byte range asked for")
    if code in _DIGEST_MISMATCH:  # the body's sha256 is not what x-amz-content-sha256 said
        return IntegrityError(
            f"{what}: {where} refused the body ({code}): its sha256 is not the one sent with it; "
            "it changed since it was hashed, or was damaged on the way",
            retryable=True,
        )
    if code == "PreconditionFailed":  # the If-Match of a resumed GET
        return TransferError(f"{what}: the object changed while it was being downloaded", retryable=True)
    return TransferError(f"{what}: {where} answered {code}: {message}", retryable=code in _TRANSIENT)


def translate_curl(engine: CurlEngine, transfer: _Transfer, code: int, message: str) -> DJArchiveError:
    """The error of a transfer libcurl ended with ``code`` (CURLE_*) and ``message``."""
    what, endpoint, options = transfer.what, engine.settings.endpoint, engine.options
    connected = transfer.status or transfer.handle.getinfo(engine._pycurl.CONNECT_TIME) > 0
    if code in _UNREACHABLE or (code == _TIMEOUT and not connected):
        return EndpointUnreachableError(f"cannot reach {endpoint} ({message})", retryable=True)
    if code == _TIMEOUT:
        return TransferError(
            f"{what}: less than {max(1.0, options.min_rate):.0f} bytes/s for {options.read_timeout:.0f} s "
            "(DJARCHIVE_MIN_RATE, DJARCHIVE_READ_TIMEOUT)",
            retryable=True,
        )
    if code in _TLS:
        return TransferError(
            f"{what}: TLS failure talking to {endpoint} ({message}); for a private CA set SSL_CERT_FILE",
            hint=PLAIN_HTTP,
        )
    if code in _BROKEN:
        return TransferError(f"{what}: connection to {endpoint} failed ({message})", retryable=True)
    return TransferError(f"{what}: libcurl error {code} talking to {endpoint} ({message})")

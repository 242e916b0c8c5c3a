"""minio's and urllib3's exceptions, and plain HTTP answers, turned into
:mod:`djarchive_common.errors`: the only place.

Every call the store makes through minio, and every read of a response body, runs under
:func:`translated` (or hands its exception to :func:`translate`), so no caller ever sees a
transport's own exception. A mirror (:mod:`djarchive_common.mirror`) speaks plain HTTP over
urllib3: :func:`translate_connection` and :func:`http_status_error` translate what it meets.
Transient failures (connection reset, timeout, 5xx, SlowDown, an answer cut short) are marked
``retryable``; :mod:`djarchive_common.transfer` retries them.
Messages name the operation and the endpoint, never a URL that could carry a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError

from .errors import (
    DJArchiveError,
    EndpointUnreachableError,
    Hint,
    NotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransferError,
)

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "PLAIN_HTTP",
    "access_denied",
    "condition_failed",
    "http_status_error",
    "is_missing",
    "translate",
    "translate_connection",
    "translated",
]

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchVersion", "ResourceNotFound"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
    "InvalidToken",
    "ExpiredToken",
}
#: What to do about a TLS failure talking to a plain-http endpoint.
PLAIN_HTTP = Hint("secure", False, flag="--insecure", text=", for a plain-http endpoint pass {}")
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}
_TRANSIENT = {
    "SlowDown",
    "SlowDownRead",
    "SlowDownWrite",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "OperationAborted",
    "XMinioServerNotInitialized",
    "XMinioReadQuorum",
    "XMinioWriteQuorum",
}


@contextmanager
def translated(what: str, settings: Settings) -> Iterator[None]:
    """Translate minio/urllib3 errors raised inside the block into djarchive errors; ``what``
    names the operation in their messages."""
    try:
        yield
    except DJArchiveError:
        raise
    except Exception as exc:
        error = translate(exc, what, settings)
        if error is None:
            raise
        raise error from exc


def translate(exc: Exception, what: str, settings: Settings) -> DJArchiveError | None:
    """The djarchive error for ``exc``, raised by minio or urllib3 while doing ``what`` against
    the store of ``settings``; None for an exception that is not theirs (a bug: let it show)."""
    from minio.error import InvalidResponseError, S3Error, ServerError

    where, endpoint = settings.url, settings.endpoint
    if isinstance(exc, S3Error):
        if exc.code == "NoSuchBucket":
            return NotFoundError(f"bucket {settings.bucket!r} does not exist at {endpoint}")
        if exc.code in _NOT_FOUND:
            return ObjectNotFoundError(f"{what}: not found in {where}")
        if exc.code in _DENIED:
            return access_denied(what, settings, exc.code)
        if exc.code == "InvalidRange":
            return TransferError(f"{what}: the object is shorter than the byte range asked for")
        transient = exc.code in _TRANSIENT
        return TransferError(f"{what}: {where} answered {exc.code}: {exc.message}", retryable=transient)
    if isinstance(exc, (ServerError, InvalidResponseError)):
        status = getattr(exc, "_code", None) or getattr(exc, "status_code", None) or 0
        if status == 403:
            return access_denied(what, settings, "HTTP 403")
        if status == 404:
            return ObjectNotFoundError(f"{what}: not found in {where}")
        return TransferError(
            f"{what}: {where} answered HTTP {status or 'error'}", retryable=not status or status >= 500
        )
    if isinstance(exc, (ParseError, UnicodeDecodeError)):  # an XML answer cut short or garbled
        return TransferError(f"{what}: unreadable answer from {endpoint} ({exc})", retryable=True)
    return translate_connection(exc, what, endpoint, PLAIN_HTTP)


def translate_connection(
    exc: Exception, what: str, where: str, tls_advice: Hint | str
) -> DJArchiveError | None:
    """The djarchive error for a failure of the connection itself (urllib3's, or the socket's)
    while doing ``what`` with ``where``; None for any other exception. No answer came: the
    error is ``unreachable`` (see :class:`~djarchive_common.errors.TransferError`).
    ``tls_advice`` is what to try after a TLS failure: an option (a hint), or words."""
    from urllib3 import exceptions as http

    if isinstance(exc, http.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, http.SSLError):
        message = (
            f"{what}: TLS failure talking to {where} ({_reason(exc)}); for a private CA set SSL_CERT_FILE"
        )
        if isinstance(tls_advice, Hint):
            return TransferError(message, hint=tls_advice)
        return TransferError(f"{message}, {tls_advice}")
    if isinstance(exc, (http.NewConnectionError, http.ConnectTimeoutError, http.NameResolutionError)):
        return EndpointUnreachableError(f"cannot reach {where} ({_reason(exc)})", retryable=True)
    if isinstance(exc, (http.ProtocolError, http.ReadTimeoutError, http.TimeoutError, http.HTTPError)):
        return TransferError(
            f"{what}: connection to {where} failed ({_reason(exc)})", retryable=True, unreachable=True
        )
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TransferError(
            f"{what}: connection to {where} failed ({exc})", retryable=True, unreachable=True
        )
    return None


def access_denied(what: str, settings: Settings, answer: str) -> PermissionDeniedError:
    """The error of a request the store refused (``answer``: its S3 code, or the HTTP status): an
    anonymous client is told it was anonymous and how to give credentials."""
    if not settings.anonymous:
        return PermissionDeniedError(
            f"{what}: access denied by {settings.url} ({answer}); check the credentials and their permissions"
        )
    prefix = f"DJARCHIVE_{settings.role.upper()}_"
    return PermissionDeniedError(
        f"{what}: access denied by {settings.url} ({answer}) to an anonymous {settings.role}: the bucket "
        f"does not allow public reads; set {prefix}ACCESS_KEY and {prefix}SECRET_KEY (or "
        f"djarchive.{settings.role}.access_key/secret_key in DataJoint's configuration), or ask the "
        "archive's curators for public read access"
    )


def http_status_error(status: int, what: str, where: str) -> DJArchiveError:
    """The djarchive error for an HTTP answer ``status`` (not 200 or 206) from a plain HTTP
    server (a mirror) while doing ``what``: 404 and 410 are not found, 401 and 403 a refusal,
    5xx, 408 and 429 transient, anything else a failure that trying again will not mend."""
    if status in (404, 410):
        return ObjectNotFoundError(f"{what}: not found in {where} (HTTP {status})")
    if status in (401, 403):
        return PermissionDeniedError(f"{what}: refused by {where} (HTTP {status}); a mirror must be public")
    if status == 416:
        return TransferError(f"{what}: {where} has a shorter object than the byte range asked for (HTTP 416)")
    transient = status >= 500 or status in (408, 429)
    return TransferError(f"{what}: {where} answered HTTP {status}", retryable=transient)


def condition_failed(exc: Exception) -> bool:
    """Whether ``exc`` is the store refusing a conditional write (If-Match, If-None-Match)."""
    from minio.error import S3Error

    return isinstance(exc, S3Error) and exc.code in _PRECONDITION


def is_missing(exc: Exception) -> bool:
    """Whether ``exc`` is the store saying the object does not exist."""
    from minio.error import S3Error

    return isinstance(exc, S3Error) and exc.code in _NOT_FOUND


def _reason(exc: BaseException) -> str:
    """A short cause for an urllib3 error, without URLs that could carry query secrets."""
    text = str(exc)
    for marker in ("Failed to establish a new connection: ", "Read timed out", "Connection refused"):
        if marker in text:
            return text[text.index(marker) :].rstrip(")'\"")
    if isinstance(exc.__context__, BaseException) and str(exc.__context__):
        return str(exc.__context__)
    return text.split(": ", 1)[-1] if ": " in text else text or exc.__class__.__name__

"""The seam under a store's data calls: what carries object bytes, and what it must guarantee.

A :class:`~djarchive_common.store.Store` sends its bulk reads, GETs of objects (whole or a byte
range), through one :class:`Transport`; its writes go through :mod:`djarchive_common.writes`
(every PUT with its digests, multipart uploads part by part), and every other call (listings,
HEADs, conditional writes, deletes) stays on minio. The transport used today is
:class:`djarchive_common.connection.MinioTransport` (minio over urllib3). A second one, such as
libcurl's multi interface, replaces it by implementing these two protocols and being handed to
``Store(..., transport=...)``; nothing above the store changes, because callers only ever see
djarchive errors and :class:`Stream` objects. :class:`StoreOptions` is what every transport is
tuned by.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ConfigurationError
from .transfer import MAX_JOBS, RetryPolicy

__all__ = ["Stream", "StoreOptions", "Transport"]


def _env_seconds(name: str, default: float, *, zero: bool = False) -> float:
    """A positive, finite number of seconds (or bytes per second) from ``name``; ``zero`` allows 0."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero) or value > 86400 * 365:
        allowed = "0 (off) or a positive number" if zero else "a positive number"
        raise ConfigurationError(f"invalid {name}={text!r}: use {allowed}")
    return value


@dataclass(frozen=True)
class StoreOptions:
    """Connection tuning: pool size, timeouts (seconds) and the retry policy."""

    pool_size: int = MAX_JOBS
    connect_timeout: float = 5.0
    read_timeout: float = 30.0  # the longest wait for one read; also the grace before min_rate applies
    min_rate: float = 1024.0  # bytes/s: a body arriving slower than this on average is cut (0: never)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_environment(cls, **overrides: Any) -> StoreOptions:
        """Defaults, with ``DJARCHIVE_CONNECT_TIMEOUT``, ``DJARCHIVE_READ_TIMEOUT`` (seconds) and
        ``DJARCHIVE_MIN_RATE`` (bytes per second, 0 to turn the check off) applied."""
        values: dict[str, Any] = {
            "connect_timeout": _env_seconds("DJARCHIVE_CONNECT_TIMEOUT", cls.connect_timeout),
            "read_timeout": _env_seconds("DJARCHIVE_READ_TIMEOUT", cls.read_timeout),
            "min_rate": _env_seconds("DJARCHIVE_MIN_RATE", cls.min_rate, zero=True),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


class Stream(Protocol):
    """The body of one GET being received, as a transport (or a source) hands it out.

    An implementation guarantees: every method raises only djarchive errors (a reset, timeout
    or cut body is a retryable TransferError, never the transport's own exception); a body that
    arrives slower than ``StoreOptions.min_rate`` on average, once ``read_timeout`` has passed,
    is cut with a retryable TransferError; :meth:`abort` may be called from any thread and makes
    a read that is waiting on the network fail at once; the connection is reused only when the
    body was read to its end (:meth:`chunks` finished), and discarded by :meth:`close` otherwise.
    """

    @property
    def status(self) -> int:
        """The HTTP status: 206 for a range the server honoured, 200 for the whole object."""
        ...

    @property
    def object_size(self) -> int | None:
        """The whole object's size as the answer states it (Content-Range's total, else the
        Content-Length of a 200), None when it states none. Known before any body byte is read."""
        ...

    @property
    def etag(self) -> str:
        """The object's ETag, quotes included, as a conditional request wants it."""
        ...

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, as soon as some arrive; b'' at the end of the body."""
        ...

    def chunks(self, size: int) -> Iterator[bytes]:
        """The rest of the body in chunks of at most ``size`` bytes."""
        ...

    def abort(self) -> None:
        """End the transfer now, from any thread."""
        ...

    def close(self) -> None:
        """Release the response; a body not read to its end does not go back to the pool."""
        ...

    def __enter__(self) -> Stream: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Transport(Protocol):
    """What carries a store's object bytes. One instance serves one store and its bucket.

    An implementation guarantees:

    * **thread safety**: many worker threads call it at once (up to ``StoreOptions.pool_size``
      connections kept and reused);
    * **one error translation**: it raises only :mod:`djarchive_common.errors`, translated in one
      place of its own; transient faults (connection reset or refused, timeout, 5xx, SlowDown,
      an answer cut short) are ``retryable``, a missing object is ObjectNotFoundError, a refusal
      PermissionDeniedError; messages name the operation (``what``) and the endpoint, never a
      secret or a signed URL;
    * **no retries of its own** beyond one reconnect of a stale pooled connection: the budget of
      every operation is :func:`djarchive_common.transfer.retry_call`'s;
    * **timeouts**: ``connect_timeout`` to connect, ``read_timeout`` for the longest wait on one
      read, ``min_rate`` for a body as :class:`Stream` says;
    * the proxy (HTTPS_PROXY/HTTP_PROXY, NO_PROXY) and CA bundle (SSL_CERT_FILE) of the
      environment, with SigV4 signing by the store's credentials (anonymous without them).
    """

    def get(self, key: str, offset: int, length: int, what: str) -> Stream:
        """Start a GET of ``key`` (bytes ``offset`` to ``offset + length``; ``length`` 0: to the
        end) and return its body once the answer's head is in. An error answer raises: it is
        never returned as a Stream. A server may ignore the range (status 200)."""
        ...

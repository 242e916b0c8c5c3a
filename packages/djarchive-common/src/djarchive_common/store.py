"""The bucket, reached through minio: the one module that calls minio and translates its errors.

One :class:`Store` per client holds one minio client over one urllib3 pool sized for
concurrent transfers, with connect/read timeouts that fail in seconds. Every call, and
every read of a body (:class:`ObjectStream`), goes through :meth:`Store.translated`,
which turns minio's and urllib3's exceptions into :mod:`djarchive_common.errors`,
marking transient ones ``retryable``. Retries follow :mod:`djarchive_common.transfer`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import ParseError

from .config import Settings
from .errors import (
    ConfigurationError,
    DJArchiveError,
    EndpointUnreachableError,
    NotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransferError,
)
from .lazy import lazy_exports
from .logs import register_secrets
from .text import plural
from .transfer import MAX_JOBS, RetryPolicy, retry_call
from .writes import CHECKSUM_SHA256, WriteChecks, Written, put_bytes, put_file, signing_client

if TYPE_CHECKING:
    from minio import Minio
    from urllib3 import BaseHTTPResponse

__all__ = ["SHA256_METADATA", "Answer", "ObjectInfo", "ObjectStream", "Store", "StoreOptions"]

T = TypeVar("T")
SHA256_METADATA = "sha256"  # stored as the x-amz-meta-sha256 header
MAX_LISTING_PAGES = 100_000  # 100 million keys: more is a server that lies
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
log = logging.getLogger("djarchive_common")


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


class ObjectInfo(NamedTuple):
    """What the store says about one object."""

    key: str
    size: int
    sha256: str | None = None  # from x-amz-meta-sha256, when stat'ed
    etag: str | None = None  # without quotes
    checksum: str | None = None  # x-amz-checksum-sha256 as the server keeps it, when stat'ed for it


class Answer(NamedTuple):
    """A server's answer to one request, error answers included (:meth:`Store.ask`)."""

    status: int
    code: str  # the S3 error code, '' for a success
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class ObjectStream:
    """One object (or byte range of it) being received. Reads go through the store's error
    translation, so a reset or timeout in the middle of a body is a retryable TransferError; a
    body that arrives slower than the minimum rate is cut; :meth:`abort` (from any thread) ends
    a read that is waiting."""

    def __init__(self, store: Store, response: BaseHTTPResponse, what: str):
        self._store, self._response, self._what = store, response, what
        self._started = time.monotonic()
        self._received = 0
        self._aborted = False
        self._read = getattr(response, "read1", None) or response.read  # read1: one recv, no waiting for more

    @property
    def status(self) -> int:
        """The HTTP status: 206 for a range the server honoured, 200 for the whole object."""
        return int(self._response.status)

    @property
    def object_size(self) -> int | None:
        """The whole object's size as the server states it (Content-Range, else Content-Length)."""
        headers = self._response.headers
        total = (headers.get("content-range") or "").rpartition("/")[2]
        if total.isdigit():
            return int(total)
        length = headers.get("content-length") or ""
        return int(length) if self.status == 200 and length.isdigit() else None

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, as soon as some arrive; b'' at the end."""
        try:
            with self._store.translated(self._what):
                data = self._read(size, decode_content=False)
        except TransferError:
            if self._aborted:
                raise TransferError(f"{self._what}: stopped") from None
            raise
        self._received += len(data)
        options = self._store.options
        elapsed = time.monotonic() - self._started
        too_slow = data and options.min_rate and elapsed > options.read_timeout
        if too_slow and self._received < options.min_rate * elapsed:
            raise TransferError(
                f"{self._what}: {self._received} bytes in {elapsed:.0f} s is slower than "
                f"{options.min_rate:.0f} bytes/s (DJARCHIVE_MIN_RATE)",
                retryable=True,
            )
        return data

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in chunks of at most ``size`` bytes; the connection goes back to the pool at
        the end."""
        while True:
            data = self.read(size)
            if not data:
                break
            yield data
        self._response.release_conn()

    def abort(self) -> None:
        """End the transfer now, from any thread: a read waiting on the network returns an error."""
        self._aborted = True
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3
        try:
            if shutdown is not None:
                shutdown()
            else:
                self._response.close()
        except Exception as exc:  # already closed: nothing left to stop
            log.debug("stopping %s: %s", self._what, exc)

    @property
    def etag(self) -> str:
        """The object's ETag, quotes included, as a conditional request wants it."""
        return str(self._response.headers.get("etag") or "")

    def close(self) -> None:
        """Close the response (a connection not read to the end is discarded, not pooled)."""
        self._response.close()

    def __enter__(self) -> ObjectStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Store:
    """One bucket of the archive. Thread-safe; share one per process and role."""

    def __init__(self, settings: Settings, options: StoreOptions | None = None):
        self.settings = settings
        self.options = options or StoreOptions.from_environment()
        self.write_checks = WriteChecks()  # what the server does with digests (the admin probes it)
        register_secrets(settings.secrets)

    def __repr__(self) -> str:
        return f"<Store {self.settings.url}>"

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.settings.bucket

    @cached_property
    def minio(self) -> Minio:
        """The minio client, created on first use (creating a Store never touches the network)."""
        import certifi
        import urllib3

        Minio = signing_client(_import_minio())
        pool: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": self.options.pool_size,
            "block": False,
            "timeout": urllib3.Timeout(connect=self.options.connect_timeout, read=self.options.read_timeout),
            # One quick reconnect for a stale pooled connection; everything else is retried by us.
            "retries": urllib3.Retry(
                total=1, connect=1, read=0, status=0, other=0, redirect=0, raise_on_status=False
            ),
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
        }
        proxy = self.proxy
        if proxy:
            parts = urlsplit(proxy)
            if parts.username:
                register_secrets([parts.password])
                credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                pool["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=credentials)
                proxy = proxy.replace(parts.netloc, parts.netloc.rpartition("@")[2])
            http: urllib3.PoolManager = urllib3.ProxyManager(proxy, **pool)
        else:
            http = urllib3.PoolManager(**pool)
        return Minio(
            self.settings.endpoint,
            access_key=self.settings.access_key,
            secret_key=self.settings.secret_key,
            secure=self.settings.secure,
            http_client=http,
        )

    @property
    def proxy(self) -> str | None:
        """The proxy from HTTPS_PROXY/HTTP_PROXY for this endpoint, unless NO_PROXY exempts it."""
        from urllib.request import getproxies, proxy_bypass  # costs ~30 ms: only when connecting

        proxy = getproxies().get("https" if self.settings.secure else "http")
        host = urlsplit(f"//{self.settings.endpoint}").hostname or self.settings.endpoint
        if not proxy or proxy_bypass(host):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    # -- error translation -------------------------------------------------------------

    @contextmanager
    def translated(self, what: str) -> Iterator[None]:
        """Translate minio/urllib3 errors raised inside the block into djarchive errors."""
        try:
            yield
        except DJArchiveError:
            raise
        except Exception as exc:
            error = self._translate(exc, what)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception, what: str) -> DJArchiveError | None:
        from minio.error import InvalidResponseError, S3Error, ServerError
        from urllib3 import exceptions as http

        where = f"{self.settings.url}"
        if isinstance(exc, S3Error):
            if exc.code == "NoSuchBucket":
                return NotFoundError(f"bucket {self.bucket!r} does not exist at {self.settings.endpoint}")
            if exc.code in _NOT_FOUND:
                return ObjectNotFoundError(f"{what}: not found in {where}")
            if exc.code in _DENIED:
                return PermissionDeniedError(
                    f"{what}: access denied by {where} ({exc.code}); "
                    "check the credentials and their permissions"
                )
            if exc.code == "InvalidRange":
                return TransferError(f"{what}: the object is shorter than the byte range asked for")
            transient = exc.code in _TRANSIENT
            return TransferError(f"{what}: {where} answered {exc.code}: {exc.message}", retryable=transient)
        if isinstance(exc, (ServerError, InvalidResponseError)):
            status = getattr(exc, "_code", None) or getattr(exc, "status_code", None) or 0
            if status == 403:
                return PermissionDeniedError(f"{what}: access denied by {where} (HTTP 403)")
            if status == 404:
                return ObjectNotFoundError(f"{what}: not found in {where}")
            return TransferError(
                f"{what}: {where} answered HTTP {status or 'error'}", retryable=not status or status >= 500
            )
        if isinstance(exc, http.MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        if isinstance(exc, http.SSLError):
            return TransferError(
                f"{what}: TLS failure talking to {self.settings.endpoint} ({_reason(exc)}); "
                "for a private CA set SSL_CERT_FILE, for a plain-http endpoint pass secure=False"
            )
        if isinstance(exc, (http.NewConnectionError, http.ConnectTimeoutError, http.NameResolutionError)):
            return EndpointUnreachableError(
                f"cannot reach {self.settings.endpoint} ({_reason(exc)})", retryable=True
            )
        if isinstance(exc, (http.ProtocolError, http.ReadTimeoutError, http.TimeoutError, http.HTTPError)):
            return TransferError(
                f"{what}: connection to {self.settings.endpoint} failed ({_reason(exc)})", retryable=True
            )
        if isinstance(exc, (ParseError, UnicodeDecodeError)):  # an XML answer cut short or garbled
            return TransferError(
                f"{what}: unreadable answer from {self.settings.endpoint} ({exc})", retryable=True
            )
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return TransferError(
                f"{what}: connection to {self.settings.endpoint} failed ({exc})", retryable=True
            )
        return None

    def call(self, what: str, func: Callable[[], T]) -> T:
        """Run one store operation, translated and retried under the retry policy."""

        def attempt() -> T:
            with self.translated(what):
                return func()

        return retry_call(attempt, what, self.options.retry)

    # -- reading -----------------------------------------------------------------------

    def _list(self, prefix: str, delimiter: str) -> Iterator[Any]:
        """ListObjectsV2, page after page, with guards against a server whose listing never
        ends: a continuation token seen before, a truncated page without one, or more than
        MAX_LISTING_PAGES pages stop it with an error."""
        from minio.datatypes import parse_list_objects

        if not hasattr(self.minio, "_execute"):  # a stand-in client (pytest-minio-mock): its own loop
            yield from self.minio.list_objects(self.bucket, prefix=prefix, recursive=not delimiter)
            return
        token, tokens = None, set()
        for _ in range(MAX_LISTING_PAGES):
            query = {"list-type": "2", "delimiter": delimiter, "encoding-type": "url", "max-keys": "1000"}
            query["prefix"] = prefix
            if token:
                query["continuation-token"] = token
            response = self.minio._execute("GET", self.bucket, query_params=query)  # type: ignore[arg-type]
            objects, truncated, token, _ = parse_list_objects(response)
            yield from objects
            if not truncated:
                return
            if not token or token in tokens:
                raise TransferError(
                    f"listing {prefix or 'the bucket'}: {self.settings.endpoint} answers 'truncated' "
                    "without a new continuation token; its listing would never end"
                )
            tokens.add(token)
        raise TransferError(
            f"listing {prefix or 'the bucket'}: more than {MAX_LISTING_PAGES} pages; giving up"
        )

    def prefixes(self, prefix: str = "") -> list[str]:
        """The immediate sub-prefixes of ``prefix`` (each ending in '/'), as S3 lists them."""
        return self.call(
            f"listing {prefix or 'the bucket'}",
            lambda: [obj.object_name for obj in self._list(prefix, "/") if obj.is_dir and obj.object_name],
        )

    def objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix``, recursively, with its size."""
        return self.call(
            f"listing {prefix}",
            lambda: [
                ObjectInfo(obj.object_name, int(obj.size or 0), etag=(obj.etag or "").strip('"') or None)
                for obj in self._list(prefix, "")
                if not obj.is_dir and obj.object_name
            ],
        )

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists, asked by listing (anonymous HEADs of missing keys may get 403)."""
        return any(info.key == key for info in self.objects(key))

    def stat(self, key: str, *, checksum: bool = False) -> ObjectInfo | None:
        """Size, sha256 metadata and ETag of one object (``checksum``: and the sha256 checksum the
        server keeps, asked for with ``x-amz-checksum-mode``), or None when it does not exist."""
        headers = {"x-amz-checksum-mode": "ENABLED"} if checksum else None
        try:
            found = self.call(
                f"checking {key}",
                lambda: self.minio.stat_object(self.bucket, key, extra_headers=headers),  # type: ignore[arg-type]
            )
        except ObjectNotFoundError:
            return None
        metadata = {name.lower(): value for name, value in (found.metadata or {}).items()}
        return ObjectInfo(
            key,
            int(found.size or 0),
            metadata.get(f"x-amz-meta-{SHA256_METADATA}"),
            (found.etag or "").strip('"') or None,
            metadata.get(CHECKSUM_SHA256),
        )

    def read(self, key: str, limit: int) -> bytes:
        """The whole content of a small object; refuse objects larger than ``limit`` bytes."""
        return self.read_tagged(key, limit)[0]

    def read_tagged(self, key: str, limit: int) -> tuple[bytes, str]:
        """The whole content of a small object and its ETag (for a conditional write after)."""

        def fetch() -> tuple[bytes, str]:
            with self.stream(key, what=f"reading {key}") as stream:
                declared = stream.object_size
                if declared is None:
                    raise TransferError(
                        f"reading {key}: the answer has no valid Content-Length", retryable=True
                    )
                if declared > limit:
                    raise TransferError(f"reading {key}: {declared} bytes is more than the {limit} allowed")
                chunks, received = [], 0
                for chunk in stream.chunks(max(1, min(declared + 1, 1024 * 1024))):
                    chunks.append(chunk)
                    received += len(chunk)
                    if received > declared:
                        break
                if received != declared:
                    raise TransferError(
                        f"reading {key}: received {received} of {declared} bytes", retryable=True
                    )
                return b"".join(chunks), stream.etag

        return self.call(f"reading {key}", fetch)

    def stream(self, key: str, offset: int = 0, length: int = 0, *, what: str = "") -> ObjectStream:
        """Start receiving ``length`` bytes of ``key`` from ``offset`` (length 0: to the end).

        Use it as a context manager; its reads raise only djarchive errors (``what`` names the
        operation in them).
        """
        what = what or f"downloading {key}"
        with self.translated(what):
            response = self.minio.get_object(self.bucket, key, offset=offset, length=length)
        return ObjectStream(self, response, what)

    # -- writing -----------------------------------------------------------------------

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        sha256: str,
        *,
        part_size: int,
        parallel_parts: int = 1,
    ) -> Written:
        """Upload a file (multipart above ``part_size``) with its sha256 as user metadata and as the
        digests the server can check (:mod:`djarchive_common.writes`); return what was written.

        When the answer to an upload is lost (minio then reports a failure, e.g. NoSuchUpload
        for a multipart upload the server did complete), the stored object is checked and
        accepted if its size and sha256 metadata are right (not proven: publish reads it back).
        """
        size = os.stat(path).st_size

        def recover() -> Written | None:
            stored = self.stat(key)
            if stored is not None and (stored.size, stored.sha256) == (size, sha256):
                return Written(stored.etag or "", proven=False)
            return None

        headers = {f"x-amz-meta-{SHA256_METADATA}": sha256, "Content-Type": "application/octet-stream"}
        return put_file(
            self,
            key,
            path,
            sha256,
            headers,
            part_size=part_size,
            parallel_parts=parallel_parts,
            recover=recover,
        )

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> Written:
        """Upload a small object from memory, with its digests; return what was written."""
        headers = {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}
        headers["Content-Type"] = "text/csv" if key.endswith(".csv") else "application/octet-stream"
        return put_bytes(self, key, data, headers)

    def ask(
        self,
        method: str,
        key: str = "",
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        refusal: bool = False,
    ) -> Answer:
        """One request, for finding out what the server does (the admin's probe): an error answer
        (4xx) is returned, not raised, except a missing bucket or refused credentials (unless
        ``refusal``: the request is made to be refused); transient failures are retried, and
        translated."""
        from minio.error import S3Error

        def attempt() -> Answer:
            try:
                response = self.minio._execute(
                    method,
                    self.bucket,
                    key or None,
                    body=body,
                    headers=dict(headers or {}),
                    query_params=dict(query or {}),
                )
            except S3Error as exc:
                status = exc.response.status if exc.response is not None else 0
                if (status >= 500 and exc.code != "NotImplemented") or exc.code in _TRANSIENT:
                    raise
                if not refusal and (exc.code == "NoSuchBucket" or exc.code in _DENIED):
                    raise
                answer = exc.response.headers if exc.response is not None else {}
                return Answer(status, exc.code or f"HTTP {status}", _lower(answer), b"")
            return Answer(response.status, "", _lower(response.headers), response.data)

        return self.call(f"{method} {key or self.bucket}", attempt)

    def write_if(self, key: str, data: bytes, etag: str | None = None) -> str | None:
        """Write a small object only if ``key`` does not exist (``etag`` None: ``If-None-Match: *``)
        or still has ``etag`` (``If-Match``); return the new ETag, or None when the condition
        failed. minio-py's public API cannot send these headers, hence the call one level down.
        Stores that ignore conditions accept every write: callers read the object back."""
        from minio.error import S3Error

        def put() -> str | None:
            headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/json"}
            headers.update({"If-Match": etag} if etag else {"If-None-Match": "*"})
            try:
                response = self.minio._execute("PUT", self.bucket, key, body=data, headers=headers)
            except S3Error as exc:
                if exc.code in _PRECONDITION:
                    return None
                raise
            return str(response.headers.get("etag") or "")

        return self.call(f"writing {key}", put)

    def remove_if(self, key: str, etag: str) -> bool:
        """Delete ``key`` only if it still has ``etag``; False when it changed (or is gone)."""
        from minio.error import S3Error

        def delete() -> bool:
            try:
                self.minio._execute("DELETE", self.bucket, key, headers={"If-Match": etag})
            except S3Error as exc:
                if exc.code in _PRECONDITION or exc.code in _NOT_FOUND:
                    return False
                raise
            return True

        return self.call(f"deleting {key}", delete)

    def abort_uploads(self, prefix: str) -> int:
        """Abort every unfinished multipart upload under ``prefix`` (they are billed until then);
        return how many."""
        from minio.error import S3Error

        def abort() -> int:
            try:
                result = self.minio._list_multipart_uploads(self.bucket, prefix=prefix)
            except S3Error as exc:
                if exc.code != "NotImplemented":
                    raise
                return 0  # a server that cannot list them (s3rver) cannot be asked to abort them
            uploads = [(upload.object_name, upload.upload_id) for upload in result.uploads]
            for name, upload_id in uploads:
                if name and upload_id:
                    self.minio._abort_multipart_upload(self.bucket, name, upload_id)
            return len(uploads)

        return self.call(f"aborting unfinished uploads under {prefix}", abort)

    def remove(self, key: str) -> None:
        """Delete one object (deleting a missing object is not an error)."""
        self.call(f"deleting {key}", lambda: self.minio.remove_object(self.bucket, key))

    def remove_many(self, keys: list[str]) -> None:
        """Delete objects in batches of up to 1000."""
        from minio.deleteobjects import DeleteObject

        for start in range(0, len(keys), 1000):
            batch = [DeleteObject(key) for key in keys[start : start + 1000]]

            def delete(batch: list[Any] = batch) -> None:
                errors = list(self.minio.remove_objects(self.bucket, batch))
                if errors:
                    first = errors[0]
                    raise TransferError(f"deleting {first.name}: {first.code} {first.message}")

            self.call(f"deleting {plural(len(batch), 'object')}", delete)


_MINIO_IMPORT = threading.Lock()


def _import_minio() -> type[Minio]:
    """minio's client class; minio's admin API is loaded only if something asks for it."""
    with _MINIO_IMPORT:
        if "minio" not in sys.modules:
            _import_minio_without_admin()
        from minio import Minio

    return Minio


def _import_minio_without_admin() -> None:
    """Import minio with ``minio.MinioAdmin`` loaded on first use instead of at import.

    ``minio/__init__`` imports its admin API and with it pycryptodome and argon2: 0.1 s, a third
    of a no-op re-run, for code djarchive never calls. A stand-in takes the admin module's place
    during the import and is removed after it, so ``minio.MinioAdmin`` and ``import
    minio.minioadmin`` still give the real thing. Should another minio version need more from
    the stand-in, the partial import is undone and the caller imports minio the normal way.
    """
    import types

    stand_in = types.ModuleType("minio.minioadmin")
    stand_in.MinioAdmin = None  # type: ignore[attr-defined]
    sys.modules["minio.minioadmin"] = stand_in
    try:
        import minio
    except ImportError:
        for name in [name for name in sys.modules if name == "minio" or name.startswith("minio.")]:
            del sys.modules[name]
        return
    finally:
        if sys.modules.get("minio.minioadmin") is stand_in:
            del sys.modules["minio.minioadmin"]
    for name in ("minioadmin", "MinioAdmin"):
        if vars(minio).get(name, stand_in) in (stand_in, None):
            vars(minio).pop(name, None)
    minio.__getattr__ = lazy_exports("minio", {"MinioAdmin": ".minioadmin"})  # type: ignore[method-assign]


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _reason(exc: BaseException) -> str:
    """A short cause for an urllib3 error, without URLs that could carry query secrets."""
    text = str(exc)
    for marker in ("Failed to establish a new connection: ", "Read timed out", "Connection refused"):
        if marker in text:
            return text[text.index(marker) :].rstrip(")'\"")
    if isinstance(exc.__context__, BaseException) and str(exc.__context__):
        return str(exc.__context__)
    return text.split(": ", 1)[-1] if ": " in text else text or exc.__class__.__name__

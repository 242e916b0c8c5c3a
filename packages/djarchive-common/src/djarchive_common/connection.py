"""minio over urllib3: the client behind every store call, and the transport of its data calls.

:func:`connect` builds one minio client over one urllib3 pool sized for concurrent transfers,
with connect/read timeouts that fail in seconds, the environment's proxy and CA bundle.
:class:`MinioTransport` is the :class:`~djarchive_common.transport.Transport` the store uses
for GETs and PUTs of objects; its bodies are :class:`ObjectStream`, a :class:`ResponseStream`
(as a mirror's are: :mod:`djarchive_common.mirror` uses :func:`http_pool` too). Errors are translated by
:mod:`djarchive_common.translation`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .errors import DJArchiveError, TransferError
from .lazy import lazy_exports
from .logs import register_secrets
from .translation import translate, translated
from .transport import StoreOptions
from .writes import signing_client

if TYPE_CHECKING:
    import urllib3
    from minio import Minio
    from urllib3 import BaseHTTPResponse

    from .config import Settings

__all__ = [
    "MinioTransport",
    "ObjectStream",
    "ResponseStream",
    "connect",
    "http_pool",
    "proxy_for",
    "proxy_to",
]

log = logging.getLogger("djarchive_common")


def connect(settings: Settings, options: StoreOptions) -> Minio:
    """A minio client for ``settings``' endpoint, over a urllib3 pool tuned by ``options``.
    Creating it sends nothing."""
    Minio = signing_client(_import_minio())
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        http_client=http_pool(options, proxy_for(settings)),
    )


def http_pool(options: StoreOptions, proxy: str | None, *, redirects: int = 0) -> urllib3.PoolManager:
    """A urllib3 pool sized and timed by ``options`` (through ``proxy`` when given, its
    credentials sent to the proxy only), which verifies certificates against SSL_CERT_FILE or
    certifi's bundle and reconnects once for a stale pooled connection; everything else is
    retried by :mod:`djarchive_common.transfer`. ``redirects``: how many it follows."""
    import certifi
    import urllib3

    pool: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": options.pool_size,
        "block": False,
        "timeout": urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout),
        "retries": urllib3.Retry(
            total=1 + redirects,
            connect=1,
            read=0,
            status=0,
            other=0,
            redirect=redirects,
            raise_on_status=False,
        ),
        "cert_reqs": "CERT_REQUIRED",
        "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
    }
    if not proxy:
        return urllib3.PoolManager(**pool)
    parts = urlsplit(proxy)
    if parts.username:
        register_secrets([parts.password])
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        pool["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=credentials)
        proxy = proxy.replace(parts.netloc, parts.netloc.rpartition("@")[2])
    return urllib3.ProxyManager(proxy, **pool)


def proxy_for(settings: Settings) -> str | None:
    """The proxy from HTTPS_PROXY/HTTP_PROXY for ``settings``' endpoint, unless NO_PROXY exempts it."""
    return proxy_to(settings.secure, urlsplit(f"//{settings.endpoint}").hostname or settings.endpoint)


def proxy_to(secure: bool, host: str) -> str | None:
    """The proxy from HTTPS_PROXY/HTTP_PROXY (``secure``: the https one) for ``host``, unless
    NO_PROXY exempts it."""
    from urllib.request import getproxies, proxy_bypass  # costs ~30 ms: only when connecting

    proxy = getproxies().get("https" if secure else "http")
    if not proxy or proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class ResponseStream(ABC):
    """One object (or byte range of it) being received through urllib3: a
    :class:`~djarchive_common.transport.Stream`. Reads are translated (by :meth:`_translate`,
    which each kind of server defines), so a reset or timeout in the middle of a body is a
    retryable TransferError; a body that arrives slower than the minimum rate is cut;
    :meth:`abort` (from any thread) ends a read that is waiting."""

    def __init__(self, response: BaseHTTPResponse, what: str, options: StoreOptions):
        self._response, self._what = response, what
        self._options = options
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
            data = self._read(size, decode_content=False)
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            if self._aborted and isinstance(error, TransferError):
                raise TransferError(f"{self._what}: stopped") from None
            raise error from exc
        self._received += len(data)
        options = self._options
        elapsed = time.monotonic() - self._started
        too_slow = data and options.min_rate and elapsed > options.read_timeout
        if too_slow and self._received < options.min_rate * elapsed:
            raise TransferError(
                f"{self._what}: {self._received} bytes in {elapsed:.0f} s is slower than "
                f"{options.min_rate:.0f} bytes/s (DJARCHIVE_MIN_RATE)",
                retryable=True,
            )
        return data

    @abstractmethod
    def _translate(self, exc: Exception) -> DJArchiveError | None:
        """The djarchive error for what reading the body raised (None: not a transport's)."""

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

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ObjectStream(ResponseStream):
    """An object of the store being received: a :class:`ResponseStream` whose errors are
    translated as the store's (:func:`djarchive_common.translation.translate`)."""

    def __init__(self, response: BaseHTTPResponse, what: str, settings: Settings, options: StoreOptions):
        super().__init__(response, what, options)
        self._settings = settings

    def _translate(self, exc: Exception) -> DJArchiveError | None:
        return translate(exc, self._what, self._settings)


class MinioTransport:
    """The data calls of a store through its minio client: a
    :class:`~djarchive_common.transport.Transport`."""

    def __init__(self, minio: Minio, settings: Settings, options: StoreOptions):
        self.minio, self.settings, self.options = minio, settings, options

    def get(self, key: str, offset: int, length: int, what: str) -> ObjectStream:
        with translated(what, self.settings):
            response = self.minio.get_object(self.settings.bucket, key, offset=offset, length=length)
        return ObjectStream(response, what, self.settings, self.options)


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

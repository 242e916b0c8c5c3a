"""Object bodies through libcurl's multi interface (pycurl): GETs, whole and ranged, and PUTs.

One thread drives a ``pycurl.CurlMulti`` over at most ``max_transfers`` easy handles, reused
from one request to the next over connections libcurl keeps alive. libcurl signs every request
with SigV4 itself (``CURLOPT_AWS_SIGV4``): the signed headers are host, x-amz-date,
x-amz-content-sha256 and every header we add (Range, If-Match, x-amz-meta-*, Content-Type). A
GET's payload hash is the empty body's; a PUT sends its body's real sha256 in
``x-amz-content-sha256`` and libcurl signs that value as the payload hash, so a server that
checks it (AWS, MinIO) refuses a body that differs.

Bodies go to the caller's ``on_data(data, position)`` as they arrive, after ``on_head`` was
told the status and the object's size. Statuses and S3 error codes become
:mod:`djarchive_common.errors` as :mod:`djarchive_common.store` translates minio's; transport
failures as urllib3's. Timeouts and the minimum rate are the store's :class:`StoreOptions`;
retries follow its :class:`RetryPolicy` (one budget per request, see
:mod:`djarchive_common.transfer`), waiting in the event loop rather than in a thread; a GET
retried after some bytes resumes after them (``If-Match`` on the first answer's ETag). minio
keeps every other call (listings, heads, copies, multipart bookkeeping).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from .connection import proxy_for
from .curlrequest import Done, Get, Head, Put, translate_curl, translate_status
from .errors import DJArchiveError, LocalStorageError, TransferError
from .localfs import pread
from .logs import register_secrets
from .transfer import DEFAULT_WORKERS, MAX_JOBS, RetryPolicy

if TYPE_CHECKING:
    import pycurl

    from .store import Store

__all__ = ["RECEIVE_BUFFER", "CurlEngine", "Done", "Get", "Head", "Put"]

log = logging.getLogger("djarchive_common")
RECEIVE_BUFFER = 256 * 1024  # libcurl reads into this; it hands on_data at most 16 KiB (CURL_MAX_WRITE_SIZE)
SEND_BUFFER = 1024 * 1024  # bytes read from the file per read callback of a PUT
TICK = 0.05  # seconds the driver waits on sockets before it looks at cancel() again
_HEADERS_WANTED = {"content-range", "content-length", "etag"}
_END = object()  # the requests' iterable is exhausted


class _Transfer:
    """One request across its attempts: what was delivered, and the current answer."""

    __slots__ = (
        "attempt",
        "delivered",
        "engine",
        "error_body",
        "etag",
        "fault",
        "handle",
        "head",
        "head_ended",
        "headers",
        "position",
        "request",
        "restart",
        "sent",
        "start",
        "status",
        "stop",
        "trimmed",
    )

    def __init__(self, engine: CurlEngine, request: Get | Put):
        self.engine, self.request = engine, request
        self.attempt = 0
        self.delivered = 0  # body bytes handed to on_data, over all attempts
        self.etag = ""  # the first answer's, for If-Match on a resumed GET
        self.stop: int | None = request.offset + request.length if request.length else None
        self.handle: Any = None
        self.restart = False  # the next attempt starts from the first byte (the body was refused)

    def begin(self) -> None:
        """Reset what belongs to one attempt."""
        self.attempt += 1
        if self.restart:
            self.restart, self.delivered, self.etag = False, 0, ""
        self.status = 0
        self.head_ended = False
        self.headers: dict[str, str] = {}
        self.head: Head | None = None
        self.start = self.request.offset + self.delivered
        self.position = self.start
        self.error_body = bytearray()
        self.fault: BaseException | None = None
        self.sent = 0
        self.trimmed = False

    @property
    def what(self) -> str:
        request = self.request
        if request.what:
            return request.what
        return f"{'downloading' if isinstance(request, Get) else 'uploading'} {request.key}"

    # -- libcurl's callbacks: they never raise (pycurl would print and lose the error) -----

    def on_header(self, line: bytes) -> int | None:
        try:
            if line[:5] == b"HTTP/":
                self.status, self.headers = int(line.split(b" ", 2)[1]), {}
                self.head_ended = False
            elif line in (b"\r\n", b"\n"):  # libcurl takes a connection closed within a head as its end
                self.head_ended = True
            elif line[:1] in b"CcEe":  # Content-Range, Content-Length, ETag: the rest is not read
                name, colon, value = line.partition(b":")
                text = name.strip().lower().decode("latin-1")
                if colon and text in _HEADERS_WANTED:
                    self.headers[text] = value.strip().decode("latin-1")
        except BaseException as exc:
            self.fault = exc
            return 0
        return None

    def on_body(self, data: bytes) -> int | None:
        try:
            request = self.request
            if not 200 <= self.status < 300 or isinstance(request, Put):
                if len(self.error_body) < 64 * 1024:  # an S3 error document: kept for its Code
                    self.error_body += data
                return None
            if self.head is None:
                self.answered()
            position, end = self.position, self.position + len(data)
            self.position = end
            if position < self.start:  # a whole answer to a ranged GET: skip to what was asked
                data = data[self.start - position :]
                position = self.start
            if self.stop is not None and end > self.stop:
                data = data[: max(0, self.stop - position)]
                self.trimmed = True
            if data:
                request.on_data(data, position)
                self.delivered += len(data)
            return 0 if self.trimmed else None
        except BaseException as exc:
            self.fault = exc
            return 0

    def on_read(self, size: int) -> bytes | int:
        request = self.request
        try:
            left = request.length - self.sent
            if left <= 0:
                return b""
            if request.data is not None:  # type: ignore[union-attr]
                data = request.data[self.sent : self.sent + size]  # type: ignore[union-attr]
                self.sent += len(data)
                return data
            data = pread(request.fd, min(size, left), request.offset + self.sent)  # type: ignore[union-attr]
            if not data:
                raise LocalStorageError(
                    f"{self.what}: the file ended {left} bytes early (changed while uploading?)"
                )
            self.sent += len(data)
            return data
        except BaseException as exc:
            self.fault = exc
            import pycurl

            return int(pycurl.READFUNC_ABORT)

    def on_seek(self, offset: int, origin: int) -> int:
        """Rewind the body (libcurl resends it on a fresh connection when a reused one was dead)."""
        if origin != os.SEEK_SET or not 0 <= offset <= self.request.length:
            return 2  # CURL_SEEKFUNC_CANTSEEK
        self.sent = offset
        return 0

    def answered(self) -> Head:
        """Read the head of a 2xx answer to a GET and tell the caller (who may refuse it)."""
        headers, what = self.headers, self.what
        if self.status == 206:
            found = headers.get("content-range", "")
            span, _, total_text = found.removeprefix("bytes ").partition("/")
            first_text, _, last_text = span.partition("-")
            if not (
                first_text.isdigit() and last_text.isdigit() and (total_text.isdigit() or total_text == "*")
            ):
                raise TransferError(f"{what}: a partial answer without a valid Content-Range", retryable=True)
            first, total = int(first_text), int(total_text) if total_text.isdigit() else None
            if first != self.start:
                raise TransferError(
                    f"{what}: the answer starts at byte {first}, not {self.start}", retryable=True
                )
        else:
            length = headers.get("content-length", "")
            first, total = 0, int(length) if length.isdigit() else None
        head = Head(self.status, first, total, headers.get("etag", ""))
        on_head = self.request.on_head  # type: ignore[union-attr]
        if on_head is not None:
            on_head(head)  # before the answer is taken: a refused head teaches nothing
        self.head, self.position = head, first
        self.etag = self.etag or head.etag
        if self.stop is None and total is not None:
            self.stop = total
        return head

    def outcome(self, code: int, message: str) -> BaseException | None:
        """The error of the attempt that just ended (None: it succeeded); a GET's body that
        arrived whole is shown to its ``on_end``, whose refusal makes the next attempt start over."""
        error = self._outcome(code, message)
        on_end = getattr(self.request, "on_end", None)
        if error is None and on_end is not None:
            try:
                on_end()
            except BaseException as exc:
                self.restart = True
                return exc
        return error

    def _outcome(self, code: int, message: str) -> BaseException | None:
        if self.fault is not None:
            return self.fault
        if code and not (self.trimmed and code == 23):  # 23: we ended a body that ran past the range
            if self.head is not None and isinstance(self.request, Get) and self.short_read() is None:
                return None  # every byte asked for arrived before the connection failed
            return translate_curl(self.engine, self, code, message)
        if not self.head_ended:
            endpoint = self.engine.settings.endpoint
            return TransferError(
                f"{self.what}: connection to {endpoint} failed (the answer ended in its head)", retryable=True
            )
        if not 200 <= self.status < 300:
            return translate_status(self.engine, self.what, self.status, bytes(self.error_body))
        if isinstance(self.request, Put):
            return None
        try:
            if self.head is None:  # an empty body: the head was not reported yet
                self.answered()
        except BaseException as exc:
            return exc
        return self.short_read()

    def short_read(self) -> TransferError | None:
        """An error when the bytes delivered fall short of the range or object asked for."""
        if self.stop is not None and self.request.offset + self.delivered < self.stop:
            wanted = self.stop - self.request.offset
            return TransferError(f"{self.what}: received {self.delivered} of {wanted} bytes", retryable=True)
        return None


class CurlEngine:
    """GETs and PUTs of one store's objects through libcurl; run them with :meth:`run`.

    Not thread-safe: one thread runs it; :meth:`cancel` is the one call from other threads.
    Raises ImportError when pycurl is missing (see :func:`~djarchive_common.transport.bulk_transport`).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_transfers: int = DEFAULT_WORKERS,
        region: str | None = None,
        retry: RetryPolicy | None = None,
    ):
        import pycurl

        self._pycurl = pycurl
        self.store = store
        self.settings, self.options = store.settings, store.options
        self.retry = retry or store.options.retry
        self.max_transfers = max(1, min(MAX_JOBS, int(max_transfers)))
        self._region = region
        scheme = "https" if self.settings.secure else "http"
        self._base = f"{scheme}://{self.settings.endpoint}/{quote(self.settings.bucket, safe='')}/"
        # HTTPS_PROXY/HTTP_PROXY and NO_PROXY read as minio's path reads them
        self._proxy = proxy_for(store.settings) or ""
        password = urlsplit(self._proxy).password
        if password:
            register_secrets([password, unquote(password)])
        self._multi: pycurl.CurlMulti | None = None
        self._idle: list[pycurl.Curl] = []
        self._cancel = threading.Event()
        self._sequence = itertools.count()
        self.connections = 0  # new connections made (keep-alive spares the rest)

    def __repr__(self) -> str:
        return f"<CurlEngine {self.settings.url}>"

    def __enter__(self) -> CurlEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def region(self) -> str:
        """The bucket's region for SigV4: given, else the store's (minio asks the bucket once)."""
        if self._region is None:
            minio = self.store.minio
            self._region = self.store.call(
                f"finding the region of {self.settings.bucket}",
                lambda: minio._get_region(self.settings.bucket),
            )
        return self._region

    def cancel(self) -> None:
        """Stop now, from any thread: :meth:`run` reports what was in flight as stopped and ends
        within a fraction of a second; the engine takes no more work."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def close(self) -> None:
        """Close the handles and their connections."""
        for handle in self._idle:
            handle.close()
        self._idle.clear()
        if self._multi is not None:
            self._multi.close()
            self._multi = None

    # -- handles -----------------------------------------------------------------------

    def _new_handle(self) -> pycurl.Curl:
        pycurl, options, settings = self._pycurl, self.options, self.settings
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.TCP_KEEPALIVE, 1)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(options.connect_timeout * 1000)))
        # The store's rules: no byte for read_timeout seconds, or less than min_rate bytes/s
        # over that long, cuts the transfer (libcurl counts whole seconds).
        handle.setopt(pycurl.LOW_SPEED_LIMIT, max(1, int(options.min_rate)))
        handle.setopt(pycurl.LOW_SPEED_TIME, max(1, round(options.read_timeout)))
        handle.setopt(pycurl.BUFFERSIZE, RECEIVE_BUFFER)
        handle.setopt(pycurl.UPLOAD_BUFFERSIZE, SEND_BUFFER)
        handle.setopt(pycurl.PROXY, self._proxy)  # "": no proxy, whatever libcurl's own rules say
        handle.setopt(pycurl.USERAGENT, "djarchive (libcurl)")
        if settings.secure:
            import certifi

            handle.setopt(pycurl.CAINFO, os.environ.get("SSL_CERT_FILE") or certifi.where())
            handle.setopt(pycurl.SSL_VERIFYPEER, 1)
            handle.setopt(pycurl.SSL_VERIFYHOST, 2)
        if not settings.anonymous:
            handle.setopt(pycurl.AWS_SIGV4, f"aws:amz:{self.region}:s3")
            handle.setopt(pycurl.USERNAME, settings.access_key or "")
            handle.setopt(pycurl.PASSWORD, settings.secret_key or "")
        return handle

    def _start(self, transfer: _Transfer, active: dict[Any, _Transfer]) -> None:
        pycurl, request = self._pycurl, transfer.request
        transfer.begin()
        handle = self._idle.pop() if self._idle else self._new_handle()
        url = self._base + quote(request.key, safe="/~")
        if isinstance(request, Get):
            headers = []
            if transfer.start or request.length:
                last = str(request.offset + request.length - 1) if request.length else ""
                headers.append(f"Range: bytes={transfer.start}-{last}")
            if transfer.delivered and transfer.etag:
                headers.append(f"If-Match: {transfer.etag}")
            handle.setopt(pycurl.HTTPGET, 1)
        else:
            if request.query:
                url += "?" + urlencode(request.query, quote_via=quote)
            given = {name.lower() for name in request.headers}
            headers = [
                "Expect:",  # no 100-continue round trip (and no wait on servers that never send one)
                *([] if "content-type" in given else ["Content-Type: application/octet-stream"]),
                f"x-amz-content-sha256: {request.sha256}",
                *(
                    f"{name}: {value}"
                    for name, value in request.headers.items()
                    if name.lower() != "x-amz-content-sha256"
                ),
            ]
            handle.setopt(pycurl.UPLOAD, 1)
            handle.setopt(pycurl.INFILESIZE_LARGE, request.length)
            handle.setopt(pycurl.READFUNCTION, transfer.on_read)
            handle.setopt(pycurl.SEEKFUNCTION, transfer.on_seek)
        handle.setopt(pycurl.URL, url)
        if headers:
            handle.setopt(pycurl.HTTPHEADER, headers)
        else:  # an empty list would leave a reused handle's last headers (a Range, an If-Match) set
            handle.unsetopt(pycurl.HTTPHEADER)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.on_header)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.on_body)
        transfer.handle = handle
        active[handle] = transfer
        self._multi.add_handle(handle)  # type: ignore[union-attr]

    # -- the event loop ----------------------------------------------------------------

    def run(self, requests: Iterable[Get | Put | None]) -> Generator[Done, None, None]:
        """Carry out ``requests`` (taken as slots free up, so the iterable may be lazy; a None from
        it means nothing to start now: it is asked again once a transfer ends or after a short
        wait), at most ``max_transfers`` at once; yield each one's :class:`Done` as it ends,
        retried as the engine's policy allows (the store's unless it was given one). Errors of a
        request (project errors, OSErrors raised by its callbacks) are in its Done; anything
        else a callback raises (a bug, KeyboardInterrupt) stops every transfer and propagates.
        Closing the generator stops the transfers too."""
        pycurl = self._pycurl
        if self._multi is None:
            self._multi = pycurl.CurlMulti()
            self._multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, self.max_transfers)
            self._multi.setopt(pycurl.M_MAXCONNECTS, self.max_transfers)
        multi = self._multi
        source = iter(requests)
        active: dict[Any, _Transfer] = {}
        waiting: list[tuple[float, int, _Transfer]] = []  # retries in their backoff
        more = not self.cancelled
        try:
            while True:
                if self.cancelled:
                    for transfer in [*active.values(), *(entry[2] for entry in waiting)]:
                        stopped = TransferError(f"{transfer.what}: stopped")
                        yield Done(
                            transfer.request, stopped, attempts=transfer.attempt, received=transfer.delivered
                        )
                    return
                now = time.monotonic()
                while waiting and waiting[0][0] <= now and len(active) < self.max_transfers:
                    self._start(heapq.heappop(waiting)[2], active)
                while more and len(active) < self.max_transfers:
                    request = next(source, _END)
                    if request is None:
                        break
                    if request is _END:
                        more = False
                    else:
                        self._start(_Transfer(self, request), active)  # type: ignore[arg-type]
                if not (active or waiting or more):
                    return
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                ended: list[tuple[Any, int, str]] = []
                while True:
                    queued, succeeded, failed = multi.info_read()
                    ended += [(handle, 0, "") for handle in succeeded] + failed
                    if not queued:
                        break
                for handle, code, message in ended:
                    transfer = active.pop(handle)
                    error = transfer.outcome(code, message)
                    self.connections += handle.getinfo(pycurl.NUM_CONNECTS)
                    multi.remove_handle(handle)
                    self._idle.append(handle)
                    if error is not None and not isinstance(error, (DJArchiveError, OSError)):
                        raise error
                    if error is None or not self._retry(transfer, error, waiting):
                        yield self._done(transfer, error)
                if not ended:
                    wait = TICK if not waiting else max(0.0, min(TICK, waiting[0][0] - now))
                    asked = multi.timeout()  # ms libcurl wants to wait at most; -1: no opinion
                    multi.select(wait if asked < 0 else min(wait, asked / 1000))
        finally:
            for handle in active:
                multi.remove_handle(handle)  # an unfinished transfer's connection is closed
                handle.close()

    def _retry(self, transfer: _Transfer, error: BaseException, waiting: list[Any]) -> bool:
        """Schedule another attempt when the policy allows; False when the error is final."""
        policy = self.retry
        if self.cancelled or not policy.allows(transfer.attempt, error):
            return False
        pause = policy.delay(transfer.attempt)
        log.info(
            "%s failed (%s); retrying in %.1f s (attempt %d)",
            transfer.what,
            error,
            pause,
            transfer.attempt + 1,
        )
        heapq.heappush(waiting, (time.monotonic() + pause, next(self._sequence), transfer))
        return True

    @staticmethod
    def _done(transfer: _Transfer, error: BaseException | None) -> Done:
        etag = transfer.headers.get("etag", "") if isinstance(transfer.request, Put) else transfer.etag
        return Done(
            transfer.request,
            error,  # type: ignore[arg-type]
            status=transfer.status,
            etag=etag,
            received=transfer.delivered,
            attempts=transfer.attempt,
        )

"""A fault-injecting HTTP/1.1 proxy for the tests: it sits between the tools and the S3 server.

It listens on its own 127.0.0.1 port and relays every connection to the upstream server,
parsing just enough HTTP (request and response heads, Content-Length and chunked
framing) to strike at a chosen place in a response. The fate of each exchange is drawn
from a seeded RNG keyed by the request (method, target, Range header) and by how often
the proxy has already seen that request, so a given seed injects the same faults into
the same requests and retries whatever order the client's threads run in.

Faults (each struck exchange ends its connection):

``reset``
    send a prefix of the response (the head may be cut too), then RST the connection;
``truncate``
    send a prefix of the response (the head may be cut too), then close it (FIN): a
    short read, or a head that ends early;
``short``
    rewrite Content-Length (and Content-Range) to a shorter, consistent length and send
    only that much: a body that looks complete but is not;
``corrupt``
    flip one byte of the body;
``stall``
    send a prefix of the response, then hold the connection (until the client gives up,
    ``stall_seconds`` pass or the proxy stops);
``error500`` / ``error503``
    answer without asking the server: an S3-style XML error (``InternalError``,
    ``ServiceUnavailable``), or a plain-text one with ``plain_errors=True``.

Apart from those, ``alter`` damages requests: one byte in the middle of the body of each request
it selects is flipped on its way to the server (counted as ``altered``), as a faulty network card
or middlebox would. The status of every answer the server gives is recorded (``answers``).

The moto server closes every connection after one response, so a fault per connection
and a fault per exchange are the same thing here.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["KINDS", "FaultProxy", "Request", "pick"]

KINDS = ("reset", "truncate", "short", "corrupt", "stall", "error500", "error503")
_RECV = 64 * 1024
_MAX_HEAD = 64 * 1024
_XML_ERRORS = {
    500: ("Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    503: ("Service Unavailable", "ServiceUnavailable", "Please reduce your request rate."),
}


class _Closed(Exception):
    """A peer closed its side in the middle of a message."""


def _header(headers: Sequence[tuple[str, str]], name: str, default: str) -> str:
    """The value of a header (case-insensitive), or ``default``."""
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), default)


@dataclass(frozen=True)
class Request:
    """The head of one request as the client sent it."""

    method: str
    target: str  # path and query, as sent
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str, default: str = "") -> str:
        """The value of a header (case-insensitive), or ``default``."""
        return _header(self.headers, name, default)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def key(self) -> str:
        """What identifies a request across retries and test runs: the bucket name and a
        multipart upload's random id are left out."""
        below_bucket = "/" + self.target.lstrip("/").partition("/")[2]
        below_bucket = re.sub(r"([?&])uploadId=[^&]*&?", r"\1", below_bucket).rstrip("?&")
        return f"{self.method} {below_bucket} {self.header('range')}"


@dataclass
class _Head:
    raw: bytes
    first_line: str
    headers: list[tuple[str, str]]

    def header(self, name: str, default: str = "") -> str:
        return _header(self.headers, name, default)

    def replace(self, changes: dict[str, str | None]) -> bytes:
        """The head with headers set (value) or removed (None); names compared case-insensitively."""
        wanted = {name.lower(): (name, value) for name, value in changes.items()}
        lines = [self.first_line]
        for key, value in self.headers:
            if key.lower() not in wanted:
                lines.append(f"{key}: {value}")
        lines.extend(f"{name}: {value}" for name, value in wanted.values() if value is not None)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> _Head:
    text = raw.decode("latin-1")
    first, *rest = text[:-4].split("\r\n")
    headers = []
    for line in rest:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return _Head(raw, first, headers)


class _Reader:
    """Buffered reads of HTTP messages from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.buffer += data
        return True

    def head(self) -> bytes | None:
        """The next message head (up to and including the blank line); None at a clean end."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > _MAX_HEAD:
                raise _Closed("message head too long")
            if not self._fill():
                if self.buffer:
                    raise _Closed("connection closed inside a message head")
                return None

    def _take(self, limit: int) -> bytes:
        if not self.buffer and not self._fill():
            raise _Closed("connection closed inside a message body")
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return data

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 2]
                return line
            if not self._fill():
                raise _Closed("connection closed inside a chunked body")

    def body(self, framing: tuple[str, int]) -> Iterator[bytes]:
        """The raw bytes of a body framed as ``framing`` (see :func:`_framing`)."""
        kind, length = framing
        if kind == "length":
            while length > 0:
                data = self._take(min(length, _RECV))
                length -= len(data)
                yield data
        elif kind == "chunked":
            while True:
                line = self._line()
                yield line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        trailer = self._line()
                        yield trailer
                        if trailer == b"\r\n":
                            return
                remaining = size + 2  # the chunk and its CRLF
                while remaining > 0:
                    data = self._take(min(remaining, _RECV))
                    remaining -= len(data)
                    yield data
        elif kind == "close":
            while True:
                if not self.buffer and not self._fill():
                    return
                data = bytes(self.buffer)
                self.buffer.clear()
                yield data


def _framing(head: _Head, *, request_method: str | None = None) -> tuple[str, int]:
    """How the body after ``head`` is delimited: ('length', n), ('chunked', 0) or ('close', 0)."""
    if request_method is not None:  # a response
        status = int(head.first_line.split()[1])
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return ("length", 0)
    if "chunked" in head.header("transfer-encoding").lower():
        return ("chunked", 0)
    length = head.header("content-length")
    if length:
        return ("length", int(length))
    return ("length", 0) if request_method is None else ("close", 0)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _send_prefix(sock: socket.socket, parts: Iterable[bytes], count: int) -> int:
    """Send the first ``count`` bytes of ``parts``; return how many were sent."""
    sent = 0
    for part in parts:
        if sent >= count:
            break
        piece = part[: count - sent]
        sock.sendall(piece)
        sent += len(piece)
    return sent


@dataclass
class _Fate:
    kind: str
    point: float | int  # where to strike: a fraction of the response in [0, 1), or bytes into the body


@dataclass
class FaultProxy:
    """A fault-injecting proxy in front of ``upstream`` (host, port). Use as a context manager.

    ``rates`` maps fault kinds (see :data:`KINDS`) to the fraction of exchanges they strike
    (the sum at most 1). ``rule(request, n)``, when given, replaces the rates: it returns the
    kind for the ``n``-th (0-based) time the proxy sees ``request``, or None, or a pair
    (kind, where) to choose the place too: a float is a fraction (of the whole response for
    ``reset``, ``truncate`` and ``stall``, of the body for ``short`` and ``corrupt``), an
    int a number of bytes into the body. ``applies``
    limits faults to some requests; ``limit`` stops injecting after that many faults.
    ``delay`` holds every request that long (or ``delay(request)`` seconds) before it is
    relayed: a slow network, or one client slower than another. ``ignore_range`` drops the
    Range header, as a server or cache that does not do ranges would. ``answer(request)``, when
    it returns chunks, answers that request itself, chunk by chunk (a generator may sleep in
    between: a trickle), without asking the server: a hostile server. ``alter(request, n)``,
    when true for the ``n``-th (0-based) time the proxy sees ``request``, flips a byte of its body.
    """

    upstream: tuple[str, int]
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    rule: Callable[[Request, int], str | tuple[str, float | int] | None] | None = None
    applies: Callable[[Request], bool] | None = None
    limit: int | None = None
    plain_errors: bool = False
    stall_seconds: float = 30.0
    delay: float | Callable[[Request], float] = 0.0
    ignore_range: bool = False
    answer: Callable[[Request], Iterable[bytes] | None] | None = None
    alter: Callable[[Request, int], bool] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        self.counts: Counter[str] = Counter()  # "requests", "connections" and each fault struck
        self.events: list[tuple[str, Request]] = []  # (kind, request) of each fault struck
        self.requests: list[Request] = []
        self.answers: list[tuple[Request, int]] = []  # (request, the server's status) of each answer
        self.moved: list[tuple[Request, int, int]] = []  # (request, its body's bytes, its answer's)
        self._altered: Counter[str] = Counter()
        self._seen: Counter[str] = Counter()
        self._assigned = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._listener.getsockname()[1]

    # -- life cycle --------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)  # it notices within 50 ms
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_stopped(self, timeout: float) -> bool:
        """Block until the proxy stops (for ``delay`` callables that hold requests until then)."""
        return self._stop.wait(timeout)

    @property
    def faults(self) -> int:
        """How many faults were struck."""
        with self._lock:
            return sum(self.counts[kind] for kind in KINDS)

    def struck(self, kind: str | None = None) -> list[Request]:
        """The requests struck by ``kind`` (by any fault when None)."""
        with self._lock:
            return [request for struck, request in self.events if kind in (None, struck)]

    # -- fates -------------------------------------------------------------------------

    def body_bytes(self, which: Callable[[Request], bool] = lambda request: True) -> tuple[int, int]:
        """(request-body bytes, answer-body bytes) of the exchanges relayed whole that ``which``
        selects."""
        with self._lock:
            moved = [(sent, received) for request, sent, received in self.moved if which(request)]
        return sum(sent for sent, _ in moved), sum(received for _, received in moved)

    def _fate(self, request: Request) -> _Fate | None:
        with self._lock:
            self.requests.append(request)
            self.counts["requests"] += 1
            attempt = self._seen[request.key]
            self._seen[request.key] += 1
            if self.limit is not None and self._assigned >= self.limit:
                return None
            if self.applies is not None and not self.applies(request):
                return None
            rng = random.Random(f"{self.seed}|{request.key}|{attempt}")
            draw, point = rng.random(), rng.random()
            kind = self.rule(request, attempt) if self.rule is not None else pick(self.rates, draw)
            if isinstance(kind, tuple):
                kind, point = kind
            if not kind:
                return None
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            self._assigned += 1
            return _Fate(kind, point)

    def _struck(self, fate: _Fate, request: Request) -> None:
        with self._lock:
            self.counts[fate.kind] += 1
            self.events.append((fate.kind, request))

    # -- serving -----------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.counts["connections"] += 1
                self._sockets.add(client)
            thread = threading.Thread(
                target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
            )
            thread.start()
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            reader = _Reader(client)
            upstream_reader: _Reader | None = None
            while not self._stop.is_set():
                raw = reader.head()
                if raw is None:
                    return
                head = _parse_head(raw)
                method, target = head.first_line.split()[:2]
                request = Request(method, target, tuple(head.headers))
                body = reader.body(_framing(head))
                fate = self._fate(request)
                delay = self.delay(request) if callable(self.delay) else self.delay
                if (delay and self._stop.wait(delay)) or self._stop.is_set():
                    return
                own = self.answer(request) if self.answer is not None else None
                if own is not None:
                    for _ in body:
                        pass
                    for chunk in own:
                        if self._stop.is_set():
                            return
                        client.sendall(chunk)
                    return
                if self.ignore_range and request.header("range"):
                    raw = _without_header(raw, "range")
                if fate is not None and fate.kind.startswith("error"):
                    for _ in body:  # read the whole request before answering
                        pass
                    self._struck(fate, request)
                    client.sendall(self._error_response(int(fate.kind[-3:]), method))
                    return
                framing = _framing(head)
                if self.alter is not None and framing[0] == "length" and framing[1] > 0:
                    with self._lock:
                        attempt = self._altered[request.key]
                        self._altered[request.key] += 1
                    if self.alter(request, attempt):
                        with self._lock:
                            self.counts["altered"] += 1
                            self.events.append(("altered", request))
                        body = _flipped(body, framing[1] // 2)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    with self._lock:
                        self._sockets.add(upstream)
                    upstream_reader = _Reader(upstream)
                upstream.sendall(raw)
                sent = 0
                for part in body:
                    upstream.sendall(part)
                    sent += len(part)
                assert upstream_reader is not None
                raw_response = upstream_reader.head()
                if raw_response is None:
                    return
                response = _parse_head(raw_response)
                with self._lock:
                    self.answers.append((request, int(response.first_line.split()[1])))
                framing = _framing(response, request_method=method)
                parts = upstream_reader.body(framing)
                if fate is None:
                    client.sendall(raw_response)
                    received = 0
                    for part in parts:
                        client.sendall(part)
                        received += len(part)
                    with self._lock:
                        self.moved.append((request, sent, received))
                    if framing[0] == "close" or "close" in (
                        response.header("connection").lower() + request.header("connection").lower()
                    ):
                        return
                    continue
                self._strike(fate, request, client, response, framing, parts)
                return
        except (OSError, _Closed, ValueError, IndexError):
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._sockets.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.close()

    def _strike(
        self,
        fate: _Fate,
        request: Request,
        client: socket.socket,
        response: _Head,
        framing: tuple[str, int],
        parts: Iterator[bytes],
    ) -> None:
        """Relay the response with ``fate`` applied; the connection ends afterwards."""
        kind, length = framing
        known = length if kind == "length" else 4096  # where to aim inside an unframed body
        head = response.raw
        if fate.kind in ("reset", "truncate", "stall"):
            if isinstance(fate.point, int):  # bytes into the body
                cut = len(head) + fate.point
            else:  # a fraction of the whole response, head included
                cut = int(fate.point * (len(head) + known))
            self._struck(fate, request)
            _send_prefix(client, _chain([head], parts), cut)
            if fate.kind == "reset":
                _reset(client)
            elif fate.kind == "stall":
                self._hold(client)
            return
        if kind != "length" or length < (2 if fate.kind == "short" else 1):
            client.sendall(head)  # nothing to shorten or flip: relay it unharmed
            for part in parts:
                client.sendall(part)
            return
        self._struck(fate, request)
        where = fate.point if isinstance(fate.point, int) else int(fate.point * length)
        if fate.kind == "short":
            keep = min(max(1, where), length - 1)
            changes: dict[str, str | None] = {"Content-Length": str(keep), "Connection": "close"}
            content_range = response.header("content-range")
            if content_range.startswith("bytes ") and "-" in content_range:
                first = int(content_range[6:].split("-", 1)[0])
                total = content_range.rsplit("/", 1)[-1]
                changes["Content-Range"] = f"bytes {first}-{first + keep - 1}/{total}"
            client.sendall(response.replace(changes))
            _send_prefix(client, parts, keep)
        elif fate.kind == "corrupt":
            client.sendall(response.replace({"Connection": "close"}))
            position = min(where, length - 1)
            offset = 0
            for part in parts:
                if offset <= position < offset + len(part):
                    index = position - offset
                    part = part[:index] + bytes([part[index] ^ 0xFF]) + part[index + 1 :]
                client.sendall(part)
                offset += len(part)

    def _hold(self, client: socket.socket) -> None:
        """Keep a connection open without sending, until the client leaves (counted as "left")
        or time is up."""
        client.settimeout(0.1)
        waited = 0.0
        while waited < self.stall_seconds and not self._stop.is_set():
            try:
                if client.recv(_RECV):
                    continue
            except TimeoutError:
                waited += 0.1
                continue
            except OSError:
                pass
            with self._lock:
                self.counts["left"] += 1  # the client gave up
            return

    def _error_response(self, status: int, method: str) -> bytes:
        reason, code, message = _XML_ERRORS[status]
        if self.plain_errors:
            body, content_type = f"{status} {reason}\n".encode(), "text/plain"
        else:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                "<RequestId>fault-proxy</RequestId></Error>"
            ).encode()
            content_type = "application/xml"
        if method == "HEAD":
            body = b""
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body


def _without_header(raw: bytes, name: str) -> bytes:
    """A request head without the header ``name``."""
    lines = raw.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(name.encode() + b":")]
    return b"\r\n".join(kept)


def pick(rates: dict[str, float], draw: float) -> str | None:
    """The fault kind a uniform ``draw`` in [0, 1) selects under ``rates``, or None."""
    for kind in KINDS:
        rate = rates.get(kind, 0.0)
        if draw < rate:
            return kind
        draw -= rate
    return None


def _flipped(parts: Iterable[bytes], position: int) -> Iterator[bytes]:
    """``parts`` with the byte at ``position`` (counted over all of them) inverted."""
    offset = 0
    for part in parts:
        if offset <= position < offset + len(part):
            index = position - offset
            part = part[:index] + bytes([part[index] ^ 0xFF]) + part[index + 1 :]
        offset += len(part)
        yield part


def _chain(first: Iterable[bytes], rest: Iterable[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest

"""An HTTP/1.1 proxy in front of the S3 server that counts what it serves, request by request.

For each request it reads the request head and body (Content-Length or chunked), forwards them,
then reads the response head and body and forwards those, counting the response body's bytes
(``bytes``, when the exchange is done; ``streamed``, as they pass, so an exchange cut short counts
what crossed) and the request body's (``sent``) by method and kind of key: ``data`` (an object of
a revision), ``manifest``
(``djarchive-manifest.csv`` and the other reserved names), ``listing`` (a bucket GET with a
query) and ``other``. Keep-alive connections are followed request by request (clients here do
not pipeline). Issue 16's "bytes fetched" is the ``GET data`` count.

Runs in a thread of the benchmark process (:class:`CountingProxy`), or alone for a look:

    python benchmarks/counting_proxy.py --target 127.0.0.1:9000   # prints counts on Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from collections import Counter

READ_SIZE = 256 * 1024
RESERVED = ("djarchive-manifest.csv", "djarchive-manifest.sig", "djarchive-retracted")


def kind_of(method: str, target: str) -> str:
    path = target.partition("?")[0]
    parts = path.lstrip("/").split("/", 1)
    if len(parts) < 2 or not parts[1]:
        return "listing" if method == "GET" else "bucket"
    key = parts[1]
    if key.rsplit("/", 1)[-1].startswith(RESERVED) or key.startswith(".djarchive"):
        return "manifest"
    return "data"


class Counts:
    """Response-body bytes and requests by (method, kind); thread-safe snapshots and resets."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.streamed: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()

    def add(self, method: str, kind: str, status: int, body: int, sent: int = 0) -> None:
        with self.lock:
            self.bytes[f"{method} {kind}"] += body
            self.sent[f"{method} {kind}"] += sent
            self.requests[f"{method} {kind}"] += 1
            self.statuses[str(status)] += 1

    def flow(self, what: str, count: int) -> None:
        """``count`` bytes of an answer's body to ``what`` ("METHOD kind") crossed."""
        with self.lock:
            self.streamed[what] += count

    def take(self) -> dict:
        """The counts so far, then zero."""
        with self.lock:
            out = {
                "bytes": dict(self.bytes),
                "sent": dict(self.sent),
                "streamed": dict(self.streamed),
                "requests": dict(self.requests),
                "statuses": dict(self.statuses),
            }
            for counter in (self.bytes, self.sent, self.streamed, self.requests, self.statuses):
                counter.clear()
        return out


async def _head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionError("connection closed inside a message head") from None
        return b""


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


async def _body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    fields: dict[str, str],
    until_eof: bool,
    tally=None,
) -> int:
    """Forward one message body; return its length (chunked: the payload bytes). ``tally(n)`` is
    told of the bytes of a Content-Length or unframed body as they pass."""
    total = 0
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                await writer.drain()
                return total
            left = size + 2
            while left:
                data = await reader.read(min(READ_SIZE, left))
                if not data:
                    raise ConnectionError("connection closed inside a chunk")
                writer.write(data)
                left -= len(data)
            total += size
            await writer.drain()
    if "content-length" in fields:
        left = int(fields["content-length"])
        while left:
            data = await reader.read(min(READ_SIZE, left))
            if not data:
                raise ConnectionError("connection closed inside a body")
            writer.write(data)
            total += len(data)
            left -= len(data)
            if tally is not None:
                tally(len(data))
            await writer.drain()
        return total
    if until_eof:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            total += len(data)
            await writer.drain()
    return total


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    counts: Counts,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        while True:
            head = await _head(client_reader)
            if not head:
                break
            request_line, fields = _headers(head)
            method, request_target = request_line.split(" ", 2)[:2]
            kind = kind_of(method, request_target)
            server_writer.write(head)
            sent = await _body(client_reader, server_writer, fields, until_eof=False)
            await server_writer.drain()
            while True:
                response = await _head(server_reader)
                if not response:
                    raise ConnectionError("the server closed the connection")
                status_line, response_fields = _headers(response)
                status = int(status_line.split(" ", 2)[1])
                client_writer.write(response)
                if status != 100:
                    break
            if method == "HEAD" or status in (204, 304):
                body = 0
            else:
                what = f"{method} {kind}"
                body = await _body(
                    server_reader,
                    client_writer,
                    response_fields,
                    until_eof=True,
                    tally=lambda count, what=what: counts.flow(what, count),
                )
            await client_writer.drain()
            counts.add(method, kind, status, body, sent)
            if response_fields.get("connection", "").lower() == "close":
                break
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        for writer in (client_writer, server_writer):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


class CountingProxy:
    """The proxy on an asyncio loop in a daemon thread; ``with CountingProxy(port) as p: p.endpoint``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.counts = Counts()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CountingProxy:
        ready = threading.Event()

        async def start() -> None:
            self._server = await asyncio.start_server(
                lambda r, w: _relay(r, w, self.target, self.counts), "127.0.0.1", 0, backlog=512
            )
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="counting-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            server = self._server

            def stop() -> None:
                if server is not None:
                    server.close()
                self._loop.stop()  # type: ignore[union-attr]

            self._loop.call_soon_threadsafe(stop)
        if self._thread is not None:
            self._thread.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="the S3 server")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    with CountingProxy(int(port), host) as proxy:
        print(f"listening on 127.0.0.1:{proxy.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        print(json.dumps(proxy.counts.take(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

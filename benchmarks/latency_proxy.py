"""A TCP proxy that adds a fixed one-way delay in each direction (the kernel here has no netem).

Every chunk read from one side is written to the other side ``delay`` seconds after it
arrived, in order, so a connection sees a round trip of 2 x delay more than loopback
without its bandwidth being capped: chunks are pipelined, not sent one round trip at a
time. Reading pauses while ``--max-buffer`` bytes are in flight in one direction, which caps
one connection at about max-buffer / delay bytes per second, like a TCP window of 2 x
max-buffer over the round trip (default 2 MiB: a 4 MiB window, about 100 MiB/s per
connection at 20 ms). ``--rate`` limits the bandwidth of the whole proxy, all connections
together, in each direction (bytes per second; a link of that speed): chunks leave one after the
other, each once the link has carried the one before it. Run it in its own process, so it does
not share a GIL with the client:

    python benchmarks/latency_proxy.py --target 127.0.0.1:9000 --delay 0.020
    python benchmarks/latency_proxy.py --target 127.0.0.1:9000 --delay 0.020 --rate 20971520
    # prints "listening on 127.0.0.1:PORT" and serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import deque

READ_SIZE = 256 * 1024


class Link:
    """A link of ``rate`` bytes per second shared by every connection, in one direction (0: no
    limit): :meth:`carry` returns once the link has carried a chunk, after those before it."""

    def __init__(self, rate: float):
        self.rate = rate
        self.free_at = 0.0  # when the link has carried everything handed to it so far

    async def carry(self, size: int) -> None:
        if not self.rate:
            return
        loop = asyncio.get_running_loop()
        start = max(self.free_at, loop.time())
        self.free_at = start + size / self.rate
        wait = self.free_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    max_buffer: int,
    link: Link | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    queue: deque[tuple[float, bytes]] = deque()
    ready = asyncio.Event()
    space = asyncio.Event()
    space.set()
    in_flight = 0
    eof = False

    async def receive() -> None:
        nonlocal in_flight, eof
        try:
            while True:
                await space.wait()
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                queue.append((loop.time() + delay, data))
                in_flight += len(data)
                if in_flight >= max_buffer:
                    space.clear()
                ready.set()
        except (ConnectionError, OSError):
            pass
        finally:
            eof = True
            ready.set()

    async def send() -> None:
        nonlocal in_flight
        try:
            while True:
                if not queue:
                    if eof:
                        break
                    ready.clear()
                    await ready.wait()
                    continue
                due, data = queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if link is not None:
                    await link.carry(len(data))
                queue.popleft()
                in_flight -= len(data)
                if in_flight < max_buffer:
                    space.set()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    receiver = asyncio.create_task(receive())
    try:
        await send()
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver


async def _serve(
    listen_host: str,
    listen_port: int,
    target: tuple[str, int],
    delay: float,
    max_buffer: int,
    rate: float = 0.0,
) -> None:
    upstream, downstream = Link(rate), Link(rate)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        # The connection handshake crosses the link too: one round trip before the first byte.
        await asyncio.sleep(2 * delay)
        try:
            await asyncio.gather(
                _pump(client_reader, server_writer, delay, max_buffer, upstream),
                _pump(server_reader, client_writer, delay, max_buffer, downstream),
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    server = await asyncio.start_server(handle, listen_host, listen_port, backlog=512)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="where to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default: a free port")
    parser.add_argument("--delay", type=float, default=0.020, help="one-way delay in seconds (default 0.020)")
    parser.add_argument(
        "--max-buffer",
        type=int,
        default=2 * 1024 * 1024,
        help="bytes in flight per direction (default 2 MiB)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="bytes per second of the whole proxy in each direction, all connections together "
        "(default: no limit)",
    )
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    listen_host, _, listen_port = args.listen.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve(listen_host, int(listen_port), (host, int(port)), args.delay, args.max_buffer, args.rate)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

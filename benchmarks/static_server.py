"""A static web server for the mirror benchmarks: Python's ``http.server`` over a folder, with
keep-alive (HTTP/1.1) and byte ranges (``Range: bytes=A-B`` answered 206), as nginx would serve a
folder made by ``djarchive-admin mirror``. Threads, in its own process (no GIL shared with the
client):

    python benchmarks/static_server.py --directory /srv/mirror
    # prints "listening on 127.0.0.1:PORT" and serves until killed
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import sys
from functools import partial

RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
COPY_SIZE = 256 * 1024


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.translate_path(self.path)
        wanted = RANGE.match(self.headers.get("Range", ""))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start, end = 0, size - 1
        if wanted is not None:
            start = int(wanted[1])
            end = min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
            if start >= size:
                self.send_error(416)
                return
        with open(path, "rb") as handle:
            handle.seek(start)
            self.send_response(206 if wanted is not None else 200)
            self.send_header("Content-Type", "application/octet-stream")
            if wanted is not None:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            left = end - start + 1
            while left > 0:
                data = handle.read(min(COPY_SIZE, left))
                if not data:
                    break
                self.wfile.write(data)
                left -= len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--directory", required=True, help="the folder to serve")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default: a free port")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), partial(Handler, directory=args.directory))
    server.daemon_threads = True
    print(f"listening on {host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A static mirror for the tests: Python's own ``http.server`` over a folder, on 127.0.0.1.

It serves the folder as any static web server would (``SimpleHTTPRequestHandler``: no byte
ranges, a 200 with the whole file whatever ``Range`` says), in a thread, and records the head of
every request it gets (method, path, headers), so that tests can check what reached it.
``ranges=True`` answers ``Range: bytes=A-B`` with a 206, as nginx would.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Seen:
    """One request as the mirror received it."""

    method: str
    path: str
    headers: dict[str, str]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        self.server.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        wanted = _RANGE.match(self.headers.get("Range", "")) if self.server.ranges else None
        if wanted is None:
            return super().send_head()
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        handle = open(path, "rb")  # noqa: SIM115 - closed by the handler after copyfile
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return _Limited(handle, end - start + 1)


class _Limited:
    """A file object that reads at most ``left`` bytes (the range) and closes its file."""

    def __init__(self, handle, left: int):
        self.handle, self.left = handle, left

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    ranges: bool


@dataclass
class StaticMirror:
    """``http.server`` serving ``root`` on a free 127.0.0.1 port, in a thread, until :meth:`stop`."""

    root: Path
    ranges: bool = False
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handler = partial(_Handler, directory=str(self.root))
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.seen = self.seen
        self._server.ranges = self.ranges
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="mirror", daemon=True)

    @property
    def url(self) -> str:
        """The mirror's base URL (ending in '/')."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> StaticMirror:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def gets(self, suffix: str = "") -> list[Seen]:
        """The GETs it received (of paths ending in ``suffix``)."""
        return [seen for seen in self.seen if seen.method == "GET" and seen.path.endswith(suffix)]

    def copy_revision(self, dataset: str, revision: str, onto: str) -> None:
        """Serve the files of ``dataset``/``revision`` under the name ``onto`` too (a mirror
        that lies about which revision it holds)."""
        source, target = self.root / dataset / revision, self.root / dataset / onto
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)

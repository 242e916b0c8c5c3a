"""Machine-readable progress for workflow engines: one JSON object per line (``--progress jsonl``).

Every object has an ``"event"`` field; these names and fields are stable (more may be added):

``start``     ``files``, ``bytes`` (what the command will go through), and what it works on
``file``      ``path``, ``bytes``, ``status`` (``fetched``, ``present``, ``reused`` or ``failed`` for a
              download; ``verified`` or ``failed`` for a verify; ``uploaded``, ``copied`` (in the archive),
              ``present`` or ``failed`` for an upload), and ``reason`` when failed; a fetched file
              also has ``source``, where its bytes came from (the store's URL or a mirror's), and
              ``sources`` (bytes by source) when several sent parts of it
``progress``  running totals ``files_done``, ``bytes_done``, ``files``, ``bytes``, at most a few a second
``end``       the command's summary (as ``--json`` prints it), always the last line
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, TextIO

from .errors import LocalStorageError
from .logs import redact
from .text import json_escaped

__all__ = ["Events", "events_file_error"]

INTERVAL = 0.5  # seconds between progress events


def events_file_error(name: str, error: OSError) -> LocalStorageError:
    """The error of an events file that cannot be opened or written (a full disk, a bad path)."""
    return LocalStorageError(f"cannot write the events to {name}: {error.strerror or error}")


class Events:
    """A stream of progress events (thread-safe; each line flushed as it is written)."""

    def __init__(self, stream: TextIO, *, interval: float = INTERVAL, name: str | None = None):
        self._stream = stream
        self._name = name  # the file's name, for a message when it cannot be written
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self.files = self.bytes = 0
        self.files_done = self.bytes_done = 0

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event."""
        line = redact(json_escaped(json.dumps({"event": event, **fields}, ensure_ascii=False)))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except OSError as exc:
                if self._name is None:  # stderr: the guarded output's own failure
                    raise
                raise events_file_error(self._name, exc) from None

    def start(self, files: int, bytes: int, **fields: Any) -> None:
        """The command starts on ``files`` files of ``bytes`` bytes."""
        self.files, self.bytes = files, bytes
        self.emit("start", files=files, bytes=bytes, **fields)

    def file(
        self,
        path: str,
        size: int,
        status: str,
        reason: str | None = None,
        *,
        sources: dict[str, int] | None = None,
    ) -> None:
        """One file is done (``status``), or failed (``reason``); ``sources``: the bytes each
        source sent of it. Bytes that moved over the network (fetched, uploaded) were counted as
        they moved; the others count now."""
        fields: dict[str, Any] = {"path": path, "bytes": size, "status": status}
        if reason is not None:
            fields["reason"] = reason
        if sources:
            fields["source"] = max(sources, key=lambda name: sources[name])
            if len(sources) > 1:
                fields["sources"] = sources
        with self._lock:
            self.files_done += 1
            if status not in ("fetched", "uploaded", "failed"):
                self.bytes_done += size
        self.emit("file", **fields)
        self.tick()

    def advance(self, count: int) -> None:
        """``count`` bytes moved (negative: taken back for a retry)."""
        with self._lock:
            self.bytes_done += count
        self.tick()

    def tick(self, force: bool = False) -> None:
        """A ``progress`` event, unless one went out less than the interval ago."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self._interval:
                return
            self._last = now
            totals = {"files_done": self.files_done, "bytes_done": self.bytes_done}
        self.emit("progress", **totals, files=self.files, bytes=self.bytes)

    def end(self, summary: dict[str, Any]) -> None:
        """The command is done: its summary, the last event."""
        self.tick(force=True)
        self.emit("end", **summary)

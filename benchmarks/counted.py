"""Run the ``djarchive`` command line in this process with every byte it hashes counted.

    python benchmarks/counted.py OUT.json download -q DATASET REVISION TARGET ...

``hashlib.sha256`` is replaced by a wrapper that sums the bytes fed to each hash object, by the
module and function that created it, before djarchive is imported (djarchive's modules call
``hashlib.sha256`` at run time, so every hash it makes goes through the wrapper). At exit the
totals go to OUT.json: ``{"exit": status, "hashed": {"module:function": bytes, ...}}``. Used by
``upgrade.py`` for issue 16's "bytes hashed"; the wrapper adds a Python call per ``update``
(one per 1 MiB block or per small file), nothing per byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading

_sha256 = hashlib.sha256
_lock = threading.Lock()
HASHED: dict[str, int] = {}


class _Counting:
    """A sha256 object that adds the length of everything it is fed to ``HASHED[site]``."""

    __slots__ = ("_hash", "_site")
    name = "sha256"
    digest_size = 32
    block_size = 64

    def __init__(self, data: bytes = b"", *, site: str, **kwargs):
        self._hash = _sha256(**kwargs)
        self._site = site
        if data:
            self.update(data)

    def update(self, data) -> None:
        count = memoryview(data).nbytes
        with _lock:
            HASHED[self._site] = HASHED.get(self._site, 0) + count
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def copy(self) -> _Counting:
        clone = _Counting.__new__(_Counting)
        clone._hash, clone._site = self._hash.copy(), self._site
        return clone


def _counting_sha256(data: bytes = b"", **kwargs) -> _Counting:
    frame = sys._getframe(1)
    module = frame.f_globals.get("__name__", "?")
    return _Counting(data, site=f"{module}:{frame.f_code.co_name}", **kwargs)


def main(argv: list[str]) -> int:
    out, args = argv[0], argv[1:]
    hashlib.sha256 = _counting_sha256  # type: ignore[assignment]
    status = 1
    try:
        from djarchive_client.cli import main as djarchive

        status = djarchive(args)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump({"exit": status, "hashed": HASHED}, handle, indent=1)
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))

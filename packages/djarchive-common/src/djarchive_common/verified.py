"""Reading bytes of the archive and checking them: the one place sizes and sha256 are compared.

Every read of an object goes through here: a download's files and byte ranges
(:mod:`djarchive_client.fetch`, which writes the chunks where they belong and hashes them as
they arrive), the ``djarchive://`` filesystem's reads, and the catalog's manifests, signatures,
tombstones and leases (:meth:`Store.read_tagged <djarchive_common.store.Store.read_tagged>`).

* :func:`opened` starts a GET on a :class:`Source` and checks the first answer before any
  byte is used or any room allocated: the object's real size against the expected one, or
  against a cap; a range the server answered with the whole object.
* :func:`receive` passes the body's chunks on with their positions and stops at the first byte
  past the end expected.
* :func:`check_size` and :func:`check_sha256` judge what arrived.
* :func:`read` does all of it for bytes wanted in memory, retried under a policy.

Messages start with ``what``, the operation or the file they are about (a caller that names the
file itself passes '').

A size or sha256 that does not match is an IntegrityError, ``retryable`` (the bytes came over a
network that may have damaged them); a failure to get bytes at all is the source's
TransferError. A source is any object with a ``name`` and a ``stream`` method: the store (the
primary) is one, a mirror serving the archive's keys over plain HTTP(S) would be another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from .errors import IntegrityError, ObjectTooLargeError, RangesIgnored, TransferError
from .transfer import RetryPolicy, retry_call
from .transport import Stream

__all__ = ["READ_SIZE", "Source", "check_sha256", "check_size", "opened", "read", "receive"]

READ_SIZE = 1024 * 1024  # the largest chunk asked for when reading into memory


class Source(Protocol):
    """Where the bytes of the archive's objects can be read from, by key."""

    @property
    def name(self) -> str:
        """Where the bytes come from, for messages and summaries (no secret in it)."""
        ...

    def stream(self, key: str, offset: int = 0, length: int = 0, *, what: str = "") -> Stream:
        """Start receiving ``length`` bytes of ``key`` from ``offset`` (length 0: to the end);
        ``what`` names the operation in errors. Raises and reads only djarchive errors."""
        ...


@contextmanager
def opened(
    source: Source,
    key: str,
    *,
    offset: int = 0,
    length: int = 0,
    size: int | None = None,
    limit: int | None = None,
    whole_ok: bool = False,
    what: str,
    label: str | None = None,
) -> Iterator[Stream]:
    """A GET of ``key`` (``length`` bytes from ``offset``; length 0: the whole object), its
    answer checked before the body is touched: the object must be ``size`` bytes (when given
    and the answer says), or state its size and be no larger than ``limit`` (when given); a
    range answered with the whole object raises RangesIgnored unless ``whole_ok``. ``what``
    names the operation in errors; ``label``, when given, replaces it in those of the checks
    ('' for none: the caller names the file itself)."""
    about = what if label is None else label
    with source.stream(key, offset, length, what=what) as stream:
        if length and not whole_ok and stream.status != 206:
            raise RangesIgnored(_said(about, f"{source.name} ignores byte ranges"))
        real = stream.object_size
        if size is not None and real is not None and real != size:  # retried: it may be a proxy's cut
            raise IntegrityError(
                _said(about, f"the object is {real} bytes, the manifest says {size}"), retryable=True
            )
        if limit is not None:
            if real is None:
                raise TransferError(f"{what}: the answer has no valid Content-Length", retryable=True)
            if real > limit:
                raise ObjectTooLargeError(f"{what}: {real} bytes is more than the {limit} allowed")
        yield stream


def receive(
    chunks: Iterable[bytes],
    write: Callable[[bytes, int], object],
    *,
    start: int,
    end: int,
    what: str,
    advance: Callable[[int], object] | None = None,
    keep: bool = False,
) -> int:
    """Pass each chunk and its position (from ``start``) to ``write``; return the bytes received.

    A chunk that would reach past ``end`` raises IntegrityError before ``write`` sees it, so a
    body larger than expected never fills a disk or memory. ``advance`` is told of each chunk's
    size after it is written, and of the negative total when the body fails (unless ``keep``:
    what was written stays in place, as a resumed range keeps it)."""
    position = start
    try:
        for data in chunks:
            following = position + len(data)
            if following > end:
                raise IntegrityError(
                    _said(what, f"more bytes than the {end - start} expected"), retryable=True
                )
            write(data, position)
            position = following
            if advance is not None:
                advance(len(data))
    except BaseException:
        if advance is not None and not keep:
            advance(start - position)
        raise
    return position - start


def check_size(what: str, received: int, expected: int) -> None:
    """Refuse a body that ended before ``expected`` bytes (IntegrityError, retryable); one that
    went past them :func:`receive` has refused already."""
    if received < expected:
        raise IntegrityError(
            _said(what, f"short read: received {received} bytes of {expected}"), retryable=True
        )


def check_sha256(what: str, sha256: str, expected: str, *, retryable: bool = True) -> None:
    """Refuse bytes whose sha256 is not ``expected`` (IntegrityError; ``retryable`` when reading
    them again may help)."""
    if sha256 != expected:
        raise IntegrityError(
            _said(what, f"sha256 {sha256} does not match the manifest's {expected}"), retryable=retryable
        )


def read(
    source: Source,
    key: str,
    policy: RetryPolicy,
    *,
    start: int = 0,
    end: int | None = None,
    size: int | None = None,
    sha256: str | None = None,
    limit: int | None = None,
    what: str = "",
) -> tuple[bytes, str]:
    """Bytes of ``key`` in memory and the object's ETag, checked, retried under ``policy``.

    With ``end``, bytes ``start`` to ``end`` (exclusive) by one ranged GET (a server that
    ignores ranges is read up to ``end``; an empty range reads nothing and has no ETag);
    otherwise the whole object. ``size`` is the object's size when it is known (a manifest's
    entry); without it the object must state its size and stay within ``limit``. ``sha256`` is
    checked when the whole object is read."""
    what = what or f"reading {key}"
    if end is not None and end <= start:
        return b"", ""
    length = 0 if end is None else end - start
    wanted = None if length else sha256

    def attempt() -> tuple[bytes, str]:
        parts: list[bytes] = []
        digest = hashlib.sha256()

        def keep(data: bytes, position: int) -> None:
            parts.append(data)

        def keep_and_hash(data: bytes, position: int) -> None:
            parts.append(data)
            digest.update(data)

        with opened(
            source, key, offset=start, length=length, size=size, limit=limit, whole_ok=True, what=what
        ) as stream:
            expected = length or (size if size is not None else stream.object_size)
            if expected is None:
                raise TransferError(f"{what}: the answer has no valid Content-Length", retryable=True)
            chunks: Iterable[bytes] = stream.chunks(max(1, min(expected, READ_SIZE)))
            if length and stream.status != 206:
                chunks = _window(chunks, start, start + length)
            write = keep if wanted is None else keep_and_hash
            received = receive(chunks, write, start=0, end=expected, what=what)
            etag = stream.etag
        check_size(what, received, expected)
        if wanted is not None:
            check_sha256(what, digest.hexdigest(), wanted)
        return b"".join(parts), etag

    return retry_call(attempt, what, policy)


def _said(what: str, text: str) -> str:
    """``text`` about ``what`` (an operation or a file; nothing when empty)."""
    return f"{what}: {text}" if what else text


def _window(chunks: Iterable[bytes], start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of a body that begins at the object's first byte (a server
    that ignored the range); the rest of the body is not read."""
    position = 0
    for data in chunks:
        low, high = max(start - position, 0), min(end - position, len(data))
        if low < high:
            yield data if (low, high) == (0, len(data)) else data[low:high]
        position += len(data)
        if position >= end:
            return

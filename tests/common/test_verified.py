"""The one verified read, against a source that serves what it is told to, and the transport seam
of the store: a second transport plugged in carries every GET and PUT of object bytes."""

from __future__ import annotations

import hashlib

import pytest

from djarchive_common.config import Settings
from djarchive_common.errors import IntegrityError, ObjectNotFoundError, RangesIgnored, TransferError
from djarchive_common.store import Store
from djarchive_common.transfer import RetryPolicy
from djarchive_common.verified import opened, read, receive

DATA = bytes(range(256)) * 40  # 10,240 bytes
SHA256 = hashlib.sha256(DATA).hexdigest()
POLICY = RetryPolicy(attempts=3, base_delay=0.0)
REAL = object()  # the object's real size, as an honest server states it


class Body:
    """One answer's body, read in chunks of at most ``chunk`` bytes; counts what was read."""

    def __init__(self, data: bytes, status: int, object_size: int | None, chunk: int):
        self.data, self.status, self.object_size, self.chunk = data, status, object_size, chunk
        self.etag = '"etag"'
        self.position = 0
        self.closed = False

    def read(self, size: int) -> bytes:
        data = self.data[self.position : self.position + min(size, self.chunk)]
        self.position += len(data)
        return data

    def chunks(self, size: int):
        while data := self.read(size):
            yield data

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Source:
    """Serves ``data`` under any key: ranges honoured unless ``ranges`` is False, the object's
    size stated as ``declared`` (REAL: the truth; None: not at all), bodies cut to ``body``."""

    name = "fake://source"

    def __init__(self, data=DATA, *, ranges=True, declared=REAL, body=None, chunk=1000):
        self.data, self.ranges, self.declared, self.body, self.chunk = data, ranges, declared, body, chunk
        self.bodies: list[Body] = []

    def stream(self, key: str, offset: int = 0, length: int = 0, *, what: str = "") -> Body:
        size = len(self.data) if self.declared is REAL else self.declared
        if length and self.ranges:
            answer = Body(self.data[offset : offset + length], 206, size, self.chunk)
        else:
            answer = Body(self.data, 200, size, self.chunk)
        if self.body is not None:
            answer.data = self.body
        self.bodies.append(answer)
        return answer


def test_a_whole_object_read_and_checked():
    source = Source()
    assert read(source, "k", POLICY, size=len(DATA), sha256=SHA256) == (DATA, '"etag"')
    assert read(source, "k", POLICY, limit=len(DATA)) == (DATA, '"etag"')  # a size the answer states


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (Source(declared=len(DATA) + 1), "the object is 10241 bytes, the manifest says 10240"),
        (Source(body=DATA[:-1], declared=None), "short read: received 10239 bytes of 10240"),
        (Source(body=DATA + b"!", declared=None), "more bytes than the 10240 expected"),
        (Source(body=DATA[:-1] + b"!"), "sha256 [0-9a-f]{64} does not match the manifest's"),
    ],
    ids=["object-size", "short", "long", "sha256"],
)
def test_every_mismatch_is_an_integrity_error_retried(source, message):
    with pytest.raises(IntegrityError, match=f"^reading k: {message}") as caught:
        read(source, "k", POLICY, size=len(DATA), sha256=SHA256)
    assert caught.value.retryable
    assert len(source.bodies) == POLICY.attempts
    assert all(body.position <= len(DATA) + body.chunk for body in source.bodies)  # never much more


def test_an_object_larger_than_its_limit_is_refused_before_its_body():
    source = Source()
    with pytest.raises(TransferError, match="reading k: 10240 bytes is more than the 100 allowed") as caught:
        read(source, "k", POLICY, limit=100)
    assert not caught.value.retryable
    assert [body.position for body in source.bodies] == [0]
    with pytest.raises(TransferError, match="no valid Content-Length"):
        read(Source(declared=None), "k", POLICY, limit=100)


def test_a_range_read_and_a_server_that_ignores_ranges():
    assert read(Source(), "k", POLICY, start=1000, end=3000, size=len(DATA))[0] == DATA[1000:3000]
    ignoring = Source(ranges=False)
    assert read(ignoring, "k", POLICY, start=1000, end=3000, size=len(DATA))[0] == DATA[1000:3000]
    assert ignoring.bodies[0].position == 3000  # read up to the end of the range, no further
    assert read(Source(), "k", POLICY, start=5, end=5) == (b"", "")
    with pytest.raises(IntegrityError, match="the manifest says 9999"):
        read(Source(), "k", POLICY, start=0, end=10, size=9999)  # the object's size checked for a part too


def test_a_download_asks_for_honoured_ranges():
    with (
        pytest.raises(RangesIgnored, match="fake://source ignores byte ranges"),
        opened(Source(ranges=False), "k", offset=10, length=10, size=len(DATA), what="downloading k"),
    ):
        pass
    assert issubclass(RangesIgnored, TransferError)


def test_receive_counts_progress_and_takes_it_back_on_failure():
    counted: list[int] = []
    written: list[tuple[int, int]] = []
    chunks = [b"a" * 10, b"b" * 10, b"c" * 10]
    assert (
        receive(chunks, lambda data, at: written.append((at, len(data))), start=100, end=130, what="x") == 30
    )
    assert written == [(100, 10), (110, 10), (120, 10)]
    with pytest.raises(IntegrityError, match=r"^x: more bytes than the 25 expected"):
        receive(chunks, lambda data, at: None, start=0, end=25, what="x", advance=counted.append)
    assert counted == [10, 10, -20]  # the third chunk never written, the first two taken back
    counted.clear()
    with pytest.raises(IntegrityError):
        receive(chunks, lambda data, at: None, start=0, end=25, what="", advance=counted.append, keep=True)
    assert counted == [10, 10]  # kept: they stay in place


class Transport:
    """A second transport: serves GETs from memory and records them."""

    def __init__(self):
        self.objects = {"ds/1/a.bin": DATA}
        self.gets: list[tuple[str, int, int, str]] = []

    def get(self, key: str, offset: int, length: int, what: str) -> Body:
        self.gets.append((key, offset, length, what))
        if key not in self.objects:
            raise ObjectNotFoundError(f"{what}: not found")
        data = self.objects[key]
        if length:
            return Body(data[offset : offset + length], 206, len(data), 4096)
        return Body(data, 200, len(data), 4096)


def test_a_second_transport_carries_the_stores_gets():
    transport = Transport()
    store = Store(Settings("client", "s3.example.org", "bucket", secure=True), transport=transport)
    assert store.read_tagged("ds/1/a.bin", len(DATA)) == (DATA, '"etag"')
    with store.stream("ds/1/a.bin", 10, 20) as stream:
        assert b"".join(stream.chunks(7)) == DATA[10:30]
    with pytest.raises(ObjectNotFoundError):
        store.read("ds/1/missing", 100)
    assert transport.gets == [
        ("ds/1/a.bin", 0, 0, "reading ds/1/a.bin"),
        ("ds/1/a.bin", 10, 20, "downloading ds/1/a.bin"),
        ("ds/1/missing", 0, 0, "reading ds/1/missing"),
    ]
    assert "minio" not in vars(store)  # no minio client was needed for any of it

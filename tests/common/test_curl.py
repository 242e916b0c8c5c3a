"""The libcurl data engine (djarchive_common.curl) against real local S3 servers: GETs whole and
ranged, PUTs whole and of parts with their real sha256, error translation, retries that resume,
timeouts, cancellation, proxies, and SigV4 signatures checked by a moto server that enforces them.

pycurl is a test requirement: these tests fail, not skip, where it is missing."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pycurl  # noqa: F401  (a missing pycurl fails the module, it is not skipped)
import pytest

from djarchive_common import transport
from djarchive_common.config import Settings, resolve_settings
from djarchive_common.curl import RECEIVE_BUFFER, CurlEngine, Done, Get, Head, Put
from djarchive_common.errors import (
    EndpointUnreachableError,
    IntegrityError,
    LocalStorageError,
    NotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransferError,
)
from djarchive_common.store import Store, StoreOptions
from djarchive_common.transfer import RetryPolicy
from tests.conftest import ADMIN_SECRET_KEY
from tests.faults.proxy import FaultProxy
from tests.helpers import enforce_iam, iam_moto_server

QUICK = RetryPolicy(base_delay=0.01, max_delay=0.02)
ODD_KEYS = ["with space/ünïcödé b+c~d.bin", "x/a+b=c&d;(e)!*'$,@.bin", "%41 literal percent.bin"]


@dataclass
class Sink:
    """What one GET delivered: the heads, the body and every (position, length) handed over."""

    heads: list[Head] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    pieces: list[tuple[int, int]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def on_head(self, head: Head) -> None:
        self.heads.append(head)
        self.events.append("head")

    def on_data(self, data: bytes, position: int) -> None:
        self.events.append("data")
        self.pieces.append((position, len(data)))
        self.body += data

    def get(self, key: str, offset: int = 0, length: int = 0) -> Get:
        return Get(key, self.on_data, offset, length, on_head=self.on_head)


def contiguous(sink: Sink, start: int) -> bool:
    """Every piece starts where the last one ended: nothing delivered twice, nothing skipped."""
    for position, length in sink.pieces:
        if position != start:
            return False
        start += length
    return True


def engine_for(settings: Settings, **options) -> CurlEngine:
    store = Store(settings, StoreOptions(**{"retry": QUICK, **options}))
    return CurlEngine(store, max_transfers=8, region="us-east-1")


@pytest.fixture
def admin(archive) -> Settings:
    return resolve_settings("admin")


@pytest.fixture
def engine(admin) -> Iterator[CurlEngine]:
    with engine_for(admin) as engine:
        yield engine


def run_one(engine: CurlEngine, request: Get | Put) -> Done:
    [done] = list(engine.run([request]))
    return done


@pytest.fixture
def proxied(archive, s3_server) -> Iterator:
    """make(**FaultProxy options) -> (engine through a new fault proxy, the proxy)."""
    started: list[FaultProxy] = []

    def make(store_options: dict | None = None, **options) -> tuple[CurlEngine, FaultProxy]:
        proxy = FaultProxy((s3_server.host, s3_server.port), **options).start()
        started.append(proxy)
        settings = resolve_settings("admin", endpoint=proxy.url)
        return engine_for(settings, **(store_options or {})), proxy

    yield make
    for proxy in started:
        proxy.stop()


def test_pycurl_is_there(monkeypatch):
    monkeypatch.setattr(transport, "_chosen", {})
    assert transport.bulk_transport("curl") == "curl"


# -- GET ------------------------------------------------------------------------------


def test_a_whole_get_tells_the_head_before_the_body_and_delivers_every_byte_once(archive, engine):
    data = os.urandom(3 * RECEIVE_BUFFER + 123)
    archive.put("ds/1/big.bin", data)
    sink = Sink()
    done = run_one(engine, sink.get("ds/1/big.bin"))
    assert done.error is None
    assert (done.status, done.received, done.attempts) == (200, len(data), 1)
    assert bytes(sink.body) == data
    assert contiguous(sink, 0)
    assert sink.events[0] == "head"
    assert sink.events.count("head") == 1
    etag = archive.minio.stat_object(archive.bucket, "ds/1/big.bin").etag
    assert sink.heads == [Head(200, 0, len(data), f'"{etag}"')]
    assert done.etag == f'"{etag}"'


def test_a_ranged_get_delivers_the_range_at_its_positions_and_states_the_object_size(archive, engine):
    data = os.urandom(700_000)
    archive.put("ds/1/big.bin", data)
    sink = Sink()
    done = run_one(engine, sink.get("ds/1/big.bin", 1000, 300_000))
    assert (done.error, done.status, done.received) == (None, 206, 300_000)
    assert bytes(sink.body) == data[1000:301_000]
    assert contiguous(sink, 1000)
    assert sink.heads[0][:3] == (206, 1000, len(data))


def test_an_empty_object_reports_its_head(archive, engine):
    archive.put("ds/1/empty", b"")
    sink = Sink()
    done = run_one(engine, sink.get("ds/1/empty"))
    assert (done.error, done.status, sink.heads[0][:3], bytes(sink.body)) == (None, 200, (200, 0, 0), b"")


def test_many_gets_run_at_once_and_each_gets_its_own_bytes(archive, admin):
    objects = {f"ds/1/f{n:03}.bin": os.urandom(n * 37) for n in range(120)}
    for key, data in objects.items():
        archive.put(key, data)
    sinks = {key: Sink() for key in objects}
    with engine_for(admin) as engine:
        finished = list(engine.run(sinks[key].get(key) for key in objects))
    assert sorted(done.request.key for done in finished) == sorted(objects)
    assert all(done.error is None for done in finished)
    assert {key: bytes(sink.body) for key, sink in sinks.items()} == objects


def test_a_missing_key_is_not_found_at_the_first_try(engine):
    done = run_one(engine, Sink().get("ds/1/nothing-here"))
    assert isinstance(done.error, ObjectNotFoundError)
    assert isinstance(done.error, FileNotFoundError)
    assert (done.status, done.attempts) == (404, 1)
    assert "downloading ds/1/nothing-here: not found in" in str(done.error)


def test_a_missing_bucket_is_named(archive, s3_server):
    settings = resolve_settings("admin", bucket="no-such-bucket-here")
    with engine_for(settings) as engine:
        done = run_one(engine, Sink().get("k"))
    assert isinstance(done.error, NotFoundError)
    assert "bucket 'no-such-bucket-here' does not exist" in str(done.error)


def test_odd_keys_are_encoded_both_ways(archive, engine, tmp_path):
    for n, key in enumerate(ODD_KEYS):
        data = f"content {n}".encode()
        archive.put(key, data)
        sink = Sink()
        assert run_one(engine, sink.get(key)).error is None
        assert bytes(sink.body) == data
        path = tmp_path / f"up{n}"
        path.write_bytes(data[::-1])
        with open(path, "rb") as handle:
            put = Put(f"up/{key}", handle.fileno(), 0, len(data), hashlib.sha256(data[::-1]).hexdigest())
            assert run_one(engine, put).error is None
        assert archive.get(f"up/{key}") == data[::-1]


def test_anonymous_gets_are_not_signed(archive):
    archive.put("ds/1/public.bin", b"public bytes")
    settings = resolve_settings("client")
    assert settings.anonymous
    sink = Sink()
    with engine_for(settings) as engine:
        assert run_one(engine, sink.get("ds/1/public.bin")).error is None
    assert bytes(sink.body) == b"public bytes"


def test_the_region_comes_from_the_store_when_not_given(archive, admin):
    archive.put("ds/1/a", b"a")
    with CurlEngine(Store(admin)) as engine:
        assert engine.region == "us-east-1"
        assert run_one(engine, Sink().get("ds/1/a")).error is None


# -- what the caller's callbacks decide -----------------------------------------------


def test_a_head_the_caller_refuses_ends_the_transfer_with_its_error(archive, engine):
    archive.put("ds/1/a", b"x" * 5000)
    data: list[bytes] = []

    def refuse(head: Head) -> None:
        raise IntegrityError(f"the object is {head.object_size} bytes, the manifest says 10")

    done = run_one(engine, Get("ds/1/a", lambda chunk, at: data.append(chunk), on_head=refuse))
    assert isinstance(done.error, IntegrityError)
    assert (done.attempts, data) == (1, [])


def test_a_retryable_refusal_is_retried(archive, engine):
    archive.put("ds/1/a", b"x" * 5000)
    calls: list[Head] = []

    def once(head: Head) -> None:
        calls.append(head)
        if len(calls) == 1:
            raise TransferError("a proxy's cut, perhaps", retryable=True)

    done = run_one(engine, Get("ds/1/a", lambda chunk, at: None, on_head=once))
    assert (done.error, done.attempts, len(calls)) == (None, 2, 2)


def test_a_body_refused_at_its_end_is_fetched_again_from_its_first_byte(archive, engine):
    data = os.urandom(3 * RECEIVE_BUFFER + 7)
    archive.put("ds/1/a", data)
    sink, ends = Sink(), []

    def check_once() -> None:
        ends.append(len(sink.body))
        if len(ends) == 1:
            raise IntegrityError("sha256 ... does not match the manifest's ...", retryable=True)

    get = sink.get("ds/1/a")
    get.on_end = check_once
    done = run_one(engine, get)
    assert (done.error, done.attempts) == (None, 2)
    assert ends == [len(data), 2 * len(data)]  # the second body came whole, from byte 0
    assert [head.offset for head in sink.heads] == [0, 0]
    assert bytes(sink.body) == data + data


def test_a_body_refused_to_the_end_of_the_budget_is_the_refusal(archive, engine):
    archive.put("ds/1/a", b"abc")

    def refuse() -> None:
        raise IntegrityError("sha256 ... does not match the manifest's ...", retryable=True)

    done = run_one(engine, Get("ds/1/a", lambda chunk, at: None, on_end=refuse))
    assert isinstance(done.error, IntegrityError)
    assert done.attempts == QUICK.attempts


def test_requests_may_wait_for_a_slot_of_their_own(archive, engine):
    """A None from the requests means nothing to start now: the engine asks again later."""
    for n in range(3):
        archive.put(f"ds/1/{n}", bytes([n]) * 100)
    sinks = [Sink() for _ in range(3)]
    asked: list[str] = []

    def requests():
        for n, sink in enumerate(sinks):
            while n and not all(s.body for s in sinks[:n]):  # one at a time: the last one ended first
                asked.append("wait")
                yield None
            asked.append(f"start {n}")
            yield sink.get(f"ds/1/{n}")

    assert all(done.error is None for done in engine.run(requests()))
    assert [bytes(sink.body) for sink in sinks] == [bytes([n]) * 100 for n in range(3)]
    assert asked.count("wait") >= 2
    assert [item for item in asked if item != "wait"] == ["start 0", "start 1", "start 2"]


def test_a_reused_handle_forgets_the_last_requests_headers(archive, admin):
    """A ranged GET, then a whole one on the same handle (one transfer at a time): no Range and
    no If-Match of the first reach the second."""
    archive.put("ds/1/a", os.urandom(1000))
    whole = os.urandom(5000)
    archive.put("ds/1/b", whole)
    store = Store(admin, StoreOptions(retry=QUICK))
    with CurlEngine(store, max_transfers=1, region="us-east-1") as engine:
        first, second = Sink(), Sink()
        dones = list(engine.run([first.get("ds/1/a", 10, 20), second.get("ds/1/b")]))
    assert [done.error for done in dones] == [None, None]
    assert (second.heads[0].status, bytes(second.body)) == (200, whole)


def test_an_answer_cut_in_its_head_is_a_cut_connection(archive, proxied):
    """libcurl takes a connection closed within a head as its end: an empty answer that would
    pass for a complete one. It is a retryable failure, and the retry gets the body."""
    archive.put("ds/1/a", b"x" * 5000)
    engine, proxy = proxied(rule=lambda request, attempt: ("truncate", 0.005) if attempt == 0 else None)
    sink = Sink()
    done = run_one(engine, sink.get("ds/1/a"))
    assert (done.error, done.attempts, bytes(sink.body)) == (None, 2, b"x" * 5000)
    assert proxy.counts["truncate"] == 1


def test_a_bug_in_a_callback_propagates_and_stops_everything(archive, engine):
    archive.put("ds/1/a", b"x" * 5000)

    def broken(data: bytes, position: int) -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        list(engine.run([Get("ds/1/a", broken)]))


def test_ctrl_c_in_a_callback_reaches_the_driver(archive, engine):
    archive.put("ds/1/a", b"x" * 5000)

    def interrupted(data: bytes, position: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(engine.run([Get("ds/1/a", interrupted)]))


# -- faults: retries resume, timeouts, the budget -------------------------------------


@pytest.mark.parametrize("length", [0, 250_000])
@pytest.mark.parametrize("kind", ["truncate", "reset", "short"])
def test_a_body_cut_short_is_resumed_after_the_bytes_delivered(archive, proxied, kind, length):
    data = os.urandom(400_000)
    archive.put("ds/1/big.bin", data)
    offset = 5000 if length else 0
    cut = ("short", 0.4) if kind == "short" else (kind, 100_000)  # the body is cut after ~100 kB
    engine, proxy = proxied(rule=lambda request, attempt: cut, limit=1)
    sink = Sink()

    def check_size(head: Head) -> None:  # as the download does, with the size from the manifest
        sink.on_head(head)
        if head.object_size != len(data):
            raise TransferError(f"the object is {head.object_size} bytes, not {len(data)}", retryable=True)

    done = run_one(engine, Get("ds/1/big.bin", sink.on_data, offset, length, on_head=check_size))
    wanted = data[offset : offset + length] if length else data
    assert done.error is None, done.error
    assert bytes(sink.body) == wanted
    assert contiguous(sink, offset)
    assert done.attempts == 2
    first, second = [r for r in proxy.requests if r.path.endswith("/ds/1/big.bin")]
    end = f"{offset + length - 1}" if length else ""
    assert first.header("range") == (f"bytes={offset}-{end}" if length else "")
    if kind == "short" and not length:  # a whole answer, shortened: its size was refused before any byte
        assert (sink.heads[0].object_size, sink.heads[1].offset, second.header("range")) == (160_000, 0, "")
        return
    resumed_at = sink.heads[1].offset
    assert 0 < resumed_at - offset < len(wanted)  # the second GET asked only for what was missing
    assert second.header("range") == f"bytes={resumed_at}-{end}"
    assert second.header("if-match") == sink.heads[0].etag


def test_server_errors_are_retried_until_the_budget_is_spent(archive, proxied):
    archive.put("ds/1/a", b"abc")
    engine, proxy = proxied(rule=lambda request, attempt: "error503")
    done = run_one(engine, Sink().get("ds/1/a"))
    assert isinstance(done.error, TransferError)
    assert "ServiceUnavailable" in str(done.error)
    assert done.attempts == QUICK.attempts == proxy.counts["error503"]


def test_a_transient_error_then_success(archive, proxied):
    archive.put("ds/1/a", b"abc")
    engine, _ = proxied(rule=lambda request, attempt: "error500" if attempt < 2 else None)
    sink = Sink()
    done = run_one(engine, sink.get("ds/1/a"))
    assert (done.error, done.attempts, bytes(sink.body)) == (None, 3, b"abc")


@pytest.mark.slow  # libcurl's rate is an average over its last seconds: ~5 s more
def test_a_stalled_body_is_cut_by_the_minimum_rate_and_resumed(archive, proxied):
    data = os.urandom(300_000)
    archive.put("ds/1/a", data)
    engine, _ = proxied(
        {"read_timeout": 1.0, "min_rate": 1000.0},
        rule=lambda request, attempt: ("stall", 50_000),
        limit=1,
    )
    sink = Sink()
    started = time.monotonic()
    done = run_one(engine, sink.get("ds/1/a"))
    assert done.error is None
    assert bytes(sink.body) == data
    assert done.attempts == 2
    assert time.monotonic() - started < 10


@pytest.mark.slow  # libcurl's rate is an average over its last seconds: ~5 s more
def test_a_stall_past_the_budget_says_why(archive, proxied):
    archive.put("ds/1/a", b"x" * 100_000)
    engine, _ = proxied({"read_timeout": 1.0, "retry": RetryPolicy(attempts=1)}, rule=lambda r, a: "stall")
    done = run_one(engine, Sink().get("ds/1/a"))
    assert isinstance(done.error, TransferError)
    assert "DJARCHIVE_MIN_RATE" in str(done.error)


def test_an_unreachable_endpoint_gives_up_after_its_own_budget(archive):
    settings = resolve_settings("admin", endpoint="http://127.0.0.1:9")
    with engine_for(settings) as engine:
        done = run_one(engine, Sink().get("k"))
    assert isinstance(done.error, EndpointUnreachableError)
    assert done.attempts == QUICK.unreachable_attempts
    assert "cannot reach 127.0.0.1:9" in str(done.error)


def test_tls_against_a_plain_http_server_is_a_clear_final_error(archive, s3_server):
    settings = resolve_settings("admin", endpoint=s3_server.endpoint, secure=True)
    with engine_for(settings) as engine:
        done = run_one(engine, Sink().get("k"))
    assert isinstance(done.error, TransferError)
    assert "TLS failure" in str(done.error)
    assert done.attempts == 1


# -- cancellation ---------------------------------------------------------------------


def test_cancel_from_another_thread_stops_the_driver_promptly(archive, proxied):
    for n in range(4):
        archive.put(f"ds/1/{n}", b"x" * 200_000)
    engine, proxy = proxied(rule=lambda request, attempt: ("stall", 1000), stall_seconds=60)
    results: list[Done] = []
    driver = threading.Thread(
        target=lambda: results.extend(engine.run(Sink().get(f"ds/1/{n}") for n in range(4)))
    )
    driver.start()
    deadline = time.monotonic() + 10
    while proxy.counts["stall"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.counts["stall"] == 4  # all four are in flight, held by the proxy
    asked = time.monotonic()
    engine.cancel()
    driver.join(5)
    assert not driver.is_alive()
    assert time.monotonic() - asked < 1.0
    assert len(results) == 4
    assert all(isinstance(done.error, TransferError) and "stopped" in str(done.error) for done in results)
    assert list(engine.run([Sink().get("ds/1/0")])) == []  # a cancelled engine takes no more work


def test_closing_the_generator_stops_the_transfers(archive, proxied):
    archive.put("ds/1/a", b"x" * 200_000)
    archive.put("ds/1/b", b"y")
    engine, proxy = proxied(rule=lambda request, attempt: ("stall", 1000) if "/a" in request.path else None)
    results = engine.run([Sink().get("ds/1/a"), Sink().get("ds/1/b")])
    first = next(results)
    assert first.request.key == "ds/1/b"
    deadline = time.monotonic() + 5
    while not proxy.counts["stall"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.counts["stall"] == 1
    results.close()  # the stalled GET's handle is removed and closed: the proxy sees the client leave
    while not proxy.counts["left"] and time.monotonic() < deadline + 5:
        time.sleep(0.01)
    assert proxy.counts["left"] == 1  # (b's connection may stay open, idle, where the server keeps it alive)


# -- PUT ------------------------------------------------------------------------------


def test_a_whole_put_carries_its_sha256_and_metadata(archive, engine, tmp_path):
    data = os.urandom(1_500_000)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with open(path, "rb") as handle:
        put = Put("ds/2/file.bin", handle.fileno(), 0, len(data), digest, {"x-amz-meta-sha256": digest})
        done = run_one(engine, put)
    assert (done.error, done.status) == (None, 200)
    assert archive.get("ds/2/file.bin") == data
    stat = archive.minio.stat_object(archive.bucket, "ds/2/file.bin")
    assert stat.metadata["x-amz-meta-sha256"] == digest
    assert done.etag == f'"{stat.etag}"' == f'"{hashlib.md5(data).hexdigest()}"'


def test_a_put_from_memory_with_a_content_type_of_its_own(archive, engine):
    data = b"a,b\n1,2\n"
    digest = hashlib.sha256(data).hexdigest()
    headers = {"Content-Type": "text/csv", "x-amz-meta-sha256": digest}
    done = run_one(engine, Put("ds/2/table.csv", -1, 0, 0, digest, headers, data=data))
    assert (done.error, done.status) == (None, 200)
    assert archive.get("ds/2/table.csv") == data
    stat = archive.minio.stat_object(archive.bucket, "ds/2/table.csv")
    assert stat.content_type == "text/csv"
    assert stat.metadata["x-amz-meta-sha256"] == digest


def test_parts_are_put_from_their_offsets_and_complete_a_multipart_upload(archive, engine, tmp_path):
    from minio.datatypes import Part

    part_size = 5 * 1024 * 1024
    data = os.urandom(part_size + 12345)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    minio = archive.minio
    upload_id = minio._create_multipart_upload(archive.bucket, "ds/2/multi.bin", {})
    pieces = [(1, 0, part_size), (2, part_size, len(data) - part_size)]
    with open(path, "rb") as handle:
        puts = [
            Put(
                "ds/2/multi.bin",
                handle.fileno(),
                offset,
                length,
                hashlib.sha256(data[offset : offset + length]).hexdigest(),
                query={"partNumber": str(number), "uploadId": upload_id},
                tag=number,
            )
            for number, offset, length in pieces
        ]
        finished = sorted(engine.run(puts), key=lambda done: done.request.tag)
    assert [done.error for done in finished] == [None, None]
    parts = [Part(done.request.tag, done.etag) for done in finished]
    minio._complete_multipart_upload(archive.bucket, "ds/2/multi.bin", upload_id, parts)
    assert archive.get("ds/2/multi.bin") == data


def test_a_file_shorter_than_its_put_is_a_local_error(archive, engine, tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"only this")
    with open(path, "rb") as handle:
        done = run_one(engine, Put("ds/2/short.bin", handle.fileno(), 0, 100, "0" * 64))
    assert isinstance(done.error, LocalStorageError)
    assert "ended 91 bytes early" in str(done.error)
    assert done.attempts == 1


def test_a_put_is_retried_from_its_start(archive, proxied, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    engine, _ = proxied(
        rule=lambda request, attempt: "error503" if request.method == "PUT" and attempt == 0 else None
    )
    with open(path, "rb") as handle:
        done = run_one(engine, Put("ds/2/f", handle.fileno(), 0, len(data), hashlib.sha256(data).hexdigest()))
    assert (done.error, done.attempts) == (None, 2)
    assert archive.get("ds/2/f") == data


# -- what libcurl signs ---------------------------------------------------------------


class Capture:
    """A one-shot HTTP server that records the request it gets and answers 200 (or ``answer``)."""

    def __init__(self, answer: bytes = b'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n') -> None:
        self.answer = answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.head = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            self.head, _, body = data.partition(b"\r\n\r\n")
            length = int(self.headers().get("content-length", "0"))
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(self.answer)
        self.server.close()

    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


def test_libcurl_signs_the_real_sha256_of_a_put_body(archive, tmp_path):
    from minio.credentials import Credentials
    from minio.signer import sign_v4_s3

    capture = Capture()
    settings = resolve_settings("admin", endpoint=f"http://127.0.0.1:{capture.port}")
    data = b"the body of the object"
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "f"
    path.write_bytes(data)
    key = "ds/1/ünï code+x~.bin"
    with engine_for(settings) as engine, open(path, "rb") as handle:
        put = Put(key, handle.fileno(), 0, len(data), digest, {"x-amz-meta-sha256": digest})
        assert run_one(engine, put).error is None
    capture.thread.join(5)
    headers = capture.headers()
    assert headers["x-amz-content-sha256"] == digest
    authorization = headers["authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == ["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-sha256"]
    assert ADMIN_SECRET_KEY not in capture.head.decode("latin-1")
    target = capture.head.split(b" ")[1].decode()
    assert target == f"/{archive.bucket}/ds/1/%C3%BCn%C3%AF%20code%2Bx~.bin"
    # The signature minio would compute for the same request, with the body's digest as payload hash.
    date = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    expected = sign_v4_s3(
        method="PUT",
        url=urlsplit(f"http://127.0.0.1:{capture.port}{target}"),
        region="us-east-1",
        headers={name: headers[name] for name in signed},
        credentials=Credentials(settings.access_key, settings.secret_key),
        content_sha256=digest,
        date=date,
    )
    assert authorization == expected["Authorization"]


def test_a_server_that_checks_the_digest_and_refuses_the_body_is_an_integrity_error(archive, tmp_path):
    """What AWS and MinIO answer when the body's sha256 is not x-amz-content-sha256 (moto and
    s3rver do not check it)."""
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>XAmzContentSHA256Mismatch</Code>"
        b"<Message>The provided 'x-amz-content-sha256' header does not match what was computed."
        b"</Message></Error>"
    )
    capture = Capture(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    path = tmp_path / "f"
    path.write_bytes(b"changed since it was hashed")
    settings = resolve_settings("admin", endpoint=f"http://127.0.0.1:{capture.port}")
    with engine_for(settings, retry=RetryPolicy(attempts=1)) as engine, open(path, "rb") as handle:
        done = run_one(engine, Put("ds/1/f", handle.fileno(), 0, 27, "0" * 64))
    assert isinstance(done.error, IntegrityError)
    assert done.error.retryable
    assert "refused the body (XAmzContentSHA256Mismatch)" in str(done.error)
    assert done.status == 400


# -- proxies from the environment -----------------------------------------------------


@pytest.mark.parametrize("bypass", [False, True])
def test_the_proxy_of_the_environment_is_used_unless_no_proxy_exempts_the_endpoint(
    archive, s3_server, monkeypatch, bypass
):
    archive.put("ds/1/a", b"via the proxy")
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypass else "")
        sink = Sink()
        with engine_for(resolve_settings("admin")) as engine:
            assert run_one(engine, sink.get("ds/1/a")).error is None
        assert bytes(sink.body) == b"via the proxy"
        assert bool(proxy.requests) is not bypass
        if not bypass:
            assert proxy.requests[0].target == f"{s3_server.url}/{archive.bucket}/ds/1/a"


def test_a_proxy_password_is_never_shown(archive, s3_server, monkeypatch):
    from djarchive_common.logs import redact

    archive.put("ds/1/a", b"via an authenticated proxy")
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://someone:Pr0xy%2Fpass-word@{proxy.endpoint}")
        sink = Sink()
        with engine_for(resolve_settings("admin")) as engine:
            assert run_one(engine, sink.get("ds/1/a")).error is None
        assert bytes(sink.body) == b"via an authenticated proxy"
        assert proxy.requests[0].header("proxy-authorization").startswith("Basic ")
    assert "Pr0xy/pass-word" not in redact("the proxy's password Pr0xy/pass-word")


# -- a server that checks signatures --------------------------------------------------


@dataclass
class EnforcingServer:
    url: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory) -> Iterator[EnforcingServer]:
    """moto with IAM enforcement (its own process): every signature is checked."""
    import boto3
    from minio import Minio

    with iam_moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        iam.create_user(UserName="curator")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="curator", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="curator")["AccessKey"]
        Minio(urlsplit(url).netloc, access_key="x", secret_key="x", secure=False).make_bucket("private")
        enforce_iam(url)
        yield EnforcingServer(url, key["AccessKeyId"], key["SecretAccessKey"])


def enforcing_engine(server: EnforcingServer, access: str | None, secret: str | None) -> CurlEngine:
    settings = resolve_settings(
        "admin", endpoint=server.url, bucket="private", access_key=access, secret_key=secret
    )
    return engine_for(settings)


def test_signatures_by_libcurl_pass_a_server_that_checks_them(enforcing, tmp_path):
    engine = enforcing_engine(enforcing, enforcing.access_key, enforcing.secret_key)
    for n, key in enumerate(["plain.bin", *ODD_KEYS]):
        data = os.urandom(1000 + n)
        path = tmp_path / f"f{n}"
        path.write_bytes(data)
        with open(path, "rb") as handle:
            put = Put(key, handle.fileno(), 0, len(data), hashlib.sha256(data).hexdigest())
            assert run_one(engine, put).error is None, key
        sink = Sink()
        assert run_one(engine, sink.get(key, 10, 100)).error is None, key
        assert bytes(sink.body) == data[10:110]
    engine.close()


def test_a_part_put_signed_by_libcurl_passes_a_server_that_checks_it(enforcing, tmp_path):
    """The query (partNumber, uploadId) is part of what libcurl signs."""
    from minio import Minio
    from minio.datatypes import Part

    minio = Minio(
        enforcing.url.split("//")[1],
        access_key=enforcing.access_key,
        secret_key=enforcing.secret_key,
        secure=False,
    )
    data = os.urandom(3000)
    path = tmp_path / "part"
    path.write_bytes(data)
    upload_id = minio._create_multipart_upload("private", "multi part.bin", {})
    with (
        enforcing_engine(enforcing, enforcing.access_key, enforcing.secret_key) as engine,
        open(path, "rb") as handle,
    ):
        query = {"partNumber": "1", "uploadId": upload_id}
        put = Put(
            "multi part.bin", handle.fileno(), 0, len(data), hashlib.sha256(data).hexdigest(), query=query
        )
        done = run_one(engine, put)
    assert done.error is None
    minio._complete_multipart_upload("private", "multi part.bin", upload_id, [Part(1, done.etag)])
    response = minio.get_object("private", "multi part.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()


@pytest.mark.parametrize("which", ["wrong secret", "unknown key", "anonymous"])
def test_bad_credentials_are_permission_denied_and_never_shown(enforcing, which):
    access, secret = {
        "wrong secret": (enforcing.access_key, "not-the-secret-at-all"),
        "unknown key": ("AKIAUNKNOWNKEY000000", "whatever-secret-value"),
        "anonymous": (None, None),
    }[which]
    with enforcing_engine(enforcing, access, secret) as engine:
        done = run_one(engine, Sink().get("plain.bin"))
        shown = f"{done.error} {done!r} {engine!r}"
    assert isinstance(done.error, PermissionDeniedError)
    assert (done.status, done.attempts) == (403, 1)
    assert "access denied" in str(done.error)
    code = {
        "wrong secret": "SignatureDoesNotMatch",
        "unknown key": "InvalidAccessKeyId",
        "anonymous": "HTTP 403",
    }
    assert code[which] in str(done.error)
    for secret_value in (secret, enforcing.secret_key):
        if secret_value:
            assert secret_value not in shown

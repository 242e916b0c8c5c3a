"""The libcurl data engine (djarchive_common.curl) against real local S3 servers: GETs whole and
ranged, PUTs whole and of parts with their real sha256, error translation, retries that resume,
timeouts, cancellation, proxies, and SigV4 signatures checked by a moto server that enforces them.

pycurl is a test requirement: these tests fail, not skip, where it is missing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pycurl  # noqa: F401  (a missing pycurl fails the module, it is not skipped)
import pytest

from djarchive_common.config import Settings, resolve_settings
from djarchive_common.curl import RECEIVE_BUFFER, CurlEngine, Done, Get, Head, Put, available
from djarchive_common.errors import (
    EndpointUnreachableError,
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransferError,
)
from djarchive_common.store import Store, StoreOptions
from djarchive_common.transfer import RetryPolicy
from tests.conftest import ADMIN_SECRET_KEY
from tests.faults.proxy import FaultProxy

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


def test_pycurl_is_there():
    assert available()


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
    assert sink.events[0] == "head" and sink.events.count("head") == 1
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

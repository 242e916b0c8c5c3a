"""The fault proxy itself: each fault does what the other tests rely on, and fates are reproducible."""

from __future__ import annotations

import os
import time

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from tests.faults.proxy import KINDS, FaultProxy

DATA = os.urandom(200_000)


@pytest.fixture
def stored(archive):
    archive.put("ds/1/blob.bin", DATA)
    return archive


def get(proxy: FaultProxy, bucket: str, key: str = "ds/1/blob.bin", timeout: float = 5.0, **headers):
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=timeout))
    return http.request("GET", f"{proxy.url}/{bucket}/{key}", headers=headers or None)


def always(kind: str):
    return lambda request, attempt: kind


def test_clean_relay_is_exact(stored, make_proxy):
    proxy = make_proxy()
    for _ in range(3):
        response = get(proxy, stored.bucket)
        assert (response.status, response.data) == (200, DATA)
    ranged = get(proxy, stored.bucket, Range="bytes=1000-1999")
    assert (ranged.status, ranged.data) == (206, DATA[1000:2000])
    assert proxy.counts["requests"] == 4
    assert proxy.faults == 0


@pytest.mark.parametrize("seed", range(4))
def test_reset_breaks_the_response(stored, make_proxy, seed):
    proxy = make_proxy(rule=always("reset"), seed=seed)
    with pytest.raises(ProtocolError):
        get(proxy, stored.bucket)
    assert proxy.counts["reset"] == 1


def test_truncate_is_a_short_read(stored, make_proxy):
    proxy = make_proxy(rule=lambda request, attempt: ("truncate", 1000))
    with pytest.raises(ProtocolError, match="IncompleteRead"):
        get(proxy, stored.bucket)
    assert [(r.method, r.target) for r in proxy.struck("truncate")] == [
        ("GET", f"/{stored.bucket}/ds/1/blob.bin")
    ]


def test_short_body_looks_complete(stored, make_proxy):
    proxy = make_proxy(rule=always("short"))
    response = get(proxy, stored.bucket)
    assert response.status == 200
    assert 0 < len(response.data) < len(DATA)
    assert response.data == DATA[: len(response.data)]
    assert int(response.headers["content-length"]) == len(response.data)
    ranged = get(proxy, stored.bucket, Range="bytes=100-99999")
    assert ranged.status == 206
    assert ranged.data == DATA[100 : 100 + len(ranged.data)]
    assert ranged.headers["content-range"] == f"bytes 100-{99 + len(ranged.data)}/{len(DATA)}"


def test_corrupt_flips_one_byte(stored, make_proxy):
    proxy = make_proxy(rule=always("corrupt"))
    data = get(proxy, stored.bucket).data
    assert len(data) == len(DATA)
    assert sum(a != b for a, b in zip(data, DATA, strict=True)) == 1


def test_stall_outlasts_the_read_timeout_and_ends_when_the_client_leaves(stored, make_proxy):
    proxy = make_proxy(rule=always("stall"), stall_seconds=30)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        get(proxy, stored.bucket, timeout=0.5)
    assert time.monotonic() - started < 5
    assert proxy.counts["stall"] == 1


@pytest.mark.parametrize(
    ("kind", "code"), [("error500", "InternalError"), ("error503", "ServiceUnavailable")]
)
@pytest.mark.parametrize("plain", [False, True])
def test_errors_answer_without_the_server(stored, make_proxy, kind, code, plain):
    proxy = make_proxy(rule=always(kind), plain_errors=plain)
    response = get(proxy, stored.bucket)
    assert response.status == int(kind[-3:])
    if plain:
        assert response.headers["content-type"] == "text/plain"
        assert code not in response.data.decode()
    else:
        assert response.headers["content-type"] == "application/xml"
        assert f"<Code>{code}</Code>" in response.data.decode()


def test_fates_are_reproducible_and_follow_the_rates(stored, make_proxy):
    def run(seed: int) -> list[tuple[str, str]]:
        proxy = make_proxy(rates={"error503": 0.3}, seed=seed)
        for index in range(60):
            get(proxy, stored.bucket, f"ds/1/blob.bin?n={index}")
        assert proxy.counts["requests"] == 60
        return sorted((kind, request.target) for kind, request in proxy.events)

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert 9 <= len(first) <= 27  # 30% of 60, give or take


def test_limit_and_applies(stored, make_proxy):
    proxy = make_proxy(rates={"error500": 1.0}, limit=2, applies=lambda request: "n=" in request.target)
    statuses = [
        get(proxy, stored.bucket, key).status for key in ("ds/1/blob.bin", *["ds/1/blob.bin?n=1"] * 3)
    ]
    assert statuses == [200, 500, 500, 200]


def test_unknown_kinds_and_rates_are_refused(s3_server):
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultProxy((s3_server.host, s3_server.port), rates={"explode": 0.1})
    with pytest.raises(ValueError, match="more than 1"):
        FaultProxy((s3_server.host, s3_server.port), rates=dict.fromkeys(KINDS, 0.2))

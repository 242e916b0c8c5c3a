"""Fixtures of the fault tests: the fault-injecting proxy in front of the session's S3 server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.faults.proxy import FaultProxy


@pytest.fixture
def make_proxy(s3_server) -> Iterator[Callable[..., FaultProxy]]:
    """A factory of started fault proxies in front of the test server; all stopped after the test."""
    started: list[FaultProxy] = []

    def make(**options) -> FaultProxy:
        proxy = FaultProxy((s3_server.host, s3_server.port), **options).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def via_proxy(archive, make_proxy, monkeypatch) -> Callable[..., FaultProxy]:
    """Like make_proxy, and point the client and admin environment at the new proxy."""

    def make(**options) -> FaultProxy:
        proxy = make_proxy(**options)
        for role in ("CLIENT", "ADMIN"):
            monkeypatch.setenv(f"DJARCHIVE_{role}_ENDPOINT", proxy.url)
        archive.client_env["DJARCHIVE_CLIENT_ENDPOINT"] = proxy.url
        archive.admin_env["DJARCHIVE_ADMIN_ENDPOINT"] = proxy.url
        return proxy

    return make


@pytest.fixture
def no_backoff(monkeypatch) -> list[float]:
    """Retries without their pauses (in this process, on either transport); the pauses the
    retry policy asked for are recorded."""
    from djarchive_common.transfer import RetryPolicy

    pauses: list[float] = []
    delay = RetryPolicy.delay

    def recorded(policy: RetryPolicy, attempt: int) -> float:
        pauses.append(delay(policy, attempt))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", recorded)
    return pauses

"""The choice among a download's sources and its failover rules, with stand-in sources (no network):
which source serves a transfer, when another takes over, when one is dropped, what is retried."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from djarchive_client.sources import DROP_AFTER, Sources
from djarchive_common import transfer
from djarchive_common.errors import (
    Cancelled,
    EndpointUnreachableError,
    IntegrityError,
    ObjectNotFoundError,
    RangesIgnored,
    TransferError,
)
from djarchive_common.transfer import RetryPolicy

POLICY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, unreachable_attempts=2)


class Named:
    """A stand-in source: only its name matters here (the operation does the reading)."""

    def __init__(self, name: str):
        self.name = name

    def stream(self, key, offset=0, length=0, *, what=""):  # pragma: no cover - never called
        raise AssertionError("not read here")


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """Back-off pauses, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(transfer.time, "sleep", recorded.append)
    return recorded


def failing(errors: dict[str, list[Exception]], calls: list[str]):
    """An operation that raises the next scripted error of the source it runs on, else succeeds."""

    def operation(source: Named) -> str:
        calls.append(source.name)
        queue = errors.get(source.name, [])
        if queue:
            raise queue.pop(0)
        return source.name

    return operation


def test_one_source_is_retried_as_the_policy_says(pauses):
    calls: list[str] = []
    sources = Sources([Named("primary")], POLICY)
    errors = {"primary": [TransferError("reset", retryable=True), TransferError("reset", retryable=True)]}
    assert sources.call(failing(errors, calls), "downloading f", size=10) == "primary"
    assert calls == ["primary"] * 3
    assert len(pauses) == 2
    errors = {"primary": [TransferError("reset", retryable=True)] * 3}
    with pytest.raises(TransferError, match="reset"):
        sources.call(failing(errors, []), "downloading g", size=10)
    with pytest.raises(ObjectNotFoundError):  # not worth a retry: at once
        sources.call(failing({"primary": [ObjectNotFoundError("gone")]}, calls), "downloading h", size=10)


def test_another_source_takes_over_at_once_without_a_pause(pauses):
    calls: list[str] = []
    sources = Sources([Named("primary"), Named("mirror")], POLICY)
    errors = {"primary": [EndpointUnreachableError("refused", retryable=True)]}
    assert sources.call(failing(errors, calls), "downloading f", size=10) == "mirror"
    assert calls == ["primary", "mirror"]
    assert pauses == []


def test_a_source_that_sent_wrong_bytes_is_not_asked_again_for_that_file(pauses):
    calls: list[str] = []
    sources = Sources([Named("primary"), Named("mirror")], POLICY)
    errors = {
        "mirror": [IntegrityError("sha256 mismatch", retryable=True)],
        "primary": [TransferError("reset", retryable=True)],
    }
    sources._tracked[0].rate, sources._tracked[1].rate = 1.0, 1e12  # the mirror looks fastest
    assert sources.call(failing(errors, calls), "downloading f", size=10) == "primary"
    assert calls == ["mirror", "primary", "primary"]  # after the pause, not the mirror again
    assert len(pauses) == 1


def test_a_missing_object_on_a_mirror_is_fetched_from_the_primary(pauses):
    calls: list[str] = []
    sources = Sources([Named("primary"), Named("mirror")], POLICY)
    sources._tracked[0].rate, sources._tracked[1].rate = 1.0, 1e12
    errors = {"mirror": [ObjectNotFoundError("not on this mirror")]}
    assert sources.call(failing(errors, calls), "downloading f", size=10) == "primary"
    both_missing = {"mirror": [ObjectNotFoundError("m")], "primary": [ObjectNotFoundError("p")]}
    with pytest.raises(ObjectNotFoundError):
        sources.call(failing(both_missing, []), "downloading g", size=10)
    assert pauses == []


def test_a_source_that_keeps_failing_is_dropped_but_never_the_last(pauses):
    sources = Sources([Named("primary"), Named("mirror")], POLICY)
    calls: list[str] = []
    for _ in range(DROP_AFTER):
        errors = {"primary": [TransferError("reset", retryable=True)]}
        sources._tracked[1].assigned = 10**9  # the primary would be chosen first
        sources.call(failing(errors, calls), "f", size=10)
        sources._tracked[1].assigned = 0
    assert list(sources.dropped) == ["primary"]
    calls.clear()
    for _ in range(4):
        sources.call(failing({}, calls), "f", size=10)
    assert set(calls) == {"mirror"}
    for _ in range(DROP_AFTER + 1):  # the mirror fails too: it is the last, so it stays
        with pytest.raises(TransferError):
            sources.call(
                failing({"mirror": [TransferError("x")], "primary": [TransferError("x")]}, []), "f", size=1
            )
    assert list(sources.dropped) == ["primary"]


def test_a_source_known_down_is_the_last_resort():
    calls: list[str] = []
    sources = Sources([Named("primary"), Named("mirror")], POLICY, down=["primary"])
    for _ in range(3):
        sources.call(failing({}, calls), "f", size=10)
    assert calls == ["mirror"] * 3
    errors = {"mirror": [ObjectNotFoundError("partial mirror")]}
    assert sources.call(failing(errors, calls), "f", size=10) == "primary"


def test_byte_ranges_go_only_to_sources_that_serve_them(pauses):
    sources = Sources([Named("primary"), Named("mirror")], POLICY, down=["primary"])
    calls: list[str] = []
    errors = {"mirror": [RangesIgnored("whole")]}
    with pytest.raises(RangesIgnored):  # the only source in use ignores ranges: whole files instead
        sources.call(failing(errors, calls), "range 1", size=10, ranged=True)
    assert calls == ["mirror"]
    with pytest.raises(RangesIgnored):
        sources.call(failing({}, calls), "range 2", size=10, ranged=True)
    assert calls == ["mirror"]  # known now: not asked again
    assert sources.call(failing({}, calls), "whole file", size=10) == "mirror"
    both = Sources([Named("primary"), Named("mirror")], POLICY)
    both._tracked[0].rate, both._tracked[1].rate = 1.0, 1e12
    calls.clear()
    assert (
        both.call(failing({"mirror": [RangesIgnored("whole")]}, calls), "r", size=10, ranged=True)
        == "primary"
    )
    assert both.call(failing({}, calls), "r", size=10, ranged=True) == "primary"
    assert calls == ["mirror", "primary", "primary"]


def test_work_goes_where_it_is_done_first():
    fast, slow = Named("fast"), Named("slow")
    sources = Sources([slow, fast], POLICY)
    rates = {"fast": 0.001, "slow": 0.004}  # seconds per transfer: the fast one is four times faster
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def operation(source: Named) -> None:
        time.sleep(rates[source.name])
        with lock:
            served[source.name] += 1

    threads = [
        threading.Thread(target=lambda: [sources.call(operation, "f", size=1000) for _ in range(50)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert served["fast"] > 2 * served["slow"] > 0, served


def test_failures_after_a_stop_are_not_the_sources_fault(pauses):
    sources = Sources([Named("primary"), Named("mirror")], POLICY)
    sources.stop()
    with pytest.raises(Cancelled):
        sources.call(failing({"primary": [TransferError("stopped")]}, []), "f", size=1)
    assert all(tracked.failures == 0 for tracked in sources._tracked)

"""Which source serves each transfer of a download: the primary (the store) or a mirror, and
what happens when one fails.

A download asks :meth:`Sources.call` to run one transfer (a whole file, or a byte range of a
large one) on a source of the pool's choosing. The choice is by measured throughput: each source
keeps an estimate of the bytes per second it delivers (every finished transfer's bytes over its
time, times the transfers it was serving at once, smoothed), and a transfer goes where the bytes
already assigned plus its own would be done first; sources without a measurement yet count as
fast as the best one, so every source is tried early. Two equal sources share the work; a slow
one gets less of it.

A transfer that fails on a source (connection refused or reset, an HTTP error, a timeout, a body
slower than the minimum rate, bytes of the wrong size or sha256) sets that source aside for that
file and runs again at once on another; only when every source was tried does it wait, as the
retry policy says (:mod:`djarchive_common.transfer`), before a new round on the sources whose
error was transient. A source that fails ``DROP_AFTER`` transfers in a row is dropped for the
run (used again only when nothing else is left). A source that ignores byte ranges serves
whole files only. With one source this is exactly the policy's retry loop.

Every byte is verified against the manifest wherever it came from (:mod:`djarchive_client.fetch`,
:mod:`djarchive_common.verified`): a hostile or broken mirror costs time, never correctness.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from djarchive_common.errors import (
    Cancelled,
    DJArchiveError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    RangesIgnored,
    TransferError,
)
from djarchive_common.transfer import RetryPolicy, back_off
from djarchive_common.verified import Source

__all__ = ["DROP_AFTER", "Sources"]

T = TypeVar("T")
log = logging.getLogger("djarchive_client")
DROP_AFTER = 3  # failures in a row that drop a source for the run
SMOOTHING = 0.3  # weight of the newest throughput measurement
# What a source can be blamed for; anything else (a local failure, Cancelled) ends the transfer.
_SOURCE_FAULTS = (TransferError, IntegrityError, NotFoundError, PermissionDeniedError)


class _Tracked:
    """One source and what the pool knows of it (guarded by the pool's lock)."""

    __slots__ = ("active", "assigned", "dropped", "failures", "index", "ranges", "rate", "source")

    def __init__(self, source: Source, index: int):
        self.source, self.index = source, index
        self.rate = 0.0  # bytes per second it delivers, all transfers together (0: not measured)
        self.assigned = 0  # bytes of the transfers running on it
        self.active = 0  # transfers running on it
        self.failures = 0  # in a row
        self.dropped = False
        self.ranges = True  # False once it answered a byte range with the whole object

    @property
    def name(self) -> str:
        return self.source.name


class Sources:
    """The sources of one download, and the choice among them (thread-safe). The first is the
    primary; ``down`` names sources known to be unreachable already (tried last)."""

    def __init__(self, sources: Sequence[Source], policy: RetryPolicy, *, down: Sequence[str] = ()):
        if not sources:
            raise ValueError("a download needs at least one source")
        self.policy = policy
        self._tracked = [_Tracked(source, index) for index, source in enumerate(sources)]
        for tracked in self._tracked:
            tracked.dropped = tracked.name in down
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.dropped: dict[str, str] = {}  # source name: why it was dropped for the run

    def stop(self) -> None:
        """The download is being stopped: what fails from now on is not the sources' fault."""
        self._stopped.set()

    @property
    def several(self) -> bool:
        """Whether there is more than one source to choose from."""
        return len(self._tracked) > 1

    def call(self, operation: Callable[[Source], T], what: str, *, size: int, ranged: bool = False) -> T:
        """Run ``operation`` (one transfer of ``size`` bytes; ``ranged``: a byte range) on a source
        chosen by :meth:`_choose`, and again on others as the module says, until it succeeds;
        raise the error that stopped it when no source and no retry is left."""
        tried: set[_Tracked] = set()  # failed in this round: back in the next one
        spent: set[_Tracked] = set()  # not again for this transfer
        wrong: set[_Tracked] = set()  # spent for wrong bytes: back only when nothing else is left
        attempt = 1
        last: DJArchiveError | None = None
        transient: DJArchiveError | None = None  # the last error of this round worth a retry
        while True:
            if ranged and not self._ranges_served():  # the caller fetches whole files instead
                raise RangesIgnored(f"{what}: no source in use serves byte ranges")
            tracked = self._choose(size, ranged, tried | spent)
            if tracked is None:
                if last is None:  # nothing tried: no source fits this transfer
                    raise RangesIgnored(f"{what}: no source in use serves byte ranges")
                if transient is None or not self.policy.allows(attempt, transient):
                    raise transient or last
                back_off(self.policy, attempt, transient, what)
                attempt, tried, transient = attempt + 1, set(), None
                if spent >= set(self._tracked):
                    spent -= wrong
                continue
            started = time.monotonic()
            try:
                result = operation(tracked.source)
            except RangesIgnored as error:
                self._settle(tracked, size, started, None)
                with self._lock:
                    tracked.ranges = False
                log.info("%s ignores byte ranges: it serves whole files only", tracked.name)
                spent.add(tracked)
                last = last or error
                continue
            except _SOURCE_FAULTS as error:
                if self._stopped.is_set():  # its connection was shut down under it
                    self._settle(tracked, size, started, None)
                    raise Cancelled("download stopped") from error
                self._settle(tracked, size, started, error)
                if self.several:
                    log.info("%s from %s failed (%s)", what, tracked.name, error)
                last = error
                if not error.retryable:  # a missing object, a refusal: not again for this transfer
                    spent.add(tracked)
                    continue
                transient = error
                if self.several and isinstance(error, IntegrityError):
                    spent.add(tracked)  # wrong bytes: another source first
                    wrong.add(tracked)
                else:
                    tried.add(tracked)
                continue
            except BaseException:  # stopped, a local failure, a bug: not the source's doing
                self._settle(tracked, size, started, None)
                raise
            self._settle(tracked, size, started, True)
            return result

    def _ranges_served(self) -> bool:
        """Whether a source in use (not dropped) serves byte ranges, as far as is known."""
        with self._lock:
            return any(tracked.ranges and not tracked.dropped for tracked in self._tracked)

    def _choose(self, size: int, ranged: bool, excluded: set[_Tracked]) -> _Tracked | None:
        """The source where ``size`` more bytes would be done first, among those not excluded
        (and serving ranges when ``ranged``); a dropped one only when nothing else is left.
        The transfer is counted on it at once."""
        with self._lock:
            usable = [t for t in self._tracked if t not in excluded and (t.ranges or not ranged)]
            candidates = [t for t in usable if not t.dropped] or usable
            if not candidates:
                return None
            best_rate = max((t.rate for t in self._tracked), default=0.0) or 1.0

            def finish(tracked: _Tracked) -> tuple[float, int]:
                rate = tracked.rate or best_rate
                return (tracked.assigned + max(size, 1)) / rate, tracked.index

            chosen = min(candidates, key=finish)
            chosen.assigned += size
            chosen.active += 1
            return chosen

    def _settle(
        self, tracked: _Tracked, size: int, started: float, outcome: bool | DJArchiveError | None
    ) -> None:
        """The transfer on ``tracked`` ended: a success (True) measures its throughput, an
        error counts towards dropping it, None (stopped, or not the source's fault) neither."""
        elapsed = max(time.monotonic() - started, 1e-6)
        with self._lock:
            sharing = tracked.active  # the transfers it served at once, this one included
            tracked.assigned -= size
            tracked.active -= 1
            if outcome is True:
                tracked.failures = 0
                if size:
                    sample = size / elapsed * sharing
                    tracked.rate = (
                        sample if not tracked.rate else (1 - SMOOTHING) * tracked.rate + (SMOOTHING * sample)
                    )
                return
            if outcome is None:
                return
            tracked.failures += 1
            if tracked.failures < DROP_AFTER or tracked.dropped:
                return
            if all(other.dropped for other in self._tracked if other is not tracked):
                return  # the last source left is never dropped
            tracked.dropped = True
            self.dropped[tracked.name] = str(outcome)
        log.warning(
            "%s failed %d times in a row (%s): not used again in this run", tracked.name, DROP_AFTER, outcome
        )

"""An exclusive lease on one revision in the store, held while it is uploaded, published or retracted.

The lease is a small JSON object at :func:`djarchive_common.layout.lock_key`, created with
``If-None-Match: *`` so that only one writer gets it, and refreshed by a heartbeat while held.
Every later write is conditional on the ETag the holder last wrote (``If-Match``): a takeover of
a stale lease succeeds for exactly one of several writers racing for it, a holder whose lease
was taken over learns it at its next heartbeat (:attr:`RevisionLease.lost`), and a release
never deletes somebody else's lease. A lease is stale when its holder is a dead process on this
host, its heartbeat is older than ``stale_after`` seconds, or it is unreadable, oversized, or
claims a heartbeat from the future; ``djarchive-admin break-lease`` removes one by hand.

On a server that ignores conditional writes (``conditional=False``: the admin's probe found so,
and the curator declared they are the only writer), the lease is what it can still be: a live
lease is read before anything is written and respected, every heartbeat and :meth:`check` reads
the lease to see it is still ours, and a release deletes only our own. Two writers starting in
the same instant can both believe they hold it; the documentation says so (docs/servers.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, TypeGuard

from djarchive_common.errors import LockedError, ObjectNotFoundError, ObjectTooLargeError
from djarchive_common.layout import lock_key
from djarchive_common.store import Store

__all__ = ["HEARTBEAT", "STALE_AFTER", "RevisionLease", "read_lease"]

log = logging.getLogger("djarchive_admin")
STALE_AFTER = 600.0
HEARTBEAT = 60.0
MAX_CLOCK_SKEW = 300.0  # a heartbeat further in the future than this is a lie
MAX_LEASE_BYTES = 4096


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_lease(store: Store, key: str) -> tuple[dict[str, Any], str] | None:
    """The lease at ``key`` and its ETag; None when there is none. An unreadable, oversized or
    malformed lease reads as ``{}`` (stale)."""
    try:
        data, etag = store.read_tagged(key, MAX_LEASE_BYTES)
    except ObjectNotFoundError:
        return None
    except ObjectTooLargeError:
        log.warning("the lease %s is larger than %d bytes: treating it as stale", key, MAX_LEASE_BYTES)
        return {}, ""
    try:
        holder = json.loads(data)
    except (ValueError, RecursionError):
        return {}, etag
    return (holder if isinstance(holder, dict) else {}), etag


def _holder(holder: dict[str, Any]) -> str:
    """Who wrote the lease ``holder``, in words: its process, host and start, as far as it says."""
    pid, host, since = holder.get("pid"), holder.get("host"), holder.get("since")
    if not (isinstance(pid, int) and isinstance(host, str)):
        return "an unknown writer"
    return f"pid {pid} on {host}" + (f", since {since}" if isinstance(since, str) else "")


class RevisionLease:
    """``with RevisionLease(store, dataset, revision): ...`` holds the revision for one writer."""

    def __init__(
        self,
        store: Store,
        dataset: str,
        revision: str,
        *,
        stale_after: float = STALE_AFTER,
        heartbeat: float = HEARTBEAT,
        conditional: bool = True,
    ):
        self.store = store
        self.dataset, self.revision = dataset, revision
        self.key = lock_key(dataset, revision)
        self.stale_after, self.heartbeat = stale_after, heartbeat
        self.conditional = conditional
        self.token = uuid.uuid4().hex
        self.since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.lost = False
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": self.since,
                "heartbeat": time.time(),
            }
        ).encode()

    def _staleness(self, holder: dict[str, Any]) -> str | None:
        """Why the lease ``holder`` wrote is stale, or None while its writer may still be at work."""
        heartbeat = holder.get("heartbeat")
        if not _number(heartbeat):
            return "unreadable"
        now = time.time()
        if heartbeat > now + MAX_CLOCK_SKEW:
            return "its heartbeat is in the future"
        if now - heartbeat > self.stale_after:
            return f"no heartbeat for {(now - heartbeat) / 60:.0f} minutes"
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _process_alive(pid):
            return "its process is gone"
        return None

    def _write(self, etag: str | None = None) -> str | None:
        """Write our lease: conditionally (``If-None-Match: *``, or ``If-Match: etag``), or plainly on
        a server that ignores conditions; the new ETag, or None when the condition failed."""
        if self.conditional:
            return self.store.write_if(self.key, self._body(), etag=etag)
        return self.store.put_bytes(self.key, self._body()).etag

    def _ours(self) -> bool:
        """Whether the lease in the store is ours (a read, for servers that ignore conditions)."""
        found = read_lease(self.store, self.key)
        return found is not None and found[0].get("token") == self.token

    def _won(self, etag: str | None) -> bool:
        """Whether the write that returned ``etag`` made us the holder (read back, for stores
        that ignore conditions)."""
        if etag is None:
            return False
        found = read_lease(self.store, self.key)
        if found is None or found[0].get("token") != self.token:
            return False
        self._etag = found[1] or etag
        return True

    def acquire(self) -> None:
        """Take the lease, taking over a stale one; raise LockedError while another writer holds it."""
        for _ in range(5):
            found = read_lease(self.store, self.key)
            if found is None:
                if self._won(self._write()):
                    break
                continue  # taken meanwhile: see by whom
            holder, etag = found
            if holder.get("token") == self.token:  # our write went through; its answer was lost
                self._etag = etag
                break
            stale = self._staleness(holder)
            if stale is None:
                who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
                raise LockedError(
                    f"{self.dataset} {self.revision} is being changed by another djarchive-admin ({who}, "
                    f"since {holder.get('since', '?')}); try again when it has finished, or, if it is gone, "
                    f"djarchive-admin break-lease {self.dataset} {self.revision}"
                )
            log.warning(
                "taking over the lease on %s %s left by %s: %s",
                self.dataset,
                self.revision,
                _holder(holder),
                stale,
            )
            if etag and self._won(self._write(etag)):
                break
            if not etag:  # oversized or unreadable: only a delete can clear it
                self.store.remove(self.key)
        else:
            raise LockedError(f"could not lock {self.dataset} {self.revision}: other writers keep taking it")
        self._start_heartbeat()

    def check(self) -> None:
        """Raise LockedError if another writer took the lease over while we held it (on a server
        that ignores conditions, found by reading the lease now)."""
        if not self.conditional and not self.lost and not self._ours():
            self.lost = True
        if self.lost:
            raise LockedError(
                f"the lease on {self.dataset} {self.revision} was taken over by another djarchive-admin "
                "while this one worked: stopping before its final write"
            )

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    etag = self._write(self._etag) if self.conditional or self._ours() else None
                except Exception as exc:  # a missed heartbeat only shortens the lease
                    log.info("could not refresh the lease on %s %s: %s", self.dataset, self.revision, exc)
                    continue
                if etag is None:
                    log.warning(
                        "the lease on %s %s was taken over by another writer", self.dataset, self.revision
                    )
                    self.lost = True
                    return
                self._etag = etag

        self._thread = threading.Thread(target=beat, name="djarchive-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._etag or self.lost:
            return
        if self.conditional:
            released = self.store.remove_if(self.key, self._etag)
        else:
            released = self._ours()
            if released:
                self.store.remove(self.key)
        if not released:
            log.info("the lease on %s %s was no longer ours to release", self.dataset, self.revision)

    def __enter__(self) -> RevisionLease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

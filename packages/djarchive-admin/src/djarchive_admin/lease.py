"""An exclusive lease on one revision in the store, held while it is uploaded, published or retracted.

The lease is the object ``.djarchive/locks/<dataset>/<revision>.lock``, created with
``If-None-Match: *`` so that only one writer gets it, and refreshed by a heartbeat while
held. A lease whose holder is gone (a dead process on this host, or no heartbeat for
``stale_after`` seconds) is taken over, so an interrupted upload can always be resumed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from djarchive_common.errors import LockedError, ObjectNotFoundError
from djarchive_common.layout import lock_key
from djarchive_common.store import Store

__all__ = ["RevisionLease"]

log = logging.getLogger("djarchive_admin")
STALE_AFTER = 600.0
HEARTBEAT = 60.0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    ):
        self.store = store
        self.dataset, self.revision = dataset, revision
        self.key = lock_key(dataset, revision)
        self.stale_after, self.heartbeat = stale_after, heartbeat
        self.token = uuid.uuid4().hex
        self.since = datetime.now(timezone.utc).isoformat(timespec="seconds")
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

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.store.read(self.key, 64 * 1024))
        except ObjectNotFoundError:
            return None
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        heartbeat = holder.get("heartbeat")
        if not isinstance(heartbeat, (int, float)) or time.time() - heartbeat > self.stale_after:
            return True
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _process_alive(pid)

    def acquire(self) -> None:
        """Take the lease, taking over a stale one; raise LockedError while another writer holds it."""
        for _ in range(3):
            if self.store.create(self.key, self._body()):
                holder = self._holder()
                if holder is not None and holder.get("token") == self.token:
                    self._start_heartbeat()
                    return
            holder = self._holder()
            if holder is None:
                continue  # released meanwhile
            if holder.get("token") == self.token:
                self._start_heartbeat()
                return
            if not self._is_stale(holder):
                who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
                raise LockedError(
                    f"{self.dataset} {self.revision} is being changed by another djarchive-admin ({who}, "
                    f"since {holder.get('since', '?')}); try again when it has finished"
                )
            log.warning("taking over the stale lock on %s %s held by %s", self.dataset, self.revision, holder)
            self.store.remove(self.key)
        raise LockedError(f"could not lock {self.dataset} {self.revision}: another writer keeps taking it")

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    self.store.put_bytes(self.key, self._body())
                except Exception as exc:  # a missed heartbeat only shortens the lease
                    log.info("could not refresh the lock on %s %s: %s", self.dataset, self.revision, exc)

        self._thread = threading.Thread(target=beat, name="djarchive-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            self.store.remove(self.key)

    def __enter__(self) -> RevisionLease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

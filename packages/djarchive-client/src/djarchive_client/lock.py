"""TARGET's lock, ``TARGET/.djarchive/lock``: one plain run writes alone; shard runs share it.

A plain run holds the lock file exclusively. A shard run (``--shard K/N``) holds it shared, so
that the N shards of one download write into TARGET together while a plain run waits, and holds
its own ``shard-K-of-N.lock`` exclusively, so that no shard runs twice at once. The holder writes
its pid into the lock file (``shards`` when shared), so a refused run can say who holds it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from djarchive_common.errors import LocalPathError, LockedError
from djarchive_common.localfs import Folder, storage_error

__all__ = ["LOCK", "TargetLock"]

LOCK = "lock"
SHARED = "shards"  # what the target's lock file says while shard downloads share it


class TargetLock:
    """The lock of the TARGET at ``path`` for one run (a plain one, or the shard ``shard``)."""

    def __init__(self, path: Path, shard: tuple[int, int] | None = None):
        self.path = path
        self.shard = shard
        self._fds: list[int] = []

    @property
    def held(self) -> bool:
        """Whether this run holds the lock now."""
        return bool(self._fds)

    def acquire(self, state: Folder) -> None:
        """Take the lock files in ``state`` (``.djarchive``), or raise LockedError when another
        process holds them."""
        self._fds.append(self._lock_file(state, LOCK, shared=self.shard is not None))
        try:
            if self.shard is not None:
                name = f"shard-{self.shard[0]}-of-{self.shard[1]}.lock"
                self._fds.append(self._lock_file(state, name, shared=False))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release every lock file this run holds."""
        while self._fds:
            os.close(self._fds.pop())

    def _lock_file(self, state: Folder, name: str, *, shared: bool) -> int:
        """An open, locked lock file in ``state`` (its holder's pid in it unless shared)."""
        path = state.path / name
        try:
            fd = state.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, path) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LocalPathError(f"{path} is not a regular file")
            if not _try_lock(fd, shared=shared):
                held = os.read(fd, 32).decode(errors="replace").strip()
                who = (
                    f"another djarchive process (pid {held})"
                    if held.isdigit()
                    else "a shard download"
                    if held == SHARED
                    else "another djarchive process"
                )
                what = (
                    f"downloading shard {self.shard[0]}/{self.shard[1]} of"
                    if name != LOCK and self.shard
                    else "downloading into"
                )
                raise LockedError(f"{who} is {what} {self.path}; wait for it to finish")
            # What the holder writes replaces what was there without a moment of emptiness: a
            # process that fails to get the lock reads a pid (or "shards"), never half of one.
            mark = SHARED.encode() if shared else str(os.getpid()).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, mark)
            os.ftruncate(fd, len(mark))
        except BaseException:
            os.close(fd)
            raise
        return fd


def _try_lock(fd: int, *, shared: bool = False) -> bool:
    """A lock on the open file ``fd`` without waiting: flock where it exists (POSIX, shared or
    exclusive), msvcrt's byte-range lock on Windows (exclusive only: a shared lock there is
    no lock, and shards rely on their own shard lock). False when another process holds it."""
    if sys.platform == "win32":
        if shared:
            return True
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True

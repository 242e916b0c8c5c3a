"""TARGET's lock, ``TARGET/.djarchive/lock``: one plain run writes alone; shard runs share it.

A plain run holds the lock file exclusively. A shard run (``--shard K/N``) holds it shared, so
that the N shards of one download write into TARGET together while a plain run waits, and holds
its own ``shard-K-of-N.lock`` exclusively, so that no shard runs twice at once.

A lock file is only ever opened and locked, never written: it may be a hard link planted to a
file elsewhere (a shared TARGET, a ``cp -al`` snapshot, a system without Linux's
protected_hardlinks), and a lock file with more than one name is refused. The holder's pid
(``shards`` when shared) goes into ``<lock>.pid`` beside it, a new file renamed over the old,
so that a refused run can say who holds the lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path

from djarchive_common.errors import LocalPathError, LockedError
from djarchive_common.localfs import Folder, storage_error

__all__ = ["LOCK", "TargetLock", "holder_words", "running"]

LOCK = "lock"
MARK = ".pid"  # the holder's mark beside each lock file: ``lock.pid``
SHARED = "shards"  # what the target's lock mark says while shard downloads share it
_OPEN = os.O_RDWR if sys.platform == "win32" else os.O_RDONLY  # a lock is never written


class TargetLock:
    """The lock of the TARGET at ``path`` for one run (a plain one, or the shard ``shard``)."""

    def __init__(self, path: Path, shard: tuple[int, int] | None = None):
        self.path = path
        self.shard = shard
        self._fds: list[int] = []
        self._marked: tuple[Folder, str] | None = None  # the mark this run wrote alone, to delete

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
        """Release every lock file this run holds (the mark of one held alone deleted first)."""
        if self._marked is not None:
            state, mark = self._marked
            self._marked = None
            with contextlib.suppress(OSError):  # a stale mark names a pid that holds nothing
                state.unlink(mark, missing_ok=True)
        while self._fds:
            os.close(self._fds.pop())

    def _lock_file(self, state: Folder, name: str, *, shared: bool) -> int:
        """An open, locked lock file in ``state``, its holder's mark written beside it."""
        path = state.path / name
        try:
            fd = state.open(name, _OPEN | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, path) from None
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise LocalPathError(f"{path} is not a regular file")
            if status.st_nlink > 1:
                raise LocalPathError(
                    f"{path} has {status.st_nlink} names (a hard link to it exists): djarchive does "
                    "not lock or write through links; delete it and run again"
                )
            if not _try_lock(fd, shared=shared):
                who = holder_words(_read_mark(state, name + MARK))
                what = (
                    f"downloading shard {self.shard[0]}/{self.shard[1]} of"
                    if name != LOCK and self.shard
                    else "downloading into"
                )
                raise LockedError(f"{who} is {what} {self.path}; wait for it to finish")
            # A new file renamed over the old: a process refused the lock reads a whole pid (or
            # "shards"), and a link planted at the mark's name is replaced, never written through.
            mark = SHARED if shared else str(os.getpid())
            try:
                state.write_atomically(name + MARK, mark.encode())
            except OSError as exc:
                raise storage_error(exc, state.path / (name + MARK)) from None
            if not shared:
                self._marked = (state, name + MARK)
        except BaseException:
            os.close(fd)
            raise
        return fd


def running(state: Folder) -> str | None:
    """The mark of the plain run downloading into the copy whose state folder is ``state`` now
    (its pid, or "" when unreadable), None when none is: a shared lock tried and let go at once,
    nothing written. Shard runs share the lock and are not seen."""
    try:
        fd = state.open(LOCK, os.O_RDONLY)
    except (OSError, LocalPathError):
        return None
    try:
        if _try_lock(fd, shared=True):
            return None
        return _read_mark(state, LOCK + MARK)
    finally:
        os.close(fd)  # releases the probe's lock


def holder_words(mark: str) -> str:
    """Who holds a lock, from the mark beside it."""
    if mark.isdigit():
        return f"another djarchive process (pid {mark})"
    return "a shard download" if mark == SHARED else "another djarchive process (pid unknown)"


def _read_mark(state: Folder, name: str) -> str:
    """What a lock's holder wrote beside it, or "" when it cannot be read."""
    try:
        return state.read_bytes(name, 64).decode(errors="replace").strip()
    except (OSError, LocalPathError):
        return ""


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

"""Content on local disk used instead of the network: a file of TARGET (content that moved or is
needed twice) or of another local copy (``--reuse DIR``), staged as a temporary file of this run,
checked, then placed like a fetched file.

What is checked is what is placed. A copy is a private file (a reflink where the file system
shares blocks, ``copy_file_range``; else read and written) hashed through its own descriptor. A
hard link (``--link``, other copies only) is made by name into this run's temporary folder and
kept only when it is the very file open as the descriptor that is then hashed (same device and
inode): a name swapped for a link or another file in between is never placed, and the content is
copied from the checked descriptor instead. Where no hard link can be made (another file system,
none supported, not allowed, a platform that does not tell files' identities), the file is
copied, one file at a time. Another folder's record of verified files is never evidence; TARGET's
own record vouches for its own files, as it does for a re-run.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from djarchive_common.errors import IntegrityError
from djarchive_common.localfs import pread, pwrite, storage_error
from djarchive_common.manifest import Entry
from djarchive_common.transfer import BUFFER_SIZE

from . import files

if TYPE_CHECKING:
    from .files import TargetFiles
    from .verified import VerifiedFiles

__all__ = ["copy_in"]

log = logging.getLogger("djarchive_client")

# Why a hard link cannot be made, though a copy can: another file system, none supported, too
# many links to the file, not allowed (protected_hardlinks, another user's file).
_NO_LINK = frozenset(
    (
        errno.EXDEV,
        errno.EPERM,
        errno.EACCES,
        errno.EMLINK,
        errno.ENOSYS,
        getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
        errno.EOPNOTSUPP,
    )
)


def copy_in(
    target: TargetFiles,
    source: TargetFiles,
    subpath: str,
    entry: Entry,
    *,
    link: bool = False,
    record: VerifiedFiles | None = None,
) -> tuple[str, os.stat_result]:
    """Stage ``source``'s file ``subpath`` as the content of ``entry`` in ``target``: a new
    temporary file of ``target``'s run, checked for ``entry``'s size and sha256 before it is
    returned (its name and status); place it with :meth:`TargetFiles.place`. ``link``: a hard
    link where one can be made to the checked file, else a copy. ``record``: TARGET's own record,
    for copies inside it (a file it vouches for, unchanged during the copy, is not hashed again);
    never another folder's."""
    fd_in = source.open_file(subpath)
    part: str | None = None
    fd_out = -1
    try:
        before = os.fstat(fd_in)
        if link:
            linked = _link_checked(target, source, subpath, fd_in, entry)
            if linked is not None:
                return linked
        vouched = record is not None and record.vouches(Entry(subpath, entry.size, entry.sha256), before)
        part, fd_out = target.new_part()
        _copy_data(fd_in, fd_out, entry.size)
        copied = os.fstat(fd_out)
        if vouched and _unchanged(before, os.fstat(fd_in)) and copied.st_size == entry.size:
            return part, copied
        size, sha256 = files.hash_file(fd_out)
        _check(entry, size, sha256, source.destination(subpath))
        return part, os.fstat(fd_out)
    except BaseException:
        if part is not None:
            target.discard(part)
        raise
    finally:
        os.close(fd_in)
        if fd_out >= 0:
            os.close(fd_out)


def _link_checked(
    target: TargetFiles, source: TargetFiles, subpath: str, fd_in: int, entry: Entry
) -> tuple[str, os.stat_result] | None:
    """A hard link, in ``target``'s temporary folder, to the file open as ``fd_in``, hashed
    through that descriptor; or None where none can be made (the caller then copies from the
    descriptor)."""
    if os.fstat(fd_in).st_ino == 0:  # the platform does not tell which file a descriptor is
        return None
    where = source.destination(subpath)
    try:
        part = target.link_part(source, subpath)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise storage_error(exc, where) from None
        log.info("cannot hard-link %s (%s): copying it", where, exc.strerror)
        return None
    try:
        linked = target.temporary_status(part)
        held = os.fstat(fd_in)  # after the link, which changed the file's status (ctime)
        if linked is None or (linked.st_dev, linked.st_ino) != (held.st_dev, held.st_ino):
            log.info("%s changed as it was linked: copying it", where)
            target.discard(part)
            return None
        size, sha256 = files.hash_file(fd_in, held.st_size)
        if not _unchanged(held, os.fstat(fd_in)):
            raise IntegrityError(f"{where} changed while it was checked")
        _check(entry, size, sha256, where)
    except BaseException:
        target.discard(part)
        raise
    return part, linked


def _copy_data(fd_in: int, fd_out: int, size: int) -> None:
    """Copy ``size`` bytes from the start of ``fd_in`` into ``fd_out``: in the kernel where it can
    (``copy_file_range``, a reflink on file systems that share blocks), else read and write."""
    copied = 0
    if hasattr(os, "copy_file_range"):
        try:
            while copied < size:
                count = os.copy_file_range(fd_in, fd_out, size - copied, copied, copied)
                if count == 0:
                    break
                copied += count
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                raise
    position = copied
    while chunk := pread(fd_in, BUFFER_SIZE, position):
        view = memoryview(chunk)
        while view:
            written = pwrite(fd_out, view, position)
            view = view[written:]
            position += written


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a file's status says it was not written between the two looks."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _check(entry: Entry, size: int, sha256: str, source: Path) -> None:
    if (size, sha256) != (entry.size, entry.sha256):
        raise IntegrityError(
            f"{source} is not the content {entry.subpath} needs (it changed since it was recorded)"
        )

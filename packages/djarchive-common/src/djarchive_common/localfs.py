"""Local folders that cannot be redirected: every operation is relative to an open folder and
never goes through a symbolic link the tool did not create.

Where the platform has ``*at`` system calls with ``O_NOFOLLOW`` and ``O_DIRECTORY`` (Linux,
macOS, the BSDs), a :class:`Folder` is an open directory descriptor: opening a subfolder,
creating, renaming, stat-ing or deleting a file are relative to it and refuse a symlink at the
moment of use, so a folder swapped for a symlink after it was checked cannot send a write
elsewhere. Elsewhere (Windows) a :class:`Folder` is a path, and every operation first checks,
at the moment of use, that no component between the root and the file is a symlink or a
reparse point (junction). :data:`USE_DESCRIPTORS` says which; tests switch it off to run the
portable path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import LocalPathError, LocalStorageError

__all__ = ["USE_DESCRIPTORS", "Folder", "open_root", "pread", "pwrite", "read_file", "storage_error"]

USE_DESCRIPTORS = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and {os.open, os.stat, os.mkdir, os.rename, os.unlink, os.rmdir} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# No wait on a named pipe, no terminal taken: what sits at a path is only known once it is open.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_REPARSE_POINT = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)


def storage_error(exc: OSError, path: Path | str) -> LocalStorageError | LocalPathError:
    """A clear project error for a failed local operation on ``path``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LocalStorageError(f"no space left on the device while writing {path}")
    if exc.errno == errno.EFBIG:
        return LocalStorageError(f"file size limit exceeded while writing {path}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LocalPathError(f"cannot write {path}: {exc.strerror or 'permission denied'}")
    if exc.errno == errno.ELOOP:
        return LocalPathError(f"{path} is a symbolic link; djarchive does not follow links")
    if exc.errno == errno.ENOTDIR:
        return LocalPathError(f"{path}: a part of this path is a file or a link, not a folder")
    if exc.errno == errno.EISDIR:
        return LocalPathError(f"{path} is a folder where djarchive needs a file")
    if exc.errno == errno.ENAMETOOLONG:
        return LocalPathError(f"{path}: name too long for this file system")
    return LocalStorageError(f"cannot write {path}: {exc.strerror or exc}")


_POSITIONED = threading.Lock()  # serializes seek-then-write where there is no pwrite (Windows)


def pwrite(fd: int, data: memoryview | bytes, position: int) -> int:
    """``os.pwrite`` where the platform has it; a seek and a write under one lock elsewhere."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, position)
    with _POSITIONED:
        os.lseek(fd, position, os.SEEK_SET)
        return os.write(fd, data)


def pread(fd: int, size: int, position: int) -> bytes:
    """``os.pread`` where the platform has it; a seek and a read under one lock elsewhere."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, position)
    with _POSITIONED:
        os.lseek(fd, position, os.SEEK_SET)
        return os.read(fd, size)


def _is_link(status: os.stat_result) -> bool:
    return stat.S_ISLNK(status.st_mode) or bool(getattr(status, "st_file_attributes", 0) & _REPARSE_POINT)


class Folder:
    """An open folder; every name given to its methods is one path component.

    ``path`` is for messages (and the portable implementation); close the folder after use.
    """

    def __init__(self, path: Path, fd: int | None, root: Path | None = None):
        self.path = path
        self._fd = fd
        self._root = root or path

    def __repr__(self) -> str:
        return f"<Folder {self.path}>"

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the descriptor (if any)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- the portable implementation's check ------------------------------------------

    def _checked(self, name: str | None = None) -> Path:
        """The path of ``name`` (or of this folder), after checking, now, that no folder between
        the root and it is a link (the portable implementation only)."""
        current = self._root
        for part in self.path.relative_to(self._root).parts:
            current = current / part
            status = os.lstat(current)
            if _is_link(status) or not stat.S_ISDIR(status.st_mode):
                raise LocalPathError(f"{current} is no longer a folder (a link or a file took its place)")
        return self.path if name is None else self.path / name

    # -- folders -----------------------------------------------------------------------

    def child(self, name: str, *, create: bool = False) -> Folder:
        """The subfolder ``name`` (created when missing and ``create``); a link is refused."""
        path = self.path / name
        try:
            if self._fd is not None:
                flags = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
                try:
                    fd = os.open(name, flags, dir_fd=self._fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # another worker made it meanwhile
                        os.mkdir(name, 0o777, dir_fd=self._fd)
                    fd = os.open(name, flags, dir_fd=self._fd)
                return Folder(path, fd, self._root)
            target = self._checked(name)
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(target)
            status = os.lstat(target)
        except OSError as exc:
            if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and self._is_link(name)):
                raise LocalPathError(f"{path} is a symbolic link; djarchive does not follow links") from None
            if exc.errno == errno.ENOENT and not create:
                raise FileNotFoundError(errno.ENOENT, "no such folder", str(path)) from None
            raise storage_error(exc, path) from None
        if _is_link(status):
            raise LocalPathError(f"{path} is a symbolic link or junction; djarchive does not follow links")
        if not stat.S_ISDIR(status.st_mode):
            raise LocalPathError(f"{path}: a file is where a folder should be")
        return Folder(path, None, self._root)

    def _is_link(self, name: str) -> bool:
        status = self.lstat(name)
        return status is not None and _is_link(status)

    def descend(self, parts: Sequence[str], *, create: bool = False) -> Folder:
        """The folder ``parts`` below this one, each component checked; a new open Folder."""
        current = self
        for part in parts:
            following = current.child(part, create=create)
            if current is not self:
                current.close()
            current = following
        if current is self:
            return Folder(self.path, os.dup(self._fd) if self._fd is not None else None, self._root)
        return current

    def entries(self) -> Iterator[os.DirEntry[str]]:
        """The folder's entries (not followed: ``is_dir()``/``is_file()`` of a link are False
        when asked with ``follow_symlinks=False``)."""
        source: int | Path = os.dup(self._fd) if self._fd is not None else self._checked()
        try:
            with os.scandir(source) as listing:
                yield from listing
        finally:
            if isinstance(source, int):
                os.close(source)

    # -- files -------------------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result | None:
        """The status of ``name`` itself (a link is not followed); None when it does not exist."""
        try:
            if self._fd is not None:
                return os.stat(name, dir_fd=self._fd, follow_symlinks=False)
            return os.lstat(self._checked(name))
        except FileNotFoundError:
            return None

    def lstat_many(self, names: Iterable[str]) -> list[os.stat_result | None]:
        """:meth:`lstat` of each name, in order (one call for a folder's files)."""
        names = list(names)
        if self._fd is not None:
            fd = self._fd
            try:
                return [os.stat(name, dir_fd=fd, follow_symlinks=False) for name in names]
            except FileNotFoundError:
                pass  # some are missing: one at a time
        return [self.lstat(name) for name in names]

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        """A descriptor for the file ``name``; a link at that name is refused (``O_NOFOLLOW``), and
        a named pipe or device there is opened without waiting (no effect on regular files)."""
        flags |= _NOFOLLOW | _CLOEXEC | _BINARY
        try:
            return self._open(name, flags | _NO_WAIT, mode)
        except BlockingIOError:  # a lease held elsewhere (Samba, NFS): a regular file waits for it
            status = self.lstat(name)
            if status is None or not stat.S_ISREG(status.st_mode):
                raise
            return self._open(name, flags, mode)

    def _open(self, name: str, flags: int, mode: int) -> int:
        if self._fd is not None:
            return os.open(name, flags, mode, dir_fd=self._fd)
        target = self._checked(name)
        status = self.lstat(name)
        if status is not None and _is_link(status):
            raise OSError(errno.ELOOP, "is a symbolic link", str(target))
        return os.open(target, flags, mode)

    def create(self, name: str, mode: int = 0o666) -> int:
        """Create ``name`` (it must not exist) for reading and writing; return its descriptor."""
        return self.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)

    def read_bytes(self, name: str, limit: int) -> bytes:
        """The content of the small file ``name``; refuse more than ``limit`` bytes or a link."""
        return _read_regular(self.open(name, os.O_RDONLY), limit, self.path / name)[0]

    def write_atomically(self, name: str, data: bytes, temporary: str | None = None) -> None:
        """Replace ``name`` with ``data``: written to a new file beside it (``temporary``, or a
        fresh name), synced, then renamed over it; neither name may be a link."""
        temporary = temporary or f".{name}.{secrets.token_hex(6)}.tmp"
        fd = self.create(temporary)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.rename(temporary, self, name)
        except BaseException:
            self.unlink(temporary, missing_ok=True)
            raise

    def rename(self, name: str, to: Folder, new_name: str) -> None:
        """Move ``name`` to ``to``/``new_name``, replacing what is there (atomically)."""
        if self._fd is not None and to._fd is not None:
            os.rename(name, new_name, src_dir_fd=self._fd, dst_dir_fd=to._fd)
            return
        os.replace(self._checked(name), to._checked(new_name))

    def link(self, name: str, to: Folder, new_name: str) -> None:
        """A hard link ``to``/``new_name`` to the file ``name`` (a link at ``name`` is not followed)."""
        if self._fd is not None and to._fd is not None:
            os.link(name, new_name, src_dir_fd=self._fd, dst_dir_fd=to._fd, follow_symlinks=False)
            return
        os.link(self._checked(name), to._checked(new_name), follow_symlinks=False)

    def unlink(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete the file (or link) ``name``."""
        try:
            if self._fd is not None:
                os.unlink(name, dir_fd=self._fd)
            else:
                os.unlink(self._checked(name))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self, name: str) -> None:
        """Delete the empty subfolder ``name``."""
        if self._fd is not None:
            os.rmdir(name, dir_fd=self._fd)
        else:
            os.rmdir(self._checked(name))

    def remove_tree(self, name: str) -> None:
        """Delete the subfolder ``name`` and everything in it, never following a link."""
        try:
            folder = self.child(name)
        except FileNotFoundError:
            return
        with folder:
            for entry in list(folder.entries()):
                if entry.is_dir(follow_symlinks=False):
                    folder.remove_tree(entry.name)
                else:
                    folder.unlink(entry.name, missing_ok=True)
        self.rmdir(name)


def read_file(path: str | os.PathLike[str], limit: int) -> tuple[bytes, os.stat_result]:
    """The content and status of the small regular file at ``path``, a file the user named (links
    followed), such as a configuration or key file. A named pipe, device or folder is refused
    (OSError) without waiting on it, as is a file of more than ``limit`` bytes."""
    flags = os.O_RDONLY | _CLOEXEC | _BINARY
    try:
        fd = os.open(path, flags | _NO_WAIT)
    except BlockingIOError:  # a lease held elsewhere (Samba, NFS): a regular file waits for it
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise
        fd = os.open(path, flags)
    return _read_regular(fd, limit, path)


def _read_regular(fd: int, limit: int, path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """Read all of ``fd`` (closed after) when it is a regular file of at most ``limit`` bytes."""
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EISDIR, "not a regular file", os.fspath(path))
        chunks: list[bytes] = []
        wanted = 0 if status.st_size > limit else limit + 1  # one byte more: the file may have grown
        while wanted and (chunk := os.read(fd, min(wanted, 1024 * 1024))):
            chunks.append(chunk)
            wanted -= len(chunk)
        data = b"".join(chunks)
        if status.st_size > limit or len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
        return data, status
    finally:
        os.close(fd)


def open_root(path: str | os.PathLike[str], *, create: bool = False) -> Folder:
    """The folder at ``path`` (links in ``path`` itself are the user's choice and followed)."""
    folder = Path(path)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        if not USE_DESCRIPTORS:
            if not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
            root = folder.resolve()
            return Folder(root, None, root)
        fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        raise
    except (NotADirectoryError, FileExistsError):  # a file where the folder, or one above it, is
        raise LocalPathError(f"{str(folder)!r} is not a folder") from None
    except OSError as exc:
        raise storage_error(exc, folder) from None
    return Folder(folder.resolve(), fd)

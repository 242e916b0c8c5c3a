"""A local copy of a revision (TARGET): safe paths, the lock, the record of verified files.

djarchive keeps its own files under ``TARGET/.djarchive/``: ``lock`` (held while a
download writes) and ``verified.json`` (size, mtime and sha256 of every file it has
verified, so a re-run does not hash the whole dataset again). Temporary downloads
live beside their destination as ``.djarchive-<random>.part`` and are swept by the
next run.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from djarchive_common.errors import LocalPathError, LocalStorageError, LockedError, NotFoundError
from djarchive_common.manifest import Entry

__all__ = [
    "STATE_DIR",
    "LocalCopy",
    "check_not_reserved",
    "storage_error",
]

STATE_DIR = ".djarchive"
STATE_FILE = "verified.json"
PART_PREFIX = ".djarchive-"
PART_SUFFIX = ".part"
log = logging.getLogger("djarchive_client")


def check_not_reserved(subpaths: Iterable[str]) -> None:
    """Refuse manifest paths inside djarchive's own folder of TARGET (checked before TARGET exists)."""
    for subpath in subpaths:
        if subpath.split("/", 1)[0] == STATE_DIR:
            raise LocalPathError(
                f"manifest path {subpath!r} collides with djarchive's own {STATE_DIR} folder"
            )


def storage_error(exc: OSError, path: Path | str) -> LocalStorageError | LocalPathError:
    """A clear project error for a failed local write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LocalStorageError(f"no space left on the device while writing {path}")
    if exc.errno == errno.EFBIG:
        return LocalStorageError(f"file size limit exceeded while writing {path}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LocalPathError(f"cannot write {path}: {exc.strerror}")
    return LocalStorageError(f"cannot write {path}: {exc.strerror or exc}")


class LocalCopy:
    """TARGET on disk: where each manifest path goes, and what is already verified there."""

    def __init__(self, target: str | os.PathLike[str], *, create: bool = False):
        path = Path(target).expanduser()
        if not path.exists():
            if not create:
                raise NotFoundError(f"target directory {str(path)!r} does not exist")
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, path) from None
        if not path.is_dir():
            raise LocalPathError(f"target {str(path)!r} is not a directory")
        self.path = path
        self.root = path.resolve()
        self.state_dir = self.root / STATE_DIR
        self._record: dict[str, list] = {}
        self._record_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._dirty = False
        self._run = secrets.token_hex(4)  # temporary names: this run's prefix and a counter
        self._numbers = itertools.count()
        self._safe_folders: set[Path] = set()

    def __repr__(self) -> str:
        return f"<LocalCopy {self.path}>"

    # -- paths -------------------------------------------------------------------------

    def destination(self, subpath: str) -> Path:
        """Where ``subpath`` goes, refusing any path that would land outside TARGET."""
        check_not_reserved([subpath])
        path = self.root.joinpath(*subpath.split("/"))
        parent = path.parent
        if parent in self._safe_folders:
            return path
        # Walk up to the deepest existing ancestor; resolving it follows any symlink on the way.
        existing = parent
        while not existing.exists() and existing != self.root:
            if existing.is_symlink():  # a dangling link could be made to point anywhere
                raise LocalPathError(f"{existing} is a dangling symlink; refusing to write through it")
            existing = existing.parent
        resolved = existing.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise LocalPathError(
                f"{existing} leads outside the target ({resolved}); refusing to write {subpath!r} there"
            )
        self._safe_folders.add(parent)
        return path

    def check_destinations(self, entries: Iterable[Entry]) -> dict[str, Path]:
        """Every entry's destination, checked before anything is written."""
        return {entry.subpath: self.destination(entry.subpath) for entry in entries}

    def part_path(self, destination: Path) -> Path:
        """A fresh temporary name beside ``destination`` (same folder, so rename is atomic)."""
        return destination.with_name(f"{PART_PREFIX}{self._run}-{next(self._numbers)}{PART_SUFFIX}")

    @staticmethod
    def is_own_file(name: str) -> bool:
        """Whether a file name is one of djarchive's temporary files."""
        return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)

    def sweep_parts(self, folders: Iterable[Path]) -> int:
        """Delete temporary files a killed run left in ``folders``; return how many."""
        removed = 0
        for folder in set(folders):
            try:
                with os.scandir(folder) as listing:
                    for item in listing:
                        if self.is_own_file(item.name) and item.is_file(follow_symlinks=False):
                            os.unlink(item.path)
                            removed += 1
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
        if removed:
            log.info("removed %d temporary files left by an interrupted download", removed)
        return removed

    def walk(self) -> Iterator[str]:
        """Every regular file or symlink under TARGET as a posix subpath, without djarchive's own."""
        for folder, dirs, files in os.walk(self.root):
            relative = Path(folder).relative_to(self.root)
            if relative == Path("."):
                dirs[:] = [name for name in dirs if name != STATE_DIR]
            for name in files:
                if not self.is_own_file(name):
                    yield (relative / name).as_posix() if relative != Path(".") else name

    # -- the lock ----------------------------------------------------------------------

    def lock(self) -> None:
        """Take the target's lock, or raise LockedError when another process holds it."""
        import fcntl

        self._ensure_state_dir()
        path = self.state_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"another djarchive process (pid {holder}) is downloading into {self.path}; "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LocalCopy:
        self.lock()
        self.load_record()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.save_record()
        finally:
            self.unlock()

    def _ensure_state_dir(self) -> None:
        if self.state_dir.is_symlink() or (self.state_dir.exists() and not self.state_dir.is_dir()):
            raise LocalPathError(f"{self.state_dir} is not a directory")
        try:
            self.state_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.state_dir) from None

    # -- the record of verified files --------------------------------------------------

    def load_record(self) -> None:
        """Read what earlier runs verified; a damaged record is ignored (files get re-hashed)."""
        try:
            data = json.loads((self.state_dir / STATE_FILE).read_text(encoding="utf-8"))
            files = data["files"]
            if data.get("version") != 1 or not isinstance(files, dict):
                raise ValueError("unknown record version")
            self._record = {
                key: value for key, value in files.items() if isinstance(value, list) and len(value) == 3
            }
        except FileNotFoundError:
            self._record = {}
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("ignoring the damaged record of verified files in %s (%s)", self.state_dir, exc)
            self._record = {}

    def save_record(self) -> None:
        """Write the record atomically, if it changed."""
        with self._record_lock:
            if not self._dirty:
                return
            text = json.dumps({"version": 1, "files": self._record})
            self._dirty = False
        path = self.state_dir / STATE_FILE
        temporary = path.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        try:
            self._ensure_state_dir()
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
        except (OSError, LocalPathError, LocalStorageError) as exc:
            temporary.unlink(missing_ok=True)
            log.warning("could not save the record of verified files: %s", exc)

    def is_verified(self, entry: Entry, path: Path) -> bool:
        """Whether ``path`` is a regular file the record says matches ``entry`` (no hashing)."""
        with self._record_lock:
            recorded = self._record.get(entry.subpath)
        if not recorded or recorded[2] != entry.sha256:
            return False
        try:
            status = path.lstat()
        except OSError:
            return False
        return (
            stat.S_ISREG(status.st_mode)
            and recorded[0] == status.st_size == entry.size
            and recorded[1] == status.st_mtime_ns
        )

    def remember(self, entry: Entry, path: Path) -> None:
        """Record that ``path`` was just verified to match ``entry``."""
        status = path.lstat()
        with self._record_lock:
            self._record[entry.subpath] = [status.st_size, status.st_mtime_ns, entry.sha256]
            self._dirty = True

    def forget(self, subpath: str) -> None:
        """Drop a record entry (the file is being replaced)."""
        with self._record_lock:
            if self._record.pop(subpath, None) is not None:
                self._dirty = True

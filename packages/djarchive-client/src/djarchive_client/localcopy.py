"""A local copy of a revision (TARGET): where each file goes, the lock, temporary files, and the
record of verified files.

Every read and write inside TARGET goes through :mod:`djarchive_common.localfs`: relative to an
open folder, checked at the moment of use, never through a symbolic link. djarchive keeps its
own files under ``TARGET/.djarchive/`` (a name no manifest may use): ``lock`` (held while a
download writes), ``verified.bin`` (size, mtime and sha256 of every file it has verified, so a
re-run does not hash the dataset again) and ``tmp/<run>/`` (temporary downloads, renamed into
place once verified; a later run deletes what a killed one left).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import re
import secrets
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from djarchive_common.errors import IntegrityError, LocalPathError, LockedError, NotFoundError
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.localfs import Folder, open_root, pread, pwrite, storage_error
from djarchive_common.manifest import Entry, Manifest, subpaths_of
from djarchive_common.transfer import BUFFER_SIZE, Progress, hash_jobs, run_parallel

from .receipt import Receipt, read_receipt, stored_manifests, write_receipt
from .record import Record

__all__ = ["STATE_DIR", "Digest", "LocalCopy", "storage_error"]

STATE_DIR = STATE_FOLDER
RECORD = "verified.bin"  # see djarchive_client.record; earlier versions wrote verified.json
LOCK = "lock"
SHARED = "shards"  # what the target's lock file says while shard downloads share it
TEMPORARY = "tmp"
MAX_RECORD_BYTES = 512 * 1024 * 1024
HASH_BATCH_BYTES = 8 * 1024 * 1024  # files hashed in one go after opening their folder once
HASH_BATCH_FILES = 256
# every record file: this one, the shards', and the JSON ones of earlier versions
_OTHER_RECORDS = re.compile(r"verified(?:\.[0-9]+-of-[0-9]+)?\.(?:bin|json)")
log = logging.getLogger("djarchive_client")


class Digest(NamedTuple):
    """What hashing a file found: its size and sha256 (empty when it was not read), and its
    status when it was opened."""

    size: int
    sha256: str
    status: os.stat_result


def target_path(target: str | os.PathLike[str]) -> Path:
    """TARGET as a path, with ``~`` expanded; an empty name is refused (an unset shell variable)."""
    text = os.fspath(target)
    if not str(text).strip():
        raise LocalPathError("the target folder is empty: name the folder to download into")
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # ~user of a user that does not exist
        raise LocalPathError(f"cannot use the target {str(text)!r}: {exc}") from None


class LocalCopy:
    """TARGET on disk: where each manifest path goes, and what is already verified there."""

    def __init__(
        self, target: str | os.PathLike[str], *, create: bool = False, shard: tuple[int, int] | None = None
    ):
        path = target_path(target)
        try:
            exists = path.is_dir() or path.exists()
        except OSError as exc:
            raise storage_error(exc, path) from None
        if not exists and not create:
            raise NotFoundError(f"target directory {str(path)!r} does not exist")
        try:
            self.folder = open_root(path, create=create)
        except FileNotFoundError:
            raise NotFoundError(f"target directory {str(path)!r} does not exist") from None
        self.path = path
        self.root = self.folder.path
        self._record = Record()
        self._record_lock = threading.Lock()
        self._dirty = False
        self.shard = shard
        self._lock_fds: list[int] = []
        self._merged: list[str] = []
        self._state: Folder | None = None
        self._temporary: Folder | None = None
        self._run = secrets.token_hex(6)
        self._numbers = itertools.count()

    def __repr__(self) -> str:
        return f"<LocalCopy {self.path}>"

    def close(self) -> None:
        """Release the lock and every open folder."""
        self.unlock()
        for folder in (self._temporary, self._state, self.folder):
            if folder is not None:
                folder.close()
        self._temporary = self._state = None

    # -- paths -------------------------------------------------------------------------

    def destination(self, subpath: str) -> Path:
        """Where ``subpath`` goes (for messages: every operation goes through folders)."""
        return self.root.joinpath(*subpath.split("/"))

    def _parent(self, subpath: str, *, create: bool) -> tuple[Folder, str]:
        """The open folder that holds ``subpath`` (created when ``create``), and its file name."""
        *folders, name = subpath.split("/")
        return self.folder.descend(folders, create=create), name

    def check_destinations(self, entries: Iterable[Entry]) -> None:
        """Refuse, before anything is written, a link on the way to any entry and two folders that
        are one (a bind mount): what exists of each folder is opened, never followed. A file where
        a folder should be fails only the files below it, later."""
        seen: dict[tuple[int, int], str] = {}
        for parent in sorted({subpath.rpartition("/")[0] for subpath in subpaths_of(entries)}):
            parts = parent.split("/") if parent else []
            current = self.folder
            try:
                for depth, part in enumerate(parts):
                    status = current.lstat(part)
                    if status is None or not (stat.S_ISDIR(status.st_mode) or stat.S_ISLNK(status.st_mode)):
                        break
                    following = current.child(part)  # refuses a link
                    if current is not self.folder:
                        current.close()
                    current = following
                    folder = "/".join(parts[: depth + 1])
                    first = seen.setdefault((status.st_dev, status.st_ino), folder)
                    if first != folder:
                        raise LocalPathError(
                            f"{self.destination(first)} and {self.destination(folder)} are the same folder "
                            "(a bind mount or similar); refusing to write through either"
                        )
            finally:
                if current is not self.folder:
                    current.close()

    # -- reading what is there ---------------------------------------------------------

    def _folder_of(self, parent: str) -> Folder:
        """The open folder ``parent`` (a posix subpath, "" for TARGET), each component checked."""
        return self.folder.descend(parent.split("/") if parent else [])

    def stats(self, subpaths: Iterable[str]) -> dict[str, os.stat_result | str | None]:
        """The status of each path itself (not followed), one folder opened once for all its
        files: None for a missing path, a reason (text) for one that cannot be used: behind a
        link or a file where a folder should be, or one file reached by two paths (a mount)."""
        found: dict[str, os.stat_result | str | None] = {}
        identities: dict[tuple[int, int], str] = {}
        for parent, members in _by_folder(subpaths).items():
            try:
                folder = self._folder_of(parent)
            except FileNotFoundError:
                found.update(dict.fromkeys(members))
                continue
            except LocalPathError as error:
                found.update(dict.fromkeys(members, str(error)))
                continue
            with folder:
                statuses = folder.lstat_many(subpath.rpartition("/")[2] for subpath in members)
            found.update(zip(members, statuses, strict=True))
            for subpath, status in zip(members, statuses, strict=True):
                if status is None or status.st_nlink > 1 or not stat.S_ISREG(status.st_mode):
                    continue  # hard links are separate names: placing a file replaces only its own
                twin = identities.setdefault((status.st_dev, status.st_ino), subpath)
                if twin != subpath:
                    found[subpath] = found[twin] = f"{twin} and {subpath} are one file on this file system"
        return found

    def regular_files(self, subpaths: Iterable[str]) -> set[str]:
        """Which of ``subpaths`` are regular files (not links, folders, pipes or devices), told by
        listing each folder once: no call per file where the file system gives each entry's type."""
        found: set[str] = set()
        for parent, members in _by_folder(subpaths).items():
            try:
                with self._folder_of(parent) as folder:
                    regular = {item.name for item in folder.entries() if item.is_file(follow_symlinks=False)}
            except (OSError, LocalPathError):
                continue  # missing, behind a link, or a file where a folder should be: none there
            found.update(subpath for subpath in members if subpath.rpartition("/")[2] in regular)
        return found

    def open_file(self, subpath: str) -> int:
        """A descriptor to read the file ``subpath``, reached without following any link."""
        folder, name = self._parent(subpath, create=False)
        with folder:
            return folder.open(name, os.O_RDONLY)

    def hash_many(
        self,
        sizes: Mapping[str, int],
        *,
        jobs: int,
        progress: bool = False,
        description: str = "checking",
        same_size: bool = False,
    ) -> Iterator[tuple[str, Digest | None, BaseException | None]]:
        """Size, sha256 and status of every file of ``sizes`` (subpath -> expected size), as
        (subpath, digest, error); with ``same_size``, a file of another size is not read (its
        digest has its size and status and an empty sha256). Files are taken folder by folder:
        each folder is opened once for a batch of its files (small files share a batch, a large
        one has its own), and batches run in parallel, unless the files are small on average
        (then one thread is faster)."""
        jobs = hash_jobs(jobs, sum(sizes.values()), len(sizes))
        batches: list[tuple[str, list[str]]] = []
        for parent, members in _by_folder(sizes).items():
            batch: list[str] = []
            weight = 0
            for subpath in members:
                batch.append(subpath)
                weight += sizes[subpath]
                if weight >= HASH_BATCH_BYTES or len(batch) >= HASH_BATCH_FILES:
                    batches.append((parent, batch))
                    batch, weight = [], 0
            if batch:
                batches.append((parent, batch))
        with Progress(
            sum(sizes.values()), len(sizes), enabled=progress and bool(sizes), description=description
        ) as bar:

            def work(
                batch: tuple[str, list[str]],
            ) -> list[tuple[str, Digest | None, BaseException | None]]:
                parent, members = batch
                done: list[tuple[str, Digest | None, BaseException | None]] = []
                try:
                    folder = self._folder_of(parent)
                except (OSError, LocalPathError) as error:
                    return [(subpath, None, error) for subpath in members]
                with folder:
                    for subpath in members:
                        try:
                            fd = folder.open(subpath.rpartition("/")[2], os.O_RDONLY)
                            try:
                                status = os.fstat(fd)
                                if not stat.S_ISREG(status.st_mode):
                                    raise OSError(errno.EISDIR, "not a regular file", subpath)
                                if same_size and status.st_size != sizes[subpath]:
                                    result = Digest(status.st_size, "", status)  # not read
                                else:
                                    result = Digest(*_hash_fd(fd, status.st_size), status)
                            finally:
                                os.close(fd)
                        except OSError as error:
                            done.append((subpath, None, error))
                            continue
                        done.append((subpath, result, None))
                checked = [(subpath, result) for subpath, result, _ in done if result is not None]
                # a batch at a time (under 8 MB); a file not read counts as the size it should have
                bar.advance(
                    sum(result.size if result.sha256 else sizes[subpath] for subpath, result in checked)
                )
                bar.file_done(len(checked))
                return done

            for unit, results, error in run_parallel(work, batches, jobs):
                if error is not None:
                    yield from ((subpath, None, error) for subpath in unit[1])
                else:
                    yield from results or []

    def walk(self) -> Iterator[str]:
        """Every file or link under TARGET as a posix subpath, djarchive's own folder left out;
        linked folders are listed, never entered."""

        def below(folder: Folder, prefix: str) -> Iterator[str]:
            for item in sorted(folder.entries(), key=lambda item: item.name):
                if prefix == "" and item.name == STATE_DIR:
                    continue
                if item.is_dir(follow_symlinks=False):
                    try:
                        child = folder.child(item.name)
                    except (FileNotFoundError, LocalPathError):
                        continue
                    with child:
                        yield from below(child, f"{prefix}{item.name}/")
                else:
                    yield prefix + item.name

        yield from below(self.folder, "")

    # -- writing: temporary files, then into place -------------------------------------

    def new_part(self) -> tuple[str, int]:
        """A new temporary file in this run's folder: its name and a read-write descriptor."""
        if self._temporary is None:
            raise RuntimeError("the local copy is not locked")
        name = f"{next(self._numbers)}.part"
        try:
            return name, self._temporary.create(name)
        except OSError as exc:
            raise storage_error(exc, self._temporary.path / name) from None

    def place(self, part: str, subpath: str) -> None:
        """Rename the temporary file ``part`` to ``subpath``, its folders created as needed; every
        folder on the way is opened now, and a link anywhere refuses the move."""
        try:
            folder, name = self._parent(subpath, create=True)
            with folder:
                self._temporary.rename(part, folder, name)  # type: ignore[union-attr]
        except OSError as exc:
            raise storage_error(exc, self.destination(subpath)) from None

    def copy_in(
        self, source: LocalCopy, subpath: str, entry: Entry, *, link: bool = False, trust: bool = True
    ) -> tuple[str, os.stat_result]:
        """Stage a verified copy of ``source``'s file ``subpath`` as the content of ``entry``: a
        new temporary file (a reflink where the file system can, else a copy; a hard link when
        ``link``), checked for ``entry``'s size and sha256 before it is returned; place it with
        :meth:`place`. Return the temporary file's name and status. When ``trust`` and
        ``source``'s record vouches for the file (unchanged since it was verified there, and
        still so after the copy), the check is the record's and nothing is hashed again."""
        fd_in = source.open_file(subpath)
        part: str | None = None
        fd_out = -1
        try:
            before = os.fstat(fd_in)
            vouched = trust and source.is_verified(Entry(subpath, entry.size, entry.sha256), before)
            if link:
                if not vouched:
                    size, sha256 = _hash_fd(fd_in)
                    _check_copy(entry, size, sha256, source.destination(subpath))
                part = self._link_part(source, subpath)
                return part, self._temporary.lstat(part)  # type: ignore[union-attr,return-value]
            part, fd_out = self.new_part()
            _copy_data(fd_in, fd_out, entry.size)
            copied = os.fstat(fd_out)
            if vouched and _unchanged(before, os.fstat(fd_in)) and copied.st_size == entry.size:
                return part, copied
            size, sha256 = _hash_fd(fd_out)
            _check_copy(entry, size, sha256, source.destination(subpath))
            return part, os.fstat(fd_out)
        except BaseException:
            if part is not None:
                self.discard(part)
            raise
        finally:
            os.close(fd_in)
            if fd_out >= 0:
                os.close(fd_out)

    def move(self, old: str, new: str) -> os.stat_result:
        """Rename the file ``old`` to ``new`` inside TARGET (folders on both ways opened, links
        refused); return its status."""
        try:
            source, old_name = self._parent(old, create=False)
            with source:
                target, new_name = self._parent(new, create=True)
                with target:
                    source.rename(old_name, target, new_name)
                    status = target.lstat(new_name)
        except OSError as exc:
            raise storage_error(exc, self.destination(new)) from None
        if status is None:
            raise LocalPathError(f"{self.destination(new)} vanished as it was moved there")
        return status

    def remove(self, subpath: str) -> None:
        """Delete the file ``subpath`` and the folders it leaves empty (TARGET itself stays)."""
        parts = subpath.split("/")
        try:
            folder, name = self._parent(subpath, create=False)
            with folder:
                folder.unlink(name, missing_ok=True)
            for depth in range(len(parts) - 1, 0, -1):
                with self.folder.descend(parts[: depth - 1]) as parent:
                    parent.rmdir(parts[depth - 1])
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise storage_error(exc, self.destination(subpath)) from None

    def _link_part(self, source: LocalCopy, subpath: str) -> str:
        """A hard link to ``source``'s file in this run's temporary folder."""
        name = f"{next(self._numbers)}.part"
        folder, file_name = source._parent(subpath, create=False)
        with folder:
            try:
                folder.link(file_name, self._temporary, name)  # type: ignore[arg-type]
            except OSError as exc:
                raise storage_error(exc, self.root / STATE_DIR / TEMPORARY) from None
        return name

    def discard(self, part: str) -> None:
        """Delete a temporary file."""
        if self._temporary is not None:
            try:
                self._temporary.unlink(part, missing_ok=True)
            except OSError as exc:
                log.info("could not delete the temporary file %s: %s", part, exc)

    # -- the lock ----------------------------------------------------------------------

    def _state_folder(self) -> Folder:
        if self._state is None:
            try:
                self._state = self.folder.child(STATE_DIR, create=True)
            except OSError as exc:
                raise storage_error(exc, self.root / STATE_DIR) from None
        return self._state

    def _lock_file(self, name: str, *, shared: bool) -> int:
        """An open, locked lock file in ``.djarchive`` (its holder's pid in it unless shared)."""
        state = self._state_folder()
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
                what = f"downloading shard {self._shard_text} of" if name != LOCK else "downloading into"
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

    @property
    def _shard_text(self) -> str:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else ""

    def lock(self) -> None:
        """Take the target's lock (and this run's temporary folder), or raise LockedError when
        another process holds it. A plain run holds the target alone and deletes what dead runs
        left in the temporary folder; a shard run shares the target with the other shards (a
        shared lock, where the platform has one) and holds its own shard alone."""
        shared = self.shard is not None
        self._lock_fds.append(self._lock_file(LOCK, shared=shared))
        try:
            if self.shard is not None:
                self._lock_fds.append(
                    self._lock_file(f"shard-{self.shard[0]}-of-{self.shard[1]}.lock", shared=False)
                )
            self._open_temporary(self._state_folder(), sweep=not shared)
        except BaseException:
            self.unlock()
            raise

    def _open_temporary(self, state: Folder, *, sweep: bool) -> None:
        """This run's temporary folder; with ``sweep``, what earlier (dead) runs left is deleted first."""
        try:
            with state.child(TEMPORARY, create=True) as temporary:
                stale = list(temporary.entries()) if sweep else []
                for item in stale:
                    if item.is_dir(follow_symlinks=False):
                        temporary.remove_tree(item.name)
                    else:
                        temporary.unlink(item.name, missing_ok=True)
                if stale:
                    log.info("removed temporary files left by %d interrupted downloads", len(stale))
                self._temporary = temporary.child(self._run, create=True)
        except OSError as exc:
            raise storage_error(exc, state.path / TEMPORARY) from None

    def unlock(self) -> None:
        """Delete this run's temporary folder and release the lock."""
        if self._temporary is not None and self._state is not None:
            try:
                with self._state.child(TEMPORARY) as temporary:
                    self._temporary.close()
                    self._temporary = None
                    temporary.remove_tree(self._run)
            except OSError as exc:
                log.info("could not delete this run's temporary folder: %s", exc)
        while self._lock_fds:
            os.close(self._lock_fds.pop())

    def __enter__(self) -> LocalCopy:
        self.lock()
        self.load_record()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.save_record()
        finally:
            self.unlock()

    # -- the receipt ------------------------------------------------------------------

    def receipt(self) -> Receipt | None:
        """What TARGET's receipt says it holds (see :mod:`djarchive_client.receipt`), or None."""
        try:
            with self.folder.child(STATE_DIR) as state:
                return read_receipt(state)
        except FileNotFoundError:
            return None

    def stored_manifests(self, receipt: Receipt) -> tuple[Manifest, Manifest | None]:
        """The manifest TARGET's receipt stored, and the previous one during an upgrade."""
        with self.folder.child(STATE_DIR) as state:
            return stored_manifests(state, receipt)

    def write_receipt(self, receipt: Receipt, manifest: Manifest, previous: Manifest | None = None) -> None:
        """Record what TARGET now holds (the lock must be held)."""
        try:
            write_receipt(self._state_folder(), receipt, manifest, previous)
        except OSError as exc:
            raise storage_error(exc, self.root / STATE_DIR) from None

    # -- the record of verified files --------------------------------------------------

    @property
    def _record_name(self) -> str:
        """Where this run saves the record: shards each their own file, merged by a plain run."""
        return f"verified.{self.shard[0]}-of-{self.shard[1]}.bin" if self.shard else RECORD

    def load_record(self) -> None:
        """Read what earlier runs verified (shards' records too); a damaged record is ignored
        (its files get hashed again)."""
        self._record = Record()
        try:
            with self.folder.child(STATE_DIR) as state:
                names = sorted(  # older JSON records first, this one last: the later word wins
                    (item.name for item in state.entries() if _OTHER_RECORDS.fullmatch(item.name)),
                    key=lambda name: (name.endswith(".bin"), name == RECORD, name),
                )
                for name in names:
                    self._record.update(self._read_record(state, name))
                self._merged = [name for name in names if name != RECORD]
        except FileNotFoundError:
            pass
        except (OSError, LocalPathError) as exc:
            log.warning("ignoring the record of verified files in %s (%s)", self.root / STATE_DIR, exc)
        if self.shard is None and self._merged:
            self._dirty = True  # a plain run folds the shards' records into one

    def _read_record(self, state: Folder, name: str) -> Record:
        try:
            return Record.from_bytes(state.read_bytes(name, MAX_RECORD_BYTES))
        except (ValueError, OSError, LocalPathError) as exc:
            log.warning(
                "ignoring the damaged record of verified files %s (%s)", self.root / STATE_DIR / name, exc
            )
            return Record()

    def save_record(self) -> None:
        """Write the record atomically, if it changed (a plain run then drops the shards' records)."""
        with self._record_lock:
            if not self._dirty:
                return
            data = self._record.to_bytes()
            self._dirty = False
        name = self._record_name
        try:
            state = self._state_folder()
            state.write_atomically(name, data, f"{name}.{self._run}.tmp")
            if self.shard is None and self._lock_fds:  # only while holding the target alone
                for merged in self._merged:
                    state.unlink(merged, missing_ok=True)
                self._merged = []
        except (OSError, LocalPathError) as exc:
            log.warning("could not save the record of verified files: %s", exc)

    @property
    def has_record(self) -> bool:
        """Whether the record of verified files holds anything (else nothing is vouched for)."""
        return bool(self._record)

    def verified_mask(
        self, manifest: Manifest, statuses: Sequence[os.stat_result | str | None]
    ) -> list[bool]:
        """For each entry of ``manifest``, whether its file (with that status) is one the record
        vouches for (:meth:`is_verified`). A record of this very manifest, the no-op re-run's
        case, is compared in a few C-level passes."""
        paths, sizes, digests = manifest.columns
        mtimes = self._record.mtimes_if_of(paths, sizes, digests)
        if mtimes is None:
            return list(map(self.is_verified, manifest, statuses)) if self._record else [False] * len(paths)
        return [
            type(status) is os.stat_result
            and status.st_size == size
            and status.st_mtime_ns == mtime
            and stat.S_ISREG(status.st_mode)
            for status, size, mtime in zip(statuses, sizes, mtimes, strict=True)
        ]

    def is_verified(self, entry: Entry, status: os.stat_result | str | None) -> bool:
        """Whether ``status`` is of a regular file the record says matches ``entry`` (no hashing)."""
        if not isinstance(status, os.stat_result):
            return False
        recorded = self._record.get(entry.subpath)  # reads only: no lock needed
        return (
            recorded is not None
            and recorded[2] == entry.sha256
            and recorded[0] == status.st_size == entry.size
            and recorded[1] == status.st_mtime_ns
            and stat.S_ISREG(status.st_mode)
        )

    def remember(self, entry: Entry, status: os.stat_result) -> None:
        """Record that the file with ``status`` was just verified to match ``entry``."""
        self.remember_all([(entry, status)])

    def remember_all(self, verified: Iterable[tuple[Entry, os.stat_result]]) -> None:
        """:meth:`remember` each (entry, status)."""
        with self._record_lock:
            for entry, status in verified:
                self._record.set(entry.subpath, (status.st_size, status.st_mtime_ns, entry.sha256))
                self._dirty = True

    def forget(self, subpath: str) -> None:
        """Drop a record entry (the file is being replaced)."""
        with self._record_lock:
            if self._record.discard(subpath):
                self._dirty = True


def _by_folder(subpaths: Iterable[str]) -> dict[str, list[str]]:
    """The subpaths grouped by the folder that holds them (posix, "" for TARGET itself)."""
    grouped: dict[str, list[str]] = {}
    for subpath in subpaths:
        grouped.setdefault(subpath.rpartition("/")[0], []).append(subpath)
    return grouped


def _hash_fd(fd: int, known_size: int = -1) -> tuple[int, str]:
    """Size and sha256 of an open file, from its start. ``known_size``, the size fstat gave:
    a short read that reaches it is the end (one read for a small file, not two)."""
    digest, position = hashlib.sha256(), 0
    while chunk := pread(fd, BUFFER_SIZE, position):
        digest.update(chunk)
        position += len(chunk)
        if len(chunk) < BUFFER_SIZE and position >= known_size >= 0:
            break
    return position, digest.hexdigest()


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


def _check_copy(entry: Entry, size: int, sha256: str, source: Path) -> None:
    if (size, sha256) != (entry.size, entry.sha256):
        raise IntegrityError(
            f"{source} is not the content {entry.subpath} needs (it changed since it was recorded)"
        )


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

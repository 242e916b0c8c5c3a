"""The files of TARGET: where each manifest path goes, what is there, and how files get there.

Every read and write goes through :mod:`djarchive_common.localfs`: relative to an open folder,
checked at the moment of use, never through a symbolic link. Reading: the status of many paths
(a folder opened once for all its files), which are regular files, their sha256 (:func:`hash_file`,
folder by folder, in parallel batches). Writing: temporary files in this run's folder
``TARGET/.djarchive/tmp/<run>/`` (what dead runs left there is deleted by the next plain run),
renamed into place once verified; files moved inside TARGET, linked in from other copies
(:mod:`djarchive_client.reuse` checks what is copied or linked in), removed.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from djarchive_common.errors import LocalPathError
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.localfs import Folder, pread, storage_error
from djarchive_common.manifest import Entry, subpaths_of
from djarchive_common.transfer import BUFFER_SIZE, Progress, hash_jobs, run_parallel

__all__ = ["Digest", "TargetFiles", "hash_file", "target_path"]

TEMPORARY = "tmp"
HASH_BATCH_BYTES = 8 * 1024 * 1024  # files hashed in one go after opening their folder once
HASH_BATCH_FILES = 256
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


def hash_file(fd: int, known_size: int = -1) -> tuple[int, str]:
    """Size and sha256 of an open file, from its start: the one way a local file is hashed.
    ``known_size``, the size fstat gave: a short read that reaches it is the end (one read for a
    small file, not two)."""
    digest, position = hashlib.sha256(), 0
    while chunk := pread(fd, BUFFER_SIZE, position):
        digest.update(chunk)
        position += len(chunk)
        if len(chunk) < BUFFER_SIZE and position >= known_size >= 0:
            break
    return position, digest.hexdigest()


class TargetFiles:
    """The files under the open folder TARGET; writing needs this run's temporary folder
    (:meth:`open_run`, under the target's lock)."""

    def __init__(self, folder: Folder, run: str):
        self.folder = folder
        self.root = folder.path
        self.run = run
        self._temporary: Folder | None = None
        self._private: str | None = None  # the name of this run's own folder in TARGET, if it has one
        self._numbers = itertools.count()

    # -- paths -------------------------------------------------------------------------

    def destination(self, subpath: str) -> Path:
        """Where ``subpath`` goes (for messages: every operation goes through folders)."""
        return self.root.joinpath(*subpath.split("/"))

    def _parent(self, subpath: str, *, create: bool) -> tuple[Folder, str]:
        """The open folder that holds ``subpath`` (created when ``create``), and its file name."""
        *folders, name = subpath.split("/")
        return self.folder.descend(folders, create=create), name

    def _folder_of(self, parent: str) -> Folder:
        """The open folder ``parent`` (a posix subpath, "" for TARGET), each component checked."""
        return self.folder.descend(parent.split("/") if parent else [])

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
                                    result = Digest(*hash_file(fd, status.st_size), status)
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
                if prefix == "" and item.name in (STATE_FOLDER, self._private):
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

    # -- this run's temporary folder ---------------------------------------------------

    def open_run(self, state: Folder, *, sweep: bool) -> None:
        """Open this run's temporary folder in ``state`` (``.djarchive``); with ``sweep``, what
        earlier (dead) runs left is deleted first."""
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
                self._temporary = temporary.child(self.run, create=True)
        except OSError as exc:
            raise storage_error(exc, state.path / TEMPORARY) from None

    def open_private(self) -> None:
        """Open this run's temporary folder as a hidden folder of its own in TARGET, for a run
        that keeps no state there (:meth:`close_run` with TARGET's folder deletes it)."""
        name = f"{STATE_FOLDER}-{self.run}.tmp"
        try:
            self._temporary = self.folder.child(name, create=True)
        except OSError as exc:
            raise storage_error(exc, self.root / name) from None
        self._private = name

    def close_run(self, state: Folder) -> None:
        """Delete this run's temporary folder (in ``state``: ``.djarchive``, or TARGET for a
        private one) and what is left in it."""
        folder, self._temporary = self._temporary, None
        if folder is None:
            return
        folder.close()
        try:
            if self._private is not None:
                state.remove_tree(self._private)
                return
            with state.child(TEMPORARY) as temporary:
                temporary.remove_tree(self.run)
        except OSError as exc:
            log.info("could not delete this run's temporary folder: %s", exc)

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

    def link_part(self, source: TargetFiles, subpath: str) -> str:
        """A hard link to ``source``'s file ``subpath`` (reached without following a link; a link
        at that name is linked itself, not followed) as a new temporary file of this run; its
        name. Raises OSError where it cannot be made."""
        name = f"{next(self._numbers)}.part"
        folder, file_name = source._parent(subpath, create=False)
        with folder:
            folder.link(file_name, self._temporary, name)  # type: ignore[arg-type]
        return name

    def temporary_status(self, part: str) -> os.stat_result | None:
        """The status of this run's temporary file ``part`` (a link there is not followed)."""
        return self._temporary.lstat(part) if self._temporary is not None else None

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

    def discard(self, part: str) -> None:
        """Delete a temporary file."""
        if self._temporary is not None:
            try:
                self._temporary.unlink(part, missing_ok=True)
            except OSError as exc:
                log.info("could not delete the temporary file %s: %s", part, exc)


def _by_folder(subpaths: Iterable[str]) -> dict[str, list[str]]:
    """The subpaths grouped by the folder that holds them (posix, "" for TARGET itself)."""
    grouped: dict[str, list[str]] = {}
    for subpath in subpaths:
        grouped.setdefault(subpath.rpartition("/")[0], []).append(subpath)
    return grouped

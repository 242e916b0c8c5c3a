"""A local copy of a revision (TARGET), made of its rooms: the files (:mod:`.files`), the lock
(:mod:`.lock`), the record of verified files (:mod:`.verified`) and the receipt (:mod:`.receipt`).

djarchive keeps its own files under ``TARGET/.djarchive/`` (a name no manifest may use): ``lock``
(held while a download writes), ``verified.bin`` (what it has verified, so a re-run does not hash
the dataset again), ``receipt.json`` with the stored manifest (what the copy holds) and
``tmp/<run>/`` (temporary downloads, renamed into place once verified; a later run deletes what
a killed one left) and ``partial/`` (large files partly fetched, with the journal that lets the
next run resume them: :mod:`.partial`).

A download that only adds named files to a folder that is not a copy (fsspec's ``get``) keeps
no state there (:meth:`LocalCopy.keep_no_state`): no lock, no record, no receipt, and its
temporary files in a hidden folder of its own in TARGET, ``.djarchive-<run>.tmp``, deleted at
the end; the folder is left holding exactly the files it was given.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from djarchive_common.errors import NotFoundError
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.localfs import Folder, open_root, storage_error
from djarchive_common.manifest import Manifest

from .files import TargetFiles, target_path
from .lock import TargetLock, running
from .partial import PARTIAL_FOLDER, Partials
from .receipt import Receipt, read_receipt, stored_manifests, write_receipt
from .verified import VerifiedFiles

__all__ = ["STATE_DIR", "LocalCopy", "storage_error"]

STATE_DIR = STATE_FOLDER


class LocalCopy:
    """TARGET on disk: ``files`` (what is there, and placing files), ``verified`` (the record of
    verified files) and, through this class, the lock and the receipt. The lock held (``with``
    it), the record is loaded on entry and saved on exit."""

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
        self.shard = shard
        run = secrets.token_hex(6)
        self.files = TargetFiles(self.folder, run)
        self.verified = VerifiedFiles(self.root, shard, run)
        self._lock = TargetLock(path, shard)
        self._state: Folder | None = None
        self._partials: Partials | None = None
        self.stateless = False

    def __repr__(self) -> str:
        return f"<LocalCopy {self.path}>"

    def close(self) -> None:
        """Release the lock and every open folder."""
        self.unlock()
        for folder in (self._state, self.folder):
            if folder is not None:
                folder.close()
        self._state = None

    def _state_folder(self) -> Folder:
        """``TARGET/.djarchive``, created when missing."""
        if self._state is None:
            try:
                self._state = self.folder.child(STATE_DIR, create=True)
            except OSError as exc:
                raise storage_error(exc, self.root / STATE_DIR) from None
        return self._state

    def keep_no_state(self) -> None:
        """Write nothing of djarchive's own in TARGET but this run's temporary files, in a hidden
        folder deleted when the run ends: no lock, record or receipt (for fsspec's ``get``, which
        must leave exactly the files it names). Call before :meth:`lock`."""
        self.stateless = True

    # -- the files, as fetching places them (see TargetFiles) --------------------------

    def destination(self, subpath: str) -> Path:
        """Where ``subpath`` goes (for messages)."""
        return self.files.destination(subpath)

    def new_part(self) -> tuple[str, int]:
        """A new temporary file in this run's folder: its name and a read-write descriptor."""
        return self.files.new_part()

    def place(self, part: str, subpath: str) -> None:
        """Rename the temporary file ``part`` to ``subpath`` (no link followed on the way)."""
        self.files.place(part, subpath)

    def discard(self, part: str) -> None:
        """Delete a temporary file."""
        self.files.discard(part)

    @property
    def partials(self) -> Partials:
        """The large files partly fetched, kept across runs (``.djarchive/partial/``)."""
        if self._partials is None:
            # a run that keeps no state keeps them with its temporary files, deleted at its end
            base = self.files.temporary_folder() if self.stateless else self._state_folder()
            self._partials = Partials(base)
        return self._partials

    def clear_partials(self, keep: Callable[[], Iterable[str]] = tuple) -> None:
        """Delete what interrupted runs left partly fetched, but for the paths ``keep()`` names
        (a complete copy needs none of the others)."""
        if self.stateless or (self._partials is None and self._state_folder().lstat(PARTIAL_FOLDER) is None):
            return
        try:
            self.partials.clear(keep)
        except OSError as exc:
            raise storage_error(exc, self.root / STATE_DIR / PARTIAL_FOLDER) from None

    # -- the lock ----------------------------------------------------------------------

    def lock(self) -> None:
        """Take the target's lock (and this run's temporary folder), or raise LockedError when
        another process holds it. A plain run holds the target alone and deletes what dead runs
        left in the temporary folder; a shard run shares the target with the other shards.
        Without state (:meth:`keep_no_state`), only the private temporary folder is made."""
        if self.stateless:
            self.files.open_private()
            return
        state = self._state_folder()
        self._lock.acquire(state)
        try:
            self.files.open_run(state, sweep=self.shard is None)
        except BaseException:
            self.unlock()
            raise

    def unlock(self) -> None:
        """Delete this run's temporary folder and release the lock."""
        if self._partials is not None:  # its folder may be in the temporary one, deleted now
            self._partials.close()
            self._partials = None
        if self.stateless:
            self.files.close_run(self.folder)
        elif self._state is not None:
            self.files.close_run(self._state)
        self._lock.release()

    def __enter__(self) -> LocalCopy:
        self.lock()
        self.load_record()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.save_record()
        finally:
            self.unlock()

    # -- the record of verified files (see VerifiedFiles) ------------------------------

    def load_record(self) -> None:
        """Read what earlier runs verified; a damaged record is ignored."""
        self.verified.load(self.folder)

    def save_record(self) -> None:
        """Write the record if it changed (a plain run holding the lock drops the shards'); a run
        that keeps no state writes none."""
        if self.stateless:
            return
        self.verified.save(self._state_folder, alone=self.shard is None and self._lock.held)

    # -- the receipt -------------------------------------------------------------------

    def receipt(self) -> Receipt | None:
        """What TARGET's receipt says it holds (see :mod:`djarchive_client.receipt`), or None."""
        try:
            with self.folder.child(STATE_DIR) as state:
                return read_receipt(state)
        except FileNotFoundError:
            return None

    def running(self) -> str | None:
        """The lock mark of a download into TARGET at work now (see :func:`.lock.running`), or None."""
        try:
            with self.folder.child(STATE_DIR) as state:
                return running(state)
        except (FileNotFoundError, NotADirectoryError):
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

"""``djarchive://DATASET/REVISION/path``: published revisions as a read-only fsspec filesystem.

Installed with the ``djarchive-client[fsspec]`` extra and registered through fsspec's entry
point, so pandas, xarray, h5py (through ``fsspec.open``), zarr and Dask read published files in
place::

    import fsspec, pandas
    pandas.read_csv("djarchive://some-set/000/sessions.csv")
    with fsspec.open("djarchive://some-set/000/ephys/probe0.nwb") as f:  # ranged reads
        ...
    fs = fsspec.filesystem("djarchive")        # or DJArchiveFileSystem(endpoint=..., bucket=...)
    fs.ls("")                                  # datasets;  fs.ls("some-set"): its revisions
    fs.glob("some-set/000/**/*.csv"); fs.du("some-set/000")
    fs.get("some-set/000", "./some-set-000", recursive=True)   # djarchive's download engine

The connection comes from the usual configuration (the ``client`` role: environment, DataJoint,
defaults), or from storage options: ``endpoint``, ``bucket``, ``secure``, ``access_key``,
``secret_key``, as :class:`~djarchive_client.archive.DJArchiveClient` takes them; ``jobs`` sets
the parallel transfers of ``get``; ``mirrors`` (base URLs ending in '/', else
``DJARCHIVE_CLIENT_MIRRORS`` or DataJoint's) are other sources of the files' bytes, each read
verified as the store's, the fastest first, another when one fails. A pickled filesystem carries
only the options it was given, so Dask workers resolve the rest from their own environment;
reprs never show a secret.

Everything below a revision comes from its manifest (fetched once per filesystem instance and
revision, validated, published revisions only): listings, ``info`` (``size``, ``sha256``),
``glob``, ``find``, ``du``; the bucket is never listed below a revision. ``ls("")`` lists the
datasets and ``ls("DATASET")`` their published revisions, as ``djarchive datasets`` and
``revisions`` do.

What is verified, and when:

* ``cat_file`` of a whole file streams it once and checks its size and sha256 against the
  manifest (IntegrityError on a mismatch, after the retries every download gets);
* a file opened with ``open`` (mode ``"rb"``) is read by ranged GETs through fsspec's block
  cache (``cache_type="blockcache"`` unless told otherwise: the last 8 blocks of ``block_size``,
  5 MiB by default, stay in memory, so that formats that read their metadata again, such as
  HDF5, do not fetch it again). While the reads go in order from the start, the bytes they
  return are hashed, and the read that reaches the end raises IntegrityError if the sha256
  differs (on a match, the file's ``verified`` becomes True). A mismatch is found only at the
  end: earlier reads have returned their bytes by then;
* random access (seeks, ``cat_file`` with ``start``/``end``, Dask's blocks past the first)
  cannot be verified: nothing checks bytes that are read out of order or in part;
* ``get`` / ``get_file`` to local paths run djarchive's download engine: parallel, every file
  verified before it is renamed into place; files already there with the right content are
  kept (hashed, not fetched again). As fsspec promises, ``get`` creates exactly the files it is
  asked for: no ``.djarchive/`` state folder, in the destination or any folder above it. Each
  destination folder (the deepest one below which the files keep the revision's layout) gets
  one engine run, whose temporary files go to a hidden folder of its own there, deleted when
  the run ends. Nothing there is removed or upgraded. A destination that is already a djarchive
  copy (it has ``.djarchive/``) is written under its lock, as any download into it.

Errors are those fsspec users expect: FileNotFoundError for datasets, revisions and paths that
do not exist (djarchive's NotFoundError is one), PermissionError for access denied
(PermissionDeniedError), and NotImplementedError for every write, as fsspec's own read-only
filesystems answer (HTTP, GitHub, libarchive).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from fsspec import AbstractFileSystem
from fsspec.callbacks import DEFAULT_CALLBACK, NoOpCallback

from djarchive_common.errors import LockedError, NotFoundError
from djarchive_common.layout import is_valid_name, object_key
from djarchive_common.manifest import Entry, Manifest
from djarchive_common.store import Store
from djarchive_common.transfer import RetryPolicy
from djarchive_common.verified import check_sha256, read

from .archive import DJArchiveClient
from .download import DownloadSummary
from .remotefile import EMPTY_SHA256, DJArchiveFile
from .sources import Sources

__all__ = ["DJArchiveFile", "DJArchiveFileSystem"]  # DJArchiveFile: from .remotefile

log = logging.getLogger("djarchive_client")
CACHE_TYPE = "blockcache"  # reads that jump back (HDF5's metadata) find their blocks again
CACHE_BLOCKS = 8  # blocks kept per open file (fsspec's default block: 5 MiB)
LOCK_WAIT = 300.0  # seconds a get waits for another download into the same folder to finish
READ_ONLY = "djarchive:// is read-only: published revisions never change"
ONCE = RetryPolicy(attempts=1, unreachable_attempts=1)  # one GET per source: Sources retries
_PAIRS = "_djarchive_pairs"  # get() collects (remote, local) pairs through get_file under this keyword


def _folder(name: str) -> dict[str, Any]:
    return {"name": name, "size": 0, "type": "directory"}


class _Revision:
    """One published revision: its manifest, and its folders (worked out on first need)."""

    def __init__(self, dataset: str, revision: str, manifest: Manifest):
        self.prefix = f"{dataset}/{revision}"
        self.manifest = manifest
        self._folders: dict[str, dict[str, bool]] | None = None
        self._lock = threading.Lock()

    @property
    def folders(self) -> dict[str, dict[str, bool]]:
        """``{folder: {name: whether it is a folder}}`` for every folder ('' is the revision's)."""
        with self._lock:
            if self._folders is None:
                folders: dict[str, dict[str, bool]] = {"": {}}
                for entry in self.manifest:
                    *names, name = entry.subpath.split("/")
                    parent = ""
                    for folder in names:
                        folders[parent][folder] = True
                        parent = f"{parent}/{folder}" if parent else folder
                        folders.setdefault(parent, {})
                    folders[parent][name] = False
                self._folders = folders
            return self._folders

    def name(self, subpath: str) -> str:
        return f"{self.prefix}/{subpath}" if subpath else self.prefix

    def file_info(self, entry: Entry) -> dict[str, Any]:
        return {"name": self.name(entry.subpath), "size": entry.size, "type": "file", "sha256": entry.sha256}

    def info(self, subpath: str) -> dict[str, Any] | None:
        """What ``subpath`` is (a file, a folder), or None when the revision has no such path."""
        entry = self.manifest.get(subpath)
        if entry is not None:
            return self.file_info(entry)
        if subpath == "" or subpath in self.folders:
            return _folder(self.name(subpath))
        return None

    def listing(self, subpath: str) -> list[dict[str, Any]]:
        """The contents of a folder, or the file itself, as fsspec's ``ls`` gives them."""
        entry = self.manifest.get(subpath)
        if entry is not None:
            return [self.file_info(entry)]
        children = self.folders.get(subpath)
        if children is None:
            raise NotFoundError(f"djarchive://{self.name(subpath)}: no such file or folder in {self.prefix}")
        found = []
        for name, is_folder in sorted(children.items()):
            path = f"{subpath}/{name}" if subpath else name
            found.append(_folder(self.name(path)) if is_folder else self.file_info(self.manifest.get(path)))  # type: ignore[arg-type]
        return found


class DJArchiveFileSystem(AbstractFileSystem):
    """Published revisions of one archive bucket, read-only, as ``djarchive://DATASET/REVISION/path``.

    ``endpoint``, ``bucket``, ``secure``, ``access_key``, ``secret_key`` and ``mirrors``
    override the configuration (as :class:`~djarchive_client.archive.DJArchiveClient` takes
    them); ``jobs`` sets the parallel transfers of ``get``. Other keywords go to fsspec
    (listings cache).
    See the module's documentation for what is verified when.
    """

    protocol = "djarchive"
    root_marker = ""

    def __init__(
        self,
        endpoint: str | None = None,
        bucket: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        secure: bool | None = None,
        *,
        jobs: int | None = None,
        mirrors: str | Sequence[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.client = DJArchiveClient(
            endpoint=endpoint,
            bucket=bucket,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            mirrors=mirrors,
        )
        self.jobs = jobs
        self._sources: Sources | None = None
        self._revisions: dict[tuple[str, str], _Revision] = {}
        self._revisions_lock = threading.Lock()

    def __repr__(self) -> str:
        who = "anonymous" if self.client.settings.anonymous else "credentials=<redacted>"
        return f"<DJArchiveFileSystem {self.client.settings.url} ({who})>"

    __str__ = __repr__

    # -- paths -------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(item) for item in path]
        return super()._strip_protocol(path).lstrip("/")

    def _locate(self, path: str) -> tuple[str, str, str]:
        """(dataset, revision, subpath) of ``path``, '' for what it does not name."""
        path = self._strip_protocol(path)
        dataset, revision, subpath = ([*path.split("/", 2), "", ""] if path else ["", "", ""])[:3]
        for name in (dataset, revision):
            if name and not is_valid_name(name):
                raise NotFoundError(f"djarchive://{path}: {name!r} is not a dataset or revision name")
        return dataset, revision, subpath

    def _revision(self, dataset: str, revision: str) -> _Revision:
        """A published revision, its manifest fetched once per filesystem (Catalog.manifest: the
        revision must be published; retracted ones are not found)."""
        key = (dataset, revision)
        with self._revisions_lock:
            found = self._revisions.get(key)
        if found is None:
            found = _Revision(dataset, revision, self.client.manifest(dataset, revision))
            with self._revisions_lock:
                found = self._revisions.setdefault(key, found)
        return found

    def _file(self, path: str) -> tuple[Entry, str]:
        """The manifest entry of the file at ``path`` and its object key."""
        dataset, revision, subpath = self._locate(path)
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", f"djarchive://{info['name']}")
        return Entry(subpath, info["size"], info["sha256"]), object_key(dataset, revision, subpath)

    # -- listing, from manifests ---------------------------------------------------------

    def _listing(self, path: str, fetch: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """A listing of datasets or revisions, through fsspec's listings cache."""
        try:
            return list(self.dircache[path])
        except KeyError:
            listing = fetch()
            self.dircache[path] = listing
            return list(listing)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        dataset, revision, subpath = self._locate(path)
        if not dataset:
            listing = self._listing("", lambda: [_folder(name) for name in self.client.datasets()])
        elif not revision:
            listing = self._listing(
                dataset,
                lambda: [_folder(f"{dataset}/{name}") for _, name in self.client.revisions(dataset)],
            )
        else:
            listing = self._revision(dataset, revision).listing(subpath)
        return listing if detail else [item["name"] for item in listing]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        dataset, revision, subpath = self._locate(path)
        if not dataset:
            return _folder("")
        if not revision:
            self.ls(dataset)  # raises when the dataset has no published revision
            return _folder(dataset)
        tree = self._revision(dataset, revision)
        found = tree.info(subpath)
        if found is None:
            raise NotFoundError(f"djarchive://{tree.name(subpath)}: no such file or folder in {tree.prefix}")
        return found

    def ukey(self, path: str) -> str:
        """A file's sha256: its content, whatever revision holds it."""
        return self._file(path)[0].sha256

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget listings and manifests (all of them: published revisions do not change)."""
        self.dircache.clear()
        with self._revisions_lock:
            self._revisions.clear()
        super().invalidate_cache(path)

    # -- reading -------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DJArchiveFile:
        if mode != "rb":
            raise NotImplementedError(f"{READ_ONLY}; open files with mode 'rb'")
        entry, key = self._file(path)
        kwargs.pop("size", None)  # fsspec's caching layers pass what the manifest says anyway
        cache_type = kwargs.pop("cache_type", CACHE_TYPE)
        if cache_type == "blockcache":
            cache_options = {"maxblocks": CACHE_BLOCKS, **(cache_options or {})}
        return DJArchiveFile(
            self,
            self._strip_protocol(path),
            entry,
            key,
            block_size=block_size,
            cache_type=cache_type,
            cache_options=cache_options,
            **kwargs,
        )

    @property
    def source(self) -> Store:
        """The archive's store (the primary source; see :attr:`sources`)."""
        return self.client.store

    @property
    def sources(self) -> Sources:
        """Where the bytes are read from: the store and the mirrors, the fastest first."""
        if self._sources is None:
            store = self.client.store
            self._sources = Sources([store, *self.client.mirrors], store.options.retry)
        return self._sources

    def _read_range(self, key: str, entry: Entry, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of one file, by one ranged GET, on another
        source or again as :class:`~djarchive_client.sources.Sources` says; the object's size
        and the bytes' count are checked, their content cannot be."""
        end = min(end, entry.size)
        what = f"reading {key} bytes {start}-{end - 1}"
        return self.sources.call(
            lambda source: read(source, key, ONCE, start=start, end=end, size=entry.size, what=what)[0],
            what,
            size=end - start,
        )

    def _read_whole(self, key: str, entry: Entry) -> bytes:
        """A whole file, in one GET, checked against the manifest's size and sha256."""
        if entry.size == 0:
            check_sha256(f"reading {key}", EMPTY_SHA256, entry.sha256, retryable=False)
            return b""
        return self.sources.call(
            lambda source: read(source, key, ONCE, size=entry.size, sha256=entry.sha256)[0],
            f"reading {key}",
            size=entry.size,
        )

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """A file's bytes; the whole file is verified against the manifest, a part cannot be."""
        entry, key = self._file(path)
        size = entry.size
        begin = 0 if start is None else start if start >= 0 else max(0, size + start)
        stop = size if end is None else min(size, end if end >= 0 else size + end)
        if begin == 0 and stop >= size:
            return self._read_whole(key, entry)
        return self._read_range(key, entry, begin, stop)

    # -- downloading, with the download engine -------------------------------------------

    def get_file(
        self, rpath: str, lpath: Any, callback: Any = DEFAULT_CALLBACK, outfile: Any = None, **kwargs: Any
    ) -> None:
        """Download one file to ``lpath`` with djarchive's download engine (verified, then renamed
        into place); to a file object, stream it (verified when it reaches the end)."""
        pairs = kwargs.pop(_PAIRS, None)
        if outfile is not None or not isinstance(lpath, (str, os.PathLike)):
            return super().get_file(rpath, lpath, callback=callback, outfile=outfile, **kwargs)
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return None
        if pairs is not None:  # get() is collecting: it downloads them all at once
            pairs.append((self._strip_protocol(rpath), os.fspath(lpath)))
            return None
        self._download([(rpath, os.fspath(lpath))], callback)
        return None

    def get(
        self,
        rpath: Any,
        lpath: Any,
        recursive: bool = False,
        callback: Any = DEFAULT_CALLBACK,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Download files to local paths, mapped as fsspec maps them (``recursive``, globs,
        trailing slashes, lists), with djarchive's download engine: parallel, verified, atomic,
        leaving nothing but the files. Each destination folder (the deepest one below which the
        files keep the revision's layout) gets one engine run."""
        pairs: list[tuple[str, str]] = []
        super().get(
            rpath,
            lpath,
            recursive=recursive,
            callback=NoOpCallback(),
            maxdepth=maxdepth,
            **{_PAIRS: pairs},
            **kwargs,
        )
        self._download(pairs, callback)

    def _download(self, pairs: Sequence[tuple[str, str]], callback: Any) -> None:
        """One engine download per revision and destination folder for (remote, local) pairs."""
        groups: dict[tuple[str, str], list[tuple[str, Path]]] = {}
        for rpath, lpath in pairs:
            dataset, revision, subpath = self._locate(rpath)
            groups.setdefault((dataset, revision), []).append((subpath, Path(os.path.abspath(lpath))))
        callback.set_size(len(pairs))
        for (dataset, revision), items in groups.items():
            for batch in _batches(items):
                for target, paths in _placement(batch).items():
                    self._download_into(dataset, revision, target, paths)
                    callback.relative_update(len(paths))

    def _download_into(
        self, dataset: str, revision: str, target: Path, paths: dict[str, str]
    ) -> DownloadSummary:
        """Run the download engine, waiting (up to LOCK_WAIT) while another download writes there."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                return self.client.download(
                    dataset, revision, target, create_target=True, paths=paths, jobs=self.jobs
                )
            except LockedError as error:
                if time.monotonic() >= deadline:
                    raise
                log.info("%s; waiting", error)
                time.sleep(0.2)

    # -- writing: refused ----------------------------------------------------------------

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(READ_ONLY)

    mkdir = makedirs = mkdirs = rmdir = _read_only
    rm = rm_file = _rm = cp_file = copy = mv = _read_only
    pipe = pipe_file = put = put_file = touch = _read_only


def _batches(items: Sequence[tuple[str, Path]]) -> Iterable[list[tuple[str, Path]]]:
    """``items`` in batches that name each remote file once (one file may go to several places)."""
    pending = list(items)
    while pending:
        batch: list[tuple[str, Path]] = []
        rest: list[tuple[str, Path]] = []
        seen: set[str] = set()
        for subpath, local in pending:
            (rest if subpath in seen else batch).append((subpath, local))
            seen.add(subpath)
        yield batch
        pending = rest


def _placement(items: Sequence[tuple[str, Path]]) -> dict[Path, dict[str, str]]:
    """Where a batch of files goes: one engine run per destination folder, each file under its
    local path relative to that folder. A file's destination folder is the deepest folder below
    which its local path keeps the tail of its subpath (the revision's layout below that point),
    else the folder it goes into: never a common ancestor the caller did not name."""
    targets: dict[Path, dict[str, str]] = {}
    for subpath, local in items:
        root = _root(local, subpath)
        targets.setdefault(root, {})[subpath] = local.relative_to(root).as_posix()
    return targets


def _root(local: Path, subpath: str) -> Path:
    """The folder below which ``local`` ends with the longest tail of ``subpath``'s names (the
    file's own folder when even its name differs)."""
    names = subpath.split("/")
    parts = local.parts
    depth = 0
    while depth < len(names) and depth < len(parts) - 1 and parts[-1 - depth] == names[-1 - depth]:
        depth += 1
    return Path(*parts[: len(parts) - max(depth, 1)])

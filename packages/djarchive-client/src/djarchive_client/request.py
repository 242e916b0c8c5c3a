"""One download as it was asked for: which revision, where, which files, how.

:meth:`DJArchiveClient.download <djarchive_client.archive.DJArchiveClient.download>` builds one
frozen :class:`DownloadRequest` from its arguments (after the manifest was fetched and checked:
the request carries the revision's signature status and why it was retracted, when it was) and
hands it whole to :func:`djarchive_client.download.download_revision`, whose stages each read
the part they need. A new option is a field here and a line in the one stage that uses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from djarchive_common.transfer import DEFAULT_WORKERS

if TYPE_CHECKING:
    from djarchive_common.events import Events
    from djarchive_common.signing import SignatureStatus
    from djarchive_common.verified import Source

__all__ = ["DownloadOptions", "DownloadRequest", "Selection"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class DownloadOptions:
    """Tuning for one download."""

    jobs: int = DEFAULT_WORKERS  # transfers at once; small files get up to twice as many (Slots)
    part_size: int = 64 * MiB  # the byte range of one request for a large file
    multipart_threshold: int = 64 * MiB  # files at least this big are fetched in ranges
    buffer_size: int = 256 * 1024  # per read; small, so that many workers stay in little memory
    recheck: bool = False  # hash every local file again instead of trusting the record


@dataclass(frozen=True)
class Selection:
    """Which files of the revision: those the globs select (all without any), or exactly the
    ones ``paths`` names; then, with ``shard`` (K, N), only the K-th of N byte-balanced parts."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    paths: tuple[tuple[str, str], ...] | None = None  # (subpath, local path relative to TARGET)
    shard: tuple[int, int] | None = None

    @classmethod
    def of(
        cls,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        paths: Iterable[str] | Mapping[str, str] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> Selection:
        """A selection from the download's arguments: ``paths`` are subpaths, or a mapping of
        subpaths to the local paths (relative to TARGET) to place them at."""
        places = None
        if paths is not None:
            pairs = paths.items() if isinstance(paths, Mapping) else ((path, path) for path in paths)
            places = tuple(pairs)
        return cls(tuple(include), tuple(exclude), places, shard)

    @property
    def loose(self) -> bool:
        """Whether the files are added to TARGET rather than making it a copy of the revision (a
        shard, or files named exactly): such a download neither upgrades TARGET nor leaves a
        receipt."""
        return self.shard is not None or self.paths is not None


@dataclass(frozen=True)
class DownloadRequest:
    """One download: the revision, TARGET, the files, the tuning and what to report to."""

    dataset: str
    revision: str
    target: str | os.PathLike[str]
    create_target: bool = False
    selection: Selection = field(default_factory=Selection)
    options: DownloadOptions = field(default_factory=DownloadOptions)
    dry_run: bool = False  # plan (hashes included), write nothing
    reuse: tuple[str | os.PathLike[str], ...] = ()  # other local copies whose content may serve
    link: bool = False  # hard-link content from ``reuse`` instead of copying it
    progress: bool = False  # progress bars (on a terminal)
    events: Events | None = None  # machine-readable progress
    retracted: str | None = None  # why the revision was retracted, when it is downloaded anyway
    accept_republished: bool = False  # go on when the revision changed since TARGET's receipt
    signature: SignatureStatus | None = None  # the manifest's signature, as checked before
    mirrors: tuple[Source, ...] = ()  # other sources of the data than the store
    down: tuple[str, ...] = ()  # sources known to be unreachable already (tried last)
    note: str | None = None  # what the manifest's reader should know (read from a mirror)

    @property
    def name(self) -> str:
        """``dataset revision``, for messages."""
        return f"{self.dataset} {self.revision}"

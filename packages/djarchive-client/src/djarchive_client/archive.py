"""The researcher's view of the archive: list, inspect, download and verify published revisions."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from djarchive_common.catalog import Catalog
from djarchive_common.errors import ConfigurationError, Hint
from djarchive_common.events import Events
from djarchive_common.transfer import job_count

from .diff import ManifestDiff, diff_revisions
from .download import download_revision
from .request import DownloadOptions, DownloadRequest, Selection
from .status import CopyStatus, copy_status
from .summary import DownloadSummary
from .verify import VerifyReport, verify_copy, verify_offline

__all__ = ["DJArchiveClient", "client"]


class DJArchiveClient(Catalog):
    """A client of one archive bucket (role ``client``). Creating one never touches the network.

    Listing and manifests come from :class:`djarchive_common.catalog.Catalog`; this class adds
    downloading and verifying local copies. With trusted keys configured (``trusted_keys=``,
    ``--trust``, ``DJARCHIVE_CLIENT_TRUSTED_KEYS``, DataJoint), every manifest is refused without
    a valid signature by one of them (SignatureError) before anything is written.

    ``mirrors`` (``--mirror``, ``DJARCHIVE_CLIENT_MIRRORS``, DataJoint) are base URLs serving
    copies of the archive's keys: downloads take data from the store and the mirrors, the
    fastest first, every byte verified; when the store cannot be reached, a manifest may come
    from a mirror if a trusted key signed it (:meth:`read_revision
    <djarchive_common.catalog.Catalog.read_revision>`).
    """

    role = "client"

    @classmethod
    def client(cls, admin: bool = False, **config: Any) -> Catalog:
        """Create a client (``admin=True``: the admin tool, as the original factory allowed)."""
        if admin:
            try:  # by name: the admin tool is an optional, separately installed distribution
                admin_module = importlib.import_module("djarchive_admin")
            except ImportError:
                raise ConfigurationError(
                    "the admin tool is not installed: pip install djarchive-admin"
                ) from None
            return admin_module.DJArchiveAdmin(**config)
        return cls(**config)

    def download(
        self,
        dataset_name: str,
        revision: str,
        target_directory: str | os.PathLike[str],
        create_target: bool = False,
        display_progress: bool = False,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        jobs: int | None = None,
        dry_run: bool = False,
        recheck: bool = False,
        delta: bool = True,
        part_size: int | None = None,
        multipart_threshold: int | None = None,
        shard: tuple[int, int] | None = None,
        reuse: Sequence[str | os.PathLike[str]] = (),
        link: bool = False,
        allow_retracted: bool = False,
        accept_republished: bool = False,
        events: Events | None = None,
        paths: Iterable[str] | Mapping[str, str] | None = None,
    ) -> DownloadSummary:
        """Download a published revision into ``target_directory`` and return a summary.

        Files already present and verified are kept; everything fetched is checked against
        the manifest's size and sha256 before it is renamed into place. Raises
        PartialFailureError (with the summary) when any file could not be downloaded.
        ``shard=(K, N)`` downloads only the K-th of N byte-balanced parts, so that N runs (on
        one machine or on many sharing the folder) share the work. ``paths`` names files exactly
        (no globs): subpaths, or a mapping of subpaths to paths relative to the target, to place
        files under other names (what fsspec's ``get`` needs): they are added to the folder, and a
        folder that is not a djarchive copy is left holding them and nothing else (no lock, record
        or receipt; the temporary files in a hidden folder of their own, deleted at the end).

        When the folder holds another revision of the dataset, it is upgraded in place (files
        kept, moved, fetched, removed; files you changed are left alone and reported). Content
        already in the local copies named by ``reuse`` is copied (and checked) instead of
        fetched; ``link=True`` hard-links it instead. A retracted revision is refused unless
        ``allow_retracted`` (then the summary's ``retracted`` says why it was retracted). When the
        revision changed in the archive since the folder's receipt was written (a forced
        republish), RevisionChangedError names both manifests' sha256 unless
        ``accept_republished``: then the folder is upgraded to the revision as it is now. A large
        file whose earlier version is on disk (upgrade, ``reuse``) is fetched by the chunks it
        lacks when the revision has a chunk index, unless ``delta=False``; it is verified whole all
        the same. The summary's ``signature`` is the revision's signature status, checked before
        anything else.
        """
        if link and not reuse:
            raise ConfigurationError(
                "link=True hard-links files taken from other local copies: it needs reuse=",
                hint=Hint("reuse", flag="--reuse", metavar="DIR", text="; give {}"),
            )
        read, retraction = self.read_or_retracted(dataset_name, revision, allow_retracted=allow_retracted)
        defaults = DownloadOptions()
        request = DownloadRequest(
            dataset_name,
            revision,
            target_directory,
            create_target=create_target,
            selection=Selection.of(include, exclude, paths=paths, shard=shard),
            options=DownloadOptions(
                jobs=job_count(jobs),
                part_size=part_size or defaults.part_size,
                multipart_threshold=multipart_threshold or defaults.multipart_threshold,
                recheck=recheck,
                delta=delta,
            ),
            dry_run=dry_run,
            reuse=tuple(reuse),
            link=link,
            progress=display_progress,
            events=events,
            retracted=retraction.message if retraction is not None else None,
            accept_republished=accept_republished,
            signature=read.signature,
            mirrors=self.mirrors,
            down=(self.store.name,) if read.origin != self.store.name else (),
            note=read.note,
        )
        return download_revision(self.store, read.manifest, request)

    def verify(
        self,
        dataset: str,
        revision: str,
        target_directory: str | os.PathLike[str],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        jobs: int | None = None,
        fast: bool = False,
        display_progress: bool = False,
        events: Events | None = None,
    ) -> VerifyReport:
        """Compare a local copy with the revision's manifest (missing, modified, extra files).

        An intact copy gets a receipt (or its time of verification updated). A retracted revision
        is checked against the manifest it kept, and the report's ``note`` says it was retracted."""
        read, retraction = self.read_or_retracted(dataset, revision, allow_retracted=True)
        report = verify_copy(
            read.manifest,
            dataset,
            revision,
            target_directory,
            include=include,
            exclude=exclude,
            jobs=job_count(jobs),
            fast=fast,
            progress=display_progress,
            origin=self.settings,
            events=events,
            signature=read.signature,
        )
        report.note = (retraction.message if retraction is not None else None) or read.note or report.note
        return report

    def verify_local(
        self,
        target_directory: str | os.PathLike[str],
        *,
        jobs: int | None = None,
        fast: bool = False,
        display_progress: bool = False,
        events: Events | None = None,
    ) -> VerifyReport:
        """Check a local copy offline against the manifest its receipt stored (no network)."""
        return verify_offline(
            target_directory, jobs=job_count(jobs), fast=fast, progress=display_progress, events=events
        )

    def status(self, target_directory: str | os.PathLike[str] = ".", *, offline: bool = False) -> CopyStatus:
        """What a local copy holds (its receipt) and, unless ``offline``, where its revision
        stands in this archive: still published, retracted, superseded. A copy whose receipt
        names another archive (endpoint, bucket or scheme) is reported as such, never asked
        there: the configured credentials go only to the configured archive."""
        return copy_status(target_directory, None if offline else self)

    def diff(self, dataset: str, old: str, new: str) -> ManifestDiff:
        """What changes from revision ``old`` to ``new`` of ``dataset``, from their manifests (a
        retracted revision's kept one, which the difference's ``retracted`` then notes), and their
        chunk indexes when both have one (what fetching changed large files by their chunks saves)."""
        from .delta import read_index

        old_read, old_retraction = self.read_or_retracted(dataset, old, allow_retracted=True)
        new_read, new_retraction = self.read_or_retracted(dataset, new, allow_retracted=True)
        indexes = (
            read_index(self.store, dataset, old),
            read_index(self.store, dataset, new, new_read.signature),
        )
        difference = diff_revisions(dataset, old, old_read.manifest, new, new_read.manifest, indexes=indexes)
        difference.retracted = [
            error.message for error in (old_retraction, new_retraction) if error is not None
        ]
        return difference


client = DJArchiveClient.client

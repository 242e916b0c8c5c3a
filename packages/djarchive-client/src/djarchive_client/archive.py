"""The researcher's view of the archive: list, inspect, download and verify published revisions."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from djarchive_common.catalog import Catalog
from djarchive_common.errors import ConfigurationError
from djarchive_common.transfer import job_count

from .download import DownloadOptions, DownloadSummary, download_revision
from .verify import VerifyReport, verify_copy

__all__ = ["DJArchiveClient", "client"]


class DJArchiveClient(Catalog):
    """A client of one archive bucket (role ``client``). Creating one never touches the network.

    Listing and manifests come from :class:`djarchive_common.catalog.Catalog`; this class adds
    downloading and verifying local copies.
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
        part_size: int | None = None,
        multipart_threshold: int | None = None,
        shard: tuple[int, int] | None = None,
        paths: Iterable[str] | Mapping[str, str] | None = None,
    ) -> DownloadSummary:
        """Download a published revision into ``target_directory`` and return a summary.

        Files already present and verified are kept; everything fetched is checked against
        the manifest's size and sha256 before it is renamed into place. Raises
        PartialFailureError (with the summary) when any file could not be downloaded.
        ``shard=(K, N)`` downloads only the K-th of N byte-balanced parts, so that N runs (on
        one machine or on many sharing the folder) share the work. ``paths`` names files exactly
        (no globs): subpaths, or a mapping of subpaths to paths relative to the target, to place
        files under other names (what fsspec's ``get`` needs).
        """
        manifest = self.manifest(dataset_name, revision)
        defaults = DownloadOptions()
        options = DownloadOptions(
            jobs=job_count(jobs),
            part_size=part_size or defaults.part_size,
            multipart_threshold=multipart_threshold or defaults.multipart_threshold,
            recheck=recheck,
        )
        return download_revision(
            self.store,
            manifest,
            dataset_name,
            revision,
            target_directory,
            create_target=create_target,
            include=include,
            exclude=exclude,
            options=options,
            progress=display_progress,
            dry_run=dry_run,
            shard=shard,
            paths=paths,
        )

    def verify(
        self,
        dataset_name: str,
        revision: str,
        target_directory: str | os.PathLike[str],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        jobs: int | None = None,
        fast: bool = False,
        display_progress: bool = False,
    ) -> VerifyReport:
        """Compare a local copy with the revision's manifest (missing, modified, extra files)."""
        manifest = self.manifest(dataset_name, revision)
        return verify_copy(
            manifest,
            dataset_name,
            revision,
            target_directory,
            include=include,
            exclude=exclude,
            jobs=job_count(jobs),
            fast=fast,
            progress=display_progress,
        )


client = DJArchiveClient.client

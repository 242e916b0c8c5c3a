"""The researcher's view of the archive: list, inspect, download and verify published revisions."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from djarchive_common.config import Settings, resolve_settings
from djarchive_common.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    ManifestError,
    ObjectNotFoundError,
    PermissionDeniedError,
    RevisionNotFoundError,
)
from djarchive_common.layout import MANIFEST_NAME, check_name, is_valid_name, manifest_key, natural_key
from djarchive_common.manifest import Entry, Manifest, parse_manifest
from djarchive_common.store import Store, StoreOptions
from djarchive_common.transfer import DEFAULT_WORKERS, run_parallel

from .download import DownloadOptions, DownloadSummary, download_revision
from .localcopy import select
from .verify import VerifyReport, verify_copy

__all__ = ["MAX_JOBS", "DJArchiveClient", "client"]

log = logging.getLogger("djarchive_client")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_JOBS = 64
LISTING_WORKERS = 16


class DJArchiveClient:
    """A client of one archive bucket. Creating one never touches the network.

    Configuration comes from keyword arguments (``endpoint``, ``bucket``, ``access_key``,
    ``secret_key``, ``secure``), then the environment, then DataJoint, then the public
    archive's defaults; see :func:`djarchive_common.config.resolve_settings`.
    """

    role = "client"
    MANIFEST_FNAME = MANIFEST_NAME

    def __init__(
        self, settings: Settings | None = None, *, options: StoreOptions | None = None, **config: Any
    ):
        self.settings = settings or resolve_settings(self.role, **config)
        self.store = Store(self.settings, options or StoreOptions.from_environment(pool_size=MAX_JOBS))

    @classmethod
    def client(cls, admin: bool = False, **config: Any) -> DJArchiveClient:
        """Create a client (``admin=True``: the admin tool, as the original factory allowed)."""
        if admin:
            try:
                from djarchive_admin import DJArchiveAdmin
            except ImportError:
                raise ConfigurationError(
                    "the admin tool is not installed: pip install djarchive-admin"
                ) from None
            return DJArchiveAdmin(**config)
        return cls(**config)

    def __repr__(self) -> str:
        who = "anonymous" if self.settings.anonymous else "credentials"
        return f"<{type(self).__name__} {self.settings.url} ({who})>"

    @property
    def endpoint(self) -> str:
        """The archive's endpoint as ``host[:port]``."""
        return self.settings.endpoint

    @property
    def bucket(self) -> str:
        """The archive's bucket."""
        return self.settings.bucket

    # -- listing -----------------------------------------------------------------------

    def _names_under(self, prefix: str) -> list[str]:
        """Valid dataset or revision names directly under ``prefix``."""
        names = [name[len(prefix) :].rstrip("/") for name in self.store.prefixes(prefix)]
        return [name for name in names if is_valid_name(name)]

    def _published(self, dataset: str) -> list[str]:
        """The published revisions of ``dataset``, in natural order."""
        candidates = self._names_under(f"{dataset}/")
        published = []
        for revision, exists, error in run_parallel(
            lambda revision: self.store.exists(manifest_key(dataset, revision)), candidates, LISTING_WORKERS
        ):
            if error is not None:
                raise error
            if exists:
                published.append(revision)
        return sorted(published, key=natural_key)

    def _catalog(self, datasets: Sequence[str] | None = None) -> list[tuple[str, list[str]]]:
        """(dataset, published revisions) for every dataset with at least one, in natural order."""
        names = self._names_under("") if datasets is None else list(datasets)
        found = []
        for name, revisions, error in run_parallel(self._published, names, LISTING_WORKERS):
            if error is not None:
                raise error
            if revisions:
                found.append((name, revisions))
        return sorted(found, key=lambda item: natural_key(item[0]))

    def datasets(self) -> Iterator[str]:
        """Names of the datasets with at least one published revision."""
        for name, _ in self._catalog():
            yield name

    def revisions(self, dataset: str | None = None) -> Iterator[tuple[str, str]]:
        """(dataset, revision) of every published revision, or only those of ``dataset``."""
        if dataset is not None:
            check_name(dataset)
            published = self._published(dataset)
            if not published:
                raise self._dataset_not_found(dataset)
            catalog = [(dataset, published)]
        else:
            catalog = self._catalog()
        for name, revisions in catalog:
            for revision in revisions:
                yield name, revision

    def _dataset_not_found(self, dataset: str) -> DatasetNotFoundError:
        available = [name for name, _ in self._catalog()]
        listing = (
            ", ".join(available[:20]) + (", ..." if len(available) > 20 else "") if available else "none"
        )
        return DatasetNotFoundError(
            f"dataset {dataset!r} not found in {self.settings.url}; published datasets: {listing}"
        )

    def _revision_not_found(
        self, dataset: str, revision: str
    ) -> DatasetNotFoundError | RevisionNotFoundError:
        published = self._published(dataset)
        if not published:
            return self._dataset_not_found(dataset)
        listing = ", ".join(published)
        if revision in self._names_under(f"{dataset}/"):
            return RevisionNotFoundError(
                f"revision {revision!r} of dataset {dataset!r} is not published; "
                f"published revisions: {listing}"
            )
        return RevisionNotFoundError(
            f"dataset {dataset!r} has no revision {revision!r}; published revisions: {listing}"
        )

    def manifest(self, dataset: str, revision: str) -> Manifest:
        """The validated manifest of a published revision."""
        check_name(dataset)
        check_name(revision, "revision")
        key = manifest_key(dataset, revision)
        try:
            data = self.store.read(key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            raise self._revision_not_found(dataset, revision) from None
        except PermissionDeniedError:
            # Without list permission S3 answers 403 for missing keys; tell the two apart.
            if self.store.exists(key):
                raise
            raise self._revision_not_found(dataset, revision) from None
        manifest = parse_manifest(data, source=f"{dataset}/{revision}/{MANIFEST_NAME}")
        if not manifest:  # publish never writes one; an empty answer is a fault, not a revision
            raise ManifestError(f"the manifest of {dataset} {revision} is empty")
        return manifest

    def files(
        self, dataset: str, revision: str, *, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> list[Entry]:
        """The manifest entries (subpath, size, sha256) of a revision, optionally filtered by globs."""
        return select(self.manifest(dataset, revision), include, exclude)

    # -- transfers ---------------------------------------------------------------------

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
    ) -> DownloadSummary:
        """Download a published revision into ``target_directory`` and return a summary.

        Files already present and verified are kept; everything fetched is checked against
        the manifest's size and sha256 before it is renamed into place. Raises
        PartialFailureError (with the summary) when any file could not be downloaded.
        """
        manifest = self.manifest(dataset_name, revision)
        defaults = DownloadOptions()
        options = DownloadOptions(
            jobs=max(1, min(MAX_JOBS, jobs or DEFAULT_WORKERS)),
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
            jobs=max(1, min(MAX_JOBS, jobs or DEFAULT_WORKERS)),
            fast=fast,
            progress=display_progress,
        )


client = DJArchiveClient.client

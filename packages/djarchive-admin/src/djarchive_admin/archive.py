"""The curator's view of the archive: write manifests, upload, publish, retract, list every revision.

Where things live in the bucket (see :mod:`djarchive_common.layout`)::

    <dataset>/<revision>/<subpath>                                     data objects
    <dataset>/<revision>/djarchive-manifest.csv                        published manifest
    .djarchive/staging/<dataset>/<revision>/djarchive-manifest.csv     staged manifest

An upload sends the data, then stages the manifest; publish checks the store against
the staged manifest, writes it at its published key (the last write, which makes the
revision visible) and deletes the staged copy. Retract moves the manifest back to the
staging key. Clients never see the staging area: ``.djarchive`` is not a valid dataset
name, and they only list revisions whose published manifest exists.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from djarchive_client.archive import MAX_JOBS, MAX_MANIFEST_BYTES, DJArchiveClient
from djarchive_common.config import Settings, datajoint_setting
from djarchive_common.errors import (
    DatasetNotFoundError,
    IntegrityError,
    LocalPathError,
    ManifestError,
    ObjectNotFoundError,
    RevisionNotFoundError,
    RevisionPublishedError,
)
from djarchive_common.layout import (
    MANIFEST_NAME,
    STAGING_PREFIX,
    check_name,
    is_valid_name,
    manifest_key,
    natural_key,
    revision_prefix,
    staged_manifest_key,
)
from djarchive_common.manifest import Manifest, parse_manifest, write_manifest
from djarchive_common.store import StoreOptions
from djarchive_common.transfer import DEFAULT_WORKERS, human_bytes, run_parallel

from .lease import RevisionLease
from .publish import INCOMPLETE, PUBLISHED, STAGED, PublishResult, RetractResult, RevisionInfo, check_store
from .scan import DEFAULT_FILENAME_FILTER, build_manifest, check_source, scan_source, source_root
from .upload import UploadOptions, UploadSummary, diff_manifests, plan_upload, send

__all__ = ["DJArchiveAdmin", "admin"]

log = logging.getLogger("djarchive_admin")
LISTING_WORKERS = 16
FILTER_VARIABLE = "DJARCHIVE_ADMIN_FILENAME_FILTER"


class DJArchiveAdmin(DJArchiveClient):
    """The admin tool on one archive bucket: everything a client does, plus the write side.

    Configuration is resolved for the role ``admin`` (``DJARCHIVE_ADMIN_*`` variables,
    ``djarchive.admin.*`` DataJoint keys); operations that touch the store need credentials
    and stop with MissingCredentialsError before touching anything without them.

    ``filename_filter`` is a regular expression searched in every path component of SOURCE;
    matching paths are not archived. Default: ``DJARCHIVE_ADMIN_FILENAME_FILTER``, else
    DataJoint's ``djarchive.admin.filename_filter`` / ``djarchive.filename_filter``, else
    ``^\\.`` (hidden files and folders). ``''`` archives everything.
    """

    role = "admin"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        options: StoreOptions | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        **config: Any,
    ):
        super().__init__(settings, options=options, **config)
        self._filename_filter = filename_filter

    @property
    def filename_filter(self) -> str | re.Pattern[str]:
        """The filter applied to SOURCE paths (see the class docstring)."""
        if self._filename_filter is None:
            configured = os.environ.get(FILTER_VARIABLE) or datajoint_setting(
                "custom.djarchive.admin.filename_filter", "custom.djarchive.filename_filter"
            )
            self._filename_filter = DEFAULT_FILENAME_FILTER if configured is None else str(configured)
        return self._filename_filter

    # -- local ---------------------------------------------------------------------------

    def write_manifest(
        self,
        source_directory: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        jobs: int | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        display_progress: bool = False,
    ) -> Manifest:
        """Hash every file of ``source_directory`` and write its ``djarchive-manifest.csv``; return it.

        Refuses to replace an existing manifest unless ``overwrite``. Touches no store.
        """
        root = source_root(source_directory)
        path = root / MANIFEST_NAME
        if path.exists() and not overwrite:
            raise LocalPathError(f"{path} already exists; use --overwrite (overwrite=True) to replace it")
        files = scan_source(root, self.filename_filter if filename_filter is None else filename_filter)
        if not files:
            raise LocalPathError(f"source folder {root} has no files to archive")
        manifest = build_manifest(files, jobs=_jobs(jobs), progress=display_progress)
        write_manifest(path, manifest)
        log.info("wrote %s: %d files, %d bytes", path, len(manifest), manifest.total_size)
        return manifest

    # -- store helpers -------------------------------------------------------------------

    def _stored_manifest(self, key: str) -> Manifest | None:
        """The manifest stored at ``key``, or None when there is none."""
        try:
            data = self.store.read(key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            return None
        return parse_manifest(data, source=key)

    # -- upload and publish ----------------------------------------------------------------

    def upload(
        self,
        name: str,
        revision: str,
        source_directory: str | os.PathLike[str],
        *,
        publish: bool = True,
        force: bool = False,
        jobs: int | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        part_size: int | None = None,
        display_progress: bool = False,
    ) -> UploadSummary:
        """Upload ``source_directory`` as revision ``revision`` of dataset ``name``, then publish it.

        When SOURCE holds a ``djarchive-manifest.csv``, every file is checked against it
        before anything is sent; otherwise the manifest is built in memory (SOURCE is not
        written to). Objects already stored with the same size and sha256 are not sent
        again. ``publish=False`` stops after staging the manifest. A published revision is
        refused unless ``force``, which replaces it (it is hidden while the upload runs) and
        deletes objects the new manifest does not list.
        """
        check_name(name)
        check_name(revision, "revision")
        self.settings.require_credentials()
        root = source_root(source_directory)
        jobs = _jobs(jobs)
        options = UploadOptions(jobs=jobs, **({"part_size": part_size} if part_size else {}))
        with RevisionLease(self.store, name, revision):
            return self._upload(
                name, revision, root, publish, force, jobs, options, filename_filter, display_progress
            )

    def _upload(
        self,
        name: str,
        revision: str,
        root: Path,
        publish: bool,
        force: bool,
        jobs: int,
        options: UploadOptions,
        filename_filter: str | re.Pattern[str] | None,
        display_progress: bool,
    ) -> UploadSummary:
        started = time.monotonic()
        published_key = manifest_key(name, revision)
        staged_key = staged_manifest_key(name, revision)

        published = self.store.stat(published_key) is not None
        old: Manifest | None = None
        if published:
            try:
                old = self._stored_manifest(published_key)
            except ManifestError as error:
                log.info("the published manifest of %s %s is invalid: %s", name, revision, error)
            if not force:
                what = f" ({len(old)} files, {human_bytes(old.total_size)})" if old is not None else ""
                raise RevisionPublishedError(
                    f"{name} {revision} is already published{what} at {self.settings.url}; published "
                    "revisions are immutable: choose a new revision, or use --force (force=True) "
                    "to overwrite it"
                )

        files = scan_source(root, self.filename_filter if filename_filter is None else filename_filter)
        summary = UploadSummary(name, revision, str(root))
        if (root / MANIFEST_NAME).is_file():
            manifest, files = check_source(root, files, jobs=jobs, progress=display_progress)
            summary.manifest_source = str(root / MANIFEST_NAME)
        else:
            if not files:
                raise LocalPathError(f"source folder {root} has no files to archive")
            manifest = build_manifest(files, jobs=jobs, progress=display_progress)
        if not manifest:
            raise LocalPathError(f"{root / MANIFEST_NAME} lists no files: nothing to upload")
        summary.files, summary.bytes = len(manifest), manifest.total_size

        plan = plan_upload(self.store, name, revision, manifest, files, jobs=jobs)
        if plan.strays and not force:
            raise IntegrityError(
                f"{name}/{revision}/ in {self.settings.url} holds {len(plan.strays)} objects that are not in "
                f"the manifest: {', '.join(plan.strays[:10])}{' ...' if len(plan.strays) > 10 else ''}; "
                "nothing was uploaded: use --force (force=True) to delete them"
            )
        summary.stored_files = len(plan.stored)
        if published and old == manifest and not plan.todo and not plan.strays and publish:
            # forced over an identical, intact revision: nothing to change, and it stays visible
            summary.overwrote = diff_manifests(old, manifest)
            summary.published = True
            summary.seconds = time.monotonic() - started
            log.info("%s %s is already published with this content", name, revision)
            return summary
        if published:
            if old is not None:
                summary.overwrote = diff_manifests(old, manifest)
            log.info(
                "overwriting published %s %s: %s", name, revision, summary.overwrote or "invalid manifest"
            )
            self.store.remove(published_key)  # hidden from clients while it changes
        self._drop_stale_staged(staged_key, manifest)

        try:
            send(self.store, name, revision, plan.todo, summary, options=options, progress=display_progress)
            if plan.strays:
                keys = [revision_prefix(name, revision) + subpath for subpath in plan.strays]
                self.store.remove_many(keys)
                summary.removed = list(plan.strays)
            self.store.put_bytes(staged_key, manifest.to_bytes())
            summary.staged = True
            log.info("staged %s %s at %s", name, revision, staged_key)
            if publish:
                # Every object was just sent with its sha256, or found stored with it: trust those
                # checks and let publish only list the revision (sizes, missing, strays).
                self._publish(name, revision, force=False, jobs=jobs, trusted={e.subpath for e in manifest})
                summary.published = True
        finally:
            summary.seconds = time.monotonic() - started
        log.info("%s", summary)
        return summary

    def _drop_stale_staged(self, key: str, manifest: Manifest) -> None:
        """Delete a staged manifest unlike ``manifest``: a staged one always describes complete data."""
        try:
            staged = self._stored_manifest(key)
        except ManifestError:
            staged = None
            self.store.remove(key)
        if staged is not None and staged != manifest:
            self.store.remove(key)

    def publish(
        self, name: str, revision: str, *, force: bool = False, jobs: int | None = None
    ) -> PublishResult:
        """Publish a staged revision: check every object against its manifest, then write the manifest.

        Refuses when a file is missing or differs (size, sha256 metadata) or when objects
        the manifest does not list lie under the revision. An already published revision
        is refused unless ``force``.
        """
        check_name(name)
        check_name(revision, "revision")
        self.settings.require_credentials()
        with RevisionLease(self.store, name, revision):
            return self._publish(name, revision, force=force, jobs=jobs)

    def _publish(
        self, name: str, revision: str, *, force: bool, jobs: int | None, trusted: Collection[str] = ()
    ) -> PublishResult:
        published_key = manifest_key(name, revision)
        staged_key = staged_manifest_key(name, revision)
        published = self.store.stat(published_key) is not None
        if published and not force:
            raise RevisionPublishedError(
                f"{name} {revision} is already published at {self.settings.url}; published revisions are "
                "immutable: use --force (force=True) to replace its manifest with the staged one"
            )
        manifest = self._stored_manifest(staged_key)
        if manifest is None:
            if published:
                raise RevisionNotFoundError(
                    f"{name} {revision} is published and nothing new is staged for it"
                )
            if self.store.objects(revision_prefix(name, revision)):
                raise RevisionNotFoundError(
                    f"{name} {revision} has no staged manifest: its upload did not finish; "
                    "run the upload again"
                )
            raise RevisionNotFoundError(
                f"nothing is staged for {name} {revision} in {self.settings.url}: upload it first "
                "(djarchive-admin upload --no-publish)"
            )
        check = check_store(self.store, name, revision, manifest, jobs=_jobs(jobs), trusted=trusted)
        if not check.ok:
            raise check.error("publish")
        self.store.put_bytes(published_key, manifest.to_bytes())  # the last write: now it is visible
        self.store.remove(staged_key)
        result = PublishResult(name, revision, len(manifest), manifest.total_size, replaced=published)
        log.info("%s", result)
        return result

    def retract(self, name: str, revision: str, *, purge: bool = False) -> RetractResult:
        """Hide a published revision from clients; its data and manifest are kept (staged again).

        ``purge=True`` instead deletes everything stored for the revision, published or
        not: the manifest first, then the data, then any staged manifest.
        """
        check_name(name)
        check_name(revision, "revision")
        self.settings.require_credentials()
        with RevisionLease(self.store, name, revision):
            return self._purge(name, revision) if purge else self._retract(name, revision)

    def _retract(self, name: str, revision: str) -> RetractResult:
        published_key = manifest_key(name, revision)
        staged_key = staged_manifest_key(name, revision)
        try:
            data = self.store.read(published_key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            info = self._info(name, revision)
            if info is None:
                raise RevisionNotFoundError(
                    f"{name} {revision} is not published and nothing is stored for it; nothing to retract"
                ) from None
            raise RevisionNotFoundError(
                f"{name} {revision} is not published (it is {info.state}); nothing to retract "
                "(--purge, purge=True, deletes what is stored)"
            ) from None
        try:
            manifest = parse_manifest(data, source=published_key)
            files, size = len(manifest), manifest.total_size
        except ManifestError:
            files, size = 0, 0
        self.store.put_bytes(staged_key, data)  # keep the manifest first, then hide the revision
        self.store.remove(published_key)
        result = RetractResult(name, revision, files, size)
        log.info("%s", result)
        return result

    def _purge(self, name: str, revision: str) -> RetractResult:
        published_key = manifest_key(name, revision)
        staged_key = staged_manifest_key(name, revision)
        objects = self.store.objects(revision_prefix(name, revision))
        staged = self.store.stat(staged_key)
        if not objects and staged is None:
            raise RevisionNotFoundError(f"nothing is stored for {name} {revision} in {self.settings.url}")
        data = [info for info in objects if info.key != published_key]
        if any(info.key == published_key for info in objects):
            self.store.remove(published_key)  # hidden first
        self.store.remove_many([info.key for info in data])
        if staged is not None:
            self.store.remove(staged_key)
        deleted = len(objects) + (staged is not None)
        result = RetractResult(
            name, revision, len(data), sum(info.size for info in data), purged=True, deleted_objects=deleted
        )
        log.info("%s", result)
        return result

    # -- listing -----------------------------------------------------------------------

    def _staged(self, dataset: str | None = None) -> set[tuple[str, str]]:
        """(dataset, revision) of every staged manifest."""
        prefix = STAGING_PREFIX + (f"{dataset}/" if dataset else "")
        found = set()
        for info in self.store.objects(prefix):
            parts = info.key[len(STAGING_PREFIX) :].split("/")
            if (
                len(parts) == 3
                and parts[2] == MANIFEST_NAME
                and is_valid_name(parts[0])
                and is_valid_name(parts[1])
            ):
                found.add((parts[0], parts[1]))
        return found

    def _info(
        self, dataset: str, revision: str, *, staged: bool | None = None, published_only: bool = False
    ) -> RevisionInfo | None:
        """The state of one revision; None when nothing (``published_only``: nothing published) is stored."""
        candidates = [(PUBLISHED, manifest_key(dataset, revision))]
        if staged is not False and not published_only:
            candidates.append((STAGED, staged_manifest_key(dataset, revision)))
        for state, key in candidates:
            try:
                manifest = self._stored_manifest(key)
            except ManifestError as error:
                log.info("%s: %s", key, error)
                return RevisionInfo(dataset, revision, f"{state} (invalid manifest)", 0, 0)
            if manifest is not None:
                return RevisionInfo(dataset, revision, state, len(manifest), manifest.total_size)
        if published_only:
            return None
        objects = self.store.objects(revision_prefix(dataset, revision))
        if not objects:
            return None
        return RevisionInfo(dataset, revision, INCOMPLETE, len(objects), sum(info.size for info in objects))

    def revision_info(self, name: str, revision: str) -> RevisionInfo:
        """The state (published, staged, incomplete), file count and size of one revision."""
        check_name(name)
        check_name(revision, "revision")
        self.settings.require_credentials()
        info = self._info(name, revision)
        if info is None:
            raise RevisionNotFoundError(f"nothing is stored for {name} {revision} in {self.settings.url}")
        return info

    def revision_details(self, dataset: str | None = None, *, all: bool = False) -> list[RevisionInfo]:
        """Every published revision (``all=True``: staged and incomplete ones too) with state and size."""
        if dataset is not None:
            check_name(dataset)
        self.settings.require_credentials()
        datasets = [dataset] if dataset is not None else self._names_under("")
        staged = self._staged(dataset) if all else set()
        datasets = sorted(set(datasets) | {name for name, _ in staged}, key=natural_key)

        def revisions_of(name: str) -> list[str]:
            return self._names_under(f"{name}/")

        pairs = set(staged)
        for name, revisions, error in run_parallel(revisions_of, datasets, LISTING_WORKERS):
            if error is not None:
                raise error
            pairs.update((name, revision) for revision in revisions or [])

        def describe(pair: tuple[str, str]) -> RevisionInfo | None:
            return self._info(*pair, staged=pair in staged, published_only=not all)

        found = []
        for _, info, error in run_parallel(describe, sorted(pairs), LISTING_WORKERS):
            if error is not None:
                raise error
            if info is not None:
                found.append(info)
        found.sort(key=lambda info: (natural_key(info.dataset), natural_key(info.revision)))
        if dataset is not None and not found:
            kind = "revisions" if all else "published revisions"
            raise DatasetNotFoundError(f"dataset {dataset!r} has no {kind} in {self.settings.url}")
        return found

    def revisions(self, dataset: str | None = None, *, all: bool = False) -> Iterator[tuple[str, str]]:
        """(dataset, revision) of every published revision (``all=True``: staged and incomplete too)."""
        if not all:
            self.settings.require_credentials()
            yield from super().revisions(dataset)
            return
        for info in self.revision_details(dataset, all=all):
            yield info.dataset, info.revision


def _jobs(jobs: int | None) -> int:
    return max(1, min(MAX_JOBS, jobs or DEFAULT_WORKERS))


def admin(**config: Any) -> DJArchiveAdmin:
    """Create the admin tool (role 'admin'); keywords as for :class:`DJArchiveAdmin`."""
    return DJArchiveAdmin(**config)

"""The archive's read side, shared by both roles: datasets, revisions and their states, manifests.

A revision is *published* when its manifest is at ``<dataset>/<revision>/djarchive-manifest.csv``;
*staged* when its upload finished and the manifest waits at the staging key (see
:mod:`djarchive_common.layout`); *incomplete* when data objects lie under its prefix without
any manifest. Clients list and download published revisions only; the admin sees them all.
:class:`Catalog` is the base of ``DJArchiveClient`` and ``DJArchiveAdmin``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import Settings, resolve_settings
from .errors import (
    DatasetNotFoundError,
    ManifestError,
    ObjectNotFoundError,
    PermissionDeniedError,
    RevisionNotFoundError,
    RevisionRetractedError,
)
from .layout import (
    LEGACY_STAGING_PREFIX,
    MANIFEST_NAME,
    SEPARATOR,
    STAGING_PREFIX,
    check_name,
    is_valid_name,
    manifest_key,
    natural_key,
    retracted_manifest_key,
    revision_prefix,
    staged_manifest_keys,
    staged_revision,
    tombstone_key,
)
from .manifest import Entry, Manifest, parse_manifest, select_or_fail
from .store import Store, StoreOptions
from .text import files, human_bytes
from .transfer import run_parallel

__all__ = [
    "INCOMPLETE",
    "LISTING_WORKERS",
    "MAX_MANIFEST_BYTES",
    "PUBLISHED",
    "RETRACTED",
    "STAGED",
    "Tombstone",
    "Catalog",
    "RevisionInfo",
]

K = TypeVar("K")
V = TypeVar("V")
log = logging.getLogger("djarchive_common")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
LISTING_WORKERS = 16  # listing requests at once
PUBLISHED = "published"  # the manifest is at its published key: clients see the revision
STAGED = "staged"  # uploaded completely; the manifest waits at the staging key for publish
RETRACTED = "retracted"  # hidden by its curators; a tombstone says why, the manifest is kept aside
INCOMPLETE = "incomplete"  # data objects without any manifest: an upload that did not finish


@dataclass(frozen=True)
class Tombstone:
    """Why and when a revision was retracted, and what supersedes it."""

    reason: str
    superseded_by: str | None
    retracted_at: str

    @classmethod
    def from_bytes(cls, data: bytes) -> Tombstone:
        """Read a tombstone; anything unreadable becomes a tombstone without details."""
        try:
            fields = json.loads(data)
        except (ValueError, RecursionError):
            fields = {}
        if not isinstance(fields, dict):
            fields = {}
        successor = fields.get("superseded_by")

        def text(value: object) -> str:
            return value[:500] if isinstance(value, str) else ""

        return cls(
            text(fields.get("reason")),
            successor if is_valid_name(successor) else None,
            text(fields.get("retracted_at")),
        )

    def to_bytes(self) -> bytes:
        """The tombstone object's content."""
        return json.dumps(
            {"reason": self.reason, "superseded_by": self.superseded_by, "retracted_at": self.retracted_at}
        ).encode()

    def describe(self, dataset: str, revision: str) -> str:
        """One sentence for people."""
        text = f"{dataset} {revision} was retracted"
        if self.retracted_at:
            text += f" on {self.retracted_at[:10]}"
        text += f": {self.reason}" if self.reason else " (no reason given)"
        if self.superseded_by:
            text += f"; use {self.superseded_by} instead"
        return text


@dataclass(frozen=True)
class RevisionInfo:
    """One revision with its state, file count and size."""

    dataset: str
    revision: str
    state: str
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": self.state,
            "files": self.files,
            "bytes": self.bytes,
        }

    def __str__(self) -> str:
        size = human_bytes(self.bytes)
        return f"{self.dataset} {self.revision}: {self.state}, {files(self.files)} ({size})"


class Catalog:
    """The archive in one bucket, as read by ``role``. Creating one never touches the network.

    Configuration comes from keyword arguments (``endpoint``, ``bucket``, ``access_key``,
    ``secret_key``, ``secure``), then the environment, then DataJoint, then the public
    archive's defaults; see :func:`djarchive_common.config.resolve_settings`.
    """

    role = "client"
    MANIFEST_FNAME = MANIFEST_NAME  # the original client's attribute

    def __init__(
        self, settings: Settings | None = None, *, options: StoreOptions | None = None, **config: Any
    ):
        self.settings = settings or resolve_settings(self.role, **config)
        self.store = Store(self.settings, options or StoreOptions.from_environment())

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

    # -- published revisions -----------------------------------------------------------

    def _names_under(self, prefix: str) -> list[str]:
        """Valid dataset or revision names directly under ``prefix``."""
        names = [name[len(prefix) :].rstrip("/") for name in self.store.prefixes(prefix)]
        return [name for name in names if is_valid_name(name)]

    def _published(self, dataset: str) -> list[str]:
        """The published revisions of ``dataset``, in natural order."""
        candidates = self._names_under(f"{dataset}/")
        exists = _each(lambda revision: self.store.exists(manifest_key(dataset, revision)), candidates)
        return sorted((revision for revision in candidates if exists[revision]), key=natural_key)

    def _catalog(self, datasets: Sequence[str] | None = None) -> list[tuple[str, list[str]]]:
        """(dataset, published revisions) for every dataset with at least one, in natural order."""
        names = self._names_under("") if datasets is None else list(datasets)
        published = _each(self._published, names)
        return sorted(
            ((name, published[name]) for name in names if published[name]), key=lambda x: natural_key(x[0])
        )

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

    def retracted(self, dataset: str | None = None) -> list[tuple[str, str, Tombstone]]:
        """(dataset, revision, tombstone) of every retracted revision (of ``dataset``), in natural
        order: the revisions clients no longer list, and why."""
        datasets = [check_name(dataset)] if dataset is not None else self._names_under("")
        revisions = _each(lambda name: self._names_under(f"{name}/"), datasets)
        pairs = [(name, revision) for name in datasets for revision in revisions[name]]
        tombstones = _each(lambda pair: self.tombstone(*pair), pairs)
        return sorted(
            ((name, revision, tombstone) for (name, revision), tombstone in tombstones.items() if tombstone),
            key=lambda item: (natural_key(item[0]), natural_key(item[1])),
        )

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

    def tombstone(self, dataset: str, revision: str) -> Tombstone | None:
        """The retraction record of a revision, or None when it was not retracted."""
        try:
            return Tombstone.from_bytes(self.store.read(tombstone_key(dataset, revision), 64 * 1024))
        except ObjectNotFoundError:
            return None

    def retracted_manifest(self, dataset: str, revision: str) -> Manifest:
        """The manifest a retracted revision keeps, so that it stays reproducible."""
        check_name(dataset)
        check_name(revision, "revision")
        manifest = self.stored_manifest(retracted_manifest_key(dataset, revision))
        if manifest is None:
            raise RevisionNotFoundError(f"{dataset} {revision} is not a retracted revision")
        return manifest

    def manifest(self, dataset: str, revision: str) -> Manifest:
        """The validated manifest of a published revision."""
        check_name(dataset)
        check_name(revision, "revision")
        key = manifest_key(dataset, revision)
        try:
            data = self.store.read(key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            tombstone = self.tombstone(dataset, revision)
            if tombstone is not None:
                raise RevisionRetractedError(
                    tombstone.describe(dataset, revision) + " (allow_retracted=True downloads it anyway)",
                    reason=tombstone.reason,
                    superseded_by=tombstone.superseded_by,
                ) from None
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
        return select_or_fail(self.manifest(dataset, revision), include, exclude, f"{dataset} {revision}")

    # -- every revision, with its state ---------------------------------------------------

    def stored_manifest(self, key: str) -> Manifest | None:
        """The manifest stored at ``key``, or None when there is none."""
        try:
            data = self.store.read(key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            return None
        return parse_manifest(data, source=key)

    def _staged(self, dataset: str | None = None) -> set[tuple[str, str]]:
        """(dataset, revision) of every staged manifest, at its current or its legacy key."""
        prefixes = (
            (STAGING_PREFIX + f"{dataset}{SEPARATOR}", LEGACY_STAGING_PREFIX + f"{dataset}/")
            if dataset
            else (STAGING_PREFIX, LEGACY_STAGING_PREFIX)
        )
        found = set()
        for prefix in prefixes:
            for info in self.store.objects(prefix):
                pair = staged_revision(info.key)
                if pair is not None:
                    found.add(pair)
        return found

    def revision_state(
        self, dataset: str, revision: str, *, staged: bool | None = None, published_only: bool = False
    ) -> RevisionInfo | None:
        """The state of one revision; None when nothing (``published_only``: nothing published) is stored."""
        candidates = [(PUBLISHED, manifest_key(dataset, revision))]
        if staged is not False and not published_only:
            candidates += [(STAGED, key) for key in staged_manifest_keys(dataset, revision)]
        if not published_only:
            candidates.append((RETRACTED, retracted_manifest_key(dataset, revision)))
        for state, key in candidates:
            try:
                manifest = self.stored_manifest(key)
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

    def revision_details(self, dataset: str | None = None, *, all: bool = False) -> list[RevisionInfo]:
        """Every published revision (``all=True``: staged and incomplete ones too) with state and size."""
        if dataset is not None:
            check_name(dataset)
        datasets = [dataset] if dataset is not None else self._names_under("")
        staged = self._staged(dataset) if all else set()
        datasets = sorted(set(datasets) | {name for name, _ in staged}, key=natural_key)
        revisions = _each(lambda name: self._names_under(f"{name}/"), datasets)
        pairs = set(staged) | {(name, revision) for name in datasets for revision in revisions[name]}
        infos = _each(
            lambda pair: self.revision_state(*pair, staged=pair in staged, published_only=not all),
            sorted(pairs),
        )
        found = sorted(
            (info for info in infos.values() if info is not None),
            key=lambda info: (natural_key(info.dataset), natural_key(info.revision)),
        )
        if dataset is not None and not found:
            kind = "revisions" if all else "published revisions"
            raise DatasetNotFoundError(f"dataset {dataset!r} has no {kind} in {self.settings.url}")
        return found


def _each(function: Callable[[K], V], items: Sequence[K]) -> dict[K, V]:
    """``{item: function(item)}`` for every item, LISTING_WORKERS requests at once; the first
    error is raised."""
    results: dict[K, V] = {}
    for item, result, error in run_parallel(function, items, LISTING_WORKERS):
        if error is not None:
            raise error
        results[item] = result  # type: ignore[assignment]
    return results

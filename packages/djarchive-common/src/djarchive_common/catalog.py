"""The archive's read side, shared by both roles: datasets, revisions and their states, manifests.

A revision is *published* when its manifest is at ``<dataset>/<revision>/djarchive-manifest.csv``;
*staged* when its upload finished and the manifest waits at the staging key (see
:mod:`djarchive_common.layout`); *incomplete* when data objects lie under its prefix without
any manifest. Clients list and download published revisions only; the admin sees them all.
:class:`Catalog` is the base of ``DJArchiveClient`` and ``DJArchiveAdmin``.

Every manifest a catalog hands out comes through :meth:`Catalog.signed_manifest`, which checks
the revision's signatures (:mod:`djarchive_common.signing`) against the keys it trusts: with
trusted keys configured, a revision without a valid signature by one of them is refused there,
before any caller can act on its manifest. Manifests come from the primary (the store); only
when it cannot be reached at all does :meth:`Catalog.read_revision` take one from a mirror,
signed by a trusted key for this dataset and revision (:mod:`djarchive_common.mirror`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .config import Settings, resolve_settings
from .errors import (
    DatasetNotFoundError,
    DJArchiveError,
    Hint,
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
    TOMBSTONE_NAME,
    check_name,
    manifest_key,
    natural_key,
    retracted_manifest_key,
    revision_prefix,
    signature_key,
    staged_manifest_keys,
    staged_revision,
    tombstone_key,
)
from .manifest import Entry, Manifest, parse_manifest, select_or_fail
from .mirror import ManifestRead, Mirror, manifest_from_mirrors, mirrors_of, unreachable
from .revision import INCOMPLETE, PUBLISHED, RETRACTED, STAGED, RevisionInfo, Tombstone
from .store import Store, StoreOptions
from .survey import LISTING_WORKERS, survey
from .transfer import map_parallel

if TYPE_CHECKING:
    from .signing import SignatureStatus, Trust

__all__ = [
    "INCOMPLETE",
    "LISTING_WORKERS",
    "MAX_MANIFEST_BYTES",
    "PUBLISHED",
    "RETRACTED",
    "STAGED",
    "Tombstone",
    "Catalog",
    "ManifestRead",
    "RevisionInfo",
]

T = TypeVar("T")
log = logging.getLogger("djarchive_common")
#: What reads a retracted revision anyway.
ALLOW_RETRACTED = Hint("allow_retracted", flag="--allow-retracted", text=" ({} reads it anyway)")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
# Read up to this much of a signatures file; signing.parse_signatures refuses more than 256 KiB.
MAX_SIGNATURE_READ = 16 * 1024 * 1024


class Catalog:
    """The archive in one bucket, as read by ``role``. Creating one never touches the network.

    Configuration comes from keyword arguments (``endpoint``, ``bucket``, ``access_key``,
    ``secret_key``, ``secure``), then the environment, then DataJoint, then the public
    archive's defaults; see :func:`djarchive_common.config.resolve_settings`.

    ``trusted_keys`` (public key lines or key files), ``revoked_keys`` (key lines, key ids or
    files) and ``require_signature`` configure signature checks, resolved on first use as
    :func:`djarchive_common.config.resolve_trust` describes. ``mirrors`` (base URLs) are other
    sources of the archive's data, resolved on first use as
    :func:`djarchive_common.config.resolve_mirrors` describes. ``argument_names`` maps these
    keywords to the names messages give them (a command line's flags; default: the keywords).
    """

    role = "client"
    MANIFEST_FNAME = MANIFEST_NAME  # the original client's attribute

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        options: StoreOptions | None = None,
        trusted_keys: str | Iterable[str] | None = None,
        revoked_keys: str | Iterable[str] | None = None,
        require_signature: bool = False,
        mirrors: str | Iterable[str] | None = None,
        argument_names: Mapping[str, str] | None = None,
        **config: Any,
    ):
        self.argument_names = dict(argument_names or {})
        self.settings = settings or resolve_settings(self.role, argument_names=argument_names, **config)
        self.store = Store(self.settings, options or StoreOptions.from_environment())
        self._trust_options = (trusted_keys, revoked_keys, require_signature)
        self._trust: Trust | None = None
        self._mirror_options = mirrors
        self._mirrors: tuple[Mirror, ...] | None = None

    @property
    def mirrors(self) -> tuple[Mirror, ...]:
        """The mirrors configured (none: the store is the only source)."""
        if self._mirrors is None:
            from .config import resolve_mirrors

            urls = resolve_mirrors(self.role, self._mirror_options, argument_names=self.argument_names)
            self._mirrors = mirrors_of(urls, self.store.options)
        return self._mirrors

    @property
    def trust(self) -> Trust:
        """The keys whose signature this catalog requires (none: signatures are only reported)."""
        if self._trust is None:
            from .config import resolve_trust

            trusted, revoked, required = self._trust_options
            self._trust = resolve_trust(
                self.role,
                trusted_keys=trusted,
                revoked_keys=revoked,
                require_signature=required,
                argument_names=self.argument_names,
            )
        return self._trust

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

    def _catalog(self) -> list[tuple[str, list[str]]]:
        """(dataset, published revisions) for every dataset with at least one, in natural order."""
        return survey(self.store).published()

    def _published(self, dataset: str) -> list[str]:
        """The published revisions of ``dataset``, in natural order."""
        return [revision for _, revision in survey(self.store, dataset).having(MANIFEST_NAME)]

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
        found = survey(self.store, None if dataset is None else check_name(dataset))
        pairs = found.having(TOMBSTONE_NAME)
        tombstones = map_parallel(lambda pair: self.tombstone(*pair), pairs, LISTING_WORKERS)
        return [(*pair, tombstone) for pair in pairs if (tombstone := tombstones[pair]) is not None]

    def _dataset_not_found(self, dataset: str) -> DatasetNotFoundError:
        retracted = self.retracted(dataset)
        if retracted:  # it exists, but clients no longer list any of its revisions: say why
            reasons = [
                f"{revision} ({tombstone.reason})" if tombstone.reason else revision
                for _, revision, tombstone in retracted[:20]
            ]
            return DatasetNotFoundError(
                f"dataset {dataset!r} has no published revision in {self.settings.url}; retracted: "
                + ", ".join(reasons)
                + (", ..." if len(retracted) > 20 else "")
            )
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
        found = survey(self.store, dataset)
        published = [name for _, name in found.having(MANIFEST_NAME)]
        if not published:
            return self._dataset_not_found(dataset)
        listing = ", ".join(published)
        if (dataset, revision) in found.marks:
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
        """The manifest a retracted revision keeps, so that it stays reproducible (its signature
        checked: see :meth:`signed_manifest`)."""
        return self.signed_manifest(dataset, revision, retracted=True)[0]

    def manifest(self, dataset: str, revision: str) -> Manifest:
        """The validated manifest of a published revision, its signature checked (see
        :meth:`signed_manifest`)."""
        return self.signed_manifest(dataset, revision)[0]

    def signature(self, dataset: str, revision: str, *, allow_retracted: bool = False) -> SignatureStatus:
        """The signature status of a published revision (refused as :meth:`signed_manifest` does);
        ``allow_retracted``: of a retracted one too (its kept manifest is the one signed)."""
        return self.read_or_retracted(dataset, revision, allow_retracted=allow_retracted)[0].signature

    def read_or_retracted(
        self, dataset: str, revision: str, *, allow_retracted: bool = False
    ) -> tuple[ManifestRead, RevisionRetractedError | None]:
        """The revision's manifest as :meth:`read_revision` reads it; for a retracted revision,
        RevisionRetractedError unless ``allow_retracted``, which reads the manifest it kept (the
        one that was signed) and returns the error beside it: why it was retracted, for the
        caller to tell."""
        try:
            return self.read_revision(dataset, revision), None
        except RevisionRetractedError as error:
            if not allow_retracted:
                raise
            return self.read_revision(dataset, revision, retracted=True), error

    def signed_manifest(
        self, dataset: str, revision: str, *, retracted: bool = False
    ) -> tuple[Manifest, SignatureStatus]:
        """The validated manifest of a published revision and its signature status; with
        ``retracted=True``, the manifest a retracted revision keeps (the same bytes as when it
        was published, so its signatures still apply). See :meth:`read_revision`."""
        read = self.read_revision(dataset, revision, retracted=retracted)
        return read.manifest, read.signature

    def read_revision(
        self, dataset: str, revision: str, *, retracted: bool = False, mirrors: bool = True
    ) -> ManifestRead:
        """The validated manifest of a revision (as :meth:`signed_manifest` says), its signature
        status, their bytes as stored, and where they came from.

        The one place manifests are fetched for reading. With trusted keys configured
        (:attr:`trust`), a revision without a valid signature by one of them raises
        SignatureError, naming the reason, before the manifest is even parsed. Without them the
        status is only reported. The signatures are read while the manifest is. When the store
        cannot be reached at all and ``mirrors`` are configured, a published revision's manifest
        may come from one of them, signed by a trusted key for this revision
        (:func:`djarchive_common.mirror.manifest_from_mirrors`; its ``note`` says that
        retraction could not be checked); an answer of the store, even an error, never lets a
        mirror's manifest in.
        """
        check_name(dataset)
        check_name(revision, "revision")
        trust = self.trust
        try:
            return self._read_from_store(dataset, revision, trust, retracted)
        except DJArchiveError as error:
            if retracted or not mirrors or not unreachable(error) or not self.mirrors:
                raise
            return manifest_from_mirrors(
                self.mirrors, dataset, revision, trust, error, self.store.options.retry
            )

    def _read_from_store(self, dataset: str, revision: str, trust: Trust, retracted: bool) -> ManifestRead:
        """:meth:`read_revision` from the store alone."""
        signatures = _in_background(lambda: self._stored_signatures(dataset, revision))
        if retracted:
            key = retracted_manifest_key(dataset, revision)
            try:
                data = self.store.read(key, MAX_MANIFEST_BYTES)
            except ObjectNotFoundError:
                raise RevisionNotFoundError(f"{dataset} {revision} is not a retracted revision") from None
        else:
            key = manifest_key(dataset, revision)
            data = self._published_manifest(dataset, revision)
        status, signed = self._check_signatures(signatures, data, dataset, revision, trust)
        manifest = parse_manifest(data, source=key)
        if not manifest:  # publish never writes one; an empty answer is a fault, not a revision
            raise ManifestError(f"the manifest of {dataset} {revision} is empty")
        return ManifestRead(manifest, status, data, signed, self.store.name)

    def _published_manifest(self, dataset: str, revision: str) -> bytes:
        """The bytes of a published revision's manifest; the errors say why there are none."""
        key = manifest_key(dataset, revision)
        try:
            return self.store.read(key, MAX_MANIFEST_BYTES)
        except ObjectNotFoundError:
            tombstone = self.tombstone(dataset, revision)
            if tombstone is not None:
                raise RevisionRetractedError(
                    tombstone.describe(dataset, revision),
                    reason=tombstone.reason,
                    superseded_by=tombstone.superseded_by,
                    hint=ALLOW_RETRACTED,
                ) from None
            raise self._revision_not_found(dataset, revision) from None
        except PermissionDeniedError:
            # Without list permission S3 answers 403 for missing keys; tell the two apart.
            if self.store.exists(key):
                raise
            raise self._revision_not_found(dataset, revision) from None

    def _stored_signatures(self, dataset: str, revision: str) -> bytes | None:
        """The revision's signatures file, or None when it has none."""
        key = signature_key(dataset, revision)
        try:
            return self.store.read(key, MAX_SIGNATURE_READ)
        except ObjectNotFoundError:
            return None
        except PermissionDeniedError:
            if self.store.exists(key):
                raise
            return None

    def _check_signatures(
        self,
        signatures: Callable[[], bytes | None],
        manifest_data: bytes,
        dataset: str,
        revision: str,
        trust: Trust,
    ) -> tuple[SignatureStatus, bytes | None]:
        """The signature status, and the signatures file's bytes (None: none, or unreadable)."""
        from .signing import UNKNOWN, SignatureStatus, check_signatures

        source = f"{signature_key(dataset, revision)} in {self.settings.url}"
        try:
            data = signatures()
        except DJArchiveError as error:
            if trust.enforced:
                raise
            log.info("%s: %s", source, error)  # only reported: the revision stays readable
            return SignatureStatus(UNKNOWN, detail=str(error)), None
        status = check_signatures(data, manifest_data, dataset, revision, trust, source=source)
        log.debug("%s %s: %s", dataset, revision, status)
        return status, data

    def files(
        self,
        dataset: str,
        revision: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        allow_retracted: bool = False,
    ) -> list[Entry]:
        """The manifest entries (subpath, size, sha256) of a revision, optionally filtered by globs
        (``allow_retracted``: of a retracted revision too, from the manifest it kept)."""
        manifest = self.read_or_retracted(dataset, revision, allow_retracted=allow_retracted)[0].manifest
        return list(select_or_fail(manifest, include, exclude, f"{dataset} {revision}"))

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
        found = survey(self.store, dataset)
        staged = self._staged(dataset) if all else set()
        pairs = set(staged) | (set(found.marks) if all else set(found.having(MANIFEST_NAME)))
        infos = map_parallel(
            lambda pair: self.revision_state(*pair, staged=pair in staged, published_only=not all),
            sorted(pairs),
            LISTING_WORKERS,
        )
        found_infos = sorted(
            (info for info in infos.values() if info is not None),
            key=lambda info: (natural_key(info.dataset), natural_key(info.revision)),
        )
        if dataset is not None and not found_infos:
            kind = "revisions" if all else "published revisions"
            raise DatasetNotFoundError(f"dataset {dataset!r} has no {kind} in {self.settings.url}")
        return found_infos


def _in_background(function: Callable[[], T]) -> Callable[[], T]:
    """Start ``function`` in a thread now; the returned callable waits for its result (or error)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as error:  # handed to whoever waits for the result
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="djarchive-signatures", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result

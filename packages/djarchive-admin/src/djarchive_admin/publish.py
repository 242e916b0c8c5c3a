"""Publishing: check a revision's objects against its manifest, then publish, retract or purge it.

A revision is published when its manifest exists at ``<dataset>/<revision>/djarchive-manifest.csv``.
Before publish writes it there, :func:`check_store` confirms that every manifest entry is
stored with the right size and ``x-amz-meta-sha256`` and holds the content the manifest says
(proven as :mod:`.proof` describes: not by size alone), and that nothing else lies under the
revision's prefix (the archive's original client downloads every object there and fails
on any its manifest does not list). After the manifest is written, it is read back: what is
published must be this publish's manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from djarchive_common.catalog import MAX_MANIFEST_BYTES, PUBLISHED, RETRACTED, Catalog, Tombstone
from djarchive_common.errors import (
    DJArchiveError,
    Hint,
    IntegrityError,
    InvalidNameError,
    LockedError,
    ManifestError,
    ObjectNotFoundError,
    RevisionNotFoundError,
    RevisionPublishedError,
)
from djarchive_common.layout import (
    RESERVED_NAMES,
    check_name,
    manifest_key,
    object_key,
    retracted_manifest_key,
    revision_prefix,
    staged_manifest_keys,
    subpath_of,
    tombstone_key,
)
from djarchive_common.manifest import Entry, Manifest, parse_manifest
from djarchive_common.store import Store
from djarchive_common.text import files, human_bytes, plural, some
from djarchive_common.transfer import DEFAULT_WORKERS

from .lease import RevisionLease
from .proof import prove
from .sign import write_signatures

if TYPE_CHECKING:
    from djarchive_common.signing import SigningKey
    from djarchive_common.writes import Written

__all__ = [
    "PublishResult",
    "RetractResult",
    "StoreCheck",
    "check_store",
    "force_hint",
    "publish_revision",
    "purge_revision",
    "refuse_changed_retraction",
    "retract_revision",
    "strays",
]

log = logging.getLogger("djarchive_admin")


def force_hint(text: str) -> Hint:
    """Advice to force (``force=True``, ``--force``), in the words of ``text`` ('{}': the option)."""
    return Hint("force", flag="--force", text=text)


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def strays(dataset: str, revision: str, manifest: Manifest, listing: Mapping[str, int]) -> list[str]:
    """Subpaths of the objects under the revision's prefix (``listing``: key -> size) that the
    manifest does not list, djarchive's own objects (manifest, signature, tombstone) aside."""
    prefix = revision_prefix(dataset, revision)
    expected = {object_key(dataset, revision, entry.subpath) for entry in manifest}
    expected.update(prefix + name for name in RESERVED_NAMES)
    return sorted(subpath_of(prefix, key) for key in listing if key not in expected)


def refuse_changed_retraction(catalog: Catalog, dataset: str, revision: str, manifest: Manifest) -> None:
    """A retracted revision keeps its content: a different manifest needs ``force``."""
    kept = catalog.stored_manifest(retracted_manifest_key(dataset, revision))
    if kept is not None and kept != manifest:
        raise RevisionPublishedError(
            f"{dataset} {revision} was retracted, and a retracted revision is not published again with "
            "different content (copies of it would stop verifying): choose a new revision name",
            hint=force_hint(", or pass {} to replace it"),
        )


@dataclass
class StoreCheck:
    """How the store's objects under a revision compare with a manifest."""

    dataset: str
    revision: str
    files: int = 0
    missing: list[str] = field(default_factory=list)
    wrong: dict[str, str] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every entry is stored as the manifest says, and nothing else is under the prefix."""
        return not self.missing and not self.wrong and not self.strays

    def error(self, doing: str = "publish", *, deleted: bool = False) -> DJArchiveError:
        """The error that refuses ``doing`` (ObjectNotFoundError when files are missing);
        ``deleted``: the objects that do not match were deleted, so that an upload sends them again."""
        problems = []
        if self.missing:
            problems.append(
                f"{len(self.missing)} of {files(self.files)} {_are(len(self.missing))} not in the store: "
                f"{some(self.missing)}"
            )
        if self.wrong:
            wrong = [f"{subpath} ({reason})" for subpath, reason in sorted(self.wrong.items())]
            problems.append(
                f"{plural(len(wrong), 'stored object')} {'does' if len(wrong) == 1 else 'do'} not match "
                f"the manifest: {some(wrong)}" + (" (deleted, to be sent again)" if deleted else "")
            )
        if self.strays:
            problems.append(
                f"{plural(len(self.strays), 'object')} under {self.dataset}/{self.revision}/ "
                f"{_are(len(self.strays))} not in the manifest: {some(self.strays)}"
            )
        message = f"cannot {doing} {self.dataset} {self.revision}: " + "; ".join(problems)
        if self.missing or self.wrong:
            message += "; run the upload again to complete it"
        hint = Hint(
            "force",
            flag="--force",
            text="; {} deletes the objects not in the manifest",
            function="upload",
            command="upload",
        )
        if self.missing:
            return ObjectNotFoundError(message, hint=hint if self.strays else None)
        return IntegrityError(message, hint=hint if self.strays else None)


def check_store(
    store: Store,
    dataset: str,
    revision: str,
    manifest: Manifest,
    *,
    jobs: int = DEFAULT_WORKERS,
    written: Mapping[str, Written] | None = None,
    checksums_trusted: bool = False,
) -> StoreCheck:
    """Compare every object under the revision's prefix with ``manifest``: sizes, strays, and the
    content of each object, proven as :func:`.proof.prove` does (``written``: what this process
    wrote, subpath -> ETag and proof; ``checksums_trusted``: the server's stored checksums prove
    content)."""
    prefix = revision_prefix(dataset, revision)
    listing = {info.key: info for info in store.objects(prefix)}
    expected = {object_key(dataset, revision, entry.subpath): entry for entry in manifest}
    check = StoreCheck(dataset, revision, files=len(manifest))
    check.strays = strays(dataset, revision, manifest, {key: info.size for key, info in listing.items()})
    to_prove: list[Entry] = []
    for key, entry in expected.items():
        if key not in listing:
            check.missing.append(entry.subpath)
        elif listing[key].size != entry.size:
            check.wrong[entry.subpath] = f"{listing[key].size} bytes stored, the manifest says {entry.size}"
        else:
            to_prove.append(entry)
    proof = prove(
        store,
        dataset,
        revision,
        to_prove,
        listing,
        written=written,
        checksums_trusted=checksums_trusted,
        jobs=jobs,
    )
    check.missing.extend(proof.missing)
    check.wrong.update(proof.wrong)
    check.missing.sort()
    log.info(
        "%s: %s checked, %d missing, %d wrong, %d strays",
        prefix,
        files(len(manifest)),
        len(check.missing),
        len(check.wrong),
        len(check.strays),
    )
    return check


@dataclass(frozen=True)
class PublishResult:
    """A revision just published."""

    dataset: str
    revision: str
    files: int
    bytes: int
    replaced: bool = False  # an already published manifest was replaced (forced)
    signed_by: str | None = None  # the key id that signed it as it was published

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": PUBLISHED,
            "files": self.files,
            "bytes": self.bytes,
            "replaced": self.replaced,
            "signed_by": self.signed_by,
        }

    def __str__(self) -> str:
        verb = "republished" if self.replaced else "published"
        text = f"{verb} {self.dataset} {self.revision}: {files(self.files)} ({human_bytes(self.bytes)})"
        return text + (f", signed with key {self.signed_by}" if self.signed_by else "")


@dataclass(frozen=True)
class RetractResult:
    """A revision just retracted (hidden, data kept) or purged (data deleted)."""

    dataset: str
    revision: str
    files: int
    bytes: int
    purged: bool = False
    deleted_objects: int = 0
    reason: str = ""
    superseded_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": "purged" if self.purged else RETRACTED,
            "files": self.files,
            "bytes": self.bytes,
            "purged": self.purged,
            "deleted_objects": self.deleted_objects,
            "reason": self.reason,
            "superseded_by": self.superseded_by,
        }

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}"
        if self.purged:
            deleted = plural(self.deleted_objects, "object")
            return f"purged {name}: deleted {deleted} ({human_bytes(self.bytes)})"
        return (
            f"retracted {name}: hidden from clients; its {files(self.files)} ({human_bytes(self.bytes)}) "
            f"{_are(self.files)} kept (publish it again with: djarchive-admin publish "
            f"{self.dataset} {self.revision})"
        )


def publish_revision(
    catalog: Catalog,
    dataset: str,
    revision: str,
    *,
    force: bool = False,
    jobs: int = DEFAULT_WORKERS,
    written: Mapping[str, Written] | None = None,
    checksums_trusted: bool = False,
    lease: RevisionLease | None = None,
    signer: SigningKey | None = None,
) -> PublishResult:
    """Check the store against the staged manifest (or a retracted revision's kept one), proving
    every object's content (``written``, ``checksums_trusted``: see :func:`check_store`), write
    its signatures (signed by ``signer``; those of other content dropped), then the manifest at
    its published key (the last write, which makes the revision visible), read it back, and
    drop the staged copy and any retraction record. Hold the lease."""
    store = catalog.store
    published_key = manifest_key(dataset, revision)
    staged_keys = staged_manifest_keys(dataset, revision)
    published = store.stat(published_key) is not None
    if published and not force:
        raise RevisionPublishedError(
            f"{dataset} {revision} is already published at {store.settings.url}; published revisions are "
            "immutable",
            hint=force_hint(": pass {} to replace its manifest with the staged one"),
        )
    manifest = None
    for staged_key in staged_keys:  # the current key first, then the legacy one
        manifest = catalog.stored_manifest(staged_key)
        if manifest is not None:
            break
    kept = catalog.stored_manifest(retracted_manifest_key(dataset, revision))
    if manifest is None and kept is not None:
        manifest = kept  # publishing a retracted revision again, as it was
    if manifest is None:
        if published:
            raise RevisionNotFoundError(f"{dataset} {revision} is published and nothing new is staged for it")
        if store.objects(revision_prefix(dataset, revision)):
            raise RevisionNotFoundError(
                f"{dataset} {revision} has no staged manifest: its upload did not finish; "
                "run the upload again"
            )
        raise RevisionNotFoundError(
            f"nothing is staged for {dataset} {revision} in {store.settings.url}: upload it first",
            hint=Hint(
                "publish",
                False,
                flag="--no-publish",
                text=" (with {} to stage it without publishing)",
                function="upload",
                command="upload",
            ),
        )
    if not force:
        refuse_changed_retraction(catalog, dataset, revision, manifest)
    check = check_store(
        store, dataset, revision, manifest, jobs=jobs, written=written, checksums_trusted=checksums_trusted
    )
    if not check.ok:
        deleted = bool(check.wrong) and not published and (lease is None or not _lost(lease))
        if (
            deleted
        ):  # bytes the manifest does not describe, in a revision nobody reads: an upload resends them
            store.remove_many([object_key(dataset, revision, subpath) for subpath in check.wrong])
        raise check.error("publish", deleted=deleted)
    if lease is not None:
        lease.check()
    data = manifest.to_bytes()
    signed = write_signatures(store, dataset, revision, data, signer)  # before the manifest
    store.put_bytes(published_key, data)  # the last write: now it is visible
    if store.read(published_key, MAX_MANIFEST_BYTES) != data:
        raise IntegrityError(
            f"{dataset} {revision}: the manifest read back after publishing is not the one this publish "
            f"wrote: another writer published {dataset} {revision} at the same time; check it with "
            f"djarchive verify before using it"
        )
    for staged_key in staged_keys:
        store.remove(staged_key)
    if kept is not None:
        store.remove(tombstone_key(dataset, revision))
        store.remove(retracted_manifest_key(dataset, revision))
    result = PublishResult(
        dataset,
        revision,
        len(manifest),
        manifest.total_size,
        replaced=published,
        signed_by=signed.key_id if signed is not None else None,
    )
    log.info("%s", result)
    return result


def _lost(lease: RevisionLease) -> bool:
    """Whether another writer took the lease (then nothing of the revision is ours to delete)."""
    try:
        lease.check()
    except LockedError:
        return True
    return False


def retract_revision(
    catalog: Catalog,
    dataset: str,
    revision: str,
    *,
    reason: str = "",
    superseded_by: str | None = None,
    force: bool = False,
) -> RetractResult:
    """Hide a published revision: its manifest is kept aside and a tombstone says why and what
    supersedes it (a published revision of the dataset, unless ``force``); the data stays, so
    the revision remains reproducible."""
    store = catalog.store
    if superseded_by is not None:
        _check_successor(store, dataset, revision, superseded_by, force)
    published_key = manifest_key(dataset, revision)
    try:
        data = store.read(published_key, MAX_MANIFEST_BYTES)
    except ObjectNotFoundError:
        info = catalog.revision_state(dataset, revision)
        if info is None:
            raise RevisionNotFoundError(
                f"{dataset} {revision} is not published and nothing is stored for it; nothing to retract"
            ) from None
        raise RevisionNotFoundError(
            f"{dataset} {revision} is not published (it is {info.state}); nothing to retract",
            hint=Hint("purge", flag="--purge", text=" ({} deletes what is stored)"),
        ) from None
    try:
        manifest = parse_manifest(data, source=published_key)
        files, size = len(manifest), manifest.total_size
    except ManifestError:
        files, size = 0, 0
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tombstone = Tombstone(reason, superseded_by, when)
    store.put_bytes(retracted_manifest_key(dataset, revision), data)  # kept first, then the tombstone,
    store.put_bytes(tombstone_key(dataset, revision), tombstone.to_bytes())
    store.remove(published_key)  # then hidden
    result = RetractResult(dataset, revision, files, size, reason=reason, superseded_by=superseded_by)
    log.info("%s", result)
    return result


def _check_successor(store: Store, dataset: str, revision: str, successor: str, force: bool) -> None:
    """The revision named to supersede a retracted one must be another published revision of the
    dataset (``force``: any valid name, e.g. one to be published next)."""
    check_name(successor, "revision")
    if successor == revision:
        raise InvalidNameError(f"{dataset} {revision} cannot be superseded by itself")
    if not force and store.stat(manifest_key(dataset, successor)) is None:
        raise RevisionNotFoundError(
            f"{dataset} {successor} is not published, so it cannot supersede {revision}",
            hint=force_hint(" (name it anyway with {}, e.g. before publishing it)"),
        )


def purge_revision(store: Store, dataset: str, revision: str) -> RetractResult:
    """Delete everything stored for a revision: the manifest first, then the data, then any
    staged manifest."""
    published_key = manifest_key(dataset, revision)
    objects = store.objects(revision_prefix(dataset, revision))
    staged = [key for key in staged_manifest_keys(dataset, revision) if store.stat(key) is not None]
    if not objects and not staged:
        raise RevisionNotFoundError(f"nothing is stored for {dataset} {revision} in {store.settings.url}")
    data = [info for info in objects if info.key != published_key]
    if any(info.key == published_key for info in objects):
        store.remove(published_key)  # hidden first
    store.remove_many([info.key for info in data])
    for staged_key in staged:
        store.remove(staged_key)
    deleted = len(objects) + len(staged)
    result = RetractResult(
        dataset, revision, len(data), sum(info.size for info in data), purged=True, deleted_objects=deleted
    )
    log.info("%s", result)
    return result

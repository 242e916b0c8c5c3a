"""Publishing: check a revision's objects against its manifest; what publish, retract and listings report.

A revision is published when its manifest exists at ``<dataset>/<revision>/djarchive-manifest.csv``.
Before publish writes it there, :func:`check_store` confirms that every manifest entry is
stored with the right size and ``x-amz-meta-sha256``, and that nothing else lies under the
revision's prefix (the archive's original client downloads every object there and fails
on any its manifest does not list).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from djarchive_common.errors import DJArchiveError, IntegrityError, ObjectNotFoundError
from djarchive_common.layout import manifest_key, object_key, revision_prefix, subpath_of
from djarchive_common.manifest import Entry, Manifest
from djarchive_common.store import Store
from djarchive_common.transfer import DEFAULT_WORKERS, human_bytes, run_parallel

__all__ = [
    "PUBLISHED",
    "STAGED",
    "INCOMPLETE",
    "PublishResult",
    "RetractResult",
    "RevisionInfo",
    "StoreCheck",
    "check_store",
]

log = logging.getLogger("djarchive_admin")
MAX_NAMED = 10
PUBLISHED = "published"  # the manifest is at its published key: clients see the revision
STAGED = "staged"  # uploaded completely; the manifest waits at the staging key for publish
INCOMPLETE = "incomplete"  # data objects without any manifest: an upload that did not finish


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

    def error(self, doing: str = "publish") -> DJArchiveError:
        """The error that refuses ``doing`` (ObjectNotFoundError when files are missing)."""
        problems = []
        if self.missing:
            problems.append(
                f"{len(self.missing)} of {self.files} files are not in the store: {_names(self.missing)}"
            )
        if self.wrong:
            wrong = [f"{subpath} ({reason})" for subpath, reason in sorted(self.wrong.items())]
            problems.append(f"{len(wrong)} stored objects do not match the manifest: {_names(wrong)}")
        if self.strays:
            problems.append(
                f"{len(self.strays)} objects under {self.dataset}/{self.revision}/ are not in the manifest: "
                f"{_names(self.strays)} (upload again with --force to delete them)"
            )
        message = f"cannot {doing} {self.dataset} {self.revision}: " + "; ".join(problems)
        if self.missing or self.wrong:
            message += "; run the upload again to complete it"
        return ObjectNotFoundError(message) if self.missing else IntegrityError(message)


def check_store(
    store: Store,
    dataset: str,
    revision: str,
    manifest: Manifest,
    *,
    jobs: int = DEFAULT_WORKERS,
    trusted: Collection[str] = (),
) -> StoreCheck:
    """Compare every object under the revision's prefix with ``manifest`` (sizes, sha256 metadata, strays).

    The sha256 metadata of ``trusted`` subpaths (just written or checked by this process) is not
    fetched again; their presence and size still are, by the listing.
    """
    prefix = revision_prefix(dataset, revision)
    listing = {info.key: info.size for info in store.objects(prefix)}
    published_key = manifest_key(dataset, revision)
    expected = {object_key(dataset, revision, entry.subpath): entry for entry in manifest}
    check = StoreCheck(dataset, revision, files=len(manifest))
    check.strays = sorted(
        subpath_of(prefix, key) for key in listing if key not in expected and key != published_key
    )
    to_stat: list[Entry] = []
    for key, entry in expected.items():
        if key not in listing:
            check.missing.append(entry.subpath)
        elif listing[key] != entry.size:
            check.wrong[entry.subpath] = f"{listing[key]} bytes stored, the manifest says {entry.size}"
        elif entry.subpath not in trusted:
            to_stat.append(entry)

    def stored_sha256(entry: Entry) -> tuple[bool, str | None]:
        info = store.stat(object_key(dataset, revision, entry.subpath))
        return (info is not None, info.sha256 if info is not None else None)

    for entry, result, error in run_parallel(stored_sha256, to_stat, jobs):
        if error is not None:
            raise error
        found, sha256 = result  # type: ignore[misc]
        if not found:
            check.missing.append(entry.subpath)
        elif sha256 is None:
            check.wrong[entry.subpath] = "no sha256 metadata"
        elif sha256 != entry.sha256:
            check.wrong[entry.subpath] = f"stored sha256 {sha256}, the manifest says {entry.sha256}"
    check.missing.sort()
    log.info(
        "%s: %d files checked, %d missing, %d wrong, %d strays",
        prefix,
        len(manifest),
        len(check.missing),
        len(check.wrong),
        len(check.strays),
    )
    return check


@dataclass(frozen=True)
class RevisionInfo:
    """One revision as an admin sees it: its state, file count and size."""

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
        return f"{self.dataset} {self.revision}: {self.state}, {self.files} files ({human_bytes(self.bytes)})"


@dataclass(frozen=True)
class PublishResult:
    """A revision just published."""

    dataset: str
    revision: str
    files: int
    bytes: int
    replaced: bool = False  # an already published manifest was replaced (forced)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": PUBLISHED,
            "files": self.files,
            "bytes": self.bytes,
            "replaced": self.replaced,
        }

    def __str__(self) -> str:
        verb = "republished" if self.replaced else "published"
        return f"{verb} {self.dataset} {self.revision}: {self.files} files ({human_bytes(self.bytes)})"


@dataclass(frozen=True)
class RetractResult:
    """A revision just retracted (hidden, data kept) or purged (data deleted)."""

    dataset: str
    revision: str
    files: int
    bytes: int
    purged: bool = False
    deleted_objects: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "state": "purged" if self.purged else STAGED,
            "files": self.files,
            "bytes": self.bytes,
            "purged": self.purged,
            "deleted_objects": self.deleted_objects,
        }

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}"
        if self.purged:
            return f"purged {name}: deleted {self.deleted_objects} objects ({human_bytes(self.bytes)})"
        return (
            f"retracted {name}: hidden from clients; its {self.files} files ({human_bytes(self.bytes)}) "
            f"are kept (publish it again with: djarchive-admin publish {self.dataset} {self.revision})"
        )


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")

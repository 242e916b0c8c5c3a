"""Proving a revision's content before it is published, object by object, the cheapest proof first.

1. **Written by this process**: the ETag a listing shows is the one its write answered, and that
   write proved the content (the server checked the body's sha256, or answered with the MD5 of the
   bytes sent: :mod:`djarchive_common.writes`). No request beyond the listing. Another ETag means
   another writer replaced the object since.
2. **A checksum the server checked and keeps**: the ``x-amz-checksum-sha256`` a HEAD returns, on a
   server whose probe showed it refuses a wrong checksum and keeps the right one
   (:attr:`.probe.ServerSupport.checksums_trusted`). So a ``publish`` run later, which has no ETags
   of its own, proves single-part objects on such servers (MinIO, S3) without reading them.
3. **Read back**: the object is downloaded and hashed (multipart objects, whose stored checksum is a
   checksum of part checksums; servers that keep no checksum; objects a lost answer left unproven).

Sizes and the ``x-amz-meta-sha256`` metadata are checked as before; they are not proof of content.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from djarchive_common.layout import object_key
from djarchive_common.manifest import Entry
from djarchive_common.store import ObjectInfo, Store
from djarchive_common.transfer import BUFFER_SIZE, DEFAULT_WORKERS, run_parallel
from djarchive_common.writes import Written, checksum_of

__all__ = ["Proof", "prove"]

log = logging.getLogger("djarchive_admin")
WRITTEN, CHECKSUM, READ_BACK = "written", "checksum", "read back"


@dataclass
class Proof:
    """What proving a revision's objects found: the objects that are not what the manifest says
    (subpath -> why), the missing ones, and how each of the others was proven."""

    wrong: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    how: Counter[str] = field(default_factory=Counter)


def prove(
    store: Store,
    dataset: str,
    revision: str,
    entries: list[Entry],
    listing: Mapping[str, ObjectInfo],
    *,
    written: Mapping[str, Written] | None = None,
    checksums_trusted: bool = False,
    jobs: int = DEFAULT_WORKERS,
) -> Proof:
    """Prove that every one of ``entries`` (present in ``listing`` with the right size) holds its
    content. ``written``: subpath -> what this process wrote there."""
    written = written or {}
    proof = Proof()

    def one(entry: Entry) -> tuple[str, str]:
        """(how it was proven, or '' with the reason it is wrong, or 'missing')."""
        key = object_key(dataset, revision, entry.subpath)
        ours = written.get(entry.subpath)
        if ours is not None:
            etag = listing[key].etag or _stat_etag(store, key)
            if etag != ours.etag:
                return "", f"replaced by another writer: ETag {etag}, this upload wrote {ours.etag}"
            if ours.proven:
                return WRITTEN, ""
        else:
            info = store.stat(key, checksum=checksums_trusted)
            if info is None:
                return "missing", ""
            if info.sha256 is None:
                return "", "no sha256 metadata"
            if info.sha256 != entry.sha256:
                return "", f"stored sha256 {info.sha256}, the manifest says {entry.sha256}"
            if checksums_trusted and info.checksum == checksum_of(entry.sha256):
                return CHECKSUM, ""
        found = _stored_sha256(store, key)
        if found != entry.sha256:
            return "", f"its content has sha256 {found}, the manifest says {entry.sha256}"
        return READ_BACK, ""

    for entry, result, error in run_parallel(one, entries, jobs):
        if error is not None:
            raise error
        how, reason = result  # type: ignore[misc]
        if how == "missing":
            proof.missing.append(entry.subpath)
        elif how:
            proof.how[how] += 1
        else:
            proof.wrong[entry.subpath] = reason
    log.info(
        "%s/%s/: content proven for %d objects (%s)",
        dataset,
        revision,
        sum(proof.how.values()),
        ", ".join(f"{count} {how}" for how, count in sorted(proof.how.items())) or "none",
    )
    return proof


def _stat_etag(store: Store, key: str) -> str:
    info = store.stat(key)
    return info.etag or "" if info is not None else ""


def _stored_sha256(store: Store, key: str) -> str:
    """The sha256 of an object's content, read back from the store."""
    what = f"reading back {key}"

    def fetch() -> str:
        digest = hashlib.sha256()
        with store.stream(key, what=what) as stream:
            for chunk in stream.chunks(BUFFER_SIZE):
                digest.update(chunk)
        return digest.hexdigest()

    return store.call(what, fetch)

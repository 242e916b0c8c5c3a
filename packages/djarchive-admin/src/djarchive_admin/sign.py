"""Signing revisions: the signatures file written before the manifest, and signing after publish.

A revision's signatures live at ``<dataset>/<revision>/djarchive-manifest.sig`` (the format is
in :mod:`djarchive_common.signing`). Whenever it is rewritten, entries that are not about the
manifest being published are dropped, so a forced republish with other content never leaves an
old signature behind, and an entry by the signing key is replaced rather than added twice.
Publish writes it before the manifest; :func:`sign_revision` adds a signature to a revision
already published, without touching its manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from djarchive_common.catalog import MAX_MANIFEST_BYTES, MAX_SIGNATURE_READ, Catalog
from djarchive_common.chunks import MAX_INDEX_BYTES
from djarchive_common.errors import Hint, ObjectNotFoundError, RevisionNotFoundError
from djarchive_common.layout import MANIFEST_NAME, chunks_key, manifest_key, signature_key
from djarchive_common.manifest import parse_manifest
from djarchive_common.signing import SigningKey, merge_signatures, sha256_hex
from djarchive_common.store import Store

__all__ = ["SignResult", "sign_revision", "write_signatures"]

if TYPE_CHECKING:
    from .lease import RevisionLease

log = logging.getLogger("djarchive_admin")


@dataclass(frozen=True)
class SignResult:
    """A revision's signatures after signing: who signed now, and who else has."""

    dataset: str
    revision: str
    key_id: str  # the key that signed now
    manifest_sha256: str
    key_ids: tuple[str, ...]  # every key whose signature the revision now carries
    replaced: bool = False  # an earlier signature by the same key was replaced
    dropped: int = 0  # signatures removed because they were not about this manifest

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "key_id": self.key_id,
            "manifest_sha256": self.manifest_sha256,
            "key_ids": list(self.key_ids),
            "replaced": self.replaced,
            "dropped": self.dropped,
        }

    def __str__(self) -> str:
        others = [key_id for key_id in self.key_ids if key_id != self.key_id]
        text = (
            f"signed {self.dataset} {self.revision} with key {self.key_id} "
            f"(manifest sha256 {self.manifest_sha256})"
        )
        if self.replaced:
            text += "; replaced this key's earlier signature"
        if others:
            text += f"; also signed by {', '.join(others)}"
        if self.dropped:
            text += f"; dropped {self.dropped} signature{'s' if self.dropped > 1 else ''} of other content"
        return text


def write_signatures(
    store: Store, dataset: str, revision: str, manifest_data: bytes, signer: SigningKey | None
) -> SignResult | None:
    """Make the revision's signatures file fit ``manifest_data``: keep the signatures of exactly
    this manifest, add ``signer``'s (replacing its earlier one), drop the rest; delete the file
    when nothing is left. Returns what ``signer`` did (None without a signer)."""
    key = signature_key(dataset, revision)
    try:
        existing: bytes | None = store.read(key, MAX_SIGNATURE_READ)
    except ObjectNotFoundError:
        existing = None
    chunks = _chunk_index(store, dataset, revision) if signer is not None else None
    signed = signer.sign(dataset, revision, manifest_data, chunks_data=chunks) if signer is not None else None
    content, entries, dropped, replaced = merge_signatures(existing, signed, dataset, revision, manifest_data)
    if content is None:
        if existing is not None:
            store.remove(key)
            log.info("%s: removed (no signature of this manifest left)", key)
    elif content != existing:
        store.put_bytes(key, content)
        log.info("%s: %d signatures (%d dropped)", key, len(entries), dropped)
    if signer is None:
        return None
    return SignResult(
        dataset,
        revision,
        signer.key_id,
        sha256_hex(manifest_data),
        tuple(entry.statement.key_id for entry in entries),
        replaced=replaced,
        dropped=dropped,
    )


def _chunk_index(store: Store, dataset: str, revision: str) -> bytes | None:
    """The bytes of the revision's chunk index, which its signature covers, or None without one."""
    try:
        return store.read(chunks_key(dataset, revision), MAX_INDEX_BYTES)
    except ObjectNotFoundError:
        return None


def sign_revision(
    catalog: Catalog, dataset: str, revision: str, signer: SigningKey, *, lease: RevisionLease | None = None
) -> SignResult:
    """Sign a published revision as its manifest is stored; the manifest is not changed. Hold
    ``lease`` (checked before the write)."""
    key = manifest_key(dataset, revision)
    try:
        data = catalog.store.read(key, MAX_MANIFEST_BYTES)
    except ObjectNotFoundError:
        raise RevisionNotFoundError(
            f"{dataset} {revision} is not published in {catalog.settings.url}: nothing to sign",
            hint=Hint(
                "sign_key", flag="--sign-key", metavar="KEYFILE", text=" (publish it with {} to sign it then)"
            ),
        ) from None
    parse_manifest(data, source=f"{dataset}/{revision}/{MANIFEST_NAME}")  # never sign an invalid manifest
    if lease is not None:
        lease.check()
    result = write_signatures(catalog.store, dataset, revision, data, signer)
    assert result is not None
    log.info("%s", result)
    return result

"""Checking a revision's signatures against the keys a client trusts.

With trusted keys configured (:class:`Trust`), a revision needs a valid signature by one of them
that is not revoked, for this dataset, revision and manifest; without them nothing is refused
and the status (:class:`SignatureStatus`) only reports what the signatures file says. Messages
name a few key ids, then how many more: a signatures file comes from the bucket.
"""

from __future__ import annotations

from typing import Any

from ..errors import SignatureError
from ..layout import SIGNATURE_NAME
from ..text import some
from .keys import PublicKey
from .statements import (
    BAD_SIGNATURE,
    MALFORMED,
    MISSING,
    REVOKED,
    UNTRUSTED,
    Value,
    parse_signatures,
    sha256_hex,
)

__all__ = [
    "INVALID",
    "UNKNOWN",
    "UNSIGNED",
    "UNVERIFIED",
    "VALID",
    "SignatureStatus",
    "Trust",
    "check_signatures",
]

# What a revision's signature status can be.
VALID = "valid"  # signed by a trusted key, for this dataset, revision and manifest
UNVERIFIED = "unverified"  # signed for this manifest; no trusted keys configured to check by whom
UNSIGNED = "unsigned"  # no signatures file
INVALID = "invalid"  # a signatures file that does not fit this manifest (reported, not enforced)
UNKNOWN = "unknown"  # the signatures file could not be read (reported, not enforced)

# -- what clients trust --------------------------------------------------------------------


class Trust(Value):
    """The public keys a client trusts, and the key ids it never trusts (revoked).

    With any trusted key configured (even one since revoked), a revision needs a valid
    signature by a trusted key that is not revoked.
    """

    __slots__ = ("keys", "revoked", "sources")
    keys: tuple[PublicKey, ...]
    revoked: frozenset[str]
    sources: tuple[str, ...]

    def __init__(
        self,
        keys: tuple[PublicKey, ...] = (),
        revoked: frozenset[str] = frozenset(),
        sources: tuple[str, ...] = (),
    ):
        super().__init__(keys=tuple(keys), revoked=frozenset(revoked), sources=tuple(sources))

    @property
    def enforced(self) -> bool:
        """Whether a valid signature is required (trusted keys are configured)."""
        return bool(self.keys)

    def is_revoked(self, key_id: str) -> bool:
        """Whether ``key_id`` is revoked."""
        return key_id in self.revoked

    def keys_with_id(self, key_id: str) -> list[PublicKey]:
        """The trusted, not revoked, keys with this key id."""
        return [key for key in self.keys if key.key_id == key_id and key_id not in self.revoked]

    def describe(self) -> str:
        """The trusted key ids and where they come from, for messages."""
        ids = some(sorted({key.key_id for key in self.keys}))
        where = f" from {', '.join(self.sources)}" if self.sources else ""
        return f"trusted: {ids}{where}"


# -- checking ------------------------------------------------------------------------------


class SignatureStatus(Value):
    """The signature status of a revision: :data:`VALID`, :data:`UNVERIFIED`, :data:`UNSIGNED`,
    :data:`INVALID` or :data:`UNKNOWN`; ``signer`` is the key id of the trusted key that
    signed it (VALID only), ``key_ids`` those of every signature found, ``reason`` one of
    :data:`REASONS` when the signatures do not fit, ``detail`` the explanation."""

    __slots__ = ("chunks_sha256", "detail", "key_ids", "reason", "signed_at", "signer", "status")
    status: str
    signer: str | None
    signed_at: str | None
    key_ids: tuple[str, ...]
    reason: str | None
    detail: str | None
    chunks_sha256: str | None  # the chunk index the valid signature names (VALID only)

    def __init__(
        self,
        status: str,
        signer: str | None = None,
        signed_at: str | None = None,
        key_ids: tuple[str, ...] = (),
        reason: str | None = None,
        detail: str | None = None,
        chunks_sha256: str | None = None,
    ):
        super().__init__(
            status=status,
            signer=signer,
            signed_at=signed_at,
            key_ids=tuple(key_ids),
            reason=reason,
            detail=detail,
            chunks_sha256=chunks_sha256,
        )

    @property
    def valid(self) -> bool:
        """Signed by a trusted key, for this manifest."""
        return self.status == VALID

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for --json and receipts)."""
        return {
            "status": self.status,
            "signer": self.signer,
            "signed_at": self.signed_at,
            "key_ids": list(self.key_ids),
            "reason": self.reason,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        if self.status == VALID:
            return f"signed by trusted key {self.signer} at {self.signed_at}"
        if self.status == UNVERIFIED:
            return f"signed by key {some(self.key_ids)}, not verified (no trusted keys configured)"
        if self.status == UNSIGNED:
            return "not signed"
        return f"signature {self.status}: {self.detail}"


def check_signatures(
    data: bytes | None,
    manifest_data: bytes,
    dataset: str,
    revision: str,
    trust: Trust,
    *,
    source: str = SIGNATURE_NAME,
) -> SignatureStatus:
    """Check a revision's signatures file (``data``, None when there is none) against its manifest.

    With ``trust.enforced``, return a VALID status or raise SignatureError naming the reason.
    Without trusted keys nothing is refused and no cryptography runs: the status says whether
    the revision is unsigned, signed for this manifest (unverified), or invalid.
    """
    digest = sha256_hex(manifest_data)
    name = f"{dataset} {revision}"
    refused = f"signature check failed for {name}"
    if data is None:
        if trust.enforced:
            raise SignatureError(
                f"{refused}: not signed (no {SIGNATURE_NAME}), and a signature by a trusted key is "
                f"required ({trust.describe()})",
                reason=MISSING,
            )
        return SignatureStatus(UNSIGNED)
    try:
        entries = parse_signatures(data, source)
    except SignatureError as error:
        if trust.enforced:
            raise SignatureError(f"{refused}: {error}", reason=MALFORMED) from None
        return SignatureStatus(INVALID, reason=MALFORMED, detail=str(error))
    key_ids = tuple(entry.statement.key_id for entry in entries)
    failures: list[tuple[int, str, str]] = []  # (rank: the most telling first, reason, message)
    for entry in entries:
        statement = entry.statement
        if not trust.enforced:
            problem = statement.problem(dataset, revision, digest)
            if problem is None:
                return SignatureStatus(UNVERIFIED, signed_at=statement.signed_at, key_ids=key_ids)
            failures.append((0, *problem))
            continue
        if trust.is_revoked(statement.key_id):
            failures.append((1, REVOKED, f"signed by key {statement.key_id}, which is revoked"))
            continue
        keys = trust.keys_with_id(statement.key_id)
        if not keys:
            failures.append((0, UNTRUSTED, ""))
            continue
        signed_bytes = statement.canonical()
        if not any(key.verify(signed_bytes, entry.signature) for key in keys):
            failures.append(
                (
                    2,
                    BAD_SIGNATURE,
                    f"bad signature by key {statement.key_id}: the statement was altered, or that key "
                    "did not sign it",
                )
            )
            continue
        problem = statement.problem(dataset, revision, digest)
        if problem is not None:
            failures.append((3, *problem))
            continue
        return SignatureStatus(
            VALID, statement.key_id, statement.signed_at, key_ids, chunks_sha256=statement.chunks_sha256
        )
    _, reason, message = max(failures, key=lambda failure: failure[0])
    if reason == UNTRUSTED:
        noun = "key" if len(key_ids) == 1 else "keys"
        message = f"signed only by untrusted {noun} {some(key_ids)} ({trust.describe()})"
    if not trust.enforced:
        return SignatureStatus(INVALID, key_ids=key_ids, reason=reason, detail=message)
    raise SignatureError(f"{refused}: {message}", reason=reason)

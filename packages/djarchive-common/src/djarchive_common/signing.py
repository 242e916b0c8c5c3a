"""Signed manifests: Ed25519 keys, signed statements, and a revision's signatures file.

A curator signs a revision with an Ed25519 key (``djarchive-admin keygen``). What is signed is a
*statement*, canonical JSON (sorted keys, no spaces, ASCII) of exactly these fields::

    {"dataset":"some-set","key_id":"1a2b3c4d5e6f7a8b","manifest_sha256":"<64 hex>",
     "revision":"000","signed_at":"2026-11-27T10:20:30Z","type":"djarchive-manifest-signature/1"}

``manifest_sha256`` is the sha256 of the manifest object's exact bytes; ``key_id`` the first 8
bytes (16 hex digits) of the sha256 of the signer's raw 32-byte public key. The bucket is not
part of it, so mirrors carry signatures unchanged. The signatures of a revision are stored at
``<dataset>/<revision>/djarchive-manifest.sig``, written before the manifest::

    {"format": "djarchive-manifest-signatures/1",
     "signatures": [{"signature": "<base64 of the 64-byte Ed25519 signature of the statement>",
                     "statement": {...the statement...}}, ...]}

One entry per key (``djarchive-admin sign`` appends an entry for a new key and replaces the
entry of the same key); entries whose statement no longer matches the manifest are dropped
whenever the file is rewritten. A signatures file is parsed strictly and rejected as a whole
when anything is off: unknown or missing fields, duplicate JSON keys, values of the wrong form,
two entries by one key, more than :data:`MAX_SIGNATURES` entries or :data:`MAX_SIGNATURE_BYTES`.

Public keys are written as one line, ``djarchive-ed25519 <base64 of the raw 32-byte key>``
(anything after it on the line is a comment). Private keys are PKCS#8 PEM files, which must
not be readable by others.

The cryptography is pycryptodome's (a dependency of minio, so already installed), imported
only when a key is generated, loaded or a signature checked: reading key lines, parsing
signatures files and reporting without trusted keys need none of it. Every download imports
this module, so its types are plain classes (:class:`_Value`), which cost nothing to define,
unlike dataclasses and typed named tuples (about a millisecond each).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, LocalPathError, SignatureError
from .layout import SIGNATURE_NAME, is_valid_name

if TYPE_CHECKING:
    from Crypto.PublicKey.ECC import EccKey

__all__ = [
    "INVALID",
    "KEY_TYPE",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_BYTES",
    "REASONS",
    "SIGNATURES_FORMAT",
    "STATEMENT_TYPE",
    "UNKNOWN",
    "UNSIGNED",
    "UNVERIFIED",
    "VALID",
    "PublicKey",
    "SignatureStatus",
    "Signed",
    "SigningKey",
    "Statement",
    "Trust",
    "check_signatures",
    "generate_key",
    "merge_signatures",
    "parse_key_items",
    "parse_public_key",
    "parse_signatures",
    "read_key_file",
    "sha256_hex",
    "signatures_bytes",
]

KEY_TYPE = "djarchive-ed25519"
STATEMENT_TYPE = "djarchive-manifest-signature/1"
SIGNATURES_FORMAT = "djarchive-manifest-signatures/1"
MAX_SIGNATURE_BYTES = 256 * 1024
MAX_SIGNATURES = 64
MAX_KEY_FILE_BYTES = 64 * 1024

# What a revision's signature status can be.
VALID = "valid"  # signed by a trusted key, for this dataset, revision and manifest
UNVERIFIED = "unverified"  # signed for this manifest; no trusted keys configured to check by whom
UNSIGNED = "unsigned"  # no signatures file
INVALID = "invalid"  # a signatures file that does not fit this manifest (reported, not enforced)
UNKNOWN = "unknown"  # the signatures file could not be read (reported, not enforced)

# Why a revision is refused (SignatureError.reason) or its signatures are invalid.
MISSING = "missing"
MALFORMED = "malformed"
UNTRUSTED = "untrusted-key"
REVOKED = "revoked-key"
BAD_SIGNATURE = "bad-signature"
OTHER_REVISION = "other-revision"
DIGEST_MISMATCH = "digest-mismatch"
REASONS = (MISSING, MALFORMED, UNTRUSTED, REVOKED, BAD_SIGNATURE, OTHER_REVISION, DIGEST_MISMATCH)

_STATEMENT_FIELDS = frozenset({"type", "dataset", "revision", "manifest_sha256", "key_id", "signed_at"})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_SEPARATORS = re.compile(r"[,;\n]")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+=]{24,}")  # key material; paths break at slashes
# An Ed25519 SubjectPublicKeyInfo is this prefix and the 32 raw bytes.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` in lowercase hex."""
    digest = hashlib.sha256()
    digest.update(data)
    return digest.hexdigest()


def _crypto() -> tuple[Any, Any]:
    """pycryptodome's ECC and eddsa modules (about 0.1 s to import: only when needed)."""
    try:
        from Crypto.PublicKey import ECC
        from Crypto.Signature import eddsa
    except ImportError as exc:
        raise ConfigurationError(
            f"signatures need pycryptodome 3.15 or newer (installed with minio): {exc}; "
            "pip install 'pycryptodome>=3.15'"
        ) from None
    return ECC, eddsa


def _shown(item: str) -> str:
    """``item`` quoted for a message, unless it could be key material (never echoed)."""
    if "PRIVATE KEY" in item or len(item) > 200 or _BASE64_BLOB.search(item):
        return "(value not shown)"
    return repr(item)


class _Value:
    """Immutable fields named by ``__slots__``, with equality, hash and repr from them."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, **values: Any):
        if set(values) != set(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes exactly {', '.join(self.__slots__)}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (to Dask workers and back) field by field
        return _rebuild, (type(self), {name: getattr(self, name) for name in self.__slots__})

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if type(other) is type(self) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _rebuild(cls: type[_Value], values: dict[str, Any]) -> _Value:
    """A value from its fields, as pickled by :meth:`_Value.__reduce__`."""
    value = cls.__new__(cls)
    _Value.__init__(value, **values)
    return value


# -- public keys ---------------------------------------------------------------------------


class PublicKey(_Value):
    """An Ed25519 public key: its raw 32 bytes, its one-line form and its key id."""

    __slots__ = ("raw",)
    raw: bytes

    def __init__(self, raw: bytes):
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key has 32 bytes")
        super().__init__(raw=bytes(raw))

    @property
    def key_id(self) -> str:
        """The first 8 bytes of the sha256 of the raw key, in hex (16 digits)."""
        return sha256_hex(self.raw)[:16]

    @property
    def line(self) -> str:
        """``djarchive-ed25519 <base64>``: the form to paste into configuration."""
        return f"{KEY_TYPE} {base64.b64encode(self.raw).decode('ascii')}"

    def __str__(self) -> str:
        return self.line

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self.key_id!r})"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        _, eddsa = _crypto()
        try:
            key = eddsa.import_public_key(self.raw)
        except ValueError:
            raise ConfigurationError(f"trusted key {self.key_id} is not a valid Ed25519 public key") from None
        try:
            eddsa.new(key, "rfc8032").verify(message, signature)
        except ValueError:
            return False
        return True


def parse_public_key(text: str, source: str = "public key") -> PublicKey:
    """A key line, ``djarchive-ed25519 <base64>`` (words after it are a comment)."""
    words = text.split()
    if len(words) < 2 or words[0] != KEY_TYPE:
        raise ConfigurationError(
            f"invalid public key in {source}: expected '{KEY_TYPE} <base64>' "
            "(the line djarchive-admin keygen prints, also in KEYFILE.pub)"
        )
    try:
        raw = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"invalid public key in {source}: not the base64 of 32 bytes")
    return PublicKey(raw)


def _is_key_line(item: str) -> bool:
    return item.split(maxsplit=1)[0] == KEY_TYPE if item.strip() else False


def _read_key_file(path: Path, source: str, ids: bool) -> tuple[list[PublicKey], set[str]]:
    """Public keys (and, with ``ids``, key ids) from a file: one per line, '#' comments."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {str(path)!r} ({source}): {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationError(
            f"key file {str(path)!r} ({source}) is larger than {MAX_KEY_FILE_BYTES} bytes"
        )
    text = data.decode("utf-8", errors="replace")
    if "PRIVATE KEY" in text:
        raise ConfigurationError(
            f"{str(path)!r} ({source}) holds a private key: trust its public key ({path.name}.pub) instead"
        )
    keys: list[PublicKey] = []
    found_ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number} ({source})"
        if ids and _KEY_ID_RE.fullmatch(line.lower()):
            found_ids.add(line.lower())
        else:
            keys.append(parse_public_key(line, where))
    return keys, found_ids


def read_key_file(path: str | os.PathLike[str], source: str) -> list[PublicKey]:
    """The public keys of a key file: one ``djarchive-ed25519 <base64>`` line each, '#' comments."""
    return _read_key_file(Path(path).expanduser(), source, ids=False)[0]


def parse_key_items(
    items: str | Iterable[str], source: str, *, ids: bool = False
) -> tuple[list[PublicKey], set[str]]:
    """Public keys from configuration values: key lines, paths of key files, and (``ids``) key ids.

    A string holds several items separated by ',', ';' or newlines; a sequence holds items
    (each may hold several). Returns (keys, key ids).
    """
    if isinstance(items, str):
        items = [items]
    keys: list[PublicKey] = []
    found_ids: set[str] = set()
    number = 0
    for value in items:
        value = str(value)
        if "PRIVATE KEY" in value:
            raise ConfigurationError(f"{source} holds a private key: configure public keys only")
        for item in _SEPARATORS.split(value):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            number += 1
            if _is_key_line(item):
                keys.append(parse_public_key(item, source if number == 1 else f"{source}, item {number}"))
            elif ids and _KEY_ID_RE.fullmatch(item.lower()):
                found_ids.add(item.lower())
            else:
                path = Path(item).expanduser()
                if not path.is_file():
                    expected = f"'{KEY_TYPE} <base64>' public key line" + (", key id" if ids else "")
                    raise ConfigurationError(
                        f"invalid key in {source}: {_shown(item)} is neither a {expected} nor a key file"
                    )
                file_keys, file_ids = _read_key_file(path, source, ids)
                keys.extend(file_keys)
                found_ids |= file_ids
    return keys, found_ids


# -- what clients trust --------------------------------------------------------------------


class Trust(_Value):
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
        ids = ", ".join(sorted({key.key_id for key in self.keys}))
        where = f" from {', '.join(self.sources)}" if self.sources else ""
        return f"trusted: {ids}{where}"


# -- statements and signatures files -----------------------------------------------------


class Statement(_Value):
    """What a signature binds: one manifest of one revision, signed by one key at one time."""

    __slots__ = ("dataset", "key_id", "manifest_sha256", "revision", "signed_at")
    dataset: str
    revision: str
    manifest_sha256: str
    key_id: str
    signed_at: str

    def __init__(self, dataset: str, revision: str, manifest_sha256: str, key_id: str, signed_at: str):
        super().__init__(
            dataset=dataset,
            revision=revision,
            manifest_sha256=manifest_sha256,
            key_id=key_id,
            signed_at=signed_at,
        )

    def to_dict(self) -> dict[str, str]:
        """The statement as JSON-ready data."""
        return {
            "type": STATEMENT_TYPE,
            "dataset": self.dataset,
            "revision": self.revision,
            "manifest_sha256": self.manifest_sha256,
            "key_id": self.key_id,
            "signed_at": self.signed_at,
        }

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no spaces, ASCII."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
            "ascii"
        )

    def problem(self, dataset: str, revision: str, manifest_sha256: str) -> tuple[str, str] | None:
        """(reason, message) when this statement is not about that manifest, else None."""
        if (self.dataset, self.revision) != (dataset, revision):
            return OTHER_REVISION, (
                f"the signature by key {self.key_id} is for {self.dataset} {self.revision}, "
                f"not {dataset} {revision} (manifest and signature copied from another revision?)"
            )
        if self.manifest_sha256 != manifest_sha256:
            return DIGEST_MISMATCH, (
                f"the manifest (sha256 {manifest_sha256[:16]}...) is not the one key {self.key_id} "
                f"signed (sha256 {self.manifest_sha256[:16]}...): it changed after it was signed"
            )
        return None


class Signed(_Value):
    """A statement and its Ed25519 signature."""

    __slots__ = ("signature", "statement")
    statement: Statement
    signature: bytes

    def __init__(self, statement: Statement, signature: bytes):
        super().__init__(statement=statement, signature=signature)

    def to_dict(self) -> dict[str, Any]:
        """The entry of a signatures file."""
        return {"statement": self.statement.to_dict(), "signature": base64.b64encode(self.signature).decode()}


def signatures_bytes(entries: Sequence[Signed]) -> bytes:
    """The content of a signatures file holding ``entries``."""
    document = {"format": SIGNATURES_FORMAT, "signatures": [entry.to_dict() for entry in entries]}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"duplicate JSON key {repeated[0]!r}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fields(value: Any, names: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    if set(value) != names:
        extra, missing = sorted(set(value) - names), sorted(names - set(value))
        detail = "; ".join(
            part
            for part in (
                f"unexpected field {', '.join(map(repr, extra))}" if extra else "",
                f"missing field {', '.join(map(repr, missing))}" if missing else "",
            )
            if part
        )
        raise ValueError(f"{what}: {detail}")
    return value


def _string(value: Any, pattern: re.Pattern[str] | None, what: str) -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise ValueError(f"{what} has an invalid value")
    return value


def _statement(value: Any, what: str) -> Statement:
    data = _fields(value, _STATEMENT_FIELDS, what)
    if data["type"] != STATEMENT_TYPE:
        raise ValueError(f"{what}: type is not {STATEMENT_TYPE!r}")
    for name in ("dataset", "revision"):
        if not is_valid_name(data[name]):
            raise ValueError(f"{what}: {name} has an invalid value")
    return Statement(
        dataset=data["dataset"],
        revision=data["revision"],
        manifest_sha256=_string(data["manifest_sha256"], _SHA256_RE, f"{what}: manifest_sha256"),
        key_id=_string(data["key_id"], _KEY_ID_RE, f"{what}: key_id"),
        signed_at=_string(data["signed_at"], _TIME_RE, f"{what}: signed_at"),
    )


def _signature(value: Any, what: str) -> bytes:
    text = _string(value, None, what)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != 64 or base64.b64encode(raw).decode() != text:
        raise ValueError(f"{what} is not the base64 of 64 bytes")
    return raw


def parse_signatures(data: bytes, source: str = SIGNATURE_NAME) -> list[Signed]:
    """The entries of a signatures file; SignatureError (reason 'malformed') on any fault."""
    try:
        if len(data) > MAX_SIGNATURE_BYTES:
            raise ValueError(f"larger than {MAX_SIGNATURE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
        document = _fields(document, frozenset({"format", "signatures"}), "the document")
        if document["format"] != SIGNATURES_FORMAT:
            raise ValueError(f"format is not {SIGNATURES_FORMAT!r}")
        entries = document["signatures"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("'signatures' is not a non-empty list")
        if len(entries) > MAX_SIGNATURES:
            raise ValueError(f"more than {MAX_SIGNATURES} signatures")
        found: list[Signed] = []
        for number, entry in enumerate(entries, 1):
            what = f"signature {number}"
            entry = _fields(entry, frozenset({"statement", "signature"}), what)
            signed = Signed(
                _statement(entry["statement"], f"{what}'s statement"), _signature(entry["signature"], what)
            )
            if any(other.statement.key_id == signed.statement.key_id for other in found):
                raise ValueError(f"{what}: a second signature by key {signed.statement.key_id}")
            found.append(signed)
    except ValueError as exc:
        raise SignatureError(f"malformed {source}: {exc}", reason=MALFORMED) from None
    return found


# -- checking ------------------------------------------------------------------------------


class SignatureStatus(_Value):
    """The signature status of a revision: :data:`VALID`, :data:`UNVERIFIED`, :data:`UNSIGNED`,
    :data:`INVALID` or :data:`UNKNOWN`; ``signer`` is the key id of the trusted key that
    signed it (VALID only), ``key_ids`` those of every signature found, ``reason`` one of
    :data:`REASONS` when the signatures do not fit, ``detail`` the explanation."""

    __slots__ = ("detail", "key_ids", "reason", "signed_at", "signer", "status")
    status: str
    signer: str | None
    signed_at: str | None
    key_ids: tuple[str, ...]
    reason: str | None
    detail: str | None

    def __init__(
        self,
        status: str,
        signer: str | None = None,
        signed_at: str | None = None,
        key_ids: tuple[str, ...] = (),
        reason: str | None = None,
        detail: str | None = None,
    ):
        super().__init__(
            status=status,
            signer=signer,
            signed_at=signed_at,
            key_ids=tuple(key_ids),
            reason=reason,
            detail=detail,
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
            return f"signed by key {', '.join(self.key_ids)}, not verified (no trusted keys configured)"
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
        return SignatureStatus(VALID, statement.key_id, statement.signed_at, key_ids)
    _, reason, message = max(failures, key=lambda failure: failure[0])
    if reason == UNTRUSTED:
        noun = "key" if len(key_ids) == 1 else "keys"
        message = f"signed only by untrusted {noun} {', '.join(key_ids)} ({trust.describe()})"
    if not trust.enforced:
        return SignatureStatus(INVALID, key_ids=key_ids, reason=reason, detail=message)
    raise SignatureError(f"{refused}: {message}", reason=reason)


def merge_signatures(
    existing: bytes | None, new: Signed | None, dataset: str, revision: str, manifest_data: bytes
) -> tuple[bytes | None, list[Signed], int, bool]:
    """The signatures file after adding ``new``, which replaces an entry by the same key.

    Entries not about this manifest of this revision are dropped; an unreadable file is
    dropped whole. Returns (the content, None when no entry is left; the entries; how many
    were dropped; whether ``new`` replaced an entry by its key).
    """
    digest = sha256_hex(manifest_data)
    try:
        entries = parse_signatures(existing) if existing is not None else []
        dropped = 0
    except SignatureError:
        entries, dropped = [], 1
    kept: list[Signed] = []
    replaced = False
    for entry in entries:
        if entry.statement.problem(dataset, revision, digest) is not None:
            dropped += 1
        elif new is not None and entry.statement.key_id == new.statement.key_id:
            kept.append(new)  # in its place
            replaced = True
        else:
            kept.append(entry)
    if new is not None and not replaced:
        kept.append(new)
    return (signatures_bytes(kept) if kept else None), kept, dropped, replaced


# -- private keys ----------------------------------------------------------------------------


def _raw_public(key: EccKey) -> bytes:
    der = key.public_key().export_key(format="DER")
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise ConfigurationError("unexpected Ed25519 public key encoding from pycryptodome")
    return bytes(der[len(_SPKI_PREFIX) :])


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SigningKey:
    """An Ed25519 private key, loaded from a PEM file that others cannot read."""

    def __init__(self, key: EccKey, path: str = "<memory>"):
        self._key = key
        self.path = path
        self.public = PublicKey(_raw_public(key))

    def __repr__(self) -> str:
        return f"<SigningKey {self.key_id} from {self.path}>"

    @property
    def key_id(self) -> str:
        """The key id of the public key."""
        return self.public.key_id

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a private key file; refuse one that others may read (as ssh does) or that is no
        Ed25519 PEM key."""
        path = Path(path).expanduser()
        try:
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            raise ConfigurationError(f"cannot read signing key {str(path)!r}: {exc.strerror}") from None
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise ConfigurationError(f"signing key {str(path)!r} is not a regular file")
            if os.name != "nt" and status.st_mode & 0o077:
                raise ConfigurationError(
                    f"permissions {stat.S_IMODE(status.st_mode):04o} of signing key {str(path)!r} are too "
                    f"open: others may read it; restrict it with: chmod 600 {path}"
                )
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
        ECC, _ = _crypto()
        try:
            key = ECC.import_key(data.decode("ascii"))
        except (ValueError, IndexError, TypeError, UnicodeDecodeError):
            key = None
        if key is None or key.curve != "Ed25519" or not key.has_private():
            raise ConfigurationError(
                f"{str(path)!r} is not an Ed25519 private key (an unencrypted PEM file, as written by "
                "djarchive-admin keygen)"
            )
        return cls(key, str(path))

    def sign(
        self, dataset: str, revision: str, manifest_data: bytes, *, signed_at: str | None = None
    ) -> Signed:
        """Sign the statement that ``manifest_data`` is the manifest of ``dataset`` ``revision``."""
        _, eddsa = _crypto()
        statement = Statement(
            dataset=dataset,
            revision=revision,
            manifest_sha256=sha256_hex(manifest_data),
            key_id=self.key_id,
            signed_at=signed_at or _utc_now(),
        )
        return Signed(statement, eddsa.new(self._key, "rfc8032").sign(statement.canonical()))


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file; never replace one (O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags, mode)
    except FileExistsError:
        raise LocalPathError(f"{path} already exists: not overwritten (choose another name)") from None
    except OSError as exc:
        raise LocalPathError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def generate_key(path: str | os.PathLike[str]) -> tuple[PublicKey, Path]:
    """Create a new Ed25519 key pair: the private key at ``path`` (mode 0600, never replacing a
    file) and the public key line at ``path.pub``. Returns (public key, path of the .pub file)."""
    path = Path(path).expanduser()
    public_path = path.with_name(path.name + ".pub")
    for candidate in (path, public_path):
        if candidate.exists() or candidate.is_symlink():
            raise LocalPathError(f"{candidate} already exists: not overwritten (choose another name)")
    if not path.parent.is_dir():
        raise LocalPathError(f"cannot create {path}: folder {path.parent} does not exist")
    ECC, _ = _crypto()
    key = ECC.generate(curve="Ed25519")
    public = PublicKey(_raw_public(key))
    pem = key.export_key(format="PEM")
    _create(path, (pem if pem.endswith("\n") else pem + "\n").encode("ascii"), 0o600)
    comment = f"# djarchive signing key {public.key_id}, created {_utc_now()}; trust it with the line below\n"
    try:
        _create(public_path, f"{comment}{public.line}\n".encode("ascii"), 0o644)
    except LocalPathError:
        path.unlink()  # created just now: no key pair without its public half
        raise
    return public, public_path

"""What is signed and how it is stored: the statement, and a revision's signatures file.

A curator signs a revision with an Ed25519 key (``djarchive-admin keygen``). What is signed is a
*statement*, canonical JSON (sorted keys, no spaces, ASCII) of exactly these fields::

    {"dataset":"some-set","key_id":"1a2b3c4d5e6f7a8b","manifest_sha256":"<64 hex>",
     "revision":"000","signed_at":"2026-11-27T10:20:30Z","type":"djarchive-manifest-signature/1"}

``manifest_sha256`` is the sha256 of the manifest object's exact bytes. A revision with a chunk
index (``djarchive-chunks.json``, DESIGN §13) is signed with one more field, ``chunks_sha256``,
the sha256 of the index's bytes; statements without it (older ones) stay valid. ``key_id`` the first 8
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
two entries by one key, more than :data:`MAX_SIGNATURES` entries, :data:`MAX_SIGNATURE_BYTES`
or :data:`MAX_FIELDS` fields in one object. The file comes from the bucket, so reading it is
bounded: linear in its size, and its messages name a few fields, not all of them.

Every download imports this package, so its types are plain classes (:class:`Value`), which
cost nothing to define, unlike dataclasses and typed named tuples (about a millisecond each).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import SignatureError
from ..layout import SIGNATURE_NAME, is_valid_name
from ..text import some

__all__ = [
    "MAX_FIELDS",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_BYTES",
    "REASONS",
    "SIGNATURES_FORMAT",
    "STATEMENT_TYPE",
    "Signed",
    "Statement",
    "merge_signatures",
    "parse_signatures",
    "sha256_hex",
    "signatures_bytes",
]

STATEMENT_TYPE = "djarchive-manifest-signature/1"
SIGNATURES_FORMAT = "djarchive-manifest-signatures/1"
MAX_SIGNATURE_BYTES = 256 * 1024
MAX_SIGNATURES = 64
MAX_FIELDS = 16  # fields of one JSON object; the format's largest, a statement, has 6

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
_INDEXED_STATEMENT_FIELDS = _STATEMENT_FIELDS | {"chunks_sha256"}
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_SHOWN_CHARS = 40  # of a field name from the bucket, in a message


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` in lowercase hex."""
    digest = hashlib.sha256()
    digest.update(data)
    return digest.hexdigest()


class Value:
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


def _rebuild(cls: type[Value], values: dict[str, Any]) -> Value:
    """A value from its fields, as pickled by :meth:`Value.__reduce__`."""
    value = cls.__new__(cls)
    Value.__init__(value, **values)
    return value


class Statement(Value):
    """What a signature binds: one manifest of one revision, signed by one key at one time."""

    __slots__ = ("chunks_sha256", "dataset", "key_id", "manifest_sha256", "revision", "signed_at")
    dataset: str
    revision: str
    manifest_sha256: str
    key_id: str
    signed_at: str
    chunks_sha256: str | None  # the revision's chunk index, when it has one

    def __init__(
        self,
        dataset: str,
        revision: str,
        manifest_sha256: str,
        key_id: str,
        signed_at: str,
        chunks_sha256: str | None = None,
    ):
        super().__init__(
            dataset=dataset,
            revision=revision,
            manifest_sha256=manifest_sha256,
            key_id=key_id,
            signed_at=signed_at,
            chunks_sha256=chunks_sha256,
        )

    def to_dict(self) -> dict[str, str]:
        """The statement as JSON-ready data (``chunks_sha256`` only when there is an index)."""
        data = {
            "type": STATEMENT_TYPE,
            "dataset": self.dataset,
            "revision": self.revision,
            "manifest_sha256": self.manifest_sha256,
            "key_id": self.key_id,
            "signed_at": self.signed_at,
        }
        if self.chunks_sha256 is not None:
            data["chunks_sha256"] = self.chunks_sha256
        return data

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


class Signed(Value):
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
    """An object's fields, refusing more than :data:`MAX_FIELDS` and repeated names (counted once:
    linear, whatever the object)."""
    if len(pairs) > MAX_FIELDS:
        raise ValueError(f"an object with {len(pairs)} fields (at most {MAX_FIELDS})")
    document = dict(pairs)
    if len(document) != len(pairs):
        repeated = min(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
        raise ValueError(f"duplicate JSON key {_quoted(repeated)}")
    return document


def _quoted(name: str) -> str:
    """A field name from the file, quoted and cut short for a message."""
    return repr(name) if len(name) <= _SHOWN_CHARS else f"{name[:_SHOWN_CHARS]!r}..."


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
                f"unexpected field {some(list(map(_quoted, extra)))}" if extra else "",
                f"missing field {some(list(map(_quoted, missing)))}" if missing else "",
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
    indexed = isinstance(value, dict) and "chunks_sha256" in value
    data = _fields(value, _INDEXED_STATEMENT_FIELDS if indexed else _STATEMENT_FIELDS, what)
    if data["type"] != STATEMENT_TYPE:
        raise ValueError(f"{what}: type is not {STATEMENT_TYPE!r}")
    for name in ("dataset", "revision"):
        if not is_valid_name(data[name]):
            raise ValueError(f"{what}: {name} has an invalid value")
    return Statement(
        dataset=data["dataset"],
        revision=data["revision"],
        manifest_sha256=_string(data["manifest_sha256"], _SHA256_RE, f"{what}: manifest_sha256"),
        key_id=_string(data["key_id"], KEY_ID_RE, f"{what}: key_id"),
        signed_at=_string(data["signed_at"], _TIME_RE, f"{what}: signed_at"),
        chunks_sha256=_string(data["chunks_sha256"], _SHA256_RE, f"{what}: chunks_sha256")
        if indexed
        else None,
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
        signers: set[str] = set()
        for number, entry in enumerate(entries, 1):
            what = f"signature {number}"
            entry = _fields(entry, frozenset({"statement", "signature"}), what)
            signed = Signed(
                _statement(entry["statement"], f"{what}'s statement"), _signature(entry["signature"], what)
            )
            if signed.statement.key_id in signers:
                raise ValueError(f"{what}: a second signature by key {signed.statement.key_id}")
            signers.add(signed.statement.key_id)
            found.append(signed)
    except ValueError as exc:
        raise SignatureError(f"malformed {source}: {exc}", reason=MALFORMED) from None
    return found


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

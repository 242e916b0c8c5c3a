"""The receipt a local copy keeps of what it holds: which revision, from where, checked when.

A download or verify that succeeds writes ``TARGET/.djarchive/receipt.json`` and a copy of the
revision's manifest, ``TARGET/.djarchive/manifest.csv``, whose sha256 the receipt records. An
upgrade to another revision marks the receipt ``upgrading`` and keeps the old manifest as
``previous-manifest.csv`` until it is done, so an interrupted upgrade is never mistaken for
either revision. ``djarchive status`` reads it; ``djarchive verify TARGET`` checks the copy
offline against the stored manifest, after checking that manifest against the receipt.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from djarchive_common.errors import LocalPathError, ManifestError
from djarchive_common.layout import is_valid_name
from djarchive_common.localfs import Folder
from djarchive_common.manifest import Manifest, parse_manifest
from djarchive_common.text import files, human_bytes

__all__ = [
    "COMPLETE",
    "RECEIPT",
    "STORED_MANIFEST",
    "UPGRADING",
    "Receipt",
    "read_receipt",
    "republished",
    "stored_manifests",
    "write_receipt",
]

RECEIPT = "receipt.json"
STORED_MANIFEST = "manifest.csv"
PREVIOUS_MANIFEST = "previous-manifest.csv"
COMPLETE = "complete"  # every selected file of the revision is in place and verified
UPGRADING = "upgrading"  # an upgrade from ``previous`` started and has not finished
MAX_RECEIPT_BYTES = 1024 * 1024
MAX_STORED_MANIFEST = 256 * 1024 * 1024


def now() -> str:
    """The current time, as receipts record it (UTC, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Receipt:
    """What a local copy holds and how it got there."""

    dataset: str
    revision: str
    endpoint: str
    bucket: str
    manifest_sha256: str
    secure: bool = True
    state: str = COMPLETE
    files: int = 0
    bytes: int = 0
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    previous: str | None = None  # the revision an unfinished upgrade started from
    previous_sha256: str | None = None
    signature: dict[str, Any] | None = None  # the signature status when it was checked
    sources: dict[str, int] = field(default_factory=dict)  # bytes downloaded, by source (store, mirrors)
    tool: str = ""
    downloaded_at: str = ""
    verified_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the receipt file's content)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Receipt:
        """A receipt from its JSON form; raise ValueError, naming the first wrong field, for
        anything else (a field missing or of the wrong type, names that are not names)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for name, kind in _FIELDS.items():
            if name not in data:
                if name in _REQUIRED:
                    raise ValueError(f"{name} is missing")
                continue
            value = data[name]
            if not _is(value, kind):
                raise ValueError(f"{name} is not {_KINDS[kind]}")
        receipt = cls(**{name: data[name] for name in _FIELDS if name in data})
        if not (is_valid_name(receipt.dataset) and is_valid_name(receipt.revision)):
            raise ValueError("invalid dataset or revision name")
        if receipt.previous is not None and not is_valid_name(receipt.previous):
            raise ValueError("invalid previous revision name")
        if receipt.state not in (COMPLETE, UPGRADING):
            raise ValueError(f"unknown state {receipt.state!r}")
        if not _HEX64.fullmatch(receipt.manifest_sha256):
            raise ValueError("manifest_sha256 is not a sha256")
        return receipt

    @property
    def mirrors(self) -> dict[str, int]:
        """The bytes that came from elsewhere than the archive the receipt names (mirrors)."""
        primary = f"{'https' if self.secure else 'http'}://{self.endpoint}/{self.bucket}"
        return {name: count for name, count in self.sources.items() if name != primary}

    @property
    def selection(self) -> str:
        """The patterns a partial copy was made with, for people."""
        patterns = [f"include {p!r}" for p in self.include] + [f"exclude {p!r}" for p in self.exclude]
        return ", ".join(patterns)

    def __str__(self) -> str:
        what = f"{self.dataset} {self.revision}"
        if self.state == UPGRADING:
            return f"an upgrade of {self.dataset} from {self.previous} to {self.revision} did not finish"
        text = f"{what}: {files(self.files)} ({human_bytes(self.bytes)}) from {self.endpoint}/{self.bucket}"
        if self.selection:
            text += f" ({self.selection})"
        signer = (self.signature or {}).get("signer")
        if signer:
            text += f", signed by key {signer} (recorded at download, not re-checked)"
        mirrors = self.mirrors
        if mirrors:
            served = ", ".join(f"{name} ({human_bytes(count)})" for name, count in mirrors.items())
            text += f", data also from {served}"
        return text + f", verified {self.verified_at or self.downloaded_at}"


# The type of each field of the receipt's JSON (any other field is ignored), and the required ones.
_FIELDS = {
    "dataset": str,
    "revision": str,
    "endpoint": str,
    "bucket": str,
    "manifest_sha256": str,
    "secure": bool,
    "state": str,
    "files": int,
    "bytes": int,
    "include": list,
    "exclude": list,
    "previous": (str, None),
    "previous_sha256": (str, None),
    "signature": (dict, None),
    "sources": dict,
    "tool": str,
    "downloaded_at": str,
    "verified_at": str,
}
_REQUIRED = ("dataset", "revision", "endpoint", "bucket", "manifest_sha256")
_KINDS = {
    str: "a string",
    bool: "true or false",
    int: "a count",
    list: "a list of strings",
    (str, None): "a string or null",
    (dict, None): "an object or null",
    dict: "an object of byte counts",
}
_HEX64 = re.compile("[0-9a-f]{64}")


def _is(value: object, kind: object) -> bool:
    """Whether a receipt's JSON value is of ``kind`` (a count: a whole number, not negative)."""
    if kind is int:
        return type(value) is int and value >= 0
    if kind is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == (str, None):
        return value is None or isinstance(value, str)
    if kind == (dict, None):
        return value is None or isinstance(value, dict)
    if kind is dict:
        return isinstance(value, dict) and all(_is(count, int) for count in value.values())
    return type(value) is kind


def republished(receipt: Receipt, published: str) -> str:
    """What to say when the archive's manifest of the receipt's revision (sha256 ``published``)
    is not the one the receipt records; "" when it is."""
    if receipt.manifest_sha256 == published:
        return ""
    return (
        f"{receipt.dataset} {receipt.revision} changed in the archive since this copy was made (a forced "
        f"republish): the copy's receipt records manifest sha256 {receipt.manifest_sha256}, the "
        f"archive's manifest is {published}"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_receipt(state: Folder) -> Receipt | None:
    """The receipt in a local copy's ``.djarchive`` folder, or None without one."""
    try:
        raw = state.read_bytes(RECEIPT, MAX_RECEIPT_BYTES)
    except FileNotFoundError:
        return None
    try:
        return Receipt.from_dict(json.loads(raw))
    except (ValueError, TypeError, RecursionError) as exc:
        raise LocalPathError(
            f"the receipt {state.path / RECEIPT} is damaged ({exc}); delete it, then verify or download "
            "the revision again to make a new one"
        ) from None


def stored_manifests(state: Folder, receipt: Receipt) -> tuple[Manifest, Manifest | None]:
    """The manifest the receipt stored (checked against its sha256) and, during an upgrade, the
    previous revision's."""
    manifest = _stored(state, STORED_MANIFEST, receipt.manifest_sha256)
    previous = None
    if receipt.state == UPGRADING and receipt.previous_sha256:
        previous = _stored(state, PREVIOUS_MANIFEST, receipt.previous_sha256)
    return manifest, previous


def _stored(state: Folder, name: str, sha256: str) -> Manifest:
    """A manifest djarchive stored, refused when its bytes are not the ones the receipt names."""
    try:
        data = state.read_bytes(name, MAX_STORED_MANIFEST)
    except FileNotFoundError:
        raise LocalPathError(f"{state.path / name} is missing: the receipt cannot be checked") from None
    if _sha256(data) != sha256:
        raise ManifestError(
            f"{state.path / name} was changed since djarchive wrote it (its sha256 is not the receipt's): "
            "download the revision again to repair the copy's records"
        )
    return parse_manifest(data, source=str(state.path / name))


def write_receipt(
    state: Folder, receipt: Receipt, manifest: Manifest, previous: Manifest | None = None
) -> Receipt:
    """Store ``manifest`` (and ``previous`` during an upgrade), then the receipt naming their
    sha256: each written atomically, the receipt last. A stored manifest that is already the
    same (the receipt there names its sha256) is not written again."""
    sha256 = manifest.sha256
    held = read_receipt(state)
    if held is None or held.manifest_sha256 != sha256 or state.lstat(STORED_MANIFEST) is None:
        state.write_atomically(STORED_MANIFEST, manifest.to_bytes())
    receipt.manifest_sha256 = sha256
    if previous is not None:
        old = previous.to_bytes()
        receipt.previous_sha256 = _sha256(old)
        state.write_atomically(PREVIOUS_MANIFEST, old)
    else:
        receipt.previous = receipt.previous_sha256 = None
        state.unlink(PREVIOUS_MANIFEST, missing_ok=True)
    body = json.dumps(receipt.to_dict(), indent=2).encode()
    state.write_atomically(RECEIPT, body)
    return receipt

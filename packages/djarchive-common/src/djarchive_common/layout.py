"""The archive's key layout and naming rules: pure functions, no I/O.

Published data lives at ``<dataset>/<revision>/<subpath>`` with the manifest,
written last, at ``<dataset>/<revision>/djarchive-manifest.csv``, and its signatures, when it
is signed, at ``<dataset>/<revision>/djarchive-manifest.sig``. A staged
(uploaded, not yet published) revision keeps its manifest under
``.djarchive/staging/<dataset>/<revision>/``: outside every revision prefix,
under a name no dataset can have, so clients never see it.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidNameError

__all__ = [
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "STAGING_PREFIX",
    "check_name",
    "check_subpath",
    "lock_key",
    "is_valid_name",
    "manifest_key",
    "natural_key",
    "object_key",
    "revision_prefix",
    "signature_key",
    "staged_manifest_key",
    "subpath_of",
    "subpath_problem",
]

MANIFEST_NAME = "djarchive-manifest.csv"
SIGNATURE_NAME = "djarchive-manifest.sig"
STAGING_PREFIX = ".djarchive/staging/"
LOCKS_PREFIX = ".djarchive/locks/"
MAX_SUBPATH_BYTES = 1024  # S3 keys are limited to 1024 bytes
MAX_COMPONENT_BYTES = 255  # the common file-system limit on one name

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NATURAL_RE = re.compile(r"([0-9]+)")


def is_valid_name(value: object) -> bool:
    """Whether ``value`` is a valid dataset or revision name."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def check_name(value: object, kind: str = "dataset") -> str:
    """Return ``value`` if it is a valid dataset/revision name, else raise InvalidNameError."""
    if not is_valid_name(value):
        raise InvalidNameError(
            f"invalid {kind} name {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value  # type: ignore[return-value]


def subpath_problem(subpath: object) -> str | None:
    """Say what is wrong with a manifest subpath, or None when it is valid."""
    if not isinstance(subpath, str) or not subpath:
        return "empty path"
    if subpath.startswith("/"):
        return "absolute path"
    if "\\" in subpath:
        return "backslash in path"
    for char in subpath:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"control character {char!r} in path"
    if len(subpath.encode("utf-8")) > MAX_SUBPATH_BYTES:
        return f"path longer than {MAX_SUBPATH_BYTES} bytes"
    for part in subpath.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"{part!r} path component"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"path component longer than {MAX_COMPONENT_BYTES} bytes"
    if subpath == MANIFEST_NAME:
        return f"{MANIFEST_NAME} is reserved for the manifest"
    if subpath == SIGNATURE_NAME:
        return f"{SIGNATURE_NAME} is reserved for the manifest's signatures"
    return None


def check_subpath(subpath: object) -> str:
    """Return ``subpath`` if it is a safe relative posix path, else raise InvalidNameError."""
    problem = subpath_problem(subpath)
    if problem:
        raise InvalidNameError(f"invalid path {subpath!r}: {problem}")
    return subpath  # type: ignore[return-value]


def revision_prefix(dataset: str, revision: str) -> str:
    """The key prefix (ending in '/') that holds one revision."""
    return f"{check_name(dataset)}/{check_name(revision, 'revision')}/"


def object_key(dataset: str, revision: str, subpath: str) -> str:
    """The key of one data file of a revision."""
    return revision_prefix(dataset, revision) + check_subpath(subpath)


def manifest_key(dataset: str, revision: str) -> str:
    """The key of a published revision's manifest."""
    return revision_prefix(dataset, revision) + MANIFEST_NAME


def signature_key(dataset: str, revision: str) -> str:
    """The key of a published revision's signatures (written before its manifest)."""
    return revision_prefix(dataset, revision) + SIGNATURE_NAME


def staged_manifest_key(dataset: str, revision: str) -> str:
    """Where a staged revision's manifest waits for publish."""
    return STAGING_PREFIX + revision_prefix(dataset, revision) + MANIFEST_NAME


def lock_key(dataset: str, revision: str) -> str:
    """The lease object held while a revision is being written (upload, publish, retract)."""
    return LOCKS_PREFIX + revision_prefix(dataset, revision).rstrip("/") + ".lock"


def subpath_of(prefix: str, key: str) -> str:
    """The part of ``key`` below ``prefix``."""
    if not key.startswith(prefix):
        raise ValueError(f"key {key!r} is not under {prefix!r}")
    return key[len(prefix) :]


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key under which '2' comes before '10' and 'v2' before 'v10'."""
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in _NATURAL_RE.split(name)
        if part
    )

"""The archive's key layout and naming rules: pure functions, no I/O.

Published data lives at ``<dataset>/<revision>/<subpath>`` with the manifest,
written last, at ``<dataset>/<revision>/djarchive-manifest.csv``, and its signatures, when it
is signed, at ``<dataset>/<revision>/djarchive-manifest.sig``; the chunk index of its large
files, when it has any, at ``<dataset>/<revision>/djarchive-chunks.json``.

djarchive's own bookkeeping lives in flat top-level keys, with no ``/`` in them, so
that it creates no top-level prefix: the archive's original client lists every
top-level prefix as a dataset (and every prefix under ``<dataset>/`` as a revision),
and would otherwise show the bookkeeping as a dataset. The parts of these keys are
joined by ``~``, which no dataset or revision name can contain::

    .djarchive~staging~<dataset>~<revision>~djarchive-manifest.csv   a staged manifest
    .djarchive~locks~<dataset>~<revision>.lock                       a revision's lease
    .djarchive~probe~<token>~<name>                                   the admin's probe (deleted)

A mirror serves the same keys under a base URL ending in ``/``: the object at ``<key>`` is at
``<base URL><key, percent-encoded>`` (:func:`mirror_object_url`), so a static web server over a
folder tree, or a public bucket in path style (``https://host/bucket/``), is one.

A staged (uploaded, not yet published) revision keeps its manifest at the staging key:
outside every revision prefix, under a name no dataset can have, so no client, old or
new, sees it. Earlier versions staged manifests at
``.djarchive/staging/<dataset>/<revision>/djarchive-manifest.csv``; that key is still
read (publish, listings) and deleted, never written. What belongs to one revision
(its retraction record, its kept manifest, signatures) lives under the revision's own
prefix, under the reserved names below, and creates no new top-level prefix either.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, urlsplit

from .errors import ConfigurationError, InvalidNameError

__all__ = [
    "CHUNKS_NAME",
    "LEGACY_STAGING_PREFIX",
    "LOCKS_PREFIX",
    "PROBE_PREFIX",
    "MANIFEST_NAME",
    "RESERVED_NAMES",
    "RETRACTED_MANIFEST_NAME",
    "SIGNATURE_NAME",
    "STATE_FOLDER",
    "SEPARATOR",
    "STAGING_PREFIX",
    "TOMBSTONE_NAME",
    "bucket_problem",
    "check_mirror_url",
    "check_name",
    "check_subpath",
    "chunks_key",
    "is_valid_name",
    "legacy_staged_manifest_key",
    "lock_key",
    "manifest_key",
    "mirror_object_url",
    "natural_key",
    "object_key",
    "retracted_manifest_key",
    "revision_prefix",
    "signature_key",
    "staged_manifest_key",
    "staged_manifest_keys",
    "staged_revision",
    "subpath_of",
    "subpath_problem",
    "tombstone_key",
]

MANIFEST_NAME = "djarchive-manifest.csv"
SIGNATURE_NAME = "djarchive-manifest.sig"  # signed statements about the manifest (DESIGN §10)
TOMBSTONE_NAME = "djarchive-retraction.json"  # why and when a revision was retracted (DESIGN §9)
RETRACTED_MANIFEST_NAME = "djarchive-manifest.retracted.csv"  # a retracted revision's manifest, kept
CHUNKS_NAME = "djarchive-chunks.json"  # the content-defined chunks of its large files (DESIGN §13)
RESERVED_NAMES = frozenset(
    {MANIFEST_NAME, SIGNATURE_NAME, TOMBSTONE_NAME, RETRACTED_MANIFEST_NAME, CHUNKS_NAME}
)
STATE_FOLDER = ".djarchive"  # djarchive's own folder in a local copy; no manifest path may enter it
SEPARATOR = "~"  # joins the parts of bookkeeping keys; no dataset or revision name contains it
STAGING_PREFIX = ".djarchive~staging~"
LOCKS_PREFIX = ".djarchive~locks~"
PROBE_PREFIX = ".djarchive~probe~"  # what the admin writes to find out what a server does
LEGACY_STAGING_PREFIX = ".djarchive/staging/"  # read and deleted, never written
MAX_SUBPATH_BYTES = 1024  # S3 keys are limited to 1024 bytes
MAX_COMPONENT_BYTES = 255  # the common file-system limit on one name

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# S3's bucket names, as minio accepts them (legacy names with capitals, '_' and ':' included).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{1,61}[a-z0-9]", re.IGNORECASE)
_IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INVISIBLE = frozenset({"Cf", "Zl", "Zp"})  # formats (zero-width, bidi, BOM), line/paragraph separators
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


def bucket_problem(name: str) -> str | None:
    """What makes ``name`` no S3 bucket name, or None when it is one: 3 to 63 letters, digits,
    dots and hyphens, starting and ending with a letter or digit, not an IP address."""
    if not _BUCKET_RE.fullmatch(name):
        return "use 3 to 63 letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if _IPV4_RE.fullmatch(name):
        return "a bucket name cannot be an IP address"
    if any(pair in name for pair in ("..", ".-", "-.")):
        return "no '..', '.-' or '-.' in a bucket name"
    return None


def subpath_problem(subpath: object) -> str | None:
    """Say what is wrong with a manifest subpath, or None when it is valid.

    Linear in the path's length, with a fast path for ASCII. Refused: empty, absolute, backslash,
    control characters, invisible or direction-changing characters (Unicode formats such as
    zero-width and bidi controls, line and paragraph separators, a BOM), lone surrogates, ``.``,
    ``..`` or empty components, more than 1024 bytes or a component over 255, and the names
    djarchive keeps for itself (:data:`RESERVED_NAMES` at the top, ``.djarchive/`` anywhere
    case-insensitively at the top).
    """
    if not isinstance(subpath, str) or not subpath:
        return "empty path"
    if subpath[0] == "/":
        return "absolute path"
    if "\\" in subpath:
        return "backslash in path"
    control = _ASCII_CONTROL.search(subpath)
    if control:
        return f"control character {control.group()!r} in path"
    if subpath.isascii():
        size = len(subpath)
    else:
        for char in subpath:
            if char > "\x7e":
                category = unicodedata.category(char)
                if category in ("Cc", "Cs"):
                    return f"control character {char!r} in path"
                if category in _INVISIBLE:
                    return f"invisible or direction-changing character U+{ord(char):04X} in path"
        size = len(subpath.encode("utf-8"))
    if size > MAX_SUBPATH_BYTES:
        return f"path longer than {MAX_SUBPATH_BYTES} bytes"
    for part in subpath.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"{part!r} path component"
        if len(part) > MAX_COMPONENT_BYTES // 4 and len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"path component longer than {MAX_COMPONENT_BYTES} bytes"
    if subpath in RESERVED_NAMES:
        return f"{subpath} is reserved for djarchive's own use"
    if subpath.partition("/")[0].casefold() == STATE_FOLDER:
        return f"{STATE_FOLDER} is reserved for djarchive's own use"
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


def chunks_key(dataset: str, revision: str) -> str:
    """The key of a revision's chunk index (written before its manifest, when it has large files)."""
    return revision_prefix(dataset, revision) + CHUNKS_NAME


def tombstone_key(dataset: str, revision: str) -> str:
    """The retraction record of a revision (reason, successor, time)."""
    return revision_prefix(dataset, revision) + TOMBSTONE_NAME


def retracted_manifest_key(dataset: str, revision: str) -> str:
    """Where a retracted revision's manifest is kept, so that it stays reproducible."""
    return revision_prefix(dataset, revision) + RETRACTED_MANIFEST_NAME


def _flat(dataset: str, revision: str) -> str:
    """``<dataset>~<revision>``, checked."""
    return f"{check_name(dataset)}{SEPARATOR}{check_name(revision, 'revision')}"


def staged_manifest_key(dataset: str, revision: str) -> str:
    """Where a staged revision's manifest waits for publish (a flat top-level key)."""
    return f"{STAGING_PREFIX}{_flat(dataset, revision)}{SEPARATOR}{MANIFEST_NAME}"


def legacy_staged_manifest_key(dataset: str, revision: str) -> str:
    """Where earlier versions staged a revision's manifest (read and deleted, never written)."""
    return LEGACY_STAGING_PREFIX + revision_prefix(dataset, revision) + MANIFEST_NAME


def staged_manifest_keys(dataset: str, revision: str) -> tuple[str, str]:
    """Every key a staged manifest may be at, in the order to read them: current, legacy."""
    return staged_manifest_key(dataset, revision), legacy_staged_manifest_key(dataset, revision)


def staged_revision(key: str) -> tuple[str, str] | None:
    """(dataset, revision) of a staged manifest's key, current or legacy; None for any other key."""
    if key.startswith(STAGING_PREFIX):
        parts = key[len(STAGING_PREFIX) :].split(SEPARATOR)
    elif key.startswith(LEGACY_STAGING_PREFIX):
        parts = key[len(LEGACY_STAGING_PREFIX) :].split("/")
    else:
        return None
    if len(parts) == 3 and parts[2] == MANIFEST_NAME and is_valid_name(parts[0]) and is_valid_name(parts[1]):
        return parts[0], parts[1]
    return None


def lock_key(dataset: str, revision: str) -> str:
    """The lease object held while a revision is being written (upload, publish, retract)."""
    return f"{LOCKS_PREFIX}{_flat(dataset, revision)}.lock"


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


def check_mirror_url(value: object, source: str = "--mirror") -> str:
    """``value`` as a mirror's base URL: ``http(s)://host[:port]/path/``, ending in ``/``, with no
    credentials, query or fragment; ConfigurationError otherwise (naming ``source``, and never
    echoing a URL that carries credentials)."""
    text = str(value).strip()
    usage = "expected http(s)://HOST[:PORT]/PATH/, ending in '/'"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigurationError(f"invalid mirror URL {text!r} ({source}): {usage}") from None
    if "@" in parts.netloc:  # checked first, so that a pasted secret is never echoed
        raise ConfigurationError(
            f"invalid mirror URL ({source}): credentials do not belong in it (mirrors are read anonymously)"
        )
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or _ASCII_CONTROL.search(text)
        or " " in text
    ):
        raise ConfigurationError(f"invalid mirror URL {text!r} ({source}): {usage}")
    if not parts.path.endswith("/"):
        raise ConfigurationError(
            f"invalid mirror URL {text!r} ({source}): it must end in '/' (the folder the archive's "
            f"keys are under, e.g. {text}/)"
        )
    return text


def mirror_object_url(base: str, key: str) -> str:
    """Where a mirror with the base URL ``base`` (:func:`check_mirror_url`) serves ``key``:
    ``base`` and the key percent-encoded ('/' kept), so names with spaces, '#', '?' or '%' work."""
    return base + quote(key, safe="/")

"""A mirror: a copy of the archive's keys served by anonymous HTTP(S) GETs, as a :class:`Source`.

A mirror is a base URL ending in ``/`` under which the archive's keys are served: the object
``K`` at the base URL plus ``K`` percent-encoded (:func:`djarchive_common.layout.mirror_object_url`).
A static web server over a folder tree (``djarchive-admin mirror`` writes one; nginx or
``python -m http.server`` serve it) and a public-read bucket in path style
(``https://host/bucket/``) are mirrors. Its bytes are checked like the store's: every read of
a :class:`Mirror` goes through :mod:`djarchive_common.verified` (a mirror needs no trust, the
manifest says what is right).

Requests are anonymous: only ``Range``, ``Accept-Encoding: identity`` and ``User-Agent`` are
sent; no Authorization header and no part of the configured key pair ever goes to a mirror (a
mirror URL with credentials in it is refused). The urllib3 pool is the store's kind
(:func:`djarchive_common.connection.http_pool`: size, timeouts, the environment's proxy and CA
bundle), and bodies are :class:`~djarchive_common.connection.ResponseStream` objects, so the
minimum rate and :meth:`abort` work as they do for the store. A server that ignores ``Range``
(Python's own ``http.server`` does) answers 200 with the whole object: callers see it as
:class:`~djarchive_common.errors.RangesIgnored` and fetch whole files from it. Every failure is
translated by :mod:`djarchive_common.translation`, nowhere else.

Manifests, signatures and tombstones come from the primary (the configured store). Only when
it cannot be reached at all (refused, timed out: an error that is ``unreachable``; never an
answer such as a 5xx) does :func:`manifest_from_mirrors` read a manifest from a mirror, and
then only one a trusted key signed for this dataset and revision: the signature binds both
and the manifest's sha256, so another revision's manifest (a rollback) or an altered one is
refused. Whether the revision was retracted since cannot be known from a mirror (the primary
keeps that), and the :class:`ManifestRead` says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from . import __version__
from .connection import ResponseStream, http_pool, proxy_to
from .errors import (
    DJArchiveError,
    Hint,
    ObjectNotFoundError,
    RangesIgnored,
    SignatureError,
    TransferError,
)
from .layout import check_mirror_url, manifest_key, mirror_object_url, signature_key
from .transfer import RetryPolicy
from .translation import http_status_error, translate_connection
from .transport import StoreOptions
from .verified import read

if TYPE_CHECKING:
    import urllib3
    from urllib3 import BaseHTTPResponse

    from .manifest import Manifest
    from .signing import SignatureStatus, Trust

__all__ = [
    "MAX_REDIRECTS",
    "UNTRUSTED_MIRROR",
    "ManifestRead",
    "Mirror",
    "MirrorStream",
    "manifest_from_mirrors",
    "mirrors_of",
    "unreachable",
]

log = logging.getLogger("djarchive_common")
MAX_REDIRECTS = 5  # a mirror behind a CDN may redirect; more is a loop
TLS_HINT = "or give the mirror's http:// URL if it serves plain http"
UNTRUSTED_MIRROR = "the archive is unreachable and the mirror's manifest is not signed by a key you trust"
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # as the catalog's
MAX_SIGNATURE_READ = 16 * 1024 * 1024


class MirrorStream(ResponseStream):
    """A mirror's answer being received; its errors are translated as plain HTTP's."""

    def __init__(self, response: BaseHTTPResponse, what: str, where: str, options: StoreOptions):
        super().__init__(response, what, options)
        self._where = where

    def _translate(self, exc: Exception) -> DJArchiveError | None:
        return translate_connection(exc, self._what, self._where, TLS_HINT)


class Mirror:
    """One mirror of the archive, read anonymously: a :class:`~djarchive_common.verified.Source`.
    Thread-safe; creating one sends nothing (the pool is made on first use)."""

    def __init__(self, url: str, options: StoreOptions | None = None, *, source: str = "mirrors="):
        self.url = check_mirror_url(url, source)
        self.options = options or StoreOptions.from_environment()
        self._pool: urllib3.PoolManager | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Mirror {self.url}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mirror) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self) -> tuple[type[Mirror], tuple[str, StoreOptions]]:
        return Mirror, (self.url, self.options)  # pickled without its pool (Dask, fsspec)

    @property
    def name(self) -> str:
        """The mirror's base URL (it carries no secret: credentials in it are refused)."""
        return self.url

    @property
    def pool(self) -> urllib3.PoolManager:
        """The connection pool, made on first use."""
        with self._pool_lock:
            if self._pool is None:
                parts = urlsplit(self.url)
                secure = parts.scheme.lower() == "https"
                proxy = proxy_to(secure, parts.hostname or "")
                self._pool = http_pool(self.options, proxy, redirects=MAX_REDIRECTS)
            return self._pool

    def stream(self, key: str, offset: int = 0, length: int = 0, *, what: str = "") -> MirrorStream:
        """Start receiving ``length`` bytes of ``key`` from ``offset`` (length 0: to the end); an
        error answer raises (translated), a 200 to a request from an offset without a length
        raises RangesIgnored (the body would start at the wrong byte)."""
        what = what or f"downloading {key}"
        headers = {"Accept-Encoding": "identity", "User-Agent": f"djarchive/{__version__}"}
        if length:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = self.pool.request(
                "GET", mirror_object_url(self.url, key), headers=headers, preload_content=False
            )
        except Exception as exc:
            error = translate_connection(exc, what, self.url, TLS_HINT)
            if error is None:
                raise
            raise error from exc
        if response.status not in (200, 206):
            _discard(response)
            raise http_status_error(response.status, what, self.url)
        if response.status == 200 and offset and not length:
            response.close()
            raise RangesIgnored(f"{what}: {self.url} ignores byte ranges")
        return MirrorStream(response, what, self.url, self.options)


def mirrors_of(urls: tuple[str, ...], options: StoreOptions | None = None) -> tuple[Mirror, ...]:
    """A :class:`Mirror` for each checked URL (see :func:`djarchive_common.config.resolve_mirrors`),
    sharing ``options``."""
    return tuple(Mirror(url, options) for url in dict.fromkeys(urls))


class ManifestRead(NamedTuple):
    """A revision's manifest as read for a caller, and where from."""

    manifest: Manifest
    signature: SignatureStatus
    data: bytes  # the manifest's bytes, as stored
    signatures: bytes | None  # the signatures file's bytes (None: there is none)
    origin: str  # the name of the source it came from: the store's, or a mirror's URL
    note: str | None = None  # what the reader should know (read from a mirror: retraction unchecked)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says that no answer came at all (the only failure of the primary that
    lets a signed manifest come from a mirror)."""
    return isinstance(error, TransferError) and error.unreachable


def manifest_from_mirrors(
    mirrors: Sequence[Mirror],
    dataset: str,
    revision: str,
    trust: Trust,
    cause: DJArchiveError,
    policy: RetryPolicy,
) -> ManifestRead:
    """The manifest of a published revision from the first of ``mirrors`` that serves one signed
    by a trusted key for this dataset and revision, the primary being unreachable (``cause``).

    Without trusted keys, or when every mirror's manifest fails the check, SignatureError with
    :data:`UNTRUSTED_MIRROR` and why; when no mirror serves one at all, ``cause`` again (with
    what the mirrors answered)."""
    from .manifest import parse_manifest
    from .signing import UNTRUSTED, check_signatures

    name = f"{dataset} {revision}"
    if not trust.enforced:
        raise SignatureError(
            f"{name}: {UNTRUSTED_MIRROR} (no trusted keys are configured; {cause})",
            reason=UNTRUSTED,
            hint=Hint("trusted_keys", flag="--trust", metavar="KEY", text="; give {}"),
        )
    refusals: list[SignatureError] = []
    failures: list[str] = []
    for mirror in mirrors:
        key = manifest_key(dataset, revision)
        try:
            data = read(mirror, key, policy, limit=MAX_MANIFEST_BYTES, what=f"reading {key}")[0]
            try:
                found = read(mirror, signature_key(dataset, revision), policy, limit=MAX_SIGNATURE_READ)[0]
                signatures: bytes | None = found
            except ObjectNotFoundError:
                signatures = None
            source = f"{signature_key(dataset, revision)} in {mirror.url}"
            status = check_signatures(signatures, data, dataset, revision, trust, source=source)
            manifest = parse_manifest(data, source=mirror_object_url(mirror.url, key))
        except SignatureError as error:
            log.info("mirror %s: %s", mirror.url, error)
            refusals.append(error)
            continue
        except DJArchiveError as error:  # not served: missing, unreachable, an invalid manifest
            log.info("mirror %s: %s", mirror.url, error)
            failures.append(f"{mirror.url}: {error}")
            continue
        if not manifest:
            failures.append(f"{mirror.url}: the manifest is empty")
            continue
        note = (
            f"the archive is unreachable ({cause}); {name} was read from the mirror {mirror.url}, "
            f"{status}; whether it was retracted since could not be checked"
        )
        log.info("%s", note)  # the caller tells: the note is returned
        return ManifestRead(manifest, status, data, signatures, mirror.url, note)
    if refusals:
        first = refusals[0]
        raise SignatureError(f"{name}: {UNTRUSTED_MIRROR} ({first})", reason=first.reason)
    raise TransferError(
        f"{cause}; no mirror could serve the manifest either ({'; '.join(failures)})",
        retryable=False,
        unreachable=True,
    )


def _discard(response: BaseHTTPResponse) -> None:
    """Let an error answer go without reading its body (whatever its size): its connection is
    closed, not pooled."""
    try:
        response.close()
    except Exception as exc:  # the answer is an error already: how it closes does not matter
        log.debug("discarding an error answer: %s", exc)

"""The bucket: listings, HEADs, reads, writes, conditional writes and multipart clean-up.

One :class:`Store` per client and role. Control calls (listings, HEADs, conditional writes,
deletes) go through its minio client (:func:`djarchive_common.connection.connect`); single reads
of objects (manifests, signatures, the filesystem's ranges) through its
:class:`~djarchive_common.transport.Transport`, minio's by default; bulk bodies (a download's
files, every PUT of :mod:`djarchive_common.writes`) through libcurl (:meth:`Store.engine`) when
:attr:`Store.curl` says so, else through the transport and minio. Every error arrives
translated (:mod:`djarchive_common.translation`) and marked ``retryable`` when it is transient;
retries follow :mod:`djarchive_common.transfer`. A store is the primary
:class:`~djarchive_common.verified.Source` of the archive's bytes: its reads are checked by
:mod:`djarchive_common.verified`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import verified
from .config import Settings
from .connection import MinioTransport, ObjectStream, connect
from .errors import ObjectNotFoundError, TransferError
from .logs import register_secrets
from .text import plural
from .transfer import retry_call
from .translation import _DENIED, _TRANSIENT, condition_failed, is_missing, translated
from .transport import StoreOptions, Stream, Transport
from .writes import CHECKSUM_SHA256, WriteChecks, Written, put_bytes, put_file

if TYPE_CHECKING:
    from minio import Minio

    from .copies import Piece, Read
    from .curl import CurlEngine, Done, Put
    from .transfer import RetryPolicy

__all__ = ["SHA256_METADATA", "Answer", "ObjectInfo", "ObjectStream", "Store", "StoreOptions"]

T = TypeVar("T")
SHA256_METADATA = "sha256"  # stored as the x-amz-meta-sha256 header
LISTING_PAGE = 1000  # keys asked for per listing request (S3's largest page)
MAX_LISTING_PAGES = 100_000  # 100 million keys: more is a server that lies
log = logging.getLogger("djarchive_common")


class ObjectInfo(NamedTuple):
    """What the store says about one object."""

    key: str
    size: int
    sha256: str | None = None  # from x-amz-meta-sha256, when stat'ed
    etag: str | None = None  # without quotes
    checksum: str | None = None  # x-amz-checksum-sha256 as the server keeps it, when stat'ed for it


class Answer(NamedTuple):
    """A server's answer to one request, error answers included (:meth:`Store.ask`)."""

    status: int
    code: str  # the S3 error code, '' for a success
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class Store:
    """One bucket of the archive. Thread-safe; share one per process and role. ``transport``
    carries the data calls (default: minio's, created on first use)."""

    def __init__(
        self, settings: Settings, options: StoreOptions | None = None, *, transport: Transport | None = None
    ):
        self.settings = settings
        self.options = options or StoreOptions.from_environment()
        self.write_checks = WriteChecks()  # what the server does with digests (the admin probes it)
        register_secrets(settings.secrets)
        self._given_transport = transport is not None
        if transport is not None:
            self.transport = transport
        self._idle_engines: list[CurlEngine] = []  # for PUTs (send), one per PUT at a time
        self._engines_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Store {self.settings.url}>"

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.settings.bucket

    @property
    def name(self) -> str:
        """Where this store's bytes come from, for messages (a source's name)."""
        return self.settings.url

    @cached_property
    def minio(self) -> Minio:
        """The minio client, created on first use (creating a Store never touches the network)."""
        return connect(self.settings, self.options)

    @cached_property
    def transport(self) -> Transport:
        """What carries GETs of objects and PUTs of files (minio's unless another was given)."""
        return MinioTransport(self.minio, self.settings, self.options)

    @cached_property
    def curl(self) -> bool:
        """Whether bulk bodies go through libcurl (:func:`~djarchive_common.transport.bulk_transport`
        of ``options.transport``; never for a store given a transport of its own). Imports pycurl
        when first asked."""
        from .transport import bulk_transport

        return not self._given_transport and bulk_transport(self.options.transport) == "curl"

    @cached_property
    def region(self) -> str:
        """The bucket's region, for libcurl's SigV4 (minio asks the server once)."""
        return self.call(f"finding the region of {self.bucket}", lambda: self.minio._get_region(self.bucket))

    def engine(self, max_transfers: int, *, retry: RetryPolicy | None = None) -> CurlEngine:
        """A new libcurl engine for this store's objects (see :mod:`djarchive_common.curl`),
        retrying under ``retry`` (the store's policy by default). Close it after use."""
        from .curl import CurlEngine

        region = "us-east-1" if self.settings.anonymous else self.region
        return CurlEngine(self, max_transfers=max_transfers, region=region, retry=retry)

    def send(self, request: Put) -> Done:
        """One PUT through an engine of its own, no retry of its own (:mod:`.writes` retries the
        whole write); engines (and their keep-alive connections) are reused from PUT to PUT."""
        with self._engines_lock:
            engine = self._idle_engines.pop() if self._idle_engines else None
        if engine is None:
            from .transfer import RetryPolicy

            engine = self.engine(1, retry=RetryPolicy(attempts=1, unreachable_attempts=1))
        try:
            [done] = engine.run([request])
        except BaseException:
            engine.close()
            raise
        with self._engines_lock:
            self._idle_engines.append(engine)
        return done

    def close(self) -> None:
        """Close the connections of the engines :meth:`send` keeps (the minio pool stays)."""
        with self._engines_lock:
            engines, self._idle_engines = self._idle_engines, []
        for engine in engines:
            engine.close()

    def call(self, what: str, func: Callable[[], T]) -> T:
        """Run one store operation, translated and retried under the retry policy."""

        def attempt() -> T:
            with translated(what, self.settings):
                return func()

        return retry_call(attempt, what, self.options.retry)

    # -- listing -----------------------------------------------------------------------

    def _page(
        self, prefix: str, delimiter: str, *, token: str | None = None, start_after: str = ""
    ) -> tuple[list[Any], bool, str | None]:
        """One page (up to LISTING_PAGE entries) of a ListObjectsV2 listing, retried on its own:
        (objects and prefixes, whether more follow, the continuation token)."""
        from minio.datatypes import parse_list_objects

        query = {
            "list-type": "2",
            "delimiter": delimiter,
            "encoding-type": "url",
            "max-keys": str(LISTING_PAGE),
        }
        query["prefix"] = prefix
        if token:
            query["continuation-token"] = token
        if start_after:
            query["start-after"] = start_after

        def get() -> tuple[list[Any], bool, str | None]:
            response = self.minio._execute("GET", self.bucket, query_params=query)  # type: ignore[arg-type]
            objects, truncated, following, _ = parse_list_objects(response)
            return objects, truncated, following

        return self.call(f"listing {prefix or 'the bucket'}", get)

    def _list(self, prefix: str, delimiter: str) -> Iterator[Any]:
        """ListObjectsV2, page after page, with guards against a server whose listing never
        ends: a continuation token seen before, a truncated page without one, or more than
        MAX_LISTING_PAGES pages stop it with an error."""
        if not hasattr(self.minio, "_execute"):  # a stand-in client (pytest-minio-mock): its own loop
            yield from self.call(
                f"listing {prefix or 'the bucket'}",
                lambda: list(self.minio.list_objects(self.bucket, prefix=prefix, recursive=not delimiter)),
            )
            return
        token, tokens = None, set()
        for _ in range(MAX_LISTING_PAGES):
            objects, truncated, token = self._page(prefix, delimiter, token=token)
            yield from objects
            if not truncated:
                return
            if not token or token in tokens:
                raise TransferError(
                    f"listing {prefix or 'the bucket'}: {self.settings.endpoint} answers 'truncated' "
                    "without a new continuation token; its listing would never end"
                )
            tokens.add(token)
        raise TransferError(
            f"listing {prefix or 'the bucket'}: more than {MAX_LISTING_PAGES} pages; giving up"
        )

    def prefixes(self, prefix: str = "") -> list[str]:
        """The immediate sub-prefixes of ``prefix`` (each ending in '/'), as S3 lists them."""
        return [obj.object_name for obj in self._list(prefix, "/") if obj.is_dir and obj.object_name]

    def objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix``, recursively, with its size."""
        return [
            ObjectInfo(obj.object_name, int(obj.size or 0), etag=(obj.etag or "").strip('"') or None)
            for obj in self._list(prefix, "")
            if not obj.is_dir and obj.object_name
        ]

    def keys(
        self, prefix: str = "", *, after: str = "", jump: Callable[[str], str] | None = None
    ) -> Iterator[str]:
        """The keys under ``prefix`` in the store's order, from the first after ``after``, a page
        (up to LISTING_PAGE keys) per request. After each page, ``jump(last key)`` may name a later key
        to go on after: the keys between are skipped without being listed. Stop iterating to
        stop listing."""
        what = f"listing {prefix or 'the bucket'}"
        if not hasattr(self.minio, "_execute"):  # a stand-in client: everything, nothing skipped
            found = self.call(
                what,
                lambda: list(self.minio.list_objects(self.bucket, prefix, recursive=True, start_after=after)),
            )
            yield from (obj.object_name for obj in found if obj.object_name)
            return
        for _ in range(MAX_LISTING_PAGES):
            objects, truncated, _ = self._page(prefix, "", start_after=after)
            names = [obj.object_name for obj in objects if obj.object_name]
            yield from names
            if not truncated:
                return
            if not names or names[-1] <= after:
                raise TransferError(
                    f"{what}: {self.settings.endpoint} answers 'truncated' without a later key; "
                    "its listing would never end"
                )
            after = max(names[-1], jump(names[-1])) if jump is not None else names[-1]
        raise TransferError(f"{what}: more than {MAX_LISTING_PAGES} pages; giving up")

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists, asked by listing (anonymous HEADs of missing keys may get 403)."""
        return any(info.key == key for info in self.objects(key))

    def stat(self, key: str, *, checksum: bool = False) -> ObjectInfo | None:
        """Size, sha256 metadata and ETag of one object (``checksum``: and the sha256 checksum the
        server keeps, asked for with ``x-amz-checksum-mode``), or None when it does not exist."""
        headers = {"x-amz-checksum-mode": "ENABLED"} if checksum else None
        try:
            found = self.call(
                f"checking {key}",
                lambda: self.minio.stat_object(self.bucket, key, extra_headers=headers),  # type: ignore[arg-type]
            )
        except ObjectNotFoundError:
            return None
        metadata = {name.lower(): value for name, value in (found.metadata or {}).items()}
        return ObjectInfo(
            key,
            int(found.size or 0),
            metadata.get(f"x-amz-meta-{SHA256_METADATA}"),
            (found.etag or "").strip('"') or None,
            metadata.get(CHECKSUM_SHA256),
        )

    # -- reading -----------------------------------------------------------------------

    def read(self, key: str, limit: int) -> bytes:
        """The whole content of a small object; refuse objects larger than ``limit`` bytes."""
        return self.read_tagged(key, limit)[0]

    def read_tagged(self, key: str, limit: int) -> tuple[bytes, str]:
        """The whole content of a small object, read to its stated length (a verified read), and
        its ETag (for a conditional write after)."""
        return verified.read(self, key, self.options.retry, limit=limit)

    def stream(self, key: str, offset: int = 0, length: int = 0, *, what: str = "") -> Stream:
        """Start receiving ``length`` bytes of ``key`` from ``offset`` (length 0: to the end).

        Use it as a context manager; its reads raise only djarchive errors (``what`` names the
        operation in them). Callers that check what they read go through
        :mod:`djarchive_common.verified`.
        """
        return self.transport.get(key, offset, length, what or f"downloading {key}")

    # -- writing -----------------------------------------------------------------------

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        sha256: str,
        *,
        part_size: int,
        parallel_parts: int = 1,
    ) -> Written:
        """Upload a file (multipart above ``part_size``) with its sha256 as user metadata and as the
        digests the server can check (:mod:`djarchive_common.writes`); return what was written.

        When the answer to an upload is lost (minio then reports a failure, e.g. NoSuchUpload
        for a multipart upload the server did complete), the stored object is checked and
        accepted if its size and sha256 metadata are right (not proven: publish reads it back).
        """
        size = os.stat(path).st_size

        def recover() -> Written | None:
            stored = self.stat(key)
            if stored is not None and (stored.size, stored.sha256) == (size, sha256):
                return Written(stored.etag or "", proven=False)
            return None

        headers = {f"x-amz-meta-{SHA256_METADATA}": sha256, "Content-Type": "application/octet-stream"}
        return put_file(
            self,
            key,
            path,
            sha256,
            headers,
            part_size=part_size,
            parallel_parts=parallel_parts,
            recover=recover,
        )

    def copy(
        self, key: str, source_key: str, sha256: str, *, md5: Callable[[], str] | None = None
    ) -> Written:
        """Copy the object ``source_key`` to ``key`` in the bucket (CopyObject, up to 5 GiB) with
        ``sha256`` as its metadata; ``md5()``: the local content's MD5, to prove the copy where
        ETags are MD5s (:mod:`djarchive_common.copies`)."""
        from .copies import copy_object

        return copy_object(self, key, source_key, sha256, self._data_headers(sha256), md5=md5)

    def compose(
        self, key: str, size: int, sha256: str, pieces: Sequence[Piece], read: Read, *, parallel: int = 1
    ) -> Written:
        """Write ``key`` as a multipart upload of ``pieces``: ranges copied from objects of the
        bucket and parts sent from the local file ``read(offset, length)`` gives, with ``sha256``
        as its metadata (:func:`djarchive_common.copies.compose`)."""
        from .copies import compose

        return compose(self, key, size, pieces, self._data_headers(sha256), read, parallel=parallel)

    @staticmethod
    def _data_headers(sha256: str) -> dict[str, str]:
        return {f"x-amz-meta-{SHA256_METADATA}": sha256, "Content-Type": "application/octet-stream"}

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> Written:
        """Upload a small object from memory, with its digests; return what was written."""
        headers = {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}
        headers["Content-Type"] = "text/csv" if key.endswith(".csv") else "application/octet-stream"
        return put_bytes(self, key, data, headers)

    def ask(
        self,
        method: str,
        key: str = "",
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        refusal: bool = False,
    ) -> Answer:
        """One request, for finding out what the server does (the admin's probe): an error answer
        (4xx) is returned, not raised, except a missing bucket or refused credentials (unless
        ``refusal``: the request is made to be refused); transient failures are retried, and
        translated."""
        from minio.error import S3Error

        def attempt() -> Answer:
            try:
                response = self.minio._execute(
                    method,
                    self.bucket,
                    key or None,
                    body=body,
                    headers=dict(headers or {}),
                    query_params=dict(query or {}),
                )
            except S3Error as exc:
                status = exc.response.status if exc.response is not None else 0
                if (status >= 500 and exc.code != "NotImplemented") or exc.code in _TRANSIENT:
                    raise
                if not refusal and (exc.code == "NoSuchBucket" or exc.code in _DENIED):
                    raise
                answer = exc.response.headers if exc.response is not None else {}
                return Answer(status, exc.code or f"HTTP {status}", _lower(answer), b"")
            return Answer(response.status, "", _lower(response.headers), response.data)

        return self.call(f"{method} {key or self.bucket}", attempt)

    def write_if(self, key: str, data: bytes, etag: str | None = None) -> str | None:
        """Write a small object only if ``key`` does not exist (``etag`` None: ``If-None-Match: *``)
        or still has ``etag`` (``If-Match``); return the new ETag, or None when the condition
        failed. minio-py's public API cannot send these headers, hence the call one level down.
        Stores that ignore conditions accept every write: callers read the object back."""

        def put() -> str | None:
            headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/json"}
            headers.update({"If-Match": etag} if etag else {"If-None-Match": "*"})
            try:
                response = self.minio._execute("PUT", self.bucket, key, body=data, headers=headers)
            except Exception as exc:
                if condition_failed(exc):
                    return None
                raise
            return str(response.headers.get("etag") or "")

        return self.call(f"writing {key}", put)

    def remove_if(self, key: str, etag: str) -> bool:
        """Delete ``key`` only if it still has ``etag``; False when it changed (or is gone)."""

        def delete() -> bool:
            try:
                self.minio._execute("DELETE", self.bucket, key, headers={"If-Match": etag})
            except Exception as exc:
                if condition_failed(exc) or is_missing(exc):
                    return False
                raise
            return True

        return self.call(f"deleting {key}", delete)

    def abort_uploads(self, prefix: str) -> int:
        """Abort every unfinished multipart upload under ``prefix`` (they are billed until then);
        return how many."""
        from minio.error import S3Error

        def abort() -> int:
            try:
                result = self.minio._list_multipart_uploads(self.bucket, prefix=prefix)
            except S3Error as exc:
                if exc.code != "NotImplemented":
                    raise
                return 0  # a server that cannot list them (s3rver) cannot be asked to abort them
            uploads = [(upload.object_name, upload.upload_id) for upload in result.uploads]
            for name, upload_id in uploads:
                if name and upload_id:
                    self.minio._abort_multipart_upload(self.bucket, name, upload_id)
            return len(uploads)

        return self.call(f"aborting unfinished uploads under {prefix}", abort)

    def remove(self, key: str) -> None:
        """Delete one object (deleting a missing object is not an error)."""
        self.call(f"deleting {key}", lambda: self.minio.remove_object(self.bucket, key))

    def remove_many(self, keys: list[str]) -> None:
        """Delete objects in batches of up to 1000."""
        from minio.deleteobjects import DeleteObject

        for start in range(0, len(keys), 1000):
            batch = [DeleteObject(key) for key in keys[start : start + 1000]]

            def delete(batch: list[Any] = batch) -> None:
                errors = list(self.minio.remove_objects(self.bucket, batch))
                if errors:
                    first = errors[0]
                    raise TransferError(f"deleting {first.name}: {first.code} {first.message}")

            self.call(f"deleting {plural(len(batch), 'object')}", delete)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}

"""The curator's view of the archive: write manifests, upload, publish, retract, list every revision.

Where things live in the bucket (see :mod:`djarchive_common.layout`)::

    <dataset>/<revision>/<subpath>                                     data objects
    <dataset>/<revision>/djarchive-manifest.csv                        published manifest
    <dataset>/<revision>/djarchive-manifest.sig                        its signatures, if signed
    .djarchive~staging~<dataset>~<revision>~djarchive-manifest.csv     staged manifest

An upload sends the data, then stages the manifest; publish checks the store against
the staged manifest, writes the revision's signatures when a signing key is configured, then
the manifest at its published key (the last write, which makes the revision visible), and
deletes the staged copy. Retract moves the manifest back to the
staging key. The workflows are in :mod:`.upload` and :mod:`.publish`; this class checks
names and credentials and holds the revision's lease around them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from djarchive_common import text
from djarchive_common.catalog import Catalog, RevisionInfo
from djarchive_common.config import Settings, datajoint_setting, resolve_sign_key, resolve_single_writer
from djarchive_common.errors import (
    ConfigurationError,
    Hint,
    LocalPathError,
    RevisionNotFoundError,
    UnsafeServerError,
)
from djarchive_common.events import Events
from djarchive_common.layout import MANIFEST_NAME, check_name, lock_key
from djarchive_common.manifest import Manifest, write_manifest
from djarchive_common.store import StoreOptions
from djarchive_common.transfer import job_count

from .lease import RevisionLease, read_lease
from .mirror import MirrorResult, mirror_revision
from .probe import ServerSupport, server_support
from .publish import PublishResult, RetractResult, publish_revision, purge_revision, retract_revision
from .scan import DEFAULT_FILENAME_FILTER, build_manifest, scan_source, source_root
from .sign import SignResult, sign_revision
from .upload import UploadOptions, UploadSummary, upload_revision

if TYPE_CHECKING:
    from djarchive_common.signing import SigningKey

SignKey = str | os.PathLike[str]

__all__ = ["DJArchiveAdmin", "admin", "keygen"]

log = logging.getLogger("djarchive_admin")
FILTER_VARIABLE = "DJARCHIVE_ADMIN_FILENAME_FILTER"


class DJArchiveAdmin(Catalog):
    """The admin tool on one archive bucket: the archive's read side, plus the write side.

    Configuration is resolved for the role ``admin`` (``DJARCHIVE_ADMIN_*`` variables,
    ``djarchive.admin.*`` DataJoint keys); operations that touch the store need credentials
    and stop with MissingCredentialsError before touching anything without them.

    ``filename_filter`` is a regular expression searched in every path component of SOURCE;
    matching paths are not archived. Default: ``DJARCHIVE_ADMIN_FILENAME_FILTER``, else
    DataJoint's ``djarchive.admin.filename_filter`` / ``djarchive.filename_filter``, else
    ``^\\.`` (hidden files and folders). ``''`` archives everything.

    ``sign_key`` is the Ed25519 private key file (``djarchive-admin keygen``) that signs
    revisions as they are published; default ``DJARCHIVE_ADMIN_SIGN_KEY``, else DataJoint's
    ``djarchive.admin.sign_key``, else none (revisions are published unsigned).

    Before writing, the admin probes the server once (:meth:`server_support`). A server that
    ignores conditional writes cannot keep two curators apart, so writing there is refused
    (UnsafeServerError) unless ``single_writer`` declares this curator the only writer; default
    ``DJARCHIVE_ADMIN_SINGLE_WRITER``, else DataJoint's ``djarchive.admin.single_writer``, else
    False. See docs/servers.md for the risk.
    """

    role = "admin"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        options: StoreOptions | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        sign_key: SignKey | None = None,
        single_writer: bool | None = None,
        **config: Any,
    ):
        super().__init__(settings, options=options, **config)
        self._filename_filter = filename_filter
        self._sign_key = sign_key
        self._single_writer = single_writer

    @property
    def filename_filter(self) -> str | re.Pattern[str]:
        """The filter applied to SOURCE paths (see the class docstring)."""
        if self._filename_filter is None:
            configured = os.environ.get(FILTER_VARIABLE) or datajoint_setting(
                "custom.djarchive.admin.filename_filter", "custom.djarchive.filename_filter"
            )
            self._filename_filter = DEFAULT_FILENAME_FILTER if configured is None else str(configured)
        return self._filename_filter

    def signer(self, sign_key: SignKey | None = None, *, required: bool = False) -> SigningKey | None:
        """The signing key (``sign_key``, else the configured one) loaded and checked, or None
        when none is configured (``required``: ConfigurationError)."""
        found = resolve_sign_key(
            self.role,
            sign_key if sign_key not in (None, "") else self._sign_key,
            argument_names=self.argument_names,
        )
        if found is None:
            if required:
                raise ConfigurationError(
                    "no signing key",
                    hint=Hint(
                        "sign_key",
                        flag="--sign-key",
                        metavar="KEYFILE",
                        text=": give {}, or set DJARCHIVE_ADMIN_SIGN_KEY or djarchive.admin.sign_key in "
                        "DataJoint's configuration; create one with: djarchive-admin keygen KEYFILE",
                    ),
                )
            return None
        from djarchive_common.signing import SigningKey

        path, source = found
        log.debug("signing key %s (%s)", path, source)
        return SigningKey.load(path)

    @property
    def single_writer(self) -> bool:
        """Whether the curator declared they are the only writer (see the class docstring)."""
        return resolve_single_writer(self.role, self._single_writer, argument_names=self.argument_names)[0]

    def server_support(self, *, fresh: bool = False) -> ServerSupport:
        """What the server does that writing relies on (conditional writes, checksums, multipart,
        ranged reads, ListObjectsV2), probed once per process unless ``fresh``."""
        self.settings.require_credentials()
        return server_support(self.store, fresh=fresh)

    def _checked(self, dataset: str, revision: str) -> None:
        """Check the names and the credentials (no network)."""
        check_name(dataset)
        check_name(revision, "revision")
        self.settings.require_credentials()

    def _lease(self, dataset: str, revision: str) -> RevisionLease:
        """The lease that makes this the one writer of a revision, on a server found fit for
        writing (conditional writes, or a declared single writer); writes carry what the server
        checks."""
        self._checked(dataset, revision)
        support = self.server_support()
        if not support.conditional_writes:
            if not self.single_writer:
                raise UnsafeServerError(
                    f"{self.settings.url} ignores conditional writes (If-None-Match/If-Match), so "
                    "djarchive-admin cannot keep two curators from writing one revision at once; nothing "
                    "was written",
                    hint=Hint(
                        "single_writer",
                        flag="--single-writer",
                        text=": if you are the only writer, pass {} (or set "
                        "DJARCHIVE_ADMIN_SINGLE_WRITER=1); see docs/servers.md",
                    ),
                )
            log.info("%s ignores conditional writes: writing as the only writer", self.settings.url)
        self.store.write_checks = support.write_checks()
        return RevisionLease(self.store, dataset, revision, conditional=support.conditional_writes)

    # -- local ---------------------------------------------------------------------------

    def write_manifest(
        self,
        source_directory: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        jobs: int | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        display_progress: bool = False,
    ) -> Manifest:
        """Hash every file of ``source_directory`` and write its ``djarchive-manifest.csv``; return it.

        Refuses to replace an existing manifest unless ``overwrite``. Touches no store.
        """
        root = source_root(source_directory)
        path = root / MANIFEST_NAME
        if path.exists() and not overwrite:
            raise LocalPathError(
                f"{path} already exists",
                hint=Hint("overwrite", flag="--overwrite", text="; pass {} to replace it"),
            )
        files = scan_source(root, self.filename_filter if filename_filter is None else filename_filter)
        if not files:
            raise LocalPathError(f"source folder {root} has no files to archive")
        manifest = build_manifest(files, jobs=job_count(jobs), progress=display_progress)
        write_manifest(path, manifest)
        log.info("wrote %s: %s, %d bytes", path, text.files(len(manifest)), manifest.total_size)
        return manifest

    # -- the write side ------------------------------------------------------------------

    def upload(
        self,
        dataset: str,
        revision: str,
        source_directory: str | os.PathLike[str],
        *,
        publish: bool = True,
        force: bool = False,
        jobs: int | None = None,
        filename_filter: str | re.Pattern[str] | None = None,
        part_size: int | None = None,
        display_progress: bool = False,
        events: Events | None = None,
        sign_key: SignKey | None = None,
        delta: bool = True,
    ) -> UploadSummary:
        """Upload ``source_directory`` as revision ``revision`` of ``dataset``, then publish it.

        When SOURCE holds a ``djarchive-manifest.csv``, every file is checked against it
        before anything is sent; otherwise the manifest is built in memory (SOURCE is not
        written to). Objects already stored with the same size and sha256 are not sent
        again. ``publish=False`` stops after staging the manifest. A published revision is
        refused unless ``force``, which replaces it (it is hidden while the upload runs) and
        deletes objects the new manifest does not list. With a signing key (``sign_key``, or the
        configured one) the revision is signed as it is published. Content that earlier published
        revisions of the dataset hold is copied in the archive instead of sent, unless
        ``delta=False`` (see docs/how-to/delta.md).
        """
        self._checked(dataset, revision)
        root = source_root(source_directory)
        if sign_key not in (None, "") and not publish:
            raise ConfigurationError(
                "a revision is signed as it is published: a signing key needs an upload that publishes",
                hint=Hint("publish", False, flag="--no-publish", text=" (leave out {}, or the signing key)"),
            )
        signer = self.signer(sign_key) if publish else None  # checked before anything is sent
        tuning: dict[str, Any] = {"part_size": part_size} if part_size else {}
        options = UploadOptions(jobs=job_count(jobs), reuse=delta, **tuning)
        with self._lease(dataset, revision) as lease:
            return upload_revision(
                self,
                dataset,
                revision,
                root,
                self.filename_filter if filename_filter is None else filename_filter,
                publish=publish,
                force=force,
                options=options,
                progress=display_progress,
                lease=lease,
                events=events,
                signer=signer,
                checksums_trusted=self.server_support().checksums_trusted,
            )

    def publish(
        self,
        dataset: str,
        revision: str,
        *,
        force: bool = False,
        jobs: int | None = None,
        sign_key: SignKey | None = None,
    ) -> PublishResult:
        """Publish a staged revision: check every object against its manifest, then write the manifest.

        Refuses when a file is missing or differs (size, sha256 metadata) or when objects
        the manifest does not list lie under the revision. An already published revision
        is refused unless ``force``. With a signing key (``sign_key``, or the configured one)
        its signature is written just before the manifest; signatures of other content are
        dropped either way.
        """
        signer = self.signer(sign_key)  # checked before the lease is taken
        with self._lease(dataset, revision) as lease:
            return publish_revision(
                self,
                dataset,
                revision,
                force=force,
                jobs=job_count(jobs),
                checksums_trusted=self.server_support().checksums_trusted,
                lease=lease,
                signer=signer,
            )

    def sign(self, dataset: str, revision: str, *, sign_key: SignKey | None = None) -> SignResult:
        """Sign a published revision as it is stored, without changing it. A signature by the same
        key replaces the earlier one; other keys' signatures of this manifest are kept."""
        signer = self.signer(sign_key, required=True)
        assert signer is not None
        with self._lease(dataset, revision) as lease:
            return sign_revision(self, dataset, revision, signer, lease=lease)

    def retract(
        self,
        dataset: str,
        revision: str,
        *,
        purge: bool = False,
        reason: str = "",
        superseded_by: str | None = None,
        force: bool = False,
    ) -> RetractResult:
        """Hide a published revision from clients. A tombstone records ``reason`` and
        ``superseded_by`` (a revision to use instead: a published revision of the dataset, unless
        ``force``); the manifest and the data are kept, so the revision stays reproducible and
        ``publish`` can bring it back unchanged.

        ``purge=True`` instead deletes everything stored for the revision, published or
        not: the manifest first, then the data, then any staged manifest.
        """
        with self._lease(dataset, revision):
            if purge:
                return purge_revision(self.store, dataset, revision)
            return retract_revision(
                self, dataset, revision, reason=reason, superseded_by=superseded_by, force=force
            )

    def lease_holder(self, dataset: str, revision: str) -> dict[str, Any] | None:
        """What the lease on a revision says (holder, host, pid, since), or None without one."""
        check_name(dataset)
        check_name(revision, "revision")
        self.settings.require_credentials()
        found = read_lease(self.store, lock_key(dataset, revision))
        return None if found is None else found[0]

    def break_lease(self, dataset: str, revision: str) -> dict[str, Any] | None:
        """Remove the lease on a revision, whoever holds it (for a writer that is gone for sure);
        return what the lease said, or None when there was none."""
        check_name(dataset)
        check_name(revision, "revision")
        self.settings.require_credentials()
        key = lock_key(dataset, revision)
        found = read_lease(self.store, key)
        if found is None:
            return None
        self.store.remove(key)
        log.warning("broke the lease on %s %s (%s)", dataset, revision, found[0])
        return found[0]

    # -- copies ------------------------------------------------------------------------

    def mirror(
        self,
        name: str,
        revision: str,
        directory: str | os.PathLike[str],
        *,
        jobs: int | None = None,
        display_progress: bool = False,
        events: Events | None = None,
    ) -> MirrorResult:
        """Write a static copy of a published revision (objects, signatures, manifest, byte for byte)
        to ``directory/name/revision/``, every file verified; serving ``directory`` over HTTP makes
        it a mirror. Files already there and intact are kept, so a re-run resumes. Reads only:
        no credentials are needed where the archive is public (see :mod:`djarchive_admin.mirror`)."""
        check_name(name)
        check_name(revision, "revision")
        return mirror_revision(
            self, name, revision, directory, jobs=job_count(jobs), progress=display_progress, events=events
        )

    # -- listing -----------------------------------------------------------------------

    def revision_info(self, dataset: str, revision: str) -> RevisionInfo:
        """The state (published, staged, incomplete), file count and size of one revision."""
        check_name(dataset)
        check_name(revision, "revision")
        self.settings.require_credentials()
        info = self.revision_state(dataset, revision)
        if info is None:
            raise RevisionNotFoundError(f"nothing is stored for {dataset} {revision} in {self.settings.url}")
        return info

    def revision_details(self, dataset: str | None = None, *, all: bool = False) -> list[RevisionInfo]:
        """Every published revision (``all=True``: staged and incomplete ones too) with state and size."""
        if dataset is not None:
            check_name(dataset)
        self.settings.require_credentials()
        return super().revision_details(dataset, all=all)

    def revisions(self, dataset: str | None = None, *, all: bool = False) -> Iterator[tuple[str, str]]:
        """(dataset, revision) of every published revision (``all=True``: staged and incomplete too)."""
        if not all:
            self.settings.require_credentials()
            yield from super().revisions(dataset)
            return
        for info in self.revision_details(dataset, all=all):
            yield info.dataset, info.revision


def keygen(path: str | os.PathLike[str]) -> tuple[str, str, str]:
    """Create an Ed25519 key pair: the private key at ``path`` (mode 0600, never replacing a
    file), the public key line at ``path.pub``. Returns (public key line, key id, .pub path)."""
    from djarchive_common.signing import generate_key

    public, public_path = generate_key(path)
    return public.line, public.key_id, str(public_path)


def admin(**config: Any) -> DJArchiveAdmin:
    """Create the admin tool (role 'admin'); keywords as for :class:`DJArchiveAdmin`."""
    return DJArchiveAdmin(**config)

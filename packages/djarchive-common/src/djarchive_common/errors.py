"""The one error hierarchy of djarchive.

Library code raises these; only the command lines print them. The tree::

    DJArchiveError
    ├── ConfigurationError
    │   ├── MissingCredentialsError
    │   └── UnsafeServerError       (the server ignores conditional writes; see --single-writer)
    ├── InvalidNameError            (also ValueError)
    ├── ManifestError               (also ValueError)
    ├── NotFoundError               (also FileNotFoundError)
    │   ├── DatasetNotFoundError
    │   ├── RevisionNotFoundError
    │   │   └── RevisionRetractedError
    │   └── ObjectNotFoundError
    ├── PermissionDeniedError       (also PermissionError)
    ├── RevisionPublishedError
    ├── IntegrityError              (bytes of the wrong size or sha256; ``retryable`` when fetched)
    │   ├── SignatureError          (no valid signature by a trusted key; carries ``reason``)
    │   └── RevisionChangedError    (the published revision is not the one a local copy recorded)
    ├── TransferError               (the store could not be reached or answered badly)
    │   ├── EndpointUnreachableError
    │   └── RangesIgnored           (a ranged GET answered with the whole object)
    ├── LocalPathError              (unsafe or unusable local path)
    ├── LocalStorageError           (disk full, file too large, I/O error)
    ├── LockedError
    ├── Cancelled                   (a download or upload is being stopped)
    └── PartialFailureError         (some files failed; carries the per-file report)

minio's and urllib3's exceptions are translated into this tree in exactly one place,
:mod:`djarchive_common.translation`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "Cancelled",
    "ConfigurationError",
    "DJArchiveError",
    "DatasetNotFoundError",
    "EndpointUnreachableError",
    "IntegrityError",
    "InvalidNameError",
    "LocalPathError",
    "LocalStorageError",
    "LockedError",
    "ManifestError",
    "MissingCredentialsError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PartialFailureError",
    "PermissionDeniedError",
    "RangesIgnored",
    "RevisionChangedError",
    "RevisionNotFoundError",
    "RevisionPublishedError",
    "RevisionRetractedError",
    "SignatureError",
    "TransferError",
    "UnsafeServerError",
]


class DJArchiveError(Exception):
    """Base of every error djarchive raises on purpose."""

    #: Whether trying the same operation again may succeed (transient network or store faults).
    retryable: bool = False

    def __str__(self) -> str:
        # OSError subclasses format their args as "[Errno ...]"; keep the message plain.
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigurationError(DJArchiveError):
    """The configuration is invalid or incomplete."""


class MissingCredentialsError(ConfigurationError):
    """An operation needs credentials and none are configured."""


class UnsafeServerError(ConfigurationError):
    """Writing is refused: the server ignores conditional writes, so concurrent curators could not be
    kept apart, and the curator has not declared they are the only writer."""


class InvalidNameError(DJArchiveError, ValueError):
    """A dataset, revision or path name breaks the archive's naming rules."""


class ManifestError(DJArchiveError, ValueError):
    """A manifest is malformed or hostile; it is rejected as a whole."""


class NotFoundError(DJArchiveError, FileNotFoundError):
    """Something asked for does not exist."""


class DatasetNotFoundError(NotFoundError):
    """The dataset has no published revision in the archive."""


class RevisionNotFoundError(NotFoundError):
    """The revision does not exist or is not published."""


class RevisionRetractedError(RevisionNotFoundError):
    """The revision was retracted by its curators; ``reason`` and ``superseded_by`` say why and
    what to use instead."""

    def __init__(self, message: str, *, reason: str = "", superseded_by: str | None = None):
        super().__init__(message)
        self.reason, self.superseded_by = reason, superseded_by


class ObjectNotFoundError(NotFoundError):
    """An object the manifest lists is missing from the store."""


class PermissionDeniedError(DJArchiveError, PermissionError):
    """The store refused the operation with these credentials."""


class RevisionPublishedError(DJArchiveError):
    """A published revision is immutable unless the change is forced."""


class IntegrityError(DJArchiveError):
    """Bytes do not match the size or sha256 they must have (the manifest's, the object's)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class SignatureError(IntegrityError):
    """A revision is refused: trusted keys are configured and it has no valid signature by one.

    ``reason`` says why, as one of :data:`djarchive_common.signing.REASONS` ('missing',
    'malformed', 'untrusted-key', 'revoked-key', 'bad-signature', 'other-revision',
    'digest-mismatch').
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class RevisionChangedError(IntegrityError):
    """A published revision's manifest is not the one a local copy's receipt recorded: the
    revision was published again with other content (a forced republish) since the copy was
    made. ``recorded`` and ``published`` are the two manifests' sha256."""

    def __init__(self, message: str, *, recorded: str = "", published: str = ""):
        super().__init__(message)
        self.recorded, self.published = recorded, published


class TransferError(DJArchiveError):
    """The store failed to answer, or answered badly, after the retries allowed. ``unreachable``
    says that no answer came at all (refused, reset or timed out before a status), as opposed
    to an answer that was an error (a 5xx): only the first lets a signed manifest come from a
    mirror."""

    unreachable: bool = False

    def __init__(self, message: str, *, retryable: bool = False, unreachable: bool | None = None):
        super().__init__(message)
        self.retryable = retryable
        if unreachable is not None:
            self.unreachable = unreachable


class EndpointUnreachableError(TransferError):
    """No connection to the endpoint could be made."""

    unreachable = True


class RangesIgnored(TransferError):
    """The server answered a ranged GET with the whole object: fetch the file as one stream."""


class LocalPathError(DJArchiveError):
    """A local path is unsafe (it leads outside the target) or unusable."""


class LocalStorageError(DJArchiveError):
    """Writing locally failed: disk full, file size limit, I/O error."""


class LockedError(DJArchiveError):
    """Another djarchive process holds the lock on this target or revision."""


class Cancelled(DJArchiveError):
    """A download or upload is being stopped (interrupted, or failed elsewhere): its workers leave
    quickly and clean up."""


class PartialFailureError(DJArchiveError):
    """Some files failed; ``failures`` maps each subpath to its reason."""

    def __init__(self, message: str, failures: Mapping[str, str], summary: object = None):
        super().__init__(message)
        self.failures = dict(failures)
        self.summary = summary

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
    │   ├── ObjectTooLargeError     (an object larger than the most read of its kind: a manifest, a lease)
    │   └── RangesIgnored           (a ranged GET answered with the whole object)
    ├── LocalPathError              (unsafe or unusable local path)
    ├── LocalStorageError           (disk full, file too large, I/O error)
    ├── LockedError
    ├── Cancelled                   (a download or upload is being stopped)
    └── PartialFailureError         (some files failed; carries the per-file report)

Two more belong to the command lines and end the process like argparse's own exit, outside the
tree (``SystemExit``): :class:`UsageError` (bad usage, exit 2) and :class:`OutputError` (the
command's own output could not be written: a closed pipe, a full disk; exit 1).

An error that advises carries the advice as data, a :class:`Hint`: ``str(error)`` says it with
Python's keyword (``allow_retracted=True``), the command lines with their flag
(``--allow-retracted``), and only where the command accepts that flag. ``error.message`` is the
message without the advice.

minio's and urllib3's exceptions are translated into this tree in exactly one place,
:mod:`djarchive_common.translation`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Cancelled",
    "ConfigurationError",
    "DJArchiveError",
    "DatasetNotFoundError",
    "EndpointUnreachableError",
    "Hint",
    "IntegrityError",
    "InvalidNameError",
    "LocalPathError",
    "LocalStorageError",
    "LockedError",
    "ManifestError",
    "MissingCredentialsError",
    "NotFoundError",
    "ObjectNotFoundError",
    "ObjectTooLargeError",
    "OutputError",
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
    "UsageError",
]


@dataclass(frozen=True)
class Hint:
    """What to do, as data: the option that does it, ``keyword=value`` in Python and ``flag`` on
    the command line, in the words of ``text`` (``{}`` where the option goes; the words start
    with their own separator, e.g. ``" ({} downloads it anyway)"``).

    ``metavar`` stands for a value to choose (``sign_key=KEYFILE``, ``--sign-key KEYFILE``).
    When the option belongs to another call than the one that failed, ``function`` names it in
    Python and ``command`` on the command line, with its one ``argument`` (a path) when known:
    ``write_manifest('src', overwrite=True)``, ``djarchive-admin manifest --overwrite src``;
    ``upload(..., force=True)``, ``djarchive-admin upload --force``.
    """

    keyword: str
    value: Any = True
    flag: str | None = None  # None: the command lines have no flag for it
    text: str = "; pass {}"
    metavar: str | None = None
    function: str | None = None
    command: str | None = None
    argument: str | None = None

    def in_python(self) -> str:
        """The advice with the keyword argument."""
        option = f"{self.keyword}={self.metavar or repr(self.value)}"
        if self.function is not None:
            argument = "..." if self.argument is None else repr(self.argument)
            option = f"{self.function}({argument}, {option})"
        return self.text.format(option)

    def on_command_line(self, prog: str) -> str:
        """The advice with the flag, for the command line ``prog``."""
        words = [self.flag or "", self.metavar or ""]
        if self.command is not None:
            words = [prog, self.command, *words, "" if self.argument is None else shlex.quote(self.argument)]
        return self.text.format(" ".join(word for word in words if word))


class DJArchiveError(Exception):
    """Base of every error djarchive raises on purpose; ``hint``, when given, says what to do."""

    #: Whether trying the same operation again may succeed (transient network or store faults).
    retryable: bool = False
    hint: Hint | None = None

    def __init__(self, *args: object, hint: Hint | None = None):
        super().__init__(*args)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        """The message without the advice of the hint."""
        # OSError subclasses format their args as "[Errno ...]"; keep the message plain.
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __str__(self) -> str:
        return self.message + (self.hint.in_python() if self.hint is not None else "")


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

    def __init__(
        self, message: str, *, reason: str = "", superseded_by: str | None = None, hint: Hint | None = None
    ):
        super().__init__(message, hint=hint)
        self.reason, self.superseded_by = reason, superseded_by


class ObjectNotFoundError(NotFoundError):
    """An object the manifest lists is missing from the store."""


class PermissionDeniedError(DJArchiveError, PermissionError):
    """The store refused the operation with these credentials."""


class RevisionPublishedError(DJArchiveError):
    """A published revision is immutable unless the change is forced."""


class IntegrityError(DJArchiveError):
    """Bytes do not match the size or sha256 they must have (the manifest's, the object's)."""

    def __init__(self, message: str, *, retryable: bool = False, hint: Hint | None = None):
        super().__init__(message, hint=hint)
        self.retryable = retryable


class SignatureError(IntegrityError):
    """A revision is refused: trusted keys are configured and it has no valid signature by one.

    ``reason`` says why, as one of :data:`djarchive_common.signing.REASONS` ('missing',
    'malformed', 'untrusted-key', 'revoked-key', 'bad-signature', 'other-revision',
    'digest-mismatch').
    """

    def __init__(self, message: str, *, reason: str, hint: Hint | None = None):
        super().__init__(message, hint=hint)
        self.reason = reason


class RevisionChangedError(IntegrityError):
    """A published revision's manifest is not the one a local copy's receipt recorded: the
    revision was published again with other content (a forced republish) since the copy was
    made. ``recorded`` and ``published`` are the two manifests' sha256."""

    def __init__(self, message: str, *, recorded: str = "", published: str = "", hint: Hint | None = None):
        super().__init__(message, hint=hint)
        self.recorded, self.published = recorded, published


class TransferError(DJArchiveError):
    """The store failed to answer, or answered badly, after the retries allowed. ``unreachable``
    says that no answer came at all (refused, reset or timed out before a status), as opposed
    to an answer that was an error (a 5xx): only the first lets a signed manifest come from a
    mirror."""

    unreachable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        unreachable: bool | None = None,
        hint: Hint | None = None,
    ):
        super().__init__(message, hint=hint)
        self.retryable = retryable
        if unreachable is not None:
            self.unreachable = unreachable


class EndpointUnreachableError(TransferError):
    """No connection to the endpoint could be made."""

    unreachable = True


class ObjectTooLargeError(TransferError):
    """An object is larger than the most that is read of its kind (a manifest, a signatures
    file, a tombstone, a lease): it is not read."""


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


# -- the command lines' own exits -----------------------------------------------------------------


class UsageError(SystemExit):
    """Bad usage: argparse has printed the usage and ``prog: error: message`` and exits with 2;
    ``message`` is kept so that a --json caller can be told too."""

    def __init__(self, prog: str, message: str):
        super().__init__(2)
        self.prog = prog
        self.message = message


class OutputError(SystemExit):
    """The command's own output could not be written (``stream``: 'stdout' or 'stderr'; ``error``:
    why, e.g. a closed pipe or a full disk): the command stops at once, with exit status 1."""

    def __init__(self, stream: str, error: OSError):
        super().__init__(1)
        self.stream = stream
        self.error = error

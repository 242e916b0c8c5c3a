"""Shared foundation of djarchive: configuration, archive layout, manifest, errors, transfers.

Installed with ``djarchive-client``; it imports neither minio nor datajoint until needed.
"""

from typing import TYPE_CHECKING

from .lazy import lazy_exports

if TYPE_CHECKING:
    from .config import DEFAULT_BUCKET, DEFAULT_ENDPOINT, Settings, resolve_settings
    from .errors import (
        ConfigurationError,
        DatasetNotFoundError,
        DJArchiveError,
        EndpointUnreachableError,
        IntegrityError,
        InvalidNameError,
        LocalPathError,
        LocalStorageError,
        LockedError,
        ManifestError,
        MissingCredentialsError,
        NotFoundError,
        ObjectNotFoundError,
        PartialFailureError,
        PermissionDeniedError,
        RevisionNotFoundError,
        RevisionPublishedError,
        RevisionRetractedError,
        SignatureError,
        TransferError,
    )
    from .layout import MANIFEST_NAME
    from .manifest import Entry, Manifest, parse_manifest, read_manifest, write_manifest

__version__ = "0.1.0"

_SOURCES = {
    "DEFAULT_BUCKET": ".config",
    "DEFAULT_ENDPOINT": ".config",
    "MANIFEST_NAME": ".layout",
    "ConfigurationError": ".errors",
    "DJArchiveError": ".errors",
    "DatasetNotFoundError": ".errors",
    "EndpointUnreachableError": ".errors",
    "Entry": ".manifest",
    "IntegrityError": ".errors",
    "InvalidNameError": ".errors",
    "LocalPathError": ".errors",
    "LocalStorageError": ".errors",
    "LockedError": ".errors",
    "Manifest": ".manifest",
    "ManifestError": ".errors",
    "MissingCredentialsError": ".errors",
    "NotFoundError": ".errors",
    "ObjectNotFoundError": ".errors",
    "PartialFailureError": ".errors",
    "PermissionDeniedError": ".errors",
    "RevisionNotFoundError": ".errors",
    "RevisionPublishedError": ".errors",
    "RevisionRetractedError": ".errors",
    "Settings": ".config",
    "SignatureError": ".errors",
    "TransferError": ".errors",
    "parse_manifest": ".manifest",
    "read_manifest": ".manifest",
    "resolve_settings": ".config",
    "write_manifest": ".manifest",
}
__getattr__ = lazy_exports(__name__, _SOURCES)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_ENDPOINT",
    "MANIFEST_NAME",
    "ConfigurationError",
    "DJArchiveError",
    "DatasetNotFoundError",
    "EndpointUnreachableError",
    "Entry",
    "IntegrityError",
    "InvalidNameError",
    "LocalPathError",
    "LocalStorageError",
    "LockedError",
    "Manifest",
    "ManifestError",
    "MissingCredentialsError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PartialFailureError",
    "PermissionDeniedError",
    "RevisionNotFoundError",
    "RevisionPublishedError",
    "RevisionRetractedError",
    "Settings",
    "SignatureError",
    "TransferError",
    "__version__",
    "parse_manifest",
    "read_manifest",
    "resolve_settings",
    "write_manifest",
]

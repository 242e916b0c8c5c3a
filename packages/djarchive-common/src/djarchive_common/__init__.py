"""Shared foundation of djarchive: configuration, archive layout, manifest, errors, transfers.

Installed with ``djarchive-client``; it imports neither minio nor datajoint until needed.
"""

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
    TransferError,
)
from .layout import MANIFEST_NAME
from .manifest import Entry, Manifest, parse_manifest, read_manifest, write_manifest

__version__ = "0.1.0"

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
    "Settings",
    "TransferError",
    "__version__",
    "parse_manifest",
    "read_manifest",
    "resolve_settings",
    "write_manifest",
]

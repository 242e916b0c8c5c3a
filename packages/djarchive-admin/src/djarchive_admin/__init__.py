"""djarchive-admin: write manifests, upload, publish and retract revisions of the DataJoint archive.

>>> from djarchive_admin import admin
>>> a = admin()
>>> a.write_manifest('/path/to/my-dataset')
>>> a.upload('my-dataset', '001', '/path/to/my-dataset')   # uploads, then publishes
>>> a.retract('my-dataset', '001')                          # hidden from clients, data kept
>>> a.upload('my-dataset', '002', '/path/to/my-dataset', sign_key='curator.key')  # signed
>>> a.mirror('my-dataset', '002', '/srv/mirror')            # a static copy any web server serves
"""

from typing import TYPE_CHECKING

from djarchive_common.lazy import lazy_exports

if TYPE_CHECKING:
    from djarchive_common.catalog import RevisionInfo
    from djarchive_common.errors import (
        DJArchiveError,
        IntegrityError,
        ManifestError,
        MissingCredentialsError,
        PartialFailureError,
        RevisionNotFoundError,
        RevisionPublishedError,
        SignatureError,
    )

    from .archive import DJArchiveAdmin, admin, keygen
    from .mirror import MirrorResult
    from .publish import PublishResult, RetractResult, StoreCheck
    from .scan import DEFAULT_FILENAME_FILTER
    from .sign import SignResult
    from .upload import Overwrite, UploadSummary

__version__ = "0.1.0"

_SOURCES = {
    "DEFAULT_FILENAME_FILTER": ".scan",
    "DJArchiveAdmin": ".archive",
    "DJArchiveError": "djarchive_common.errors",
    "IntegrityError": "djarchive_common.errors",
    "ManifestError": "djarchive_common.errors",
    "MirrorResult": ".mirror",
    "MissingCredentialsError": "djarchive_common.errors",
    "Overwrite": ".upload",
    "PartialFailureError": "djarchive_common.errors",
    "PublishResult": ".publish",
    "RetractResult": ".publish",
    "RevisionInfo": "djarchive_common.catalog",
    "RevisionNotFoundError": "djarchive_common.errors",
    "RevisionPublishedError": "djarchive_common.errors",
    "SignResult": ".sign",
    "SignatureError": "djarchive_common.errors",
    "StoreCheck": ".publish",
    "UploadSummary": ".upload",
    "admin": ".archive",
    "keygen": ".archive",
}
__getattr__ = lazy_exports(__name__, _SOURCES)

__all__ = [
    "DEFAULT_FILENAME_FILTER",
    "DJArchiveAdmin",
    "DJArchiveError",
    "IntegrityError",
    "ManifestError",
    "MirrorResult",
    "MissingCredentialsError",
    "Overwrite",
    "PartialFailureError",
    "PublishResult",
    "RetractResult",
    "RevisionInfo",
    "RevisionNotFoundError",
    "RevisionPublishedError",
    "SignResult",
    "SignatureError",
    "StoreCheck",
    "UploadSummary",
    "__version__",
    "admin",
    "keygen",
]

"""djarchive-client: list, download and verify published datasets of the DataJoint archive.

>>> from djarchive_client import client
>>> c = client()
>>> list(c.datasets())
>>> c.download('some-set', '000', './some-set-000', create_target=True)
"""

from typing import TYPE_CHECKING

from djarchive_common.lazy import lazy_exports

if TYPE_CHECKING:
    from djarchive_common.errors import (
        DatasetNotFoundError,
        DJArchiveError,
        IntegrityError,
        PartialFailureError,
        RevisionNotFoundError,
        SignatureError,
    )
    from djarchive_common.manifest import Entry, Manifest

    from .archive import DJArchiveClient, client
    from .diff import ManifestDiff
    from .status import CopyStatus
    from .summary import DownloadSummary
    from .verify import VerifyReport

__version__ = "0.1.0"

_SOURCES = {
    "CopyStatus": ".status",
    "DJArchiveClient": ".archive",
    "DJArchiveError": "djarchive_common.errors",
    "DatasetNotFoundError": "djarchive_common.errors",
    "DownloadSummary": ".summary",
    "Entry": "djarchive_common.manifest",
    "IntegrityError": "djarchive_common.errors",
    "Manifest": "djarchive_common.manifest",
    "ManifestDiff": ".diff",
    "PartialFailureError": "djarchive_common.errors",
    "RevisionNotFoundError": "djarchive_common.errors",
    "SignatureError": "djarchive_common.errors",
    "VerifyReport": ".verify",
    "client": ".archive",
}
__getattr__ = lazy_exports(__name__, _SOURCES)

__all__ = [
    "CopyStatus",
    "DJArchiveClient",
    "DJArchiveError",
    "DatasetNotFoundError",
    "DownloadSummary",
    "Entry",
    "IntegrityError",
    "Manifest",
    "ManifestDiff",
    "PartialFailureError",
    "RevisionNotFoundError",
    "SignatureError",
    "VerifyReport",
    "__version__",
    "client",
]

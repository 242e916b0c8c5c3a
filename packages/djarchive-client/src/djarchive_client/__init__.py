"""djarchive-client: list, download and verify published datasets of the DataJoint archive.

>>> from djarchive_client import client
>>> c = client()
>>> list(c.datasets())
>>> c.download('some-set', '000', './some-set-000', create_target=True)
"""

from djarchive_common.errors import (
    DatasetNotFoundError,
    DJArchiveError,
    IntegrityError,
    PartialFailureError,
    RevisionNotFoundError,
)
from djarchive_common.manifest import Entry, Manifest

from .archive import DJArchiveClient, client
from .download import DownloadSummary
from .verify import VerifyReport

__version__ = "0.1.0"

__all__ = [
    "DJArchiveClient",
    "DJArchiveError",
    "DatasetNotFoundError",
    "DownloadSummary",
    "Entry",
    "IntegrityError",
    "Manifest",
    "PartialFailureError",
    "RevisionNotFoundError",
    "VerifyReport",
    "__version__",
    "client",
]

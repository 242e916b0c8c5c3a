"""What a local copy holds and where its revision stands now: ``djarchive status``.

The local part comes from the copy's receipt alone; the archive part (still published,
retracted and why, superseded by newer revisions) is asked of the archive the copy came from,
and reported as unknown when it cannot be reached.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from djarchive_common.catalog import Catalog, Tombstone
from djarchive_common.errors import DJArchiveError
from djarchive_common.layout import natural_key

from .localcopy import LocalCopy
from .receipt import UPGRADING, Receipt

__all__ = ["CopyStatus", "copy_status"]

PUBLISHED = "published"
RETRACTED = "retracted"
UNPUBLISHED = "not published"


@dataclass
class CopyStatus:
    """A local copy's receipt, and what the archive says of its revision."""

    target: str
    receipt: Receipt | None
    archive: str | None = None  # published, retracted, not published; None when not asked
    unreachable: str | None = None  # why the archive could not be asked
    tombstone: Tombstone | None = None
    newer: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What the holder of this copy should know."""
        found = []
        receipt = self.receipt
        if receipt is not None and receipt.state == UPGRADING:
            command = f"djarchive download {receipt.dataset} {receipt.revision} {self.target}"
            found.append(
                f"an upgrade from {receipt.previous} to {receipt.revision} did not finish: the files are "
                f"a mix of both; run {command} to finish it"
            )
        if receipt is not None and self.tombstone is not None:
            found.append(self.tombstone.describe(receipt.dataset, receipt.revision))
        if receipt is not None and self.newer:
            found.append(f"newer revisions of {receipt.dataset} are published: {', '.join(self.newer)}")
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "target": self.target,
            "receipt": self.receipt.to_dict() if self.receipt else None,
            "archive": self.archive,
            "unreachable": self.unreachable,
            "retraction": (
                {
                    "reason": self.tombstone.reason,
                    "superseded_by": self.tombstone.superseded_by,
                    "retracted_at": self.tombstone.retracted_at,
                }
                if self.tombstone
                else None
            ),
            "newer": self.newer,
            "warnings": self.warnings,
        }

    def lines(self) -> list[str]:
        """The status for people, a line each: the copy, then where its revision stands (the
        warnings apart: the command line prints them as warnings)."""
        if self.receipt is None:
            return [
                f"{self.target}: no djarchive receipt (not downloaded with djarchive, or before receipts)"
            ]
        lines = [f"{self.target}: {self.receipt}"]
        if self.archive is not None:
            lines.append(f"in the archive: {self.archive}")
        elif self.unreachable:
            lines.append(f"in the archive: unknown ({self.unreachable})")
        return lines

    def __str__(self) -> str:
        return "\n".join([*self.lines(), *(f"warning: {warning}" for warning in self.warnings)])


def copy_status(target: str | os.PathLike[str], catalog: Catalog | None) -> CopyStatus:
    """The status of the copy in ``target``; ``catalog`` (the archive it came from), when
    given, is asked where the revision stands."""
    local = LocalCopy(target)
    try:
        held = local.receipt()
    finally:
        local.close()
    status = CopyStatus(str(target), held)
    if held is None or catalog is None:
        return status
    receipt = held
    try:
        published = [revision for _, revision in catalog.revisions(receipt.dataset)]
    except DJArchiveError as error:
        if not isinstance(error, FileNotFoundError):
            status.unreachable = str(error)
            return status
        published = []
    try:
        status.tombstone = catalog.tombstone(receipt.dataset, receipt.revision)
    except DJArchiveError as error:
        status.unreachable = str(error)
        return status
    if receipt.revision in published:
        status.archive = PUBLISHED
    else:
        status.archive = RETRACTED if status.tombstone is not None else UNPUBLISHED
    mine = natural_key(receipt.revision)
    status.newer = [revision for revision in published if natural_key(revision) > mine]
    return status

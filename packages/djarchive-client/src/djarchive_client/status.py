"""What a local copy holds and where its revision stands now: ``djarchive status``.

The local part comes from the copy's receipt alone (what it says was recorded when the copy was
downloaded or verified: nothing in it is checked again). The archive part (still published,
retracted and why, superseded by newer revisions) is asked of the configured archive, and only
when the copy came from it: a receipt naming another endpoint, bucket or scheme is reported,
never connected to (the user's credentials go only where they are configured). An archive that
cannot be reached is reported as unknown; then configured mirrors are asked whether they serve
the revision (its manifest signed by a trusted key), which cannot say whether it was retracted
since. The receipt says which sources (the archive, mirrors) served the copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from djarchive_common.catalog import Catalog, Tombstone
from djarchive_common.config import Settings
from djarchive_common.errors import DJArchiveError
from djarchive_common.layout import STATE_FOLDER, natural_key
from djarchive_common.mirror import manifest_from_mirrors, unreachable

from .localcopy import LocalCopy
from .lock import holder_words
from .receipt import UPGRADING, Receipt, republished

INCOMPLETE = "incomplete — run the same download again to resume"  # a first download that did not end

__all__ = ["CopyStatus", "copy_status", "origin", "same_archive", "unfinished"]

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
    elsewhere: str | None = None  # the copy came from another archive than the configured one
    republished: str | None = None  # the revision changed in the archive since the copy was made
    incomplete: bool = False  # no receipt, but djarchive's folder: a first download did not finish
    running: str | None = None  # the lock mark (a pid, or "") of a download into the copy at work now
    mirror: str | None = None  # a mirror serving the revision while the archive is unreachable

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
        if self.archive is not None and self.unreachable:
            found.append(self.unreachable)
        if self.republished:
            found.append(self.republished)
        if receipt is not None and self.newer:
            found.append(f"newer revisions of {receipt.dataset} are published: {', '.join(self.newer)}")
        if receipt is not None and self.mirror is not None:
            found.append(
                f"the mirror {self.mirror} serves {receipt.dataset} {receipt.revision} (signed by a trusted "
                "key), but only the archive can say whether it was retracted: that could not be checked"
            )
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
            "elsewhere": self.elsewhere,
            "republished": self.republished,
            "incomplete": self.incomplete,
            "running": None if self.running is None else {"pid": int(self.running) if self.running else None},
            "mirror": self.mirror,
            "warnings": self.warnings,
        }

    def lines(self) -> list[str]:
        """The status for people, a line each: the copy, then where its revision stands (the
        warnings apart: the command line prints them as warnings)."""
        if self.receipt is None and self.incomplete:
            return [f"{self.target}: {unfinished(self.running)}"]
        if self.receipt is None:
            return [
                f"{self.target}: no djarchive receipt (not downloaded with djarchive, or before receipts)"
            ]
        lines = [f"{self.target}: {self.receipt}"]
        if self.archive is not None:
            lines.append(f"in the archive: {self.archive}")
        elif self.elsewhere:
            lines.append(f"in the archive: {self.elsewhere}")
        elif self.unreachable:
            lines.append(f"in the archive: unknown ({self.unreachable})")
        return lines

    def __str__(self) -> str:
        return "\n".join([*self.lines(), *(f"warning: {warning}" for warning in self.warnings)])


def unfinished(running: str | None) -> str:
    """What to say of a copy whose first download did not finish, or has not finished yet:
    ``running`` is the lock mark of a download at work in it now (None: none is)."""
    if running is None:
        return INCOMPLETE
    return f"incomplete — {holder_words(running)} is downloading into it now"


def copy_status(target: str | os.PathLike[str], catalog: Catalog | None) -> CopyStatus:
    """The status of the copy in ``target``; ``catalog`` (the configured archive), when given
    and when the copy came from it, is asked where the revision stands."""
    local = LocalCopy(target)
    try:
        held = local.receipt()
        started = held is None and local.folder.lstat(STATE_FOLDER) is not None
        busy = local.running() if started else None
    finally:
        local.close()
    status = CopyStatus(str(target), held, incomplete=started, running=busy)
    if held is None or catalog is None:
        return status
    receipt = held
    if not same_archive(receipt, catalog.settings):
        status.elsewhere = (
            f"this copy came from {origin(receipt)}; the configured archive is {catalog.settings.url}: "
            "not checked"
        )
        return status
    try:
        published = [revision for _, revision in catalog.revisions(receipt.dataset)]
    except DJArchiveError as error:
        if not isinstance(error, FileNotFoundError):
            status.unreachable = str(error)
            status.mirror = _mirror_serving(catalog, receipt, error)
            return status
        published = []
    try:
        status.tombstone = catalog.tombstone(receipt.dataset, receipt.revision)
    except DJArchiveError as error:
        status.unreachable = str(error)
        return status
    if receipt.revision in published:
        status.archive = PUBLISHED
        try:
            current = catalog.manifest(receipt.dataset, receipt.revision)
        except DJArchiveError as error:
            status.unreachable = f"its manifest could not be compared with the copy's: {error}"
        else:
            status.republished = republished(receipt, current.sha256) or None
    else:
        status.archive = RETRACTED if status.tombstone is not None else UNPUBLISHED
    mine = natural_key(receipt.revision)
    status.newer = [revision for revision in published if natural_key(revision) > mine]
    return status


def origin(receipt: Receipt) -> str:
    """Where the copy came from, as its receipt says (for messages)."""
    return f"{'https' if receipt.secure else 'http'}://{receipt.endpoint}/{receipt.bucket}"


def same_archive(receipt: Receipt, settings: Settings) -> bool:
    """Whether the copy came from the archive ``settings`` name: endpoint, bucket and scheme."""
    return (receipt.endpoint.lower(), receipt.bucket, receipt.secure) == (
        settings.endpoint.lower(),
        settings.bucket,
        settings.secure,
    )


def _mirror_serving(catalog: Catalog, receipt: Receipt, cause: DJArchiveError) -> str | None:
    """The first configured mirror that serves the copy's revision, the manifest the receipt
    names signed by a trusted key, when the archive could not be reached at all (``cause``)."""
    if not unreachable(cause):
        return None
    try:
        mirrors = catalog.mirrors
        if not mirrors or not catalog.trust.enforced:
            return None
        read = manifest_from_mirrors(
            mirrors, receipt.dataset, receipt.revision, catalog.trust, cause, catalog.store.options.retry
        )
    except DJArchiveError:
        return None
    return read.origin if read.manifest.sha256 == receipt.manifest_sha256 else None

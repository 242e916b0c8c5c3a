"""Compare a local copy with a revision's manifest: missing, modified and extra files."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djarchive_common import __version__
from djarchive_common.config import Settings
from djarchive_common.errors import LocalPathError, LocalStorageError, LockedError, NotFoundError
from djarchive_common.events import Events
from djarchive_common.layout import STATE_FOLDER
from djarchive_common.manifest import Entry, Manifest, matches, select_or_fail, size_of
from djarchive_common.text import files
from djarchive_common.transfer import DEFAULT_WORKERS

from .localcopy import LocalCopy
from .receipt import COMPLETE, UPGRADING, Receipt, now, republished
from .status import origin as origin_of
from .status import same_archive, unfinished

if TYPE_CHECKING:
    from djarchive_common.signing import SignatureStatus

__all__ = ["VerifyReport", "verify_copy", "verify_offline"]


@dataclass
class VerifyReport:
    """The result of a verify. The copy is intact when nothing is missing or modified."""

    dataset: str
    revision: str
    target: str
    files: int = 0
    bytes: int = 0
    verified: int = 0
    missing: list[str] = field(default_factory=list)
    modified: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""  # what else the holder should know (an unfinished upgrade, a retraction): a warning
    unrecorded: str = ""  # why the copy's receipt could not be written or updated, when it could not
    republished: str = ""  # the revision changed in the archive since the copy's receipt was written
    signature: SignatureStatus | None = None  # the revision's signature, as checked before verifying

    @property
    def intact(self) -> bool:
        """Every manifest file is present with the right size and sha256 (extra files are allowed)."""
        return not self.missing and not self.modified

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "dataset": self.dataset,
            "revision": self.revision,
            "target": self.target,
            "files": self.files,
            "bytes": self.bytes,
            "verified": self.verified,
            "missing": self.missing,
            "modified": self.modified,
            "extra": self.extra,
            "intact": self.intact,
            "seconds": round(self.seconds, 3),
            "note": self.note,
            "unrecorded": self.unrecorded,
            "republished": self.republished,
            "signature": self.signature.to_dict() if self.signature is not None else None,
        }

    def _summary(self) -> str:
        name = f"{self.dataset} {self.revision} in {self.target}"
        if self.intact:
            text = f"{name}: intact, {files(self.verified)} verified"
        else:
            text = f"{name}: NOT intact: {len(self.missing)} missing, {len(self.modified)} modified"
        if self.extra:
            text += f", {len(self.extra)} extra {'file' if len(self.extra) == 1 else 'files'}"
        return text

    @property
    def warnings(self) -> list[str]:
        """What the holder of the copy should know: the note (an unfinished upgrade, a retraction),
        a revision published again since the copy was made."""
        return [text for text in (self.note, self.republished) if text]

    def lines(self) -> list[str]:
        """The report for people, a line each (the warnings apart: the command line prints them
        as warnings)."""
        lines = [self._summary()]
        if self.unrecorded:
            lines.append(f"note: this verification is not recorded in the copy ({self.unrecorded})")
        return lines

    def __str__(self) -> str:
        return "\n".join([*self.lines(), *(f"warning: {warning}" for warning in self.warnings)])


def verify_copy(
    manifest: Manifest,
    dataset: str,
    revision: str,
    target: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    jobs: int = DEFAULT_WORKERS,
    fast: bool = False,
    progress: bool = False,
    origin: Settings | None = None,
    events: Events | None = None,
    signature: SignatureStatus | None = None,
) -> VerifyReport:
    """Hash every selected file under ``target`` and compare it with the manifest.

    ``fast`` trusts djarchive's record of files it verified earlier when size and mtime
    are unchanged, instead of hashing them again. No data file is written; when the copy is
    intact and ``origin`` (the archive the manifest came from) is given, its receipt is written
    or its time of verification updated; when that cannot be done (a download holds the copy, it
    cannot be written), ``unrecorded`` says why and the findings stand.
    ``signature`` is the manifest's signature status, carried by the report.
    """
    started = time.monotonic()
    selected = select_or_fail(manifest, include, exclude, f"{dataset} {revision}")
    report = VerifyReport(
        dataset,
        revision,
        str(target),
        files=len(selected),
        bytes=size_of(selected),
        signature=signature,
    )
    if events is not None:
        events.start(len(selected), report.bytes, dataset=dataset, revision=revision, target=str(target))
    local = LocalCopy(target)
    try:
        if origin is not None:
            report.republished = _changed_since(local, manifest, report, origin)
        if fast:
            local.load_record()
        statuses = local.files.stats(entry.subpath for entry in selected)
        to_hash: list[Entry] = []
        for entry in selected:
            status = statuses[entry.subpath]
            if status is None:
                report.missing.append(entry.subpath)
            elif isinstance(status, str):
                report.modified[entry.subpath] = status
            elif not stat.S_ISREG(status.st_mode):
                report.modified[entry.subpath] = "not a regular file"
            elif status.st_size != entry.size:
                report.modified[entry.subpath] = f"size {status.st_size}, expected {entry.size}"
            elif fast and local.verified.vouches(entry, status):
                report.verified += 1
            else:
                to_hash.append(entry)
        wanted = {entry.subpath: entry for entry in to_hash}
        checked = local.files.hash_many(
            {entry.subpath: entry.size for entry in to_hash},
            jobs=jobs,
            progress=progress,
            description="verify",
        )
        for subpath, result, error in checked:
            entry = wanted[subpath]
            if error is not None:
                reason = getattr(error, "strerror", None) or error
                report.modified[entry.subpath] = f"unreadable ({reason})"
            elif result is not None and result.sha256 != entry.sha256:
                report.modified[entry.subpath] = f"sha256 {result.sha256}, expected {entry.sha256}"
            else:
                report.verified += 1
        if events is not None:
            sizes = {entry.subpath: entry.size for entry in selected}
            bad = {**dict.fromkeys(report.missing, "missing"), **report.modified}
            for subpath, size in sizes.items():
                events.file(subpath, size, "failed" if subpath in bad else "verified", bad.get(subpath))
        walked = list(local.files.walk())
        if report.intact and origin is not None:
            _note_verified(local, manifest, report, include, exclude, origin)
    finally:
        local.close()
    known = {entry.subpath for entry in manifest}
    report.extra = sorted(
        subpath for subpath in walked if subpath not in known and matches(subpath, include, exclude)
    )
    report.missing.sort()
    report.modified = dict(sorted(report.modified.items()))
    report.seconds = time.monotonic() - started
    if events is not None:
        events.end(report.to_dict())
    return report


def _note_verified(
    local: LocalCopy,
    manifest: Manifest,
    report: VerifyReport,
    include: Sequence[str],
    exclude: Sequence[str],
    origin: Settings,
) -> None:
    """Leave a receipt for an intact copy, or update the one there: only when TARGET has none or
    one of this very revision and selection. What cannot be recorded (a copy this process cannot
    write, a damaged receipt, a download holding the copy) is said in the report."""
    try:
        held = local.receipt()
    except LocalPathError as error:
        report.unrecorded = str(error)
        return
    if held is not None and not same_archive(held, origin):
        report.unrecorded = f"its receipt says it came from {origin_of(held)}, not from {origin.url}"
        return
    if held is not None:
        receipt = held
        if (receipt.dataset, receipt.revision, receipt.include, receipt.exclude, receipt.state) != (
            report.dataset,
            report.revision,
            list(include),
            list(exclude),
            COMPLETE,
        ):
            return
        receipt.verified_at = now()
        if report.signature is not None:
            receipt.signature = report.signature.to_dict()
    else:
        stamp = now()
        receipt = Receipt(
            report.dataset,
            report.revision,
            origin.endpoint,
            origin.bucket,
            "",
            secure=origin.secure,
            files=report.files,
            bytes=report.bytes,
            include=list(include),
            exclude=list(exclude),
            signature=report.signature.to_dict() if report.signature is not None else None,
            tool=f"djarchive-client {__version__}",
            downloaded_at=stamp,
            verified_at=stamp,
        )
    _record(local, receipt, manifest, report)


def _changed_since(local: LocalCopy, manifest: Manifest, report: VerifyReport, origin: Settings) -> str:
    """What to say when the copy's receipt, from this archive, recorded another manifest of this
    revision than the archive's now (a forced republish since); "" otherwise."""
    try:
        held = local.receipt()
    except LocalPathError:
        return ""  # said when the receipt is to be updated
    if held is None or (held.dataset, held.revision) != (report.dataset, report.revision):
        return ""
    return republished(held, manifest.sha256) if same_archive(held, origin) else ""


def _record(local: LocalCopy, receipt: Receipt, manifest: Manifest, report: VerifyReport) -> None:
    """Write ``receipt`` under the copy's lock; what prevents it goes to ``report.unrecorded``
    (verifying needs to read the copy, never to write it)."""
    try:
        local.lock()
        try:
            local.write_receipt(receipt, manifest)
        finally:
            local.unlock()
    except (LockedError, LocalPathError, LocalStorageError) as error:
        report.unrecorded = str(error)


def verify_offline(
    target: str | os.PathLike[str],
    *,
    jobs: int = DEFAULT_WORKERS,
    fast: bool = False,
    progress: bool = False,
    events: Events | None = None,
) -> VerifyReport:
    """Check a copy against the manifest its receipt stored (itself checked against the receipt's
    sha256 first), with the receipt's selection; no network."""
    local = LocalCopy(target)
    try:
        held = local.receipt()
        stored = local.stored_manifests(held) if held is not None else None
        started = held is None and local.folder.lstat(STATE_FOLDER) is not None
        busy = local.running() if started else None
    finally:
        local.close()
    if started:
        raise NotFoundError(
            f"{target}: {unfinished(busy)} (or name the dataset and revision to check what it holds "
            "against the archive)"
        )
    if held is None or stored is None:
        raise NotFoundError(
            f"{target} has no djarchive receipt: name the dataset and revision to check it "
            "against the archive"
        )
    receipt, manifest = held, stored[0]
    report = verify_copy(
        manifest,
        receipt.dataset,
        receipt.revision,
        target,
        include=receipt.include,
        exclude=receipt.exclude,
        jobs=jobs,
        fast=fast,
        progress=progress,
        events=events,
    )
    if receipt.state == UPGRADING:
        report.note = f"an upgrade from {receipt.previous} to {receipt.revision} did not finish"
    elif report.intact:
        local = LocalCopy(target)
        try:
            receipt.verified_at = now()
            _record(local, receipt, manifest, report)
        finally:
            local.close()
    return report

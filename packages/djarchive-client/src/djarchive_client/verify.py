"""Compare a local copy with a revision's manifest: missing, modified and extra files."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djarchive_common.manifest import Entry, Manifest, matches, select_or_fail
from djarchive_common.text import files
from djarchive_common.transfer import DEFAULT_WORKERS, hash_files

from .localcopy import LocalCopy

if TYPE_CHECKING:
    from djarchive_common.signing import SignatureStatus

__all__ = ["VerifyReport", "verify_copy"]


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
            "signature": self.signature.to_dict() if self.signature is not None else None,
        }

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision} in {self.target}"
        if self.intact:
            text = f"{name}: intact, {files(self.verified)} verified"
        else:
            text = f"{name}: NOT intact: {len(self.missing)} missing, {len(self.modified)} modified"
        if self.extra:
            text += f", {len(self.extra)} extra {'file' if len(self.extra) == 1 else 'files'}"
        return text


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
) -> VerifyReport:
    """Hash every selected file under ``target`` and compare it with the manifest.

    ``fast`` trusts djarchive's record of files it verified earlier when size and mtime
    are unchanged, instead of hashing them again. Nothing is written.
    """
    started = time.monotonic()
    selected = select_or_fail(manifest, include, exclude, f"{dataset} {revision}")
    report = VerifyReport(
        dataset, revision, str(target), files=len(selected), bytes=sum(e.size for e in selected)
    )
    local = LocalCopy(target)
    try:
        if fast:
            local.load_record()
        statuses = local.stats(entry.subpath for entry in selected)
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
            elif fast and local.is_verified(entry, status):
                report.verified += 1
            else:
                to_hash.append(entry)
        checked = hash_files(
            to_hash,
            lambda entry: local.hash(entry.subpath),
            lambda entry: entry.size,
            jobs=jobs,
            progress=progress,
            description="verify",
        )
        for entry, result, error in checked:
            if error is not None:
                reason = getattr(error, "strerror", None) or error
                report.modified[entry.subpath] = f"unreadable ({reason})"
            elif result is not None and result[1] != entry.sha256:
                report.modified[entry.subpath] = f"sha256 {result[1]}, expected {entry.sha256}"
            else:
                report.verified += 1
        known = {entry.subpath for entry in manifest}
        walked = list(local.walk())
    finally:
        local.close()
    known = {entry.subpath for entry in manifest}
    report.extra = sorted(
        subpath for subpath in walked if subpath not in known and matches(subpath, include, exclude)
    )
    report.missing.sort()
    report.modified = dict(sorted(report.modified.items()))
    report.seconds = time.monotonic() - started
    return report

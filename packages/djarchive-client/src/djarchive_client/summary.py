"""What a download did: counts, failures, conflicts, and the plan of a dry run.

:class:`DownloadSummary` is what ``DJArchiveClient.download`` returns (and what
PartialFailureError carries); it unpacks as the original tool's ``found, errors`` pair, prints
as one line for people and turns into JSON for ``--json`` and the last ``--progress jsonl`` event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djarchive_common.manifest import Entry, size_of
from djarchive_common.text import files, human_bytes

if TYPE_CHECKING:
    from djarchive_common.signing import SignatureStatus

    from .plan import Plan

__all__ = ["DownloadSummary"]


@dataclass
class DownloadSummary:
    """What a download did. ``failed`` maps subpaths to the reason they failed.

    It also unpacks as the original tool's pair, ``found, errors = c.download(...)``:

    * ``found``: the selected files that are in place and verified after the call,
      fetched now or already present (``fetched_files + present_files``); in a dry run,
      those already present;
    * ``errors``: the selected files that failed (``len(failed)``). A download with
      failures raises :class:`~djarchive_common.errors.PartialFailureError`, whose
      ``.summary`` is this object, so a returned summary always has ``errors == 0``.
    """

    dataset: str
    revision: str
    target: str
    files: int = 0
    bytes: int = 0
    fetched_files: int = 0
    fetched_bytes: int = 0
    present_files: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False
    planned: Sequence[Entry] = field(default_factory=list)
    shard: tuple[int, int] | None = None  # (K, N) when only the K-th of N parts was asked for
    reused_files: int = 0  # content found on local disk (moved, or copied from --reuse copies)
    reused_bytes: int = 0
    removed: list[str] = field(default_factory=list)  # files of the previous revision removed
    conflicts: dict[str, str] = field(default_factory=dict)  # files of yours left alone, and why
    upgraded_from: str | None = None  # the revision TARGET held before this download
    delta_files: int = 0  # fetched by their chunks: local chunks copied, the rest fetched
    delta_bytes: int = 0  # their size (fetched_bytes counts what was fetched of them)
    deltas: dict[str, str] = field(default_factory=dict)  # subpath -> what its delta fetches
    retracted: str | None = None  # why the revision was retracted, when downloaded anyway
    signature: SignatureStatus | None = None  # the revision's signature, as checked before the download
    sources: dict[str, int] = field(default_factory=dict)  # bytes fetched, by source (store, mirrors)
    dropped_sources: dict[str, str] = field(default_factory=dict)  # sources given up on, and why
    mirrors: tuple[str, ...] = ()  # the mirrors this download could use
    note: str | None = None  # what else the holder should know (the manifest came from a mirror)
    plan: Plan | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when every selected file is in place and verified."""
        return not self.failed

    @property
    def found(self) -> int:
        """Selected files in place and verified after the call (fetched now or already present)."""
        return self.fetched_files + self.present_files

    @property
    def errors(self) -> int:
        """Selected files that failed."""
        return len(self.failed)

    def __iter__(self) -> Iterator[int]:
        """``found, errors = summary``: the original tool's return value."""
        return iter((self.found, self.errors))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "revision": self.revision,
            "target": self.target,
            "files": self.files,
            "bytes": self.bytes,
            "fetched_files": self.fetched_files,
            "fetched_bytes": self.fetched_bytes,
            "present_files": self.present_files,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
            "shard": list(self.shard) if self.shard else None,
            "reused_files": self.reused_files,
            "reused_bytes": self.reused_bytes,
            "removed": self.removed,
            "conflicts": self.conflicts,
            "upgraded_from": self.upgraded_from,
            "delta_files": self.delta_files,
            "delta_bytes": self.delta_bytes,
            "retracted": self.retracted,
            "ok": self.ok,
            "signature": self.signature.to_dict() if self.signature is not None else None,
            "sources": self.sources,
            "dropped_sources": self.dropped_sources,
            "note": self.note,
        }
        if self.dry_run:
            data["planned"] = [{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in self.planned]
            data["actions"] = [list(action) for action in self.plan.actions()] if self.plan else []
        return data

    def __str__(self) -> str:
        name = f"{self.dataset} {self.revision}" + (
            f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        )
        if self.upgraded_from == self.revision:  # --accept-republished: the same name, new content
            name += f" ({'updating' if self.dry_run else 'updated'} to the republished revision)"
        elif self.upgraded_from:
            name += f" ({'upgrading' if self.dry_run else 'upgraded'} from {self.upgraded_from})"
        if self.dry_run:
            text = (
                f"would download {len(self.planned)} of {files(self.files)} of {name} "
                f"({human_bytes(size_of(self.planned))}) into {self.target}; "
                f"{self.present_files} already present"
            )
            if self.plan and (self.plan.move or self.plan.copy or self.plan.remove or self.plan.conflicts):
                text += (
                    f", {len(self.plan.move) + len(self.plan.copy)} from local disk, "
                    f"{len(self.plan.remove)} to remove, {len(self.plan.conflicts)} conflicts"
                )
            return text
        fetched = human_bytes(self.fetched_bytes)
        if self.delta_files:  # part of the fetched files: say so beside them
            whose = "its" if self.delta_files == 1 else "their"
            fetched += f"; {self.delta_files} by {whose} changed chunks, of {human_bytes(self.delta_bytes)}"
        text = (
            f"{name}: {files(self.files)} ({human_bytes(self.bytes)}) in {self.target}; "
            f"fetched {self.fetched_files} ({fetched}), {self.present_files} already present"
        )
        if self.reused_files:
            text += f", {self.reused_files} from local disk ({human_bytes(self.reused_bytes)})"
        if self.removed:
            text += f", {len(self.removed)} of the old revision removed"
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        if self.mirrors and self.sources:
            served = ", ".join(f"{name} {human_bytes(count)}" for name, count in self.sources.items())
            text += f"; bytes from {served}"
        rate = self.fetched_bytes / self.seconds if self.seconds > 0 else 0
        return f"{text} in {self.seconds:.1f} s" + (f" ({human_bytes(rate)}/s)" if self.fetched_bytes else "")

"""What a download will do in TARGET, decided before anything is written: keep, move, copy,
fetch, remove, and what it must not touch.

For each file of the revision (B): a file already there with B's content is kept (the record of
verified files vouches for it, else it is hashed); content B needs that is already on disk, in
TARGET under another path or in another local copy given with ``--reuse``, is moved or copied
(and checked) instead of fetched; the rest is fetched. When TARGET holds another revision (A) of
the same dataset (an upgrade), the files of A that B lacks are removed, but only while they
still match A; a file the user changed (it matches neither A nor B) is never overwritten nor
removed: it is a conflict, reported with what to do.

Planning writes nothing: what hashing proved along the way is returned beside the plan, for the
download to record once it holds the target.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import operator
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from djarchive_common.manifest import Entry, Manifest, Picked, size_of
from djarchive_common.text import files, human_bytes

from .files import Digest
from .localcopy import LocalCopy

__all__ = ["Copy", "Plan", "plan_download"]


@dataclass(frozen=True)
class Copy:
    """Content on local disk: ``source``'s file ``subpath`` holds what ``entry`` needs."""

    entry: Entry
    source: LocalCopy
    subpath: str


@dataclass
class Plan:
    """Every action of a download, grouped by kind."""

    keep: Sequence[Entry] = field(default_factory=list)
    move: list[tuple[Entry, str]] = field(default_factory=list)  # (B's entry, A's path to rename)
    copy: list[Copy] = field(default_factory=list)
    fetch: Sequence[Entry] = field(default_factory=list)
    remove: list[Entry] = field(default_factory=list)  # A's files that B does not have
    conflicts: dict[str, str] = field(default_factory=dict)  # paths of B not overwritten, and why
    left: dict[str, str] = field(default_factory=dict)  # A's paths not removed, and why
    deltas: dict[str, str] = field(default_factory=dict)  # paths fetched by their chunks, and how much

    def actions(self) -> Iterator[tuple[str, str, str]]:
        """Every action as (action, bytes, path): keep, move, reuse, fetch, remove, conflict, leave
        (``old -> new`` for moves and reuses, ``path: why`` for conflicts and what is left)."""
        yield from (("keep", str(size), subpath) for subpath, size, _ in self.keep)
        yield from (("move", str(entry.size), f"{old} -> {entry.subpath}") for entry, old in self.move)
        for item in self.copy:
            source = item.source.destination(item.subpath)
            yield "reuse", str(item.entry.size), f"{source} -> {item.entry.subpath}"
        for subpath, size, _ in self.fetch:
            delta = self.deltas.get(subpath)
            yield "fetch", str(size), subpath + (f" (by its chunks: {delta})" if delta else "")
        yield from (("remove", str(entry.size), entry.subpath) for entry in self.remove)
        yield from (("conflict", "-", f"{subpath}: {why}") for subpath, why in sorted(self.conflicts.items()))
        yield from (("leave", "-", f"{subpath}: {why}") for subpath, why in sorted(self.left.items()))

    def rows(self) -> Iterator[tuple[str, ...]]:
        """The actions as ``--dry-run`` prints them: the files kept in one row ('keep 24 files
        (190.0 MB)'), then every other action, one row each."""
        if self.keep:
            yield (f"keep {files(len(self.keep))} ({human_bytes(size_of(self.keep))})",)
        yield from itertools.islice(self.actions(), len(self.keep), None)

    def __str__(self) -> str:
        return (
            f"keep {len(self.keep)}, move {len(self.move)}, reuse {len(self.copy)}, "
            f"fetch {files(len(self.fetch))} ({human_bytes(size_of(self.fetch))}), "
            f"remove {len(self.remove)}, conflicts {len(self.conflicts)}"
        )


class _Contents:
    """What each path of a local copy holds, as far as can be told: the record's word for files
    unchanged since verified, a hash for files that could match something, else nothing."""

    def __init__(self, local: LocalCopy, subpaths: Iterable[str], *, trust_record: bool):
        self.files, self.record = local.files, local.verified
        self.use_record = trust_record and bool(local.verified)  # an empty record vouches for nothing
        self._subpaths = subpaths
        self.known: dict[str, str] = {}
        self.proved: dict[str, Digest] = {}  # what hashing proved, with the status: to record

    @functools.cached_property
    def status(self) -> dict[str, os.stat_result | str | None]:
        """The status of every path (taken when first asked)."""
        return self.files.stats(self._subpaths)

    def held(self, manifest: Manifest, jobs: int, progress: bool) -> list[bool]:
        """For each file of ``manifest``, whether its path holds its content: the record's word
        (compared in bulk), else a hash of the files of the right size (what they hold is known
        after). The columns of the manifest are used as they are: no entry is made. With nothing
        recorded (a first pass) no path is stat-ed first: opening a file to hash it tells."""
        paths, sizes, _ = manifest.columns
        if self.use_record:
            statuses = list(map(self.status.get, paths))
            held = self.record.mask(manifest, statuses)
            candidates = {
                paths[index]: index
                for index, status in enumerate(statuses)
                if not held[index]
                and type(status) is os.stat_result
                and status.st_size == sizes[index]
                and stat.S_ISREG(status.st_mode)
            }
        else:  # only regular files are opened; their status comes with the hash
            held = [False] * len(paths)
            present = self.files.regular_files(paths)
            candidates = {path: index for index, path in enumerate(paths) if path in present}
        wanted = {subpath: sizes[index] for subpath, index in candidates.items()}
        matched: dict[str, Digest] = {}
        identities: dict[tuple[int, int], str] = {}
        twins: set[str] = set()
        for subpath, result, error in self.files.hash_many(
            wanted, jobs=jobs, progress=progress, same_size=True
        ):
            if error is not None or result is None:
                continue
            status = result.status
            if status.st_nlink == 1:  # one file reached by two paths (a mount): neither is used
                twin = identities.setdefault((status.st_dev, status.st_ino), subpath)
                if twin != subpath:
                    twins.update((twin, subpath))
            if not result.sha256:
                continue  # another size: not read
            self.known[subpath] = result.sha256
            index = candidates[subpath]
            if manifest.sha256_at(index) == result.sha256:
                matched[subpath] = result
        for subpath in twins:
            self.known.pop(subpath, None)
            matched.pop(subpath, None)
        for subpath in matched:
            held[candidates[subpath]] = True
        self.proved.update(matched)
        return held

    def consider(
        self, subpath: str, candidates: Sequence[Entry], to_hash: dict[str, Sequence[Entry]]
    ) -> None:
        """Take the record's word for what ``subpath`` holds, among the candidates' contents (no
        hashing); or add it to ``to_hash`` with the candidates it could match."""
        status = self.status.get(subpath)
        if not isinstance(status, os.stat_result):
            return
        if self.use_record:
            for candidate in candidates:
                if self.record.vouches(candidate, status):
                    self.known[subpath] = candidate.sha256
                    return
        to_hash[subpath] = candidates

    def hash_where(self, wanted: dict[str, Sequence[Entry]], jobs: int, progress: bool) -> None:
        """Hash the regular files whose size is that of a candidate there; keep the ones that
        match a candidate, to record."""
        sizes = {}
        for subpath, candidates in wanted.items():
            status = self.status.get(subpath)
            if (
                isinstance(status, os.stat_result)
                and stat.S_ISREG(status.st_mode)
                and any(entry.size == status.st_size for entry in candidates)
            ):
                sizes[subpath] = status.st_size
        for subpath, result, error in self.files.hash_many(sizes, jobs=jobs, progress=progress):
            if error is not None or result is None:
                continue
            self.known[subpath] = sha256 = result.sha256
            status = self.status[subpath]
            for entry in wanted[subpath]:
                if entry.sha256 == sha256 and isinstance(status, os.stat_result):
                    self.proved[subpath] = Digest(entry.size, sha256, status)
                    break


def plan_download(
    local: LocalCopy,
    entries: Sequence[Entry],
    *,
    previous: Sequence[Entry] | None = None,
    reuse: Sequence[tuple[LocalCopy, Manifest]] = (),
    recheck: bool = False,
    remove_old: bool = True,
    jobs: int,
    progress: bool = False,
) -> tuple[Plan, dict[str, Digest]]:
    """Decide what downloading ``entries`` into ``local`` does, and say which files hashing
    proved to hold their content (subpath -> digest, with the status the file had: for the
    record of verified files). ``previous`` are the files of the revision TARGET holds when it
    is another one (an upgrade): only those the download selected, the others are not touched;
    ``reuse`` are other local copies with their manifests, whose content may serve instead of
    the network. Without ``remove_old`` (a shard: the other shards' files are not in
    ``entries``) no file of the old revision is moved or removed, only copied from."""
    if previous is None and not reuse and next(local.files.walk(), None) is None:
        return Plan(fetch=entries), {}  # nothing on disk yet (a first download): every file is fetched
    fetch = Picked(entries)
    plan = Plan(fetch=fetch)
    # A manifest answers lookups by path itself (binary search): no second index of a million entries.
    wanted: Manifest | dict[str, Entry] = (
        entries if isinstance(entries, Manifest) else {entry.subpath: entry for entry in entries}
    )
    old = {entry.subpath: entry for entry in previous} if previous is not None else {}
    paths = entries.subpaths if isinstance(entries, Manifest) else [entry.subpath for entry in entries]
    contents = _Contents(
        local, itertools.chain(paths, (path for path in old if path not in wanted)), trust_record=not recheck
    )

    kept: list[int] = []
    pending: Callable[[], Iterable[tuple[int, Entry]]] = functools.partial(enumerate, entries)
    if isinstance(entries, Manifest) and previous is None:
        # 1. (one revision, as a manifest) which files hold their content, in bulk
        holds = contents.held(entries, jobs, progress)
        kept = list(itertools.compress(range(len(holds)), holds))
        others = [
            (index, entries[index])
            for index in itertools.compress(range(len(holds)), map(operator.not_, holds))
        ]
        pending = functools.partial(iter, others)
        if others:  # what the kept files hold may serve the others
            contents.known.update((paths[index], entries.sha256_at(index)) for index in kept)
    else:
        # 1. what each path holds: the record's word, else a hash where the size could match
        to_hash: dict[str, Sequence[Entry]] = {}
        for _, entry in pending():
            before = old.get(entry.subpath) if old else None
            contents.consider(entry.subpath, (entry,) if before is None else (entry, before), to_hash)
        for subpath, before in old.items():
            if subpath not in wanted:
                contents.consider(subpath, (before,), to_hash)
        contents.hash_where(to_hash, jobs, progress)

    # 2. each file of B: keep it, or find where its content comes from
    moved: set[str] = set()
    also_kept: list[int] = []
    on_disk = {sha256: subpath for subpath, sha256 in contents.known.items()}
    elsewhere = {entry.sha256: (copy, entry.subpath) for copy, manifest in reuse for entry in manifest}
    for index, entry in pending():
        subpath = entry.subpath
        held = contents.known.get(subpath)
        if held == entry.sha256:
            also_kept.append(index)
            continue
        if previous is not None and isinstance(contents.status.get(subpath), os.stat_result):
            before = old.get(subpath)
            if before is None or held != before.sha256:  # not A's: the user's, or changed since
                plan.conflicts[subpath] = (
                    "changed locally (it is not the file of either revision): not overwritten"
                    if before is not None
                    else "a file of yours is where this revision has a file: not overwritten"
                )
                continue
        source = on_disk.get(entry.sha256)
        movable = remove_old and source in old and source not in wanted and source not in moved
        if source is not None and movable:
            plan.move.append((entry, source))
            moved.add(source)
        elif source is not None:
            plan.copy.append(Copy(entry, local, source))
        elif entry.sha256 in elsewhere:
            copy, other = elsewhere[entry.sha256]
            plan.copy.append(Copy(entry, copy, other))
        else:
            fetch.append_index(index)
    plan.keep = Picked(entries, heapq.merge(kept, also_kept))

    # 3. files of A that B does not have: removed while they still match A (by a run that may)
    for subpath, entry in sorted(old.items() if remove_old else ()):
        if subpath in wanted or subpath in moved or contents.status.get(subpath) is None:
            continue
        if contents.known.get(subpath) == entry.sha256:
            plan.remove.append(entry)
        else:
            plan.left[subpath] = "changed locally since it was downloaded: left in place"
    return plan, contents.proved

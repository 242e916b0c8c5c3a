"""What an upload will do, decided before anything is written: skip, copy in the archive, send.

Planning lists the revision's prefix once and asks the store for the sha256 metadata of every
object that already has the right size; those objects are skipped, so re-running an interrupted
upload sends only what is missing. Content that an earlier published revision of the dataset
holds (the same size and sha256 in its manifest) is copied server-side instead of sent
(DESIGN §13); the rest is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from djarchive_common.catalog import Catalog
from djarchive_common.errors import DJArchiveError, NotFoundError
from djarchive_common.layout import manifest_key, object_key, revision_prefix
from djarchive_common.manifest import Entry, Manifest
from djarchive_common.store import Store
from djarchive_common.text import files, plural
from djarchive_common.transfer import DEFAULT_WORKERS, map_parallel, run_parallel

from .publish import strays
from .scan import SourceFile

__all__ = ["MAX_REUSED_REVISIONS", "Holdings", "UploadPlan", "archive_holdings", "plan_upload"]

log = logging.getLogger("djarchive_admin")
MAX_REUSED_REVISIONS = 32  # the latest published revisions whose content an upload may copy

Holdings = Mapping[tuple[int, str], str]  # (size, sha256) -> the key of an object holding it


@dataclass
class UploadPlan:
    """What to send, what to copy in the archive (entry, file, the key copied from), what is
    already stored, and objects under the prefix the manifest does not list."""

    todo: list[tuple[Entry, SourceFile]]
    stored: list[Entry]
    strays: list[str]  # subpaths
    copies: list[tuple[Entry, SourceFile, str]] = field(default_factory=list)

    def copying(self, holdings: Holdings) -> UploadPlan:
        """This plan, with the files whose content ``holdings`` names copied instead of sent."""
        copies = list(self.copies)
        todo = []
        for entry, file in self.todo:
            source = holdings.get((entry.size, entry.sha256))
            if source is None:
                todo.append((entry, file))
            else:
                copies.append((entry, file, source))
        if copies:
            log.info("%s of them copied in the archive instead", files(len(copies)))
        return UploadPlan(todo, self.stored, self.strays, copies)


def archive_holdings(
    catalog: Catalog, dataset: str, revision: str, wanted: Iterable[Entry], *, jobs: int = DEFAULT_WORKERS
) -> dict[tuple[int, str], str]:
    """Where the latest published revisions of ``dataset`` (``revision`` aside) hold the content of
    the ``wanted`` entries: (size, sha256) -> the key of one object, by their manifests (the copy
    is proven at publish, so a manifest that lies costs a send, never a wrong object). Empty
    files are not worth a request."""
    needed = {(entry.size, entry.sha256) for entry in wanted if entry.size > 0}
    if not needed:
        return {}
    try:
        others = [name for _, name in catalog.revisions(dataset) if name != revision]
    except NotFoundError:
        return {}
    others = others[-MAX_REUSED_REVISIONS:]

    def manifest_of(other: str) -> Manifest | None:
        try:
            return catalog.stored_manifest(manifest_key(dataset, other))
        except DJArchiveError as error:  # unreadable or invalid: its content is simply not reused
            log.info("not reusing the content of %s %s: %s", dataset, other, error)
            return None

    manifests = map_parallel(manifest_of, others, jobs)
    found: dict[tuple[int, str], str] = {}
    for other in reversed(others):  # the latest first
        manifest = manifests.get(other)
        for entry in manifest or ():
            pair = (entry.size, entry.sha256)
            if pair in needed and pair not in found:
                found[pair] = object_key(dataset, other, entry.subpath)
    log.info("%s: earlier revisions hold %d of the %d contents to upload", dataset, len(found), len(needed))
    return found


def plan_upload(
    store: Store,
    dataset: str,
    revision: str,
    manifest: Manifest,
    sources: Sequence[SourceFile],
    *,
    jobs: int = DEFAULT_WORKERS,
) -> UploadPlan:
    """Compare the manifest with the store: objects with the same size and sha256 need no upload,
    the rest is to send (:meth:`UploadPlan.copying` turns sends into copies)."""
    prefix = revision_prefix(dataset, revision)
    listing = {info.key: info.size for info in store.objects(prefix)}
    by_subpath = {item.subpath: item for item in sources}
    same_size = [
        entry for entry in manifest if listing.get(object_key(dataset, revision, entry.subpath)) == entry.size
    ]
    stored: set[str] = set()

    def stored_sha256(entry: Entry) -> str | None:
        info = store.stat(object_key(dataset, revision, entry.subpath))
        return info.sha256 if info is not None else None

    for entry, sha256, error in run_parallel(stored_sha256, same_size, jobs):
        if error is not None:
            raise error
        if sha256 == entry.sha256:
            stored.add(entry.subpath)
    todo = [(entry, by_subpath[entry.subpath]) for entry in manifest if entry.subpath not in stored]
    stray = strays(dataset, revision, manifest, listing)
    log.info(
        "%s: %s to upload, %d already stored, %s",
        prefix,
        files(len(todo)),
        len(stored),
        plural(len(stray), "stray object"),
    )
    return UploadPlan(todo, [entry for entry in manifest if entry.subpath in stored], stray)

"""The manifest, ``djarchive-manifest.csv``: what a revision holds, in four rooms.

- :mod:`.entries`: :class:`Entry`, the validated :class:`Manifest` in compact columns, the
  entries :class:`Picked` from one, the rules a set of paths keeps, the packed sha256 digests;
- :mod:`.parse`: reading, validating and writing the file (the bulk reader of plain chunks);
- :mod:`.select`: choosing entries by glob and by shard, their sizes and paths;
- :mod:`.compare`: :func:`diff_manifests`, the one comparison of two manifests.

Callers import from here; the rooms import each other.
"""

from ..layout import MANIFEST_NAME
from .compare import ManifestChanges, diff_manifests
from .entries import MAX_OBJECT_SIZE, Entry, Manifest, Picked, path_identity, sha256_at, sha256s
from .parse import MAX_LINE_CHARS, parse_manifest, read_manifest, write_manifest
from .select import matches, select, select_or_fail, shard, size_of, subpaths_of

__all__ = [
    "MANIFEST_NAME",
    "MAX_LINE_CHARS",
    "MAX_OBJECT_SIZE",
    "Entry",
    "Manifest",
    "ManifestChanges",
    "Picked",
    "diff_manifests",
    "matches",
    "parse_manifest",
    "path_identity",
    "read_manifest",
    "select",
    "select_or_fail",
    "sha256_at",
    "sha256s",
    "shard",
    "size_of",
    "subpaths_of",
    "write_manifest",
]

"""Read a SOURCE folder: walk it, apply the filename filter, hash in parallel, compare with a manifest.

The filter is a regular expression searched in every path component (folders and file
names); a path with any matching component is not archived. The default, ``^\\.``,
skips hidden files and folders, as the archive's original tool did. The manifest at
``SOURCE/djarchive-manifest.csv`` is never archived as data.

Symbolic links inside SOURCE are followed when their target is inside SOURCE too; a
link that leaves SOURCE, dangles, or loops is refused with an error naming it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from djarchive_common import text, transfer
from djarchive_common.errors import Hint, IntegrityError, InvalidNameError, LocalPathError, ManifestError
from djarchive_common.layout import MANIFEST_NAME, subpath_problem
from djarchive_common.manifest import Entry, Manifest, read_manifest
from djarchive_common.text import some
from djarchive_common.transfer import DEFAULT_WORKERS, hash_file

__all__ = [
    "DEFAULT_FILENAME_FILTER",
    "SourceFile",
    "build_manifest",
    "check_source",
    "compile_filter",
    "hash_files",
    "scan_source",
    "source_root",
]

DEFAULT_FILENAME_FILTER = r"^\."
log = logging.getLogger("djarchive_admin")


@dataclass(frozen=True)
class SourceFile:
    """One file to archive: its subpath, the real path to read, and its size and mtime when scanned."""

    subpath: str
    path: Path
    size: int
    mtime_ns: int

    def changed(self) -> bool:
        """Whether the file's size or modification time differ from the scan's."""
        try:
            status = os.stat(self.path)
        except OSError:
            return True
        return status.st_size != self.size or status.st_mtime_ns != self.mtime_ns


def compile_filter(filename_filter: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    """The compiled filter; None or '' archives everything."""
    if filename_filter is None or filename_filter == "":
        return None
    if isinstance(filename_filter, re.Pattern):
        return filename_filter
    try:
        return re.compile(filename_filter)
    except re.error as exc:
        raise InvalidNameError(f"invalid filename filter {filename_filter!r}: {exc}") from None


def source_root(source: str | os.PathLike[str]) -> Path:
    """SOURCE as an absolute real path; it must be an existing folder."""
    path = Path(source)
    try:
        root = path.resolve(strict=True)
    except FileNotFoundError:
        raise LocalPathError(f"source folder {str(path)!r} does not exist") from None
    except (OSError, RuntimeError) as exc:
        raise LocalPathError(f"source folder {str(path)!r} cannot be used: {exc}") from None
    if not root.is_dir():
        raise LocalPathError(f"source {str(path)!r} is not a folder")
    return root


def _inside(root: Path, target: str) -> bool:
    return target == str(root) or target.startswith(str(root).rstrip(os.sep) + os.sep)


def _follow(root: Path, link: str, subpath: str) -> tuple[str, os.stat_result]:
    """The real target of a symbolic link inside SOURCE and its status, or a LocalPathError."""
    target = os.path.realpath(link)
    if not _inside(root, target):
        raise LocalPathError(
            f"symbolic link {subpath!r} in {root} points to {target}, outside the source folder: "
            "replace it with a copy of its target or remove it"
        )
    try:
        return target, os.stat(target)
    except OSError:
        raise LocalPathError(f"symbolic link {subpath!r} in {root} is broken (target {target})") from None


def scan_source(
    source: str | os.PathLike[str], filename_filter: str | re.Pattern[str] | None
) -> list[SourceFile]:
    """Every file under SOURCE that passes the filter, sorted by subpath (the manifest excluded)."""
    root = source_root(source)
    pattern = compile_filter(filename_filter)
    found: list[SourceFile] = []
    skipped = 0

    def walk(folder: str, prefix: str, ancestors: frozenset[str]) -> None:
        nonlocal skipped
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            raise LocalPathError(f"cannot read folder {folder}: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            subpath = prefix + name
            if pattern is not None and pattern.search(name):
                skipped += 1
                log.debug("filtered out: %s", subpath)
                continue
            if subpath == MANIFEST_NAME:
                continue
            real = entry.path
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise LocalPathError(f"cannot read {entry.path}: {exc.strerror}") from None
            if stat.S_ISLNK(status.st_mode):
                real, status = _follow(root, entry.path, subpath)
            if stat.S_ISDIR(status.st_mode):
                if real in ancestors:
                    raise LocalPathError(
                        f"symbolic link {subpath!r} in {root} loops back to its own parent folder {real}"
                    )
                walk(real, subpath + "/", ancestors | {real})
            elif stat.S_ISREG(status.st_mode):
                problem = subpath_problem(subpath)
                if problem:
                    raise InvalidNameError(f"cannot archive {os.path.join(root, subpath)!r}: {problem}")
                found.append(SourceFile(subpath, Path(real), status.st_size, status.st_mtime_ns))
            else:
                raise LocalPathError(f"{os.path.join(root, subpath)} is not a regular file, folder or link")

    walk(str(root), "", frozenset({str(root)}))
    found.sort(key=lambda item: item.subpath)
    log.info("%s: %s to archive, %s filtered out", root, text.files(len(found)), text.plural(skipped, "path"))
    return found


def hash_files(
    files: Sequence[SourceFile], *, jobs: int = DEFAULT_WORKERS, progress: bool = False
) -> dict[str, tuple[int, str]]:
    """(size, sha256) of every file, hashed in parallel; a file that cannot be read is an error."""
    results: dict[str, tuple[int, str]] = {}
    failures: list[str] = []
    hashed = transfer.hash_files(
        files, lambda item: hash_file(item.path), lambda item: item.size, jobs=jobs, progress=progress
    )
    for item, result, error in hashed:
        if error is not None or result is None:
            reason = getattr(error, "strerror", None) or str(error)
            failures.append(f"{item.subpath} ({reason})")
            continue
        if result[0] != item.size:
            raise IntegrityError(f"{item.path} changed while it was being read; try again when it is stable")
        results[item.subpath] = result
    if failures:
        raise LocalPathError(f"cannot read {text.files(len(failures))}: {some(failures)}")
    return results


def build_manifest(
    files: Sequence[SourceFile], *, jobs: int = DEFAULT_WORKERS, progress: bool = False
) -> Manifest:
    """The manifest of ``files``, hashing each."""
    hashes = hash_files(files, jobs=jobs, progress=progress)
    return Manifest(Entry(item.subpath, *hashes[item.subpath]) for item in files)


def check_source(
    root: Path,
    files: Sequence[SourceFile],
    *,
    jobs: int = DEFAULT_WORKERS,
    progress: bool = False,
) -> tuple[Manifest, list[SourceFile]]:
    """Check SOURCE against its own manifest; return the manifest and the files it lists.

    Every file is checked before anything else happens: a file the manifest does not list,
    a listed file that is missing, or one whose size or sha256 differs is an error naming it.
    Files the manifest lists explicitly are archived even when the filter would skip them.
    """
    path = root / MANIFEST_NAME
    manifest = read_manifest(path)
    on_disk = {item.subpath: item for item in files}
    untracked = [subpath for subpath in on_disk if subpath not in manifest]
    missing = []
    for entry in manifest:
        if entry.subpath not in on_disk:
            listed = _listed_file(root, entry.subpath)
            if listed is None:
                missing.append(entry.subpath)
            else:
                on_disk[entry.subpath] = listed
    rebuild = Hint(
        "overwrite",
        flag="--overwrite",
        text="; if the files are right, rebuild it with {}",
        function="write_manifest",
        command="manifest",
        argument=str(root),
    )
    problems = []
    if untracked:
        problems.append(f"{text.files(len(untracked))} not in the manifest (untracked): {some(untracked)}")
    if missing:
        problems.append(
            f"{text.files(len(missing))} in the manifest {'is' if len(missing) == 1 else 'are'} missing: "
            f"{some(missing)}"
        )
    if problems:
        raise ManifestError(f"{path} does not match the source folder: " + "; ".join(problems), hint=rebuild)
    selected = [on_disk[entry.subpath] for entry in manifest]
    wrong_size = [
        f"{item.subpath} ({item.size} bytes, the manifest says {manifest.get(item.subpath).size})"  # type: ignore[union-attr]
        for item in selected
        if item.size != manifest.get(item.subpath).size  # type: ignore[union-attr]
    ]
    if wrong_size:
        raise ManifestError(
            f"{path} does not match {text.files(len(wrong_size))}: {some(wrong_size)}", hint=rebuild
        )
    hashes = hash_files(selected, jobs=jobs, progress=progress)
    wrong_hash = [
        f"{subpath} (sha256 {sha256}, the manifest says {manifest.get(subpath).sha256})"  # type: ignore[union-attr]
        for subpath, (_, sha256) in sorted(hashes.items())
        if sha256 != manifest.get(subpath).sha256  # type: ignore[union-attr]
    ]
    if wrong_hash:
        raise ManifestError(
            f"{path} does not match {text.files(len(wrong_hash))}: {some(wrong_hash)}", hint=rebuild
        )
    return manifest, selected


def _listed_file(root: Path, subpath: str) -> SourceFile | None:
    """A file the manifest lists but the scan skipped (filtered), if it is a regular file inside SOURCE."""
    candidate = os.path.join(root, *subpath.split("/"))
    real = os.path.realpath(candidate)
    if not _inside(root, real):
        raise LocalPathError(f"{subpath!r} listed in the manifest leads outside {root} (to {real})")
    try:
        status = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return SourceFile(subpath, Path(real), status.st_size, status.st_mtime_ns)


def source_manifest(
    root: Path,
    filename_filter: str | re.Pattern[str] | None,
    jobs: int = DEFAULT_WORKERS,
    progress: bool = False,
) -> tuple[Manifest, list[SourceFile], str]:
    """SOURCE's manifest and files, and where the manifest comes from: SOURCE's own (its path),
    checked against every file before anything is sent, or one "built" in memory."""
    sources = scan_source(root, filename_filter)
    if (root / MANIFEST_NAME).is_file():
        manifest, sources = check_source(root, sources, jobs=jobs, progress=progress)
        origin = str(root / MANIFEST_NAME)
    else:
        if not sources:
            raise LocalPathError(f"source folder {root} has no files to archive")
        manifest = build_manifest(sources, jobs=jobs, progress=progress)
        origin = "built"
    if not manifest:
        raise LocalPathError(f"{root / MANIFEST_NAME} lists no files: nothing to upload")
    return manifest, sources, origin

"""Seeded benchmark datasets S, L and M, generated once and cached under benchmarks/.work/data/.

S: 2000 files of 16 KiB in 20 folders (many small objects).
L: 4 files of 256 MiB (large objects, fetched in byte ranges).
M: 300 files, 600 MiB in all, log-normal sizes, 3 folder levels, names with spaces and non-ASCII.
XS<n> (``XS`` = XS100000): n files of 1-4 KiB in nested folders, 100 per folder
(``sub-NN/ses-NN/tile-NN/fNNNNNN.bin``); one seed for every n, so XS25000 is the first
25,000 files of XS100000, byte for byte (issue 15).
UA<n>x<MiB> / UB<n>x<MiB> (``UA``/``UB`` = 1000 files, 1000 MiB): an upgrade pair (issue 16).
UA has n files with log-normal sizes below 48 MiB (all below djarchive's 64 MiB range
threshold); UB is its successor: 1 % of the files changed (same path, new bytes), 1 % moved
(same bytes, new path), 3 added and 3 removed, the rest unchanged. UB's unchanged and moved files
are hard links to UA's, so only the new bytes are written.

Content comes from ``random.Random(seed).randbytes`` in 4 MiB blocks (about 0.5 GB/s), so the
same seed always gives the same bytes and the same manifest. Each shape is written to
``<work>/data/<shape>/files/`` with its manifest (the archive's exact format) beside it at
``<work>/data/<shape>/djarchive-manifest.csv``; a stamp file records the spec, and a dataset whose
stamp matches is reused without being read again.

    python benchmarks/generate.py S L M          # generate (or reuse) and print the paths
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
KiB = 1024
MiB = 1024 * KiB
BLOCK = 4 * MiB
MANIFEST_NAME = "djarchive-manifest.csv"
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Shape:
    """What one dataset looks like."""

    name: str
    description: str
    seed: int


SHAPES = {
    "S": Shape("S", "2000 files x 16 KiB", 1001),
    "L": Shape("L", "4 files x 256 MiB", 1002),
    "M": Shape("M", "300 files, 600 MiB, log-normal sizes, 3 folder levels", 1003),
}
ALIASES = {"XS": "XS100000", "UA": "UA1000x1000", "UB": "UB1000x1000"}
_XS = re.compile(r"XS([0-9]+)")
_UPGRADE = re.compile(r"U([AB])([0-9]+)x([0-9]+)")
UPGRADE_SEED = 1005
MAX_UPGRADE_FILE = 48 * MiB


def shape_spec(shape: str) -> Shape:
    """The spec of a shape, the parametrised ones (XS<n>, UA<n>x<MiB>, UB<n>x<MiB>) included."""
    shape = ALIASES.get(shape, shape)
    if shape in SHAPES:
        return SHAPES[shape]
    if match := _XS.fullmatch(shape):
        return Shape(shape, f"{int(match[1])} files x 1-4 KiB in nested folders", 1004)
    if match := _UPGRADE.fullmatch(shape):
        which = "revision A" if match[1] == "A" else "successor B of A"
        return Shape(shape, f"upgrade pair, {which}: {match[2]} files, {match[3]} MiB", UPGRADE_SEED)
    raise KeyError(f"unknown shape {shape!r}: expected one of {', '.join([*SHAPES, 'XS<n>', 'UA', 'UB'])}")


# Words for the M shape's names: spaces and non-ASCII on purpose, nothing a shell glob or URL treats
# specially beyond the space ('*', '?', '[' and '%' are left out so every baseline can copy them).
_LEVEL1 = ["session 01", "session 02", "sessión 03", "Maus 4 ü"]
_LEVEL2 = ["probe A", "probe_B", "électrode 7", "µscope", "データ"]
_LEVEL3 = ["raw", "unit 12", "Ünits", "spikes & lfp", "trial-ß"]
_STEMS = ["recording", "frame stack", "spike times", "naïve fit", "résumé", "table", "blob"]


@dataclass(frozen=True)
class Dataset:
    """A generated dataset on disk."""

    shape: str
    root: Path  # the data files live here
    manifest: Path  # the manifest file (not inside root)
    files: int
    bytes: int

    @property
    def entries(self) -> list[tuple[str, int, str]]:
        """(subpath, size, sha256) of every file, from the manifest."""
        with open(self.manifest, encoding="utf-8", newline="") as handle:
            return [(path, int(size), sha) for size, sha, path in csv.reader(handle)]

    @property
    def entries_in_plan_order(self) -> list[tuple[str, int, str]]:
        """:attr:`entries` in the order of :func:`plan` (the manifest is sorted by path)."""
        by_path = {path: (path, size, sha) for path, size, sha in self.entries}
        return [by_path[path] for path, _ in plan(self.shape)]


def plan(shape: str) -> list[tuple[str, int]]:
    """The (subpath, size) list of a shape, from its seed alone (UB: see :func:`upgrade_plan`)."""
    shape = ALIASES.get(shape, shape)
    spec = shape_spec(shape)
    rng = random.Random(spec.seed)
    if match := _XS.fullmatch(shape):
        return [
            (
                f"sub-{i // 10000:02d}/ses-{i // 1000 % 10:02d}/tile-{i // 100 % 10:02d}/f{i:06d}.bin",
                rng.randint(1 * KiB, 4 * KiB),
            )
            for i in range(int(match[1]))
        ]
    if (match := _UPGRADE.fullmatch(shape)) and match[1] == "A":
        count, total = int(match[2]), int(match[3]) * MiB
        weights = [rng.lognormvariate(0.0, 1.0) for _ in range(count)]
        scale = total / sum(weights)
        sizes = [min(MAX_UPGRADE_FILE, max(1, int(weight * scale))) for weight in weights]
        return [(f"session{i % 20:02d}/probe{i % 7}/file{i:05d}.dat", size) for i, size in enumerate(sizes)]
    if shape == "S":
        return [(f"part{i // 100:02d}/file{i:05d}.bin", 16 * KiB) for i in range(2000)]
    if shape == "L":
        return [(f"large{i}.bin", 256 * MiB) for i in range(4)]
    if shape == "M":
        count, total = 300, 600 * MiB
        weights = [rng.lognormvariate(0.0, 1.6) for _ in range(count)]
        scale = total / sum(weights)
        sizes = [max(1, int(weight * scale)) for weight in weights]
        sizes[0] += total - sum(sizes)  # exact total
        files = []
        for index, size in enumerate(sizes):
            folder = "/".join((rng.choice(_LEVEL1), rng.choice(_LEVEL2), rng.choice(_LEVEL3)))
            name = f"{rng.choice(_STEMS)} {index:03d}.dat"
            files.append((f"{folder}/{name}", size))
        return files
    raise KeyError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")


def upgrade_plan(count: int, mib: int) -> dict:
    """How UB differs from UA: indexes of UA's files changed, moved and removed, and UB's added
    files (subpath, size); changed files keep their size, moved ones go to ``moved/<name>``."""
    sizes = plan(f"UA{count}x{mib}")
    rng = random.Random(UPGRADE_SEED * 31)
    one_percent = max(1, count // 100)
    picked = rng.sample(range(len(sizes)), 2 * one_percent + 3)
    return {
        "changed": sorted(picked[:one_percent]),
        "moved": sorted(picked[one_percent : 2 * one_percent]),
        "removed": sorted(picked[2 * one_percent :]),
        "added": [(f"session-new/file{i:05d}.dat", rng.randint(1 * MiB, 8 * MiB)) for i in range(3)],
    }


def _stamp(shape: str) -> dict:
    return {"generator": GENERATOR_VERSION, **asdict(shape_spec(shape))}


def _write_random(path: Path, size: int, rng: random.Random) -> str:
    """Write ``size`` bytes from ``rng`` to ``path``; return their sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = rng.randbytes(min(BLOCK, left))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def _generate_successor(shape: str, root: Path, work: Path) -> list[tuple[str, int, str]]:
    """UB's files under ``root`` (links to UA's where unchanged or moved) and its entries."""
    match = _UPGRADE.fullmatch(shape)
    assert match is not None
    count, mib = int(match[2]), int(match[3])
    before = generate(f"UA{count}x{mib}", work, quiet=True)
    old = before.entries_in_plan_order
    how = upgrade_plan(count, mib)
    rng = random.Random(UPGRADE_SEED * 7919 + 1)
    entries = []
    changed, moved, removed = set(how["changed"]), set(how["moved"]), set(how["removed"])
    for index, (subpath, size, sha) in enumerate(old):
        if index in removed:
            continue
        source = before.root.joinpath(*subpath.split("/"))
        if index in changed:
            sha = _write_random(root.joinpath(*subpath.split("/")), size, rng)
        else:
            if index in moved:
                subpath = f"moved/{subpath.rsplit('/', 1)[1]}"
            path = root.joinpath(*subpath.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.hardlink_to(source)
        entries.append((subpath, size, sha))
    for subpath, size in how["added"]:
        entries.append((subpath, size, _write_random(root.joinpath(*subpath.split("/")), size, rng)))
    return entries


def manifest_bytes(entries: list[tuple[str, int, str]]) -> bytes:
    """The manifest exactly as djarchive_common.manifest writes it (QUOTE_ALL, '\\n', sorted)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for subpath, size, sha256 in sorted(entries):
        writer.writerow((str(size), sha256, subpath))
    return buffer.getvalue().encode("utf-8")


def generate(shape: str, work: Path = WORK, *, force: bool = False, quiet: bool = False) -> Dataset:
    """Generate ``shape`` under ``work``/data (or reuse the cached copy) and return it."""
    shape = ALIASES.get(shape, shape)
    base = work / "data" / shape
    root, manifest, stamp_path = base / "files", base / MANIFEST_NAME, base / "stamp.json"
    stamp = _stamp(shape)
    if not force and stamp_path.is_file() and manifest.is_file():
        try:
            saved = json.loads(stamp_path.read_text())
        except ValueError:
            saved = None
        if saved and saved.get("spec") == stamp:
            return Dataset(shape, root, manifest, saved["files"], saved["bytes"])
    started = time.monotonic()
    if base.exists():
        shutil.rmtree(base)
    root.mkdir(parents=True)
    rng = random.Random(shape_spec(shape).seed * 7919)
    if (match := _UPGRADE.fullmatch(shape)) and match[1] == "B":
        entries = _generate_successor(shape, root, work)
    else:
        entries = [
            (subpath, size, _write_random(root.joinpath(*subpath.split("/")), size, rng))
            for subpath, size in plan(shape)
        ]
    manifest.write_bytes(manifest_bytes(entries))
    total = sum(size for _, size, _ in entries)
    stamp_path.write_text(json.dumps({"spec": stamp, "files": len(entries), "bytes": total}))
    if not quiet:
        print(
            f"generated {shape}: {len(entries)} files, {total / MiB:.0f} MiB "
            f"in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
    return Dataset(shape, root, manifest, len(entries), total)


def big_manifest(lines: int = 1_000_000, work: Path = WORK) -> Path:
    """A manifest of ``lines`` entries and no data (the planning benchmark of issue 15), cached.

    Paths ``sub-XX/ses-YY/ephys/probeN/chunk_NNNNNNN.npy`` (20 subjects x 10 sessions x 5 probes,
    the rest in chunks), random sizes up to 100 MB and random sha256s, seeded; written exactly as
    djarchive writes manifests (sorted, every field quoted)."""
    path = work / "data" / f"manifest{lines}" / MANIFEST_NAME
    stamp_path = path.with_name("stamp.json")
    stamp = {"generator": GENERATOR_VERSION, "lines": lines, "seed": 1006}
    if path.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return path
    rng = random.Random(1006)
    per_probe = max(1, -(-lines // 1000))
    entries = []
    for i in range(lines):
        probe = i // per_probe
        subpath = f"sub-{probe // 50:02d}/ses-{probe // 5 % 10:02d}/ephys/probe{probe % 5}/chunk_{i:07d}.npy"
        entries.append((subpath, rng.randint(1, 100_000_000), rng.randbytes(32).hex()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(manifest_bytes(entries))
    stamp_path.write_text(json.dumps(stamp))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "shapes", nargs="*", default=list(SHAPES), help="S, L, M, XS, XS<n>, UA, UB (default: S, L, M)"
    )
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default: benchmarks/.work)")
    parser.add_argument("--force", action="store_true", help="generate again even when cached")
    args = parser.parse_args(argv)
    for shape in args.shapes:
        dataset = generate(shape.upper(), args.work, force=args.force)
        sizes = [size for _, size, _ in dataset.entries]
        print(
            f"{dataset.shape}: {dataset.files} files, {dataset.bytes / MiB:.0f} MiB "
            f"(min {min(sizes) / KiB:.0f} KiB, median {sorted(sizes)[len(sizes) // 2] / KiB:.0f} KiB, "
            f"max {max(sizes) / KiB:.0f} KiB) "
            f"in {dataset.root}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

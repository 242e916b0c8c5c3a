"""Seeded benchmark datasets S, L and M, generated once and cached under benchmarks/.work/data/.

S: 2000 files of 16 KiB in 20 folders (many small objects).
L: 4 files of 256 MiB (large objects, fetched in byte ranges).
M: 300 files, 600 MiB in all, log-normal sizes, 3 folder levels, names with spaces and non-ASCII.

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


def plan(shape: str) -> list[tuple[str, int]]:
    """The (subpath, size) list of a shape, from its seed alone."""
    spec = SHAPES[shape]
    rng = random.Random(spec.seed)
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


def _stamp(shape: str) -> dict:
    return {"generator": GENERATOR_VERSION, **asdict(SHAPES[shape])}


def manifest_bytes(entries: list[tuple[str, int, str]]) -> bytes:
    """The manifest exactly as djarchive_common.manifest writes it (QUOTE_ALL, '\\n', sorted)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for subpath, size, sha256 in sorted(entries):
        writer.writerow((str(size), sha256, subpath))
    return buffer.getvalue().encode("utf-8")


def generate(shape: str, work: Path = WORK, *, force: bool = False, quiet: bool = False) -> Dataset:
    """Generate ``shape`` under ``work``/data (or reuse the cached copy) and return it."""
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
    rng = random.Random(SHAPES[shape].seed * 7919)
    entries = []
    for subpath, size in plan(shape):
        path = root.joinpath(*subpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as handle:
            left = size
            while left:
                block = rng.randbytes(min(BLOCK, left))
                digest.update(block)
                handle.write(block)
                left -= len(block)
        entries.append((subpath, size, digest.hexdigest()))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shapes", nargs="*", default=list(SHAPES), help="S, L, M (default: all)")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default: benchmarks/.work)")
    parser.add_argument("--force", action="store_true", help="generate again even when cached")
    args = parser.parse_args(argv)
    for shape in args.shapes:
        dataset = generate(shape.upper(), args.work, force=args.force)
        sizes = [size for _, size in plan(dataset.shape)]
        print(
            f"{dataset.shape}: {dataset.files} files, {dataset.bytes / MiB:.0f} MiB "
            f"(min {min(sizes) / KiB:.0f} KiB, median {sorted(sizes)[len(sizes) // 2] / KiB:.0f} KiB, "
            f"max {max(sizes) / KiB:.0f} KiB) "
            f"in {dataset.root}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

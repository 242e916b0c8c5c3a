"""The "+ verify" pass added to tools that do not hash: sha256 of every manifest file under TARGET.

    python benchmarks/hashcheck.py MANIFEST TARGET [--jobs N]

Hashes with hashlib in a thread pool (default: one thread per core; hashlib releases the GIL
on large buffers) and exits 1 on any missing file or mismatch. ``--jobs 1`` is the
single-core reference used for the CPU target.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

BUFFER = 1024 * 1024


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest")
    parser.add_argument("target")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    with open(args.manifest, encoding="utf-8", newline="") as handle:
        entries = [(path, sha) for _size, sha, path in csv.reader(handle)]

    def check(entry: tuple[str, str]) -> str | None:
        path, sha = entry
        try:
            return (
                None if sha256_of(os.path.join(args.target, *path.split("/"))) == sha else f"mismatch: {path}"
            )
        except OSError as exc:
            return f"unreadable: {path}: {exc.strerror}"

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        problems = [problem for problem in pool.map(check, entries) if problem]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The floors of issue 15: the least a Python process must do for each kind of work, nothing more.

    python benchmarks/floors.py hash MANIFEST ROOT    # csv-parse the manifest, hash every file
                                                     # sequentially with hashlib, compare
    python benchmarks/floors.py stat MANIFEST ROOT    # csv-parse the manifest, stat every file,
                                                     # compare sizes
    python benchmarks/floors.py print MANIFEST        # csv-parse the manifest, print its fields
                                                     # (size, sha256, path; tab-separated)

One thread, no pool, no checks beyond the comparison; exit status 1 on a mismatch or a missing
file. These are what djarchive's first pass (hash what is there), no-op re-run (trust the
record) and ``files``/``--dry-run`` are compared with.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys

BUFFER = 1024 * 1024


def hash_all(manifest: str, root: str) -> int:
    bad = 0
    with open(manifest, encoding="utf-8", newline="") as handle:
        for _size, sha, path in csv.reader(handle):
            digest = hashlib.sha256()
            try:
                with open(os.path.join(root, path), "rb", buffering=0) as file:
                    while block := file.read(BUFFER):
                        digest.update(block)
            except OSError:
                bad += 1
                continue
            bad += digest.hexdigest() != sha
    return 1 if bad else 0


def stat_all(manifest: str, root: str) -> int:
    bad = 0
    with open(manifest, encoding="utf-8", newline="") as handle:
        for size, _sha, path in csv.reader(handle):
            try:
                bad += os.stat(os.path.join(root, path)).st_size != int(size)
            except OSError:
                bad += 1
    return 1 if bad else 0


def print_all(manifest: str) -> int:
    out = sys.stdout
    with open(manifest, encoding="utf-8", newline="") as handle:
        for size, sha, path in csv.reader(handle):
            out.write(f"{size}\t{sha}\t{path}\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "hash":
        return hash_all(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "stat":
        return stat_all(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "print":
        return print_all(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The naive baseline: one thread, minio-py, list the revision, fget_object every file, hash it.

    python benchmarks/naive.py ENDPOINT BUCKET DATASET REVISION TARGET

Reads the manifest, lists the revision's objects, downloads each with ``fget_object`` one
after the other, then hashes each downloaded file and compares it with the manifest.
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from urllib.parse import urlsplit

from minio import Minio

MANIFEST_NAME = "djarchive-manifest.csv"


def main(argv: list[str]) -> int:
    endpoint, bucket, dataset, revision, target = argv
    url = urlsplit(endpoint)
    client = Minio(
        url.netloc,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=url.scheme == "https",
    )
    prefix = f"{dataset}/{revision}/"
    response = client.get_object(bucket, prefix + MANIFEST_NAME)
    try:
        text = response.read().decode("utf-8")
    finally:
        response.close()
        response.release_conn()
    expected = {path: (int(size), sha) for size, sha, path in csv.reader(io.StringIO(text, newline=""))}
    bad = 0
    for item in client.list_objects(bucket, prefix=prefix, recursive=True):
        subpath = item.object_name[len(prefix) :]
        if subpath == MANIFEST_NAME:
            continue
        path = os.path.join(target, *subpath.split("/"))
        client.fget_object(bucket, item.object_name, path)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1024 * 1024), b""):
                digest.update(block)
        if expected.pop(subpath, (None, None))[1] != digest.hexdigest():
            print(f"mismatch: {subpath}", file=sys.stderr)
            bad += 1
    for subpath in expected:
        print(f"missing: {subpath}", file=sys.stderr)
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

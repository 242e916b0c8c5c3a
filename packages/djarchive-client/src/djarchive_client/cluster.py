"""One download split across a Dask ``distributed`` cluster (the ``djarchive-client[dask]`` extra).

::

    from djarchive_client.cluster import download_on_cluster
    summary = download_on_cluster("tcp://scheduler:8786", "some-set", "000", "/shared/copy", shards=16)

Each of the N tasks runs ``DJArchiveClient(**archive).download(..., shard=(K, N))`` on a worker,
into the one TARGET every worker sees (a shared file system): the shards split the revision by
bytes, deterministically, and share the target's lock and record (see ``download --shard``).
The workers resolve the archive's configuration themselves (their environment, DataJoint)
unless ``archive`` gives it. ``distributed`` is imported only when the helper runs.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

from djarchive_common.errors import PartialFailureError
from djarchive_common.manifest import Entry
from djarchive_common.text import files

from .archive import DJArchiveClient
from .summary import DownloadSummary

__all__ = ["download_on_cluster"]


def download_on_cluster(
    client_or_address: Any,
    dataset: str,
    revision: str,
    target: str | os.PathLike[str],
    shards: int | None = None,
    *,
    archive: Mapping[str, Any] | None = None,
    **download_options: Any,
) -> DownloadSummary:
    """Download a revision into ``target`` as ``shards`` tasks on a ``distributed`` cluster and
    return one summary of them all (files, bytes, fetched, present, reused and failed added up).

    ``client_or_address``: a ``distributed.Client``, or what ``Client()`` takes (a scheduler's
    address, a cluster object); a client made here is closed at the end. ``shards`` defaults to
    the cluster's worker threads. ``archive``: keyword arguments of DJArchiveClient (endpoint,
    bucket, secure, access_key, secret_key) for the workers. Other keywords go to each
    ``download`` (``include``, ``exclude``, ``jobs``, ``recheck``...). Raises
    PartialFailureError, with the combined summary, when any file failed anywhere.
    """
    from distributed import Client

    started = time.monotonic()
    own = not isinstance(client_or_address, Client)
    client = Client(client_or_address) if own else client_or_address
    try:
        if shards is None:
            workers = client.scheduler_info()["workers"].values()
            shards = max(1, sum(int(worker.get("nthreads", 1)) for worker in workers))
        if shards < 1:
            raise ValueError(f"shards={shards}: use at least 1")
        run = secrets.token_hex(4)
        futures = [
            client.submit(
                _download_shard,
                dict(archive or {}),
                dataset,
                revision,
                os.fspath(target),
                (index, shards),
                download_options,
                key=f"djarchive-download-{dataset}-{revision}-{index}-of-{shards}-{run}",
                pure=False,
            )
            for index in range(1, shards + 1)
        ]
        summaries: list[DownloadSummary] = client.gather(futures)
    finally:
        if own:
            client.close()
    summary = combine(summaries, dataset, revision, os.fspath(target))
    summary.seconds = time.monotonic() - started
    if summary.failed:
        raise PartialFailureError(
            f"{len(summary.failed)} of {files(summary.files)} of {dataset} {revision} failed to download "
            f"({shards} shards on the cluster)",
            summary.failed,
            summary,
        )
    return summary


def combine(summaries: list[DownloadSummary], dataset: str, revision: str, target: str) -> DownloadSummary:
    """One summary of the shards' summaries (their counts added up, their lists and failures
    together)."""
    total = DownloadSummary(dataset, revision, target)
    planned: list[Entry] = []
    for part in summaries:
        total.files += part.files
        total.bytes += part.bytes
        total.fetched_files += part.fetched_files
        total.fetched_bytes += part.fetched_bytes
        total.present_files += part.present_files
        total.reused_files += part.reused_files
        total.reused_bytes += part.reused_bytes
        total.failed.update(part.failed)
        total.conflicts.update(part.conflicts)
        total.removed.extend(part.removed)
        planned.extend(part.planned)
        total.dry_run = total.dry_run or part.dry_run
        total.retracted = total.retracted or part.retracted
        total.signature = total.signature or part.signature  # one manifest: one status
        total.seconds = max(total.seconds, part.seconds)
    total.planned = planned
    return total


def _download_shard(
    archive: dict[str, Any],
    dataset: str,
    revision: str,
    target: str,
    shard: tuple[int, int],
    options: dict[str, Any],
) -> DownloadSummary:
    """One shard, on a worker; files that failed are in the summary it returns (without its
    plan, which holds open folders and goes nowhere)."""
    try:
        summary = DJArchiveClient(**archive).download(
            dataset, revision, target, create_target=True, shard=shard, **options
        )
    except PartialFailureError as error:
        if not isinstance(error.summary, DownloadSummary):
            raise
        summary = error.summary
    summary.plan = None
    return summary

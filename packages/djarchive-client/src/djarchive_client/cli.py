"""The ``djarchive`` command line: each subcommand calls the library and hands its result to the
console (:mod:`djarchive_common.console`), which prints, redacts and sets the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .parser import PROG, build_parser

if TYPE_CHECKING:
    from djarchive_common.console import Console

    from .archive import DJArchiveClient

__all__ = ["main"]


def _client(args: argparse.Namespace) -> DJArchiveClient:
    from .archive import DJArchiveClient  # imported late to keep --help instant

    return DJArchiveClient(endpoint=args.endpoint, bucket=args.bucket, secure=args.secure)


def _datasets(args: argparse.Namespace, console: Console) -> int:
    names = list(_client(args).datasets())
    if console.json:
        console.emit(names)
    else:
        for name in names:
            console.line(name)
    return 0


def _revisions(args: argparse.Namespace, console: Console) -> int:
    console.revisions(list(_client(args).revisions(args.dataset)))
    return 0


def _files(args: argparse.Namespace, console: Console) -> int:
    entries = _client(args).files(args.dataset, args.revision, include=args.include, exclude=args.exclude)
    if console.json:
        console.emit([{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in entries])
    else:
        for entry in entries:
            console.line(f"{entry.size}\t{entry.sha256}\t{entry.subpath}")
    return 0


def _download(args: argparse.Namespace, console: Console) -> int:
    summary = _client(args).download(
        args.dataset,
        args.revision,
        args.target,
        create_target=True,
        display_progress=console.progress,
        include=args.include,
        exclude=args.exclude,
        jobs=args.jobs,
        dry_run=args.dry_run,
        recheck=args.recheck,
        shard=args.shard,
    )
    if args.dry_run and not console.json:
        for entry in summary.planned:
            console.line(f"{entry.size}\t{entry.subpath}")
    console.result(summary, force=args.dry_run)
    if not summary.files and (args.include or args.exclude):
        console.warn("no file matched the --include/--exclude patterns")
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    report = _client(args).verify(
        args.dataset,
        args.revision,
        args.target,
        include=args.include,
        exclude=args.exclude,
        jobs=args.jobs,
        fast=args.fast,
        display_progress=console.progress,
    )
    if not console.json:
        for subpath in report.missing:
            console.line(f"missing\t{subpath}")
        for subpath, reason in report.modified.items():
            console.line(f"modified\t{subpath}\t{reason}")
        for subpath in report.extra:
            console.line(f"extra\t{subpath}")
    if report.intact:
        console.result(report)
        return 0
    message = (
        f"{args.dataset} {args.revision} in {args.target} is not intact: "
        f"{len(report.missing)} missing, {len(report.modified)} modified"
    )
    console.fail(message, "IntegrityError", report)
    return 1


COMMANDS = {
    "datasets": _datasets,
    "revisions": _revisions,
    "files": _files,
    "download": _download,
    "verify": _verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``djarchive`` with ``argv`` (default: the process's arguments); return the exit status."""
    from djarchive_common.console import main_of

    return main_of(PROG, "djarchive-client", build_parser, COMMANDS, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

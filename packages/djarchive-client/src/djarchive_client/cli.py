"""The ``djarchive`` command line. Only this module (and the admin's) prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from .parser import build_parser

__all__ = ["main", "print_revisions"]

PROG = "djarchive"


def _client(args: argparse.Namespace):  # -> DJArchiveClient, imported late to keep --help instant
    from .archive import DJArchiveClient

    return DJArchiveClient(endpoint=args.endpoint, bucket=args.bucket, secure=args.secure)


def _datasets(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json

    names = list(_client(args).datasets())
    if args.json:
        emit_json(names)
    else:
        for name in names:
            print(name)
    return 0


def print_revisions(pairs: Iterable[tuple[str, str]], as_json: bool) -> None:
    """``dataset,revision`` lines (the seed's format), or JSON."""
    from djarchive_common.console import emit_json

    if as_json:
        emit_json([{"dataset": dataset, "revision": revision} for dataset, revision in pairs])
    else:
        for dataset, revision in pairs:
            print(f"{dataset},{revision}")


def _revisions(args: argparse.Namespace) -> int:
    print_revisions(list(_client(args).revisions(args.dataset)), args.json)
    return 0


def _files(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json

    entries = _client(args).files(args.dataset, args.revision, include=args.include, exclude=args.exclude)
    if args.json:
        emit_json([{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in entries])
    else:
        for entry in entries:
            print(f"{entry.size}\t{entry.sha256}\t{entry.subpath}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json, print_failures, progress_wanted
    from djarchive_common.errors import PartialFailureError

    try:
        summary = _client(args).download(
            args.dataset,
            args.revision,
            args.target,
            create_target=True,
            display_progress=progress_wanted(args),
            include=args.include,
            exclude=args.exclude,
            jobs=args.jobs,
            dry_run=args.dry_run,
            recheck=args.recheck,
        )
    except PartialFailureError as error:
        print_failures(PROG, error)
        if args.json:
            emit_json(error.summary.to_dict())  # type: ignore[union-attr]
        elif not args.quiet:
            print(error.summary)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        emit_json(summary.to_dict())
    else:
        if args.dry_run:
            for entry in summary.planned:
                print(f"{entry.size}\t{entry.subpath}")
        if not args.quiet or args.dry_run:
            print(summary)
        if not summary.files and (args.include or args.exclude):
            print(f"{PROG}: warning: no file matched the --include/--exclude patterns", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json, progress_wanted

    report = _client(args).verify(
        args.dataset,
        args.revision,
        args.target,
        include=args.include,
        exclude=args.exclude,
        jobs=args.jobs,
        fast=args.fast,
        display_progress=progress_wanted(args),
    )
    if args.json:
        emit_json(report.to_dict())
    else:
        for subpath in report.missing:
            print(f"missing\t{subpath}")
        for subpath, reason in report.modified.items():
            print(f"modified\t{subpath}\t{reason}")
        for subpath in report.extra:
            print(f"extra\t{subpath}")
        if not args.quiet:
            print(report)
    return 0 if report.intact else 1


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

"""The ``djarchive`` command line: each subcommand calls the library and hands its result to the
console (:mod:`djarchive_common.console`), which prints, redacts and sets the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .parser import ARGUMENT_NAMES, PROG, build_parser

if TYPE_CHECKING:
    from djarchive_common.catalog import Tombstone
    from djarchive_common.console import Console
    from djarchive_common.errors import RevisionRetractedError
    from djarchive_common.manifest import Entry
    from djarchive_common.signing import SignatureStatus

    from .archive import DJArchiveClient

__all__ = ["main"]


def _client(args: argparse.Namespace) -> DJArchiveClient:
    from .archive import DJArchiveClient  # imported late to keep --help instant

    return DJArchiveClient(
        endpoint=args.endpoint,
        bucket=args.bucket,
        secure=args.secure,
        trusted_keys=getattr(args, "trust", None),
        revoked_keys=getattr(args, "revoke", None),
        require_signature=getattr(args, "require_signature", False),
        mirrors=getattr(args, "mirror", None),
        argument_names=ARGUMENT_NAMES,
    )


def _trusting_client(args: argparse.Namespace) -> DJArchiveClient:
    """The client, its trusted keys resolved first: a bad key or --require-signature without any
    is a configuration error (exit 2) before anything else happens."""
    client = _client(args)
    client.trust  # noqa: B018 - resolves and checks the configured keys
    client.mirrors  # noqa: B018 - and the mirrors
    return client


def _signed(console: Console, dataset: str, revision: str, signature: SignatureStatus | None) -> None:
    """Say who signed the revision when a trusted key did (plain output only), and warn when its
    signatures are invalid although no trusted key makes them matter."""
    if signature is None:
        return
    if signature.valid and not console.json and not console.quiet:
        console.line(f"{dataset} {revision}: {signature}")
    elif signature.status == "invalid":
        console.warn(f"{dataset} {revision}: {signature} (not enforced: no trusted keys are configured)")


def _retracted(console: Console, retraction: RevisionRetractedError | None, what: str) -> None:
    """Warn that the revision was retracted and is ``what`` anyway (--allow-retracted)."""
    if retraction is not None:
        console.warn(f"{retraction.message}; {what} anyway (--allow-retracted)")


def _datasets(args: argparse.Namespace, console: Console) -> int:
    names = list(_client(args).datasets())
    if console.json:
        console.emit(names)
    else:
        for name in names:
            console.line(name)
    return 0


def _revision_row(dataset: str, revision: str, tombstone: Tombstone | None) -> dict[str, str | None]:
    """One revision for --json: published, or retracted with why and what supersedes it."""
    if tombstone is None:
        return {"dataset": dataset, "revision": revision, "state": "published"}
    return {
        "dataset": dataset,
        "revision": revision,
        "state": "retracted",
        "reason": tombstone.reason,
        "superseded_by": tombstone.superseded_by,
        "retracted_at": tombstone.retracted_at,
    }


def _revisions(args: argparse.Namespace, console: Console) -> int:
    from djarchive_common.errors import DatasetNotFoundError
    from djarchive_common.layout import natural_key

    client = _client(args)
    if not (args.all or console.json):
        console.revisions(list(client.revisions(args.dataset)))
        return 0
    retracted = client.retracted(args.dataset)
    try:
        published = list(client.revisions(args.dataset))
    except DatasetNotFoundError:
        if not retracted:
            raise
        published = []
    if console.json:
        rows = [(dataset, revision, None) for dataset, revision in published] + retracted
        rows.sort(key=lambda row: (natural_key(row[0]), natural_key(row[1])))
        console.emit([_revision_row(*row) for row in rows])
        return 0
    lines: list[tuple[str, ...]] = list(published)
    lines += [
        (dataset, revision, "retracted", tombstone.reason, tombstone.superseded_by or "")
        for dataset, revision, tombstone in retracted
    ]
    lines.sort(key=lambda line: (natural_key(line[0]), natural_key(line[1])))
    console.csv(lines)
    return 0


def _files(args: argparse.Namespace, console: Console) -> int:
    from djarchive_common.manifest import select_or_fail

    client = _trusting_client(args)
    read, retraction = client.read_or_retracted(
        args.dataset, args.revision, allow_retracted=args.allow_retracted
    )
    entries = select_or_fail(read.manifest, args.include, args.exclude, f"{args.dataset} {args.revision}")
    _retracted(console, retraction, "listed")
    _signed(console, args.dataset, args.revision, read.signature if not read.signature.valid else None)
    if read.note:
        console.warn(read.note)
    if console.json:
        console.emit([{"path": e.subpath, "size": e.size, "sha256": e.sha256} for e in entries])
    else:  # streamed: a million lines start at once and take no memory of their own
        console.rows(_listing(entries))
    return 0


def _listing(entries: Sequence[Entry], batch: int = 65536) -> Iterator[tuple[str, str, str]]:
    """(size, sha256, path) rows; a manifest's made straight from its columns, a batch at a
    time, without making entries."""
    from djarchive_common.manifest import Manifest

    if not isinstance(entries, Manifest):
        yield from ((str(size), sha256, subpath) for subpath, size, sha256 in entries)
        return
    paths, sizes, _ = entries.columns
    for start in range(0, len(paths), batch):
        hexes = entries.sha256s(start, start + batch)
        yield from zip(
            map(str, sizes[start : start + batch]), hexes, paths[start : start + batch], strict=True
        )


def _download(args: argparse.Namespace, console: Console) -> int:
    if args.link and not args.reuse:
        return _usage_error(console, "download", "--link needs --reuse DIR (the copy to link files from)")
    client = _trusting_client(args)
    summary = client.download(
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
        delta=args.delta,
        shard=args.shard,
        reuse=args.reuse,
        link=args.link,
        allow_retracted=args.allow_retracted,
        accept_republished=args.accept_republished,
        events=console.events(),
    )
    if summary.retracted:
        console.warn(f"{summary.retracted}; downloaded anyway (--allow-retracted)")
    if summary.note:
        console.warn(summary.note)
    for subpath, why in summary.conflicts.items():
        console.warn(f"{subpath}: {why}")
    if args.dry_run and not console.json and summary.plan is not None:
        console.rows(summary.plan.rows())
    _signed(console, args.dataset, args.revision, summary.signature)
    console.result(summary, force=args.dry_run)
    if not summary.files and (args.include or args.exclude):
        console.warn("no file matched the --include/--exclude patterns")
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    from djarchive_common.parser import folder

    if len(args.where) not in (1, 3):
        return _usage_error(console, "verify", "give DATASET REVISION TARGET, or TARGET alone")
    try:
        target = folder(args.where[-1])
    except argparse.ArgumentTypeError as error:
        return _usage_error(console, "verify", f"argument TARGET: {error}")
    if len(args.where) == 1:
        if args.include or args.exclude:
            return _usage_error(console, "verify", "--include/--exclude need DATASET REVISION")
        if args.trust or args.revoke or args.require_signature:
            return _usage_error(
                console, "verify", "signatures are checked in the archive: give DATASET REVISION TARGET"
            )
        report = _client(args).verify_local(
            target, jobs=args.jobs, fast=args.fast, display_progress=console.progress, events=console.events()
        )
    else:
        report = _trusting_client(args).verify(
            args.where[0],
            args.where[1],
            target,
            include=args.include,
            exclude=args.exclude,
            jobs=args.jobs,
            fast=args.fast,
            display_progress=console.progress,
            events=console.events(),
        )
    if not console.json:
        console.rows(("missing", subpath) for subpath in report.missing)
        console.rows(("modified", subpath, reason) for subpath, reason in report.modified.items())
        console.rows(("extra", subpath) for subpath in report.extra)
    for warning in report.warnings:
        console.warn(warning)
    _signed(console, report.dataset, report.revision, report.signature)
    if report.intact:
        console.result(report)
        return 0
    message = (
        f"{report.dataset} {report.revision} in {target} is not intact: "
        f"{len(report.missing)} missing, {len(report.modified)} modified"
    )
    console.fail(message, "IntegrityError", report)
    return 1


def _signature(args: argparse.Namespace, console: Console) -> int:
    client = _trusting_client(args)
    read, retraction = client.read_or_retracted(
        args.dataset, args.revision, allow_retracted=args.allow_retracted
    )
    _retracted(console, retraction, "checked")
    status = read.signature
    if console.json:
        console.emit({"dataset": args.dataset, "revision": args.revision, **status.to_dict()})
    else:
        console.line(f"{args.dataset} {args.revision}: {status}")
    return 0


def _usage_error(console: Console, command: str, message: str) -> int:
    """Report bad usage the parser could not see (the command's usage, as argparse prints it, one
    error line, the JSON object with --json) and return its exit status."""
    from djarchive_common.parser import subcommands

    sys.stderr.write(subcommands(build_parser())[command].format_usage())
    console.fail(message, "UsageError")
    return 2


def _status(args: argparse.Namespace, console: Console) -> int:
    status = _client(args).status(args.target, offline=args.offline)
    console.result(status, force=True)
    for warning in status.warnings:
        console.warn(warning)
    return 0 if status.receipt is not None else 1


def _diff(args: argparse.Namespace, console: Console) -> int:
    difference = _trusting_client(args).diff(args.dataset, args.old, args.new)
    for retraction in difference.retracted:
        console.warn(f"{retraction}; compared anyway")
    if not console.json:
        console.rows(difference.rows())
    console.result(difference, force=True)
    return 0


COMMANDS = {
    "datasets": _datasets,
    "revisions": _revisions,
    "files": _files,
    "download": _download,
    "verify": _verify,
    "signature": _signature,
    "status": _status,
    "diff": _diff,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``djarchive`` with ``argv`` (default: the process's arguments); return the exit status."""
    from djarchive_common.console import main_of

    return main_of(PROG, "djarchive-client", build_parser, COMMANDS, argv, resumable={"download"})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

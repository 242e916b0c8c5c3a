"""The ``djarchive-admin`` command line. Only this module (and the client's) prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from djarchive_client.cli import print_revisions

from .parser import PROG, build_parser

__all__ = ["main"]


def _admin(args: argparse.Namespace):  # -> DJArchiveAdmin, imported late to keep --help instant
    from .archive import DJArchiveAdmin

    return DJArchiveAdmin(endpoint=args.endpoint, bucket=args.bucket, secure=args.secure)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _manifest(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json, progress_wanted
    from djarchive_common.layout import MANIFEST_NAME
    from djarchive_common.transfer import human_bytes

    from .scan import source_root

    manifest = _admin(args).write_manifest(
        args.source,
        overwrite=args.overwrite,
        jobs=args.jobs,
        filename_filter=args.filename_filter,
        display_progress=progress_wanted(args),
    )
    path = source_root(args.source) / MANIFEST_NAME
    if args.json:
        emit_json({"manifest": str(path), "files": len(manifest), "bytes": manifest.total_size})
    elif not args.quiet:
        print(f"wrote {path}: {len(manifest)} files ({human_bytes(manifest.total_size)})")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json, print_failures, progress_wanted
    from djarchive_common.errors import PartialFailureError

    try:
        summary = _admin(args).upload(
            args.dataset,
            args.revision,
            args.source,
            publish=args.publish,
            force=args.force,
            jobs=args.jobs,
            filename_filter=args.filename_filter,
            display_progress=progress_wanted(args),
        )
    except PartialFailureError as error:
        print_failures(PROG, error)
        if args.json and error.summary is not None:
            emit_json(error.summary.to_dict())  # type: ignore[attr-defined]
        elif not args.quiet and error.summary is not None:
            print(error.summary)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    if summary.overwrote is not None:
        _warn(f"overwrote {summary.dataset} {summary.revision}: {summary.overwrote}")
    if summary.removed:
        removed = ", ".join(summary.removed)
        _warn(f"deleted {len(summary.removed)} objects the new manifest does not list: {removed}")
    if args.json:
        emit_json(summary.to_dict())
    elif not args.quiet:
        print(summary)
    return 0


def _publish(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json

    result = _admin(args).publish(args.dataset, args.revision, force=args.force, jobs=args.jobs)
    if args.json:
        emit_json(result.to_dict())
    elif not args.quiet:
        print(result)
    return 0


def _confirm_purge(args: argparse.Namespace, admin) -> bool:  # admin: DJArchiveAdmin
    from djarchive_common.transfer import human_bytes

    info = admin.revision_info(args.dataset, args.revision)
    what = (
        f"{args.dataset} {args.revision} ({info.state}, {info.files} files, {human_bytes(info.bytes)}) "
        f"from {admin.settings.url}"
    )
    if not sys.stdin or not sys.stdin.isatty():
        print(f"{PROG}: error: --purge would delete {what}; pass --yes to confirm", file=sys.stderr)
        return False
    question = f"permanently delete {what}? [y/N] "
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        print(f"{PROG}: nothing deleted", file=sys.stderr)
        return False
    return True


def _retract(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json

    admin = _admin(args)
    if args.purge and not args.yes and not _confirm_purge(args, admin):
        return 1
    result = admin.retract(args.dataset, args.revision, purge=args.purge)
    if args.json:
        emit_json(result.to_dict())
    elif not args.quiet:
        print(result)
    return 0


def _revisions(args: argparse.Namespace) -> int:
    from djarchive_common.console import emit_json

    admin = _admin(args)
    if args.all:
        details = admin.revision_details(args.dataset, all=True)
        if args.json:
            emit_json([info.to_dict() for info in details])
        else:
            for info in details:
                print(f"{info.dataset},{info.revision},{info.state},{info.files},{info.bytes}")
        return 0
    print_revisions(list(admin.revisions(args.dataset)), args.json)
    return 0


COMMANDS = {
    "manifest": _manifest,
    "upload": _upload,
    "publish": _publish,
    "retract": _retract,
    "revisions": _revisions,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``djarchive-admin`` with ``argv`` (default: the process's arguments); return the exit status."""
    from djarchive_common.console import main_of

    return main_of(PROG, "djarchive-admin", build_parser, COMMANDS, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``djarchive-admin`` command line: each subcommand calls the library and hands its result to
the console (:mod:`djarchive_common.console`), which prints, redacts and sets the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .parser import ARGUMENT_NAMES, PROG, build_parser

if TYPE_CHECKING:
    from djarchive_common.console import Console

    from .archive import DJArchiveAdmin

__all__ = ["main"]


def _admin(args: argparse.Namespace) -> DJArchiveAdmin:
    from .archive import DJArchiveAdmin  # imported late to keep --help instant

    return DJArchiveAdmin(
        endpoint=args.endpoint,
        bucket=args.bucket,
        secure=args.secure,
        single_writer=getattr(args, "single_writer", None),
        argument_names=ARGUMENT_NAMES,
    )


def _manifest(args: argparse.Namespace, console: Console) -> int:
    from djarchive_common.layout import MANIFEST_NAME
    from djarchive_common.text import files, human_bytes

    from .scan import source_root

    manifest = _admin(args).write_manifest(
        args.source,
        overwrite=args.overwrite,
        jobs=args.jobs,
        filename_filter=args.filename_filter,
        display_progress=console.progress,
    )
    path = source_root(args.source) / MANIFEST_NAME
    if console.json:
        console.emit({"manifest": str(path), "files": len(manifest), "bytes": manifest.total_size})
    elif not console.quiet:
        console.line(f"wrote {path}: {files(len(manifest))} ({human_bytes(manifest.total_size)})")
    return 0


def _upload(args: argparse.Namespace, console: Console) -> int:
    from djarchive_common.text import plural

    summary = _admin(args).upload(
        args.dataset,
        args.revision,
        args.source,
        publish=args.publish,
        force=args.force,
        jobs=args.jobs,
        filename_filter=args.filename_filter,
        display_progress=console.progress,
        events=console.events(),
        sign_key=args.sign_key,
        delta=args.delta,
    )
    if summary.overwrote is not None:
        console.warn(f"overwrote {summary.dataset} {summary.revision}: {summary.overwrote}")
    if summary.removed:
        removed = ", ".join(summary.removed)
        deleted = plural(len(summary.removed), "object")
        console.warn(f"deleted {deleted} the new manifest does not list: {removed}")
    console.result(summary)
    return 0


def _publish(args: argparse.Namespace, console: Console) -> int:
    admin = _admin(args)
    console.result(
        admin.publish(args.dataset, args.revision, force=args.force, jobs=args.jobs, sign_key=args.sign_key)
    )
    return 0


def _sign(args: argparse.Namespace, console: Console) -> int:
    console.result(_admin(args).sign(args.dataset, args.revision, sign_key=args.sign_key))
    return 0


def _keygen(args: argparse.Namespace, console: Console) -> int:
    from .archive import keygen

    line, key_id, public_path = keygen(args.keyfile)
    if console.json:
        console.emit(
            {
                "private_key": args.keyfile,
                "public_key_file": public_path,
                "public_key": line,
                "key_id": key_id,
            }
        )
        return 0
    console.note(
        f"wrote the private key to {args.keyfile} (keep it secret) and the public key, key id "
        f"{key_id}, to {public_path}; researchers trust it with the line below"
    )
    console.line(line)
    return 0


def _confirm_purge(args: argparse.Namespace, admin: DJArchiveAdmin, console: Console) -> bool:
    from djarchive_common.text import files, human_bytes

    info = admin.revision_info(args.dataset, args.revision)
    what = (
        f"{args.dataset} {args.revision} ({info.state}, {files(info.files)}, {human_bytes(info.bytes)}) "
        f"from {admin.settings.url}"
    )
    return console.confirmed(
        f"permanently delete {what}?", f"--purge would delete {what}; pass --yes to confirm"
    )


def _retract(args: argparse.Namespace, console: Console) -> int:
    admin = _admin(args)
    if args.purge and not args.yes and not _confirm_purge(args, admin, console):
        return 1
    result = admin.retract(
        args.dataset,
        args.revision,
        purge=args.purge,
        reason=args.reason,
        superseded_by=args.superseded_by,
        force=args.force,
    )
    console.result(result)
    return 0


def _break_lease(args: argparse.Namespace, console: Console) -> int:
    admin = _admin(args)
    holder = admin.lease_holder(args.dataset, args.revision)
    if holder is None:
        console.line(f"{args.dataset} {args.revision} has no lease: nothing to break")
        return 0
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
    question = f"break the lease on {args.dataset} {args.revision} held by {who}?"
    if not args.yes and not console.confirmed(
        question, f"the lease is held by {who}; pass --yes to break it"
    ):
        return 1
    admin.break_lease(args.dataset, args.revision)
    if console.json:
        console.emit({"dataset": args.dataset, "revision": args.revision, "broken": True, "holder": holder})
    elif not console.quiet:
        console.line(f"broke the lease on {args.dataset} {args.revision} ({who})")
    return 0


def _doctor(args: argparse.Namespace, console: Console) -> int:
    admin = _admin(args)
    support = admin.server_support()
    if console.json:
        console.emit(support.to_dict())
        return 0
    console.line(f"server: {admin.settings.url}")
    for line in support.lines():
        console.line(line)
    return 0


def _mirror(args: argparse.Namespace, console: Console) -> int:
    result = _admin(args).mirror(
        args.dataset,
        args.revision,
        args.directory,
        jobs=args.jobs,
        display_progress=console.progress,
        events=console.events(),
    )
    console.result(result)
    return 0


def _revisions(args: argparse.Namespace, console: Console) -> int:
    admin = _admin(args)
    if args.all:
        details = admin.revision_details(args.dataset, all=True)
        if console.json:
            console.emit([info.to_dict() for info in details])
        else:
            console.csv((info.dataset, info.revision, info.state, info.files, info.bytes) for info in details)
        return 0
    console.revisions(list(admin.revisions(args.dataset)))
    return 0


COMMANDS = {
    "manifest": _manifest,
    "upload": _upload,
    "publish": _publish,
    "sign": _sign,
    "keygen": _keygen,
    "retract": _retract,
    "revisions": _revisions,
    "mirror": _mirror,
    "break-lease": _break_lease,
    "doctor": _doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``djarchive-admin`` with ``argv`` (default: the process's arguments); return the exit status."""
    from djarchive_common.console import main_of

    return main_of(PROG, "djarchive-admin", build_parser, COMMANDS, argv, resumable={"upload"})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

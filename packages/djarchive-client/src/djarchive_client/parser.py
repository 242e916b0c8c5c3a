"""The ``djarchive`` command line's parser. Standard library only (with the shared scaffolding of
:mod:`djarchive_common.parser`): it is loaded for ``--help``, completion and the man page."""

from __future__ import annotations

import argparse
import re

from djarchive_common.errors import ConfigurationError
from djarchive_common.layout import check_mirror_url
from djarchive_common.parser import (
    CONNECTION_FLAGS,
    add_completion_command,
    add_jobs_option,
    add_progress_options,
    folder,
    new_parser,
    shard_spec,
)

__all__ = ["ARGUMENT_NAMES", "build_parser"]

PROG = "djarchive"
#: The library's keywords these flags set: messages about a setting name the flag.
ARGUMENT_NAMES = {
    **CONNECTION_FLAGS,
    "trusted_keys": "--trust",
    "revoked_keys": "--revoke",
    "require_signature": "--require-signature",
}
DESCRIPTION = """\
List, download and verify published datasets of the DataJoint archive.

Every file is checked against the revision's manifest (size and sha256) before it
is put in place; an interrupted download resumes where it stopped."""

EPILOG = """\
examples:
  djarchive datasets
  djarchive revisions workflow-array-ephys
  djarchive files workflow-array-ephys v1 --include '*.json'
  djarchive download workflow-array-ephys v1 ./ephys-v1
  djarchive verify workflow-array-ephys v1 ./ephys-v1
  djarchive diff workflow-array-ephys v1 v2
  djarchive download workflow-array-ephys v2 ./ephys-v1 --dry-run   # upgrade in place
  djarchive status ./ephys-v1
  djarchive download workflow-array-ephys v1 ./ephys-v1 --trust curator.pub
  djarchive download workflow-array-ephys v1 ./ephys-v1 --mirror https://mirror.example.org/djarchive/

configuration (highest precedence first): --endpoint/--bucket/--secure; the
environment (DJARCHIVE_CLIENT_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY, _SECURE);
DataJoint's configuration: the store djarchive_client in datajoint.json
(datajoint 2.x), then the custom keys djarchive.client.* and djarchive.* of
dj_local_conf.json or ~/.datajoint_config.json (under any datajoint version);
else the public archive, anonymously.

signatures: with trusted keys configured (--trust; DJARCHIVE_CLIENT_TRUSTED_KEYS,
DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE; djarchive.client.trusted_keys in DataJoint's
configuration), files, download, verify and diff refuse a revision without a valid
signature by one of them, before anything is written. Keys revoked with --revoke,
DJARCHIVE_CLIENT_REVOKED_KEYS or djarchive.client.revoked_keys are never trusted.

mirrors: --mirror URL (repeatable), else DJARCHIVE_CLIENT_MIRRORS (URLs separated
by spaces or commas), else djarchive.client.mirrors in DataJoint's configuration:
base URLs ending in '/' serving the archive's keys (a static web server over a
folder made by djarchive-admin mirror, a public bucket in path style). Data comes
from the archive and the mirrors, every byte verified; when the archive is
unreachable, a manifest is taken from a mirror only if a trusted key signed it for
that dataset and revision.

exit status: 0 success, 1 failure (one line on stderr), 2 bad usage or bad
configuration, 130 interrupted. With --json a failure also prints a JSON object
with "error" and "type" on stdout."""


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--include",
        metavar="GLOB",
        action="append",
        default=[],
        help="only paths matching GLOB ('*' crosses folders; repeatable)",
    )
    parser.add_argument(
        "--exclude", metavar="GLOB", action="append", default=[], help="skip paths matching GLOB (repeatable)"
    )


def _add_allow_retracted(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--allow-retracted", action="store_true", help=help_text)


def _add_trust(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("signatures")
    group.add_argument(
        "--trust",
        metavar="KEY",
        action="append",
        default=[],
        help="trust revisions signed by KEY, a 'djarchive-ed25519 ...' public key line or a file of "
        "them (repeatable; replaces DJARCHIVE_CLIENT_TRUSTED_KEYS); then a valid signature is required",
    )
    group.add_argument(
        "--revoke",
        metavar="KEY",
        action="append",
        default=[],
        help="never trust KEY (a public key line, a key id or a file of them; repeatable; adds to "
        "DJARCHIVE_CLIENT_REVOKED_KEYS)",
    )
    group.add_argument(
        "--require-signature",
        action="store_true",
        help="fail unless trusted keys are configured (they make a valid signature mandatory)",
    )


def mirror_url(text: str) -> str:
    """argparse type for --mirror: a mirror's base URL, http(s)://HOST[:PORT]/PATH/."""
    try:
        return check_mirror_url(text, "--mirror")
    except ConfigurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_mirrors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror",
        metavar="URL",
        action="append",
        type=mirror_url,
        default=[],
        help="also read the revision's files from this mirror, a base URL ending in '/' under which "
        "the archive's keys are served (repeatable; replaces DJARCHIVE_CLIENT_MIRRORS); every byte is "
        "verified, the fastest source is used, one that fails is left for another; a manifest comes "
        "from a mirror only when the archive is unreachable and a trusted key (--trust) signed it",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full ``djarchive`` parser."""
    parser, command, commands = new_parser(PROG, DESCRIPTION, EPILOG, "client")

    command(
        "datasets",
        "list published datasets",
        "List the datasets that have at least one published revision, one name per line.",
    )
    revisions = command(
        "revisions",
        "list published revisions",
        "List published revisions as 'dataset,revision' lines, of every dataset or of DATASET.\n"
        "With --all, retracted revisions too, as 'dataset,revision,retracted,reason,superseded-by'\n"
        "lines; --json always includes them, each with its state.",
    )
    revisions.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    revisions.add_argument(
        "-a", "--all", action="store_true", help="retracted revisions too, with reason and successor"
    )
    files = command(
        "files",
        "list the files of a revision",
        "List a revision's files from its manifest: size, sha256 and path, tab-separated.",
    )
    files.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    files.add_argument("revision", metavar="REVISION", help="the revision's name")
    _add_selection(files)
    _add_allow_retracted(files, "list a retracted revision's files too (with a warning)")
    _add_trust(files)
    _add_mirrors(files)
    download = command(
        "download",
        "download a revision into a folder",
        "Download a published revision into TARGET (created when missing).\n\n"
        "Files are fetched concurrently, large ones in parallel byte ranges, and each is\n"
        "checked against the manifest's size and sha256 before it is renamed into place.\n"
        "Files already present and verified are not fetched again, so re-running an\n"
        "interrupted download resumes it. When TARGET holds another revision of the dataset,\n"
        "it is upgraded in place: unchanged files stay, moved ones are renamed, only changed\n"
        "and new files are fetched, and files of the old revision that the new one lacks are\n"
        "removed while they still match it. A file you changed is never overwritten or removed:\n"
        "it is reported, and the exit status is 1 until you move it away. --dry-run shows every\n"
        "action first (keep, move, reuse, fetch, remove, conflict). A successful download\n"
        "leaves a receipt in TARGET/.djarchive (see 'djarchive status'). Exit status 1 when\n"
        "any file failed.",
    )
    download.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    download.add_argument("revision", metavar="REVISION", help="the revision's name")
    download.add_argument(
        "target", metavar="TARGET", type=folder, help="local folder for the revision's files"
    )
    _add_selection(download)
    add_jobs_option(download, "parallel transfers", "small files of up to 256 KiB: twice as many")
    add_progress_options(download)
    download.add_argument("--dry-run", action="store_true", help="show what would be fetched, fetch nothing")
    download.add_argument(
        "--shard",
        metavar="K/N",
        type=shard_spec,
        default=None,
        help="only the K-th of N byte-balanced parts; N runs at once (one machine or many sharing "
        "TARGET, e.g. a Slurm job array) download it all",
    )
    download.add_argument(
        "--recheck", action="store_true", help="hash every local file again instead of trusting the record"
    )
    download.add_argument(
        "--no-delta",
        dest="delta",
        action="store_false",
        help="fetch changed large files whole, not by the chunks the local copy lacks",
    )
    download.add_argument(
        "--reuse",
        metavar="DIR",
        action="append",
        default=[],
        help="take identical files (same sha256, checked) from this other local copy instead of the "
        "network: a reflink or a copy (repeatable)",
    )
    download.add_argument(
        "--link",
        action="store_true",
        help="with --reuse (required): hard-link instead of copying (the copies then share files)",
    )
    _add_allow_retracted(
        download, "download a retracted revision anyway (with a warning), e.g. to reproduce an analysis"
    )
    download.add_argument(
        "--accept-republished",
        action="store_true",
        help="bring TARGET to the revision as it is published now when it changed since TARGET was "
        "made (a forced republish: its manifest is not the one TARGET's receipt records)",
    )
    _add_trust(download)
    _add_mirrors(download)
    verify = command(
        "verify",
        "check a local copy against the manifest",
        "Hash every file of TARGET and compare it with the revision's manifest; report missing,\n"
        "modified and extra files. With TARGET alone, check it offline against the manifest its\n"
        "receipt stored (itself checked first). Exit status 0 when the copy is intact, 1 when\n"
        "it is not.",
    )
    verify.add_argument(
        "where",
        nargs="+",
        metavar="[DATASET REVISION] TARGET",
        help="the revision and the local copy, or the copy alone (offline, from its receipt)",
    )
    _add_selection(verify)
    add_jobs_option(verify, "parallel hashing")
    add_progress_options(verify)
    verify.add_argument(
        "--fast",
        action="store_true",
        help="trust djarchive's record for files unchanged since it verified them",
    )
    _add_trust(verify)
    _add_mirrors(verify)
    # argparse shows nargs="+" as 'X [X ...]': verify takes one [DATASET REVISION] TARGET.
    shown = verify.format_usage().removeprefix("usage: ").rstrip()
    verify.usage = re.sub(r"\s+\[\[DATASET REVISION\] TARGET\s+\.\.\.\]", "", shown)
    signature = command(
        "signature",
        "show who signed a revision",
        "Check a revision's signatures (djarchive-manifest.sig) against its manifest and show\n"
        "its status: signed by a trusted key, signed but not verified (no trusted keys\n"
        "configured), not signed, or invalid. With trusted keys configured, exit status 1\n"
        "and the reason when no trusted key validly signed it.",
    )
    signature.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    signature.add_argument("revision", metavar="REVISION", help="the revision's name")
    _add_allow_retracted(signature, "check a retracted revision's signature too (with a warning)")
    _add_trust(signature)
    _add_mirrors(signature)
    status = command(
        "status",
        "what a local copy holds, and whether its revision still stands",
        "Show what the folder holds (its receipt: dataset, revision, archive, when it was last\n"
        "verified) and, from the archive it came from, whether the revision is still published,\n"
        "was retracted (and why, and what supersedes it), or has newer revisions. Exit status 1\n"
        "when the folder has no receipt.",
    )
    status.add_argument(
        "target", nargs="?", default=".", type=folder, metavar="TARGET", help="the copy (default: .)"
    )
    status.add_argument("--offline", action="store_true", help="do not ask the archive")
    _add_mirrors(status)
    diff = command(
        "diff",
        "what changes between two revisions",
        "Compare the manifests of two revisions of DATASET: added, removed, changed and moved\n"
        "files, and the bytes an upgrade from OLD to NEW would fetch. Lines: what, size, path.",
    )
    diff.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    diff.add_argument("old", metavar="OLD", help="the revision to compare from")
    diff.add_argument("new", metavar="NEW", help="the revision to compare to")
    _add_trust(diff)
    _add_mirrors(diff)
    add_completion_command(commands, PROG)
    return parser

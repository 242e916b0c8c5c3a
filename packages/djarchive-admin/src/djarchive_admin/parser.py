"""The ``djarchive-admin`` command line's parser. Standard library only (with the shared scaffolding
of :mod:`djarchive_common.parser`): it is loaded for ``--help``, completion and the man page."""

from __future__ import annotations

import argparse

from djarchive_common.parser import (
    CONNECTION_FLAGS,
    add_completion_command,
    add_jobs_option,
    add_progress_options,
    folder,
    new_parser,
)

__all__ = ["ARGUMENT_NAMES", "build_parser"]

PROG = "djarchive-admin"
#: The library's keywords these flags set: messages about a setting name the flag.
ARGUMENT_NAMES = {**CONNECTION_FLAGS, "sign_key": "--sign-key", "single_writer": "--single-writer"}
DESCRIPTION = """\
Write manifests, upload, publish and retract revisions of the DataJoint archive.

A revision is uploaded, then published: publish checks that every file of the
manifest is in the store with the right size and content, then writes the manifest,
which makes the revision visible to clients. Published revisions are immutable
unless --force is given."""

EPILOG = """\
examples:
  djarchive-admin manifest ./my-dataset
  djarchive-admin upload my-dataset 001 ./my-dataset
  djarchive-admin upload my-dataset 002 ./my-dataset --no-publish
  djarchive-admin publish my-dataset 002
  djarchive-admin revisions --all
  djarchive-admin retract my-dataset 001
  djarchive-admin keygen ~/.djarchive/curator.key
  djarchive-admin upload my-dataset 003 ./my-dataset --sign-key ~/.djarchive/curator.key
  djarchive-admin sign my-dataset 001 --sign-key ~/.djarchive/curator.key
  djarchive-admin doctor
  djarchive-admin mirror my-dataset 001 /srv/djarchive-mirror

staging: an uploaded, unpublished revision keeps its manifest in the bucket at
the key .djarchive~staging~DATASET~REVISION~djarchive-manifest.csv, where clients
never look; its data is at DATASET/REVISION/ as for a published one.

configuration (highest precedence first): --endpoint/--bucket/--secure; the
environment (DJARCHIVE_ADMIN_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY, _SECURE);
DataJoint's configuration: the store djarchive_admin in datajoint.json
(datajoint 2.x), then the custom keys djarchive.admin.* and djarchive.* of
dj_local_conf.json or ~/.datajoint_config.json (under any datajoint version).
Credentials are required: there are no default ones. The filename filter:
--filter, else DJARCHIVE_ADMIN_FILENAME_FILTER, else djarchive.admin.filename_filter
in DataJoint's configuration, else '^\\.'.
The signing key: --sign-key, else DJARCHIVE_ADMIN_SIGN_KEY, else
djarchive.admin.sign_key in DataJoint's configuration, else none (unsigned).

servers: writing relies on conditional writes (If-None-Match, If-Match) to keep
two curators apart. Before writing, djarchive-admin checks the server once
('djarchive-admin doctor' shows what it found); where they are ignored, writing
is refused unless you are the only writer and say so with --single-writer (or
DJARCHIVE_ADMIN_SINGLE_WRITER=1, or djarchive.admin.single_writer in DataJoint's
configuration). See docs/servers.md.

signatures: publishing with a signing key writes DATASET/REVISION/djarchive-manifest.sig
(a JSON list of signed statements binding dataset, revision and the manifest's
sha256) just before the manifest. Clients that trust the key's public line
(KEYFILE.pub) refuse revisions it did not sign.

exit status: 0 success, 1 failure (one line on stderr), 2 bad usage or bad
configuration, 130 interrupted. With --json a failure also prints a JSON object
with "error" and "type" on stdout."""


def _add_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter",
        dest="filename_filter",
        metavar="REGEX",
        default=None,
        help="skip paths with a component matching REGEX (default '^\\.': hidden files; '' keeps all)",
    )


def _add_sign_key(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--sign-key",
        metavar="KEYFILE",
        default=None,
        help=f"{what} with this Ed25519 private key (djarchive-admin keygen; env DJARCHIVE_ADMIN_SIGN_KEY)",
    )


def _add_single_writer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--single-writer",
        action="store_true",
        default=None,
        help="write even where the server ignores conditional writes: you promise no other curator "
        "writes this archive meanwhile (env DJARCHIVE_ADMIN_SINGLE_WRITER; see docs/servers.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full ``djarchive-admin`` parser."""
    parser, command, commands = new_parser(PROG, DESCRIPTION, EPILOG, "admin")

    manifest = command(
        "manifest",
        "write SOURCE's manifest",
        "Hash every file of SOURCE (in parallel) and write SOURCE/djarchive-manifest.csv.\n\n"
        "Paths with a component matching the filter are skipped (default: hidden files and\n"
        "folders). Symbolic links are followed when they stay inside SOURCE and refused when\n"
        "they leave it. No store is contacted.",
    )
    manifest.add_argument("source", metavar="SOURCE", help="the folder holding the revision's files")
    manifest.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    _add_filter(manifest)
    add_jobs_option(manifest, "parallel hashing")

    upload = command(
        "upload",
        "upload SOURCE as a revision, then publish it",
        "Upload the files of SOURCE as revision REVISION of dataset NAME, then publish it.\n\n"
        "When SOURCE holds a djarchive-manifest.csv, every file is checked against it before\n"
        "anything is sent; otherwise the manifest is built in memory. Files are uploaded\n"
        "concurrently (multipart when large), each with its sha256 as x-amz-meta-sha256;\n"
        "objects already stored with the same size and sha256 are skipped, so re-running an\n"
        "interrupted upload resumes it. Content an earlier published revision of NAME holds is\n"
        "copied in the archive instead of sent (--no-delta: send everything). A published\n"
        "revision is refused unless --force.",
    )
    upload.add_argument("dataset", metavar="NAME", help="dataset name")
    upload.add_argument("revision", metavar="REVISION", help="revision name")
    upload.add_argument("source", metavar="SOURCE", help="the folder holding the revision's files")
    upload.add_argument(
        "--no-publish", dest="publish", action="store_false", help="stage the revision, do not publish it"
    )
    upload.add_argument(
        "--force",
        action="store_true",
        help="overwrite a published revision (it is hidden while the upload runs) and delete "
        "objects the new manifest does not list",
    )
    upload.add_argument(
        "--no-delta",
        dest="delta",
        action="store_false",
        help="send every file, even content the archive already holds (no server-side copies)",
    )
    _add_filter(upload)
    _add_sign_key(upload, "sign the revision as it is published")
    _add_single_writer(upload)
    add_jobs_option(
        upload,
        "parallel uploads",
        "small files of up to 256 KiB: twice as many; larger ones wait while 128 MiB of data is in memory",
    )
    add_progress_options(upload)

    publish = command(
        "publish",
        "publish a staged revision",
        "Check that every file of the staged manifest is in the store with the right size and\n"
        "sha256 and that nothing else is under the revision, then write the manifest, which\n"
        "makes the revision visible to clients.",
    )
    publish.add_argument("dataset", metavar="NAME", help="dataset name")
    publish.add_argument("revision", metavar="REVISION", help="revision name")
    publish.add_argument("--force", action="store_true", help="replace the manifest of a published revision")
    _add_sign_key(publish, "sign the revision as it is published")
    _add_single_writer(publish)
    add_jobs_option(publish, "parallel checks")

    sign = command(
        "sign",
        "sign a published revision",
        "Sign a published revision as its manifest is stored, without changing it: add this\n"
        "key's signature to DATASET/REVISION/djarchive-manifest.sig (replacing an earlier\n"
        "one by the same key; other keys' signatures of this manifest are kept).",
    )
    sign.add_argument("dataset", metavar="NAME", help="dataset name")
    sign.add_argument("revision", metavar="REVISION", help="revision name")
    _add_sign_key(sign, "sign")
    _add_single_writer(sign)

    keygen = command(
        "keygen",
        "create a signing key pair",
        "Create an Ed25519 key pair: the private key in KEYFILE (mode 0600; an existing file is\n"
        "never replaced) and its public key in KEYFILE.pub. The public key line is printed:\n"
        "give it to researchers, who trust it with djarchive --trust or\n"
        "DJARCHIVE_CLIENT_TRUSTED_KEYS. No store is contacted.",
    )
    keygen.add_argument("keyfile", metavar="KEYFILE", help="where to write the private key")

    retract = command(
        "retract",
        "hide a published revision from clients",
        "Hide a published revision from clients. A tombstone beside it records --reason and\n"
        "--superseded-by, which clients show; its manifest and data are kept, so copies stay\n"
        "reproducible and 'publish' can make it visible again unchanged (different content\n"
        "needs a new revision name, or --force). With --purge, delete everything stored for\n"
        "the revision instead (asks first unless --yes).",
    )
    retract.add_argument("dataset", metavar="NAME", help="dataset name")
    retract.add_argument("revision", metavar="REVISION", help="revision name")
    retract.add_argument(
        "--reason", metavar="TEXT", default="", help="why it is retracted (shown to researchers who have it)"
    )
    retract.add_argument(
        "--superseded-by",
        metavar="REVISION",
        default=None,
        help="the revision to use instead (a published revision of the dataset, unless --force)",
    )
    retract.add_argument(
        "--force", action="store_true", help="accept a --superseded-by revision that is not published (yet)"
    )
    retract.add_argument("--purge", action="store_true", help="delete the revision's data too")
    retract.add_argument("-y", "--yes", action="store_true", help="do not ask before --purge deletes")
    _add_single_writer(retract)

    revisions = command(
        "revisions",
        "list revisions",
        "List revisions: published ones as 'dataset,revision' lines, or with --all every\n"
        "revision (published, staged, incomplete) as 'dataset,revision,state,files,bytes'.",
    )
    revisions.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    revisions.add_argument(
        "-a",
        "--all",
        action="store_true",
        help="include staged and incomplete revisions, with state and size",
    )
    mirror = command(
        "mirror",
        "write a static copy of a published revision (a mirror)",
        "Copy a published revision, its files, signatures and manifest byte for byte, to\n"
        "DIR/DATASET/REVISION/, every file checked against the manifest before it is put in\n"
        "place; the manifest is written last. DIR may hold other revisions. A re-run keeps the\n"
        "files already there and intact, so an interrupted copy resumes. Serve DIR with any\n"
        "static web server (nginx, python -m http.server) or sync it to a public bucket, and\n"
        "give researchers its URL: djarchive download ... --mirror https://host/path/",
    )
    mirror.add_argument("dataset", metavar="DATASET", help="dataset name")
    mirror.add_argument("revision", metavar="REVISION", help="revision name (published)")
    mirror.add_argument(
        "directory", metavar="DIR", type=folder, help="the mirror's folder (created when missing)"
    )
    add_jobs_option(mirror, "parallel transfers")
    add_progress_options(mirror)
    lease = command(
        "break-lease",
        "remove a revision's lease left by a writer that is gone",
        "Remove the lease (the lock object in the bucket) on a revision, whoever holds it. Use it\n"
        "only when the writer named in the 'being changed by' message is gone for sure: a lease\n"
        "whose heartbeat is over 10 minutes old is taken over without this. Asks first unless --yes.",
    )
    lease.add_argument("dataset", metavar="NAME", help="dataset name")
    lease.add_argument("revision", metavar="REVISION", help="revision name")
    lease.add_argument("-y", "--yes", action="store_true", help="do not ask first")
    command(
        "doctor",
        "show what the server supports",
        "Find out what the server supports that djarchive-admin relies on, by trying it on probe\n"
        "objects of its own (deleted again), and print one line each: conditional writes\n"
        "(without them concurrent curators cannot be kept apart: writing needs --single-writer),\n"
        "checksums (whether a body that does not match its sha256 is refused, and whether\n"
        "x-amz-checksum-sha256 is kept), multipart uploads, ranged reads, ListObjectsV2 paging.",
    )
    add_completion_command(commands, PROG)
    return parser

"""The ``djarchive`` command line's parser. Standard library only: it is loaded for ``--help``
and by argparse-manpage at build time, so it must import nothing heavy."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_completion_command", "add_connection_options", "build_parser", "new_parser", "positive_jobs"]

PROG = "djarchive"
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

configuration (highest precedence first): --endpoint/--bucket/--secure; the
environment (DJARCHIVE_CLIENT_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY, _SECURE);
DataJoint's configuration (dj.config['custom']['djarchive.client.*'] or the
store djarchive_client in datajoint.json); else the public archive, anonymously.

exit status: 0 success, 1 failure (one line on stderr), 2 bad usage, 130 interrupted."""


def positive_jobs(text: str) -> int:
    """argparse type for --jobs: an integer from 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


def add_connection_options(parser: argparse.ArgumentParser, role: str, *, suppress: bool) -> None:
    """Options every subcommand accepts, before or after its name."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--endpoint",
        metavar="HOST[:PORT]",
        default=default,
        help=f"S3 endpoint, host[:port] or http(s)://host[:port] (env DJARCHIVE_{role.upper()}_ENDPOINT)",
    )
    group.add_argument(
        "--bucket",
        metavar="NAME",
        default=default,
        help=f"archive bucket (env DJARCHIVE_{role.upper()}_BUCKET)",
    )
    security = group.add_mutually_exclusive_group()
    security.add_argument(
        "--secure",
        dest="secure",
        action="store_const",
        const=True,
        default=default,
        help="use https (default)",
    )
    security.add_argument(
        "--insecure", dest="secure", action="store_const", const=False, default=default, help="use plain http"
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable output",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="no progress bars or summaries",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="log everything (secrets redacted) and show tracebacks",
    )


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


def new_parser(
    prog: str, description: str, epilog: str, role: str
) -> tuple[
    argparse.ArgumentParser, Callable[[str, str, str], argparse.ArgumentParser], argparse._SubParsersAction
]:
    """A top-level parser with --version and the connection options, and a factory for its
    subcommands (each accepting the connection options too, before or after its name)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="show the version and exit")
    add_connection_options(parser, role, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_connection_options(sub, role, suppress=True)
        return sub

    return parser, command, commands


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
        "List published revisions as 'dataset,revision' lines, of every dataset or of DATASET.",
    )
    revisions.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    files = command(
        "files",
        "list the files of a revision",
        "List a revision's files from its manifest: size, sha256 and path, tab-separated.",
    )
    files.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    files.add_argument("revision", metavar="REVISION", help="the revision's name")
    _add_selection(files)
    download = command(
        "download",
        "download a revision into a folder",
        "Download a published revision into TARGET (created when missing).\n\n"
        "Files are fetched concurrently, large ones in parallel byte ranges, and each is\n"
        "checked against the manifest's size and sha256 before it is renamed into place.\n"
        "Files already present and verified are not fetched again, so re-running an\n"
        "interrupted download resumes it. Exit status 1 when any file failed.",
    )
    download.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    download.add_argument("revision", metavar="REVISION", help="the revision's name")
    download.add_argument("target", metavar="TARGET", help="local folder for the revision's files")
    _add_selection(download)
    download.add_argument(
        "-j",
        "--jobs",
        type=positive_jobs,
        metavar="N",
        default=None,
        help="parallel transfers (default 32, max 64; small files of up to 256 KiB: twice as many)",
    )
    download.add_argument("--dry-run", action="store_true", help="show what would be fetched, fetch nothing")
    download.add_argument(
        "--recheck", action="store_true", help="hash every local file again instead of trusting the record"
    )
    verify = command(
        "verify",
        "check a local copy against the manifest",
        "Hash every file of TARGET and compare it with the revision's manifest; report missing,\n"
        "modified and extra files. Exit status 0 when the copy is intact, 1 when it is not.",
    )
    verify.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    verify.add_argument("revision", metavar="REVISION", help="the revision's name")
    verify.add_argument("target", metavar="TARGET", help="the local copy to check")
    _add_selection(verify)
    verify.add_argument(
        "-j", "--jobs", type=positive_jobs, metavar="N", default=None, help="parallel hashing"
    )
    verify.add_argument(
        "--fast",
        action="store_true",
        help="trust djarchive's record for files unchanged since it verified them",
    )
    add_completion_command(commands, PROG)
    return parser


def add_completion_command(commands: argparse._SubParsersAction, prog: str) -> None:
    """The ``completion`` subcommand, which prints a shell completion script."""
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description=f"Print a completion script for bash or zsh. Enable it with\n"
        f'  eval "$({prog} completion bash)"   in ~/.bashrc, or\n'
        f'  eval "$({prog} completion zsh)"    in ~/.zshrc.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")

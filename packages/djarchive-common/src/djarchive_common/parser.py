"""Parser scaffolding both command lines share: subcommands, connection and output options, the
jobs option and its limits, the completion command.

Standard library only (and :mod:`djarchive_common.transfer`, which is too): the parsers are
loaded for ``--help``, for completion and to render the man pages, so they import nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from .errors import UsageError
from .transfer import DEFAULT_WORKERS, MAX_JOBS

__all__ = [
    "CONNECTION_FLAGS",
    "ArgumentParser",
    "add_completion_command",
    "add_connection_options",
    "add_jobs_option",
    "add_progress_options",
    "command_flags",
    "folder",
    "jobs_count",
    "new_parser",
    "shard_spec",
    "subcommands",
]

#: The library's keyword arguments that the connection options set, and their flags: messages
#: about a setting given as an argument name the flag on the command line.
CONNECTION_FLAGS = {"endpoint": "--endpoint", "bucket": "--bucket", "secure": "--secure/--insecure"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors raise :class:`UsageError` (a ``SystemExit(2)``, as
    argparse's own) after printing exactly what argparse prints. Its subcommands' parsers are
    of this class too."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise UsageError(self.prog, message)


Command = Callable[[str, str, str], argparse.ArgumentParser]


def jobs_count(text: str) -> int:
    """argparse type for --jobs: an integer from 1 to MAX_JOBS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_JOBS}")
    return value


def folder(text: str) -> str:
    """argparse type for a local folder argument: an empty one (an unset shell variable) is bad
    usage, not the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty folder name (is a shell variable unset?)")
    return text


def shard_spec(text: str) -> tuple[int, int]:
    """argparse type for --shard K/N (1 <= K <= N)."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count) <= 100_000):
        raise argparse.ArgumentTypeError(f"invalid shard {text!r}: use K/N with 1 <= K <= N, e.g. 2/8")
    return int(index), int(count)


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--progress bar|jsonl|none`` and ``--events FILE``: progress for people or for machines."""
    parser.add_argument(
        "--progress",
        choices=("bar", "jsonl", "none"),
        default=None,
        help="bar (default on a terminal), jsonl: one JSON event per line (start, file, progress, end) "
        "on stderr or in --events FILE, for workflow engines; none",
    )
    parser.add_argument(
        "--events",
        metavar="FILE",
        default=None,
        help="write the jsonl events to FILE (implies --progress jsonl)",
    )


def add_jobs_option(parser: argparse.ArgumentParser, what: str, note: str = "") -> None:
    """``-j/--jobs N``: how many ``what`` run at once."""
    limits = f"default {DEFAULT_WORKERS}, max {MAX_JOBS}" + (f"; {note}" if note else "")
    parser.add_argument("-j", "--jobs", type=jobs_count, metavar="N", default=None, help=f"{what} ({limits})")


def add_connection_options(parser: argparse.ArgumentParser, role: str, *, suppress: bool) -> None:
    """Options every subcommand accepts, before or after its name."""
    default = argparse.SUPPRESS if suppress else None
    flag = argparse.SUPPRESS if suppress else False
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
    group.add_argument("--json", action="store_true", default=flag, help="machine-readable output")
    group.add_argument(
        "-q", "--quiet", action="store_true", default=flag, help="no progress bars or summaries"
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=flag,
        help="log everything (secrets redacted) and show tracebacks",
    )


def new_parser(
    prog: str, description: str, epilog: str, role: str
) -> tuple[argparse.ArgumentParser, Command, argparse._SubParsersAction]:
    """A top-level parser with --version and the connection options, and a factory for its
    subcommands (each accepting the connection options too, before or after its name)."""
    parser = ArgumentParser(
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


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_flags(parser: argparse.ArgumentParser, command: str | None) -> frozenset[str]:
    """Every option string ``command`` (a subcommand of ``parser``) accepts: advice names no other."""
    sub = subcommands(parser).get(command or "", parser)
    return frozenset(option for action in sub._actions for option in action.option_strings)


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

"""What the two command lines share: running a subcommand, one-line errors, exit codes, output.

Exit codes: 0 success, 1 failure, 2 bad usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import DJArchiveError, PartialFailureError
from .logs import redact, resolve_log_options, setup_logging

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "emit_json",
    "main_of",
    "progress_wanted",
    "run_command",
    "version_line",
]

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
log = logging.getLogger("djarchive_common")


def version_line(prog: str, distribution: str) -> str:
    """``prog X.Y.Z`` for --version."""
    from importlib import metadata  # ~30 ms: only for --version

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{prog} {version}"


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False))


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and never with -q or --json."""
    return not getattr(args, "quiet", False) and not getattr(args, "json", False) and sys.stderr.isatty()


def print_failures(prog: str, error: PartialFailureError) -> None:
    """One stderr line per failed file."""
    for subpath, reason in sorted(error.failures.items()):
        print(redact(f"{prog}: failed: {subpath}: {reason}"), file=sys.stderr)


def run_command(prog: str, args: argparse.Namespace, handler: Callable[[argparse.Namespace], int]) -> int:
    """Set up logging, run ``handler`` and turn djarchive errors into one stderr line and exit 1."""
    debug = bool(getattr(args, "debug", False))
    try:
        level, logfile = resolve_log_options()
        setup_logging(level, logfile, debug=debug)
        return handler(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `djarchive files ... | head`); that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except DJArchiveError as error:
        if debug:
            log.debug("traceback of the error below", exc_info=True)
        if isinstance(error, PartialFailureError):
            print_failures(prog, error)
        print(redact(f"{prog}: error: {error}"), file=sys.stderr)
        return EXIT_FAILURE


def main_of(
    prog: str,
    distribution: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    commands: Mapping[str, Callable[[argparse.Namespace], int]],
    argv: Sequence[str] | None,
) -> int:
    """A CLI's ``main``: parse, then --version, help without a command, ``completion``, or a command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_line(prog, distribution))
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "completion":
        from .completion import completion_script

        print(completion_script(parser, args.shell), end="")
        return 0
    return run_command(prog, args, commands[args.command])

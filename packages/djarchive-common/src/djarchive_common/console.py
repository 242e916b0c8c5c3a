"""What the two command lines share at run time: dispatch, printing, one-line errors, exit codes.

Every byte a command prints goes through :class:`Console`, which redacts registered secrets
from text and JSON alike. Exit codes: 0 success, 1 failure, 2 bad usage (argparse) or invalid
configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .errors import ConfigurationError, DJArchiveError, LocalStorageError, PartialFailureError
from .logs import redact, resolve_log_options, setup_logging

if TYPE_CHECKING:
    from .events import Events

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Console",
    "Handler",
    "main_of",
    "version_line",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
log = logging.getLogger("djarchive_common")


class Result(Protocol):
    """What commands report: text for people, a dict for --json."""

    def to_dict(self) -> dict[str, Any]: ...


class Console:
    """The output of one command: text or --json on stdout, warnings and errors on stderr."""

    def __init__(self, prog: str, args: argparse.Namespace):
        self.prog = prog
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))
        self._events_file: str | None = getattr(args, "events", None)
        self._progress: str | None = getattr(args, "progress", None) or (
            "jsonl" if self._events_file else None
        )
        self._opened: TextIO | None = None

    @property
    def progress(self) -> bool:
        """Progress bars only on a terminal, and never with -q, --json or another --progress."""
        if self._progress is not None:
            return self._progress == "bar"
        return not self.quiet and not self.json and sys.stderr.isatty()

    def events(self) -> Events | None:
        """The jsonl event stream asked for with --progress jsonl / --events FILE, or None."""
        if self._progress != "jsonl":
            return None
        from .events import Events

        if self._events_file is None:
            return Events(sys.stderr)
        if self._opened is None:
            try:
                self._opened = open(self._events_file, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise LocalStorageError(
                    f"cannot write the events to {self._events_file}: {exc.strerror}"
                ) from None
        return Events(self._opened)

    def close(self) -> None:
        """Close what the command opened (the events file)."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def line(self, text: str) -> None:
        """One line of plain output."""
        print(redact(text))

    def emit(self, data: Any) -> None:
        """One JSON document."""
        print(redact(json.dumps(data, indent=2, ensure_ascii=False)))

    def result(self, result: Result, *, force: bool = False) -> None:
        """A command's result: its dict with --json, else its text unless -q (or ``force``)."""
        if self.json:
            self.emit(result.to_dict())
        elif force or not self.quiet:
            self.line(str(result))

    def revisions(self, pairs: Sequence[tuple[str, str]]) -> None:
        """(dataset, revision) pairs: ``dataset,revision`` lines (the original's format), or JSON."""
        if self.json:
            self.emit([{"dataset": dataset, "revision": revision} for dataset, revision in pairs])
        else:
            for dataset, revision in pairs:
                self.line(f"{dataset},{revision}")

    def warn(self, message: str) -> None:
        """``prog: warning: message`` on stderr."""
        print(redact(f"{self.prog}: warning: {message}"), file=sys.stderr)

    def error(self, message: str) -> None:
        """``prog: error: message`` on stderr."""
        print(redact(f"{self.prog}: error: {message}"), file=sys.stderr)

    def failures(self, failures: Mapping[str, str]) -> None:
        """One stderr line per failed file."""
        for subpath, reason in sorted(failures.items()):
            print(redact(f"{self.prog}: failed: {subpath}: {reason}"), file=sys.stderr)

    def report(self, error: DJArchiveError) -> None:
        """A failed command: per-file failures and the summary when some files failed (the JSON
        object a --json reader expects either way), then one error line."""
        summary = error.summary if isinstance(error, PartialFailureError) else None
        if isinstance(error, PartialFailureError):
            self.failures(error.failures)
        if summary is not None and hasattr(summary, "to_dict"):
            self.result(summary)
        elif self.json:
            self.emit({"error": str(error), "type": type(error).__name__})
        self.error(str(error))


Handler = Callable[[argparse.Namespace, Console], int]


def version_line(prog: str, distribution: str) -> str:
    """``prog X.Y.Z`` for --version."""
    from importlib import metadata  # ~30 ms: only for --version

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{prog} {version}"


def _run(prog: str, args: argparse.Namespace, handler: Handler) -> int:
    """Set up logging, run ``handler`` and turn djarchive errors into one stderr line and exit 1."""
    console = Console(prog, args)
    debug = bool(getattr(args, "debug", False))
    try:
        level, logfile = resolve_log_options()
        setup_logging(level, logfile, debug=debug)
        try:
            return handler(args, console)
        finally:
            console.close()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `djarchive files ... | head`); that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except DJArchiveError as error:
        if debug:
            log.debug("traceback of the error below", exc_info=True)
        console.report(error)
        return EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_FAILURE
    except OSError as error:  # a local fault the library did not name: still one line, no traceback
        if debug:
            log.debug("traceback of the error below", exc_info=True)
        where = f": {error.filename}" if error.filename else ""
        console.report(LocalStorageError(f"{error.strerror or error}{where}"))
        return EXIT_FAILURE


def main_of(
    prog: str,
    distribution: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    commands: Mapping[str, Handler],
    argv: Sequence[str] | None,
) -> int:
    """A CLI's ``main``: parse, then --version, help without a command, ``completion``, or a command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_line(prog, distribution))
        return EXIT_OK
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "completion":
        from .completion import completion_script

        print(completion_script(parser, args.shell), end="")
        return EXIT_OK
    return _run(prog, args, commands[args.command])

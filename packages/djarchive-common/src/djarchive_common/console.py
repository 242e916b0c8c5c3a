"""What the two command lines share at run time: dispatch, printing, one-line errors, exit codes.

Every byte a command prints goes through :class:`Console`, which redacts registered secrets
from text and JSON alike. Exit codes: 0 success, 1 failure, 2 bad usage (argparse) or bad
configuration (:class:`~djarchive_common.errors.ConfigurationError`), 130 interrupted.

With ``--json`` every failure also prints one JSON object on stdout with at least ``error``
(the message) and ``type`` (the error's class, ``UsageError`` for bad usage); a failure that
has a result (some files failed, a copy that is not intact) prints that result's fields too.

The library's messages give advice in Python's terms (``force=True``, ``write_manifest(...,
overwrite=True)``); :meth:`Console.advice` says the same with the command line's flags.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    "FLAGS",
    "Console",
    "Handler",
    "exit_status",
    "main_of",
    "version_line",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
log = logging.getLogger("djarchive_common")

#: The library's keyword arguments, as its messages name them, and the flags that do the same.
FLAGS = {
    "allow_retracted=True": "--allow-retracted",
    "force=True": "--force",
    "overwrite=True": "--overwrite",
    "publish=False": "--no-publish",
    "purge=True": "--purge",
    "secure=False": "--insecure",
}
_KEYWORD_RE = re.compile(r"(?<![\w.=-])(" + "|".join(map(re.escape, FLAGS)) + r")(?!\w)")
_PY_STRING = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_REBUILD_RE = re.compile(rf"write_manifest\((?P<source>{_PY_STRING}), overwrite=True\)")


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

    def lines(self, lines: Iterable[str], batch: int = 4096) -> None:
        """Many lines of plain output, written in batches."""
        iterator = iter(lines)
        while chunk := list(itertools.islice(iterator, batch)):
            sys.stdout.write(redact("\n".join(chunk)) + "\n")

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

    def advice(self, message: str) -> str:
        """``message`` with the library's Python advice said in this command line's terms:
        ``force=True`` becomes ``--force``, ``write_manifest('SRC', overwrite=True)`` becomes
        ``PROG manifest --overwrite SRC``."""

        def rebuild(match: re.Match[str]) -> str:
            source = ast.literal_eval(match["source"])
            return f"{self.prog} manifest --overwrite {shlex.quote(source)}"

        message = _REBUILD_RE.sub(rebuild, message)
        return _KEYWORD_RE.sub(lambda match: FLAGS[match[1]], message)

    def warn(self, message: str) -> None:
        """``prog: warning: message`` on stderr."""
        print(redact(f"{self.prog}: warning: {self.advice(message)}"), file=sys.stderr)

    def error(self, message: str) -> None:
        """``prog: error: message`` on stderr."""
        print(redact(f"{self.prog}: error: {self.advice(message)}"), file=sys.stderr)

    def failures(self, failures: Mapping[str, str]) -> None:
        """One stderr line per failed file."""
        for subpath, reason in sorted(failures.items()):
            print(redact(f"{self.prog}: failed: {subpath}: {self.advice(reason)}"), file=sys.stderr)

    def fail(self, message: str, kind: str, result: Result | None = None) -> None:
        """A failed command: one error line on stderr and, with --json, the JSON object that says
        so on stdout (``result``'s fields, if any, then ``error`` and ``type``). Without --json,
        ``result`` is printed as text unless -q."""
        message = self.advice(message)
        if self.json:
            data = result.to_dict() if result is not None else {}
            self.emit({**data, "error": message, "type": kind})
        elif result is not None and not self.quiet:
            self.line(str(result))
        print(redact(f"{self.prog}: error: {message}"), file=sys.stderr)

    def report(self, error: DJArchiveError) -> None:
        """A failed command: per-file failures and the summary when some files failed, then one
        error line; with --json, one object with the summary's fields, ``error`` and ``type``."""
        summary = error.summary if isinstance(error, PartialFailureError) else None
        if isinstance(error, PartialFailureError):
            self.failures(error.failures)
        result = summary if summary is not None and hasattr(summary, "to_dict") else None
        self.fail(str(error), type(error).__name__, result)


Handler = Callable[[argparse.Namespace, Console], int]


def version_line(prog: str, distribution: str) -> str:
    """``prog X.Y.Z`` for --version."""
    from importlib import metadata  # ~30 ms: only for --version

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{prog} {version}"


def exit_status(error: DJArchiveError) -> int:
    """The exit status of a command that failed with ``error``: 2 for a configuration problem
    (like bad usage: nothing was tried), else 1."""
    return EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_FAILURE


def _run(prog: str, args: argparse.Namespace, handler: Handler) -> int:
    """Set up logging, run ``handler`` and turn djarchive errors into one stderr line and an exit
    status (:func:`exit_status`)."""
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
        if console.json:
            console.emit({"error": "interrupted", "type": "KeyboardInterrupt"})
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
        return exit_status(error)
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
    from .parser import UsageError

    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in (words[: words.index("--")] if "--" in words else words)
    try:
        args = parser.parse_args(words)
    except UsageError as error:
        if wants_json:
            print(json.dumps({"error": error.message, "type": "UsageError"}, indent=2, ensure_ascii=False))
        raise
    if args.version:
        print(version_line(prog, distribution))
        return EXIT_OK
    if not args.command:
        parser.print_help(sys.stderr)
        if wants_json:
            print(json.dumps({"error": "no command given", "type": "UsageError"}, indent=2))
        return EXIT_USAGE
    if args.command == "completion":
        from .completion import completion_script

        print(completion_script(parser, args.shell), end="")
        return EXIT_OK
    return _run(prog, args, commands[args.command])

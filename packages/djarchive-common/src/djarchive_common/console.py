"""What the two command lines share at run time: dispatch, printing, one-line errors, exit codes.

Every byte a command prints goes through :class:`Console`, which redacts registered secrets
from text and JSON alike and prints text that came from elsewhere (the server, a manifest, a
tombstone, a lease, a receipt, the local file system) safely: every line and every field of
plain output is escaped (:func:`djarchive_common.text.escaped`), so control characters show as
``\\x1b`` or ``\\n`` and never reach the terminal; CSV is written by the csv module; JSON
escapes by itself (C1 controls and bidi overrides too). A line break or a tab between fields is
the console's own, never a character inside a string: commands hand over lines and rows.

Exit codes: 0 success, 1 failure, 2 bad usage (argparse) or bad configuration
(:class:`~djarchive_common.errors.ConfigurationError`), 130 interrupted. A failure to write
the output itself (a closed pipe, a full disk) ends the command with one line on stderr, or
none, and exit status 1 (:mod:`djarchive_common.output`).

With ``--json`` every failure also prints one JSON object on stdout with at least ``error``
(the message) and ``type`` (the error's class, ``UsageError`` for bad usage); a failure that
has a result (some files failed, a copy that is not intact) prints that result's fields too.

Errors that advise carry a :class:`~djarchive_common.errors.Hint`; the console says it with the
command line's flag (``--force``), and only when the command accepts that flag.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import logging
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .errors import ConfigurationError, DJArchiveError, LocalStorageError, PartialFailureError, UsageError
from .logs import redact, resolve_log_options, setup_logging
from .text import escaped, json_escaped

if TYPE_CHECKING:
    from typing import TextIO

    from .events import Events

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
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

Row = Sequence[str]
T = TypeVar("T")


class Result(Protocol):
    """What commands report: text for people (``str``, or ``lines()`` when it spans several),
    a dict for --json."""

    def to_dict(self) -> dict[str, Any]: ...


def _shown(row: Row) -> str:
    """One row of plain output: its fields, each escaped, joined by tabs."""
    return "\t".join(map(escaped, row))


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class Console:
    """The output of one command: text or --json on stdout, warnings and errors on stderr.
    ``flags``: the options the command accepts (advice names no other)."""

    def __init__(self, prog: str, args: argparse.Namespace, flags: Collection[str] = ()):
        self.prog = prog
        self.flags = frozenset(flags)
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
        from .events import Events, events_file_error

        if self._events_file is None:
            return Events(sys.stderr)
        if self._opened is None:
            try:
                self._opened = open(self._events_file, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise events_file_error(self._events_file, exc) from None
        return Events(self._opened, name=self._events_file)

    def close(self) -> None:
        """Close what the command opened (the events file: what it could not write is an error)."""
        opened, self._opened = self._opened, None
        if opened is not None and self._events_file is not None:
            from .events import events_file_error

            try:
                opened.close()
            except OSError as exc:
                raise events_file_error(self._events_file, exc) from None

    # -- stdout ----------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """One line of plain output (escaped: it cannot break into two)."""
        print(redact(escaped(text)))

    def row(self, *fields: str) -> None:
        """One line of tab-separated fields, each escaped."""
        print(redact(_shown(fields)))

    def lines(self, lines: Iterable[str], batch: int = 4096) -> None:
        """Many lines of plain output, written in batches, each escaped."""
        for chunk in _batches(lines, batch):
            safe = "".join(chunk).isprintable()  # checked in C: escaping is for the odd line
            sys.stdout.write(redact("\n".join(chunk if safe else map(escaped, chunk))) + "\n")

    def rows(self, rows: Iterable[Row], batch: int = 4096) -> None:
        """Many rows of tab-separated fields (a million paths of a manifest), written in
        batches, each field escaped."""
        for chunk in _batches(rows, batch):
            safe = "".join(itertools.chain.from_iterable(chunk)).isprintable()
            sys.stdout.write(redact("\n".join(map("\t".join if safe else _shown, chunk))) + "\n")

    def csv(self, rows: Iterable[Sequence[object]]) -> None:
        """Comma-separated rows, quoted by the csv module where a field needs it (a comma, a
        quote), each field escaped first: no field can start a line of its own."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow([escaped(str(field)) for field in row])
        sys.stdout.write(redact(buffer.getvalue()))

    def emit(self, data: Any) -> None:
        """One JSON document, written at once: a stdout that cannot take it stops the command here."""
        print(redact(json_escaped(json.dumps(data, indent=2, ensure_ascii=False))), flush=True)

    def result(self, result: Result, *, force: bool = False) -> None:
        """A command's result: its dict with --json, else its text unless -q (or ``force``)."""
        if self.json:
            self.emit(result.to_dict())
        elif force or not self.quiet:
            self.lines(_text_lines(result))

    def revisions(self, pairs: Sequence[tuple[str, str]]) -> None:
        """(dataset, revision) pairs: ``dataset,revision`` lines (the original's format), or JSON."""
        if self.json:
            self.emit([{"dataset": dataset, "revision": revision} for dataset, revision in pairs])
        else:
            self.csv(pairs)

    # -- stderr ----------------------------------------------------------------------------

    def said(self, error: DJArchiveError) -> str:
        """``error``'s message in this command line's words: its hint with the flag, when the
        command accepts it (or the hint names another command), else no advice at all."""
        hint = error.hint
        if hint is None or (hint.command is None and hint.flag not in self.flags):
            return error.message
        return error.message + hint.on_command_line(self.prog)

    def _stderr(self, kind: str, message: str) -> None:
        print(redact(f"{self.prog}: {kind}{escaped(message)}"), file=sys.stderr)

    def note(self, message: str) -> None:
        """``prog: message`` on stderr, unless -q."""
        if not self.quiet:
            self._stderr("", message)

    def warn(self, message: str) -> None:
        """``prog: warning: message`` on stderr, unless -q."""
        if not self.quiet:
            self._stderr("warning: ", message)

    def error(self, message: str) -> None:
        """``prog: error: message`` on stderr."""
        self._stderr("error: ", message)

    def failures(self, failures: Mapping[str, str]) -> None:
        """One stderr line per failed file."""
        for subpath, reason in sorted(failures.items()):
            self._stderr("failed: ", f"{subpath}: {reason}")

    def fail(self, message: str, kind: str, result: Result | None = None) -> None:
        """A failed command: one error line on stderr and, with --json, the JSON object that says
        so on stdout (``result``'s fields, if any, then ``error`` and ``type``). Without --json,
        ``result`` is printed as text unless -q."""
        if self.json:
            data = result.to_dict() if result is not None else {}
            self.emit({**data, "error": message, "type": kind})
        elif result is not None and not self.quiet:
            self.lines(_text_lines(result))
        self.error(message)

    def report(self, error: DJArchiveError) -> None:
        """A failed command: per-file failures and the summary when some files failed, then one
        error line; with --json, one object with the summary's fields, ``error`` and ``type``."""
        summary = error.summary if isinstance(error, PartialFailureError) else None
        if isinstance(error, PartialFailureError):
            self.failures(error.failures)
        result = summary if summary is not None and hasattr(summary, "to_dict") else None
        self.fail(self.said(error), type(error).__name__, result)

    def confirmed(self, question: str, refusal: str) -> bool:
        """Ask ``question`` on a terminal; without one, fail with ``refusal`` and say no (with
        --json, the refusal or the answer no is also a JSON object on stdout, as every failure is)."""
        if not sys.stdin or not sys.stdin.isatty():
            self.fail(refusal, "UsageError")
            return False
        sys.stderr.write(redact(escaped(f"{question} [y/N] ")))
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            if self.json:
                self.emit({"error": "nothing done", "type": "Cancelled"})
            self._stderr("", "nothing done")
            return False
        return True


def _text_lines(result: Result) -> list[str]:
    """The lines of a result's text: its ``lines()`` when it has them, else its one line."""
    lines = getattr(result, "lines", None)
    return list(lines()) if callable(lines) else [str(result)]


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


def _run(
    prog: str,
    args: argparse.Namespace,
    handler: Handler,
    flags: Collection[str],
    resumable: Collection[str],
) -> int:
    """Set up logging, run ``handler`` and turn djarchive errors into one stderr line and an exit
    status (:func:`exit_status`)."""
    console = Console(prog, args, flags)
    debug = bool(getattr(args, "debug", False))
    try:
        level, logfile = resolve_log_options()
        setup_logging(level, logfile, debug=debug, prog=prog, quiet=console.quiet)
        try:
            return handler(args, console)
        finally:
            console.close()
    except KeyboardInterrupt:
        message = "interrupted"
        if args.command in resumable:
            message += f": run the same {args.command} again to resume"
        if console.json:
            console.emit({"error": message, "type": "KeyboardInterrupt"})
        console.note(message)
        return EXIT_INTERRUPTED
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
    *,
    resumable: Collection[str] = (),
) -> int:
    """A CLI's ``main``: parse, then --version, help without a command, ``completion``, or a
    command; ``resumable`` names the commands that a second run resumes (said when one is
    interrupted). Its output is guarded (:func:`djarchive_common.output.guarded_output`): a
    stdout or stderr that cannot be written ends it with exit status 1."""
    from .output import guarded_output

    code = EXIT_FAILURE
    with guarded_output(prog) as outcome:
        code = _main(prog, distribution, build_parser, commands, argv, resumable)
    return EXIT_FAILURE if outcome.failed else code


def _main(
    prog: str,
    distribution: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    commands: Mapping[str, Handler],
    argv: Sequence[str] | None,
    resumable: Collection[str],
) -> int:
    from .parser import command_flags

    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in (words[: words.index("--")] if "--" in words else words)
    try:
        args = parser.parse_args(words)
    except UsageError as error:
        if wants_json:
            document = {"error": error.message, "type": "UsageError"}
            print(json_escaped(json.dumps(document, indent=2, ensure_ascii=False)))
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
    return _run(prog, args, commands[args.command], command_flags(parser, args.command), resumable)

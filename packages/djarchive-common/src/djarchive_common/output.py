"""The command's own output, guarded: a write to stdout or stderr that fails ends the command with
one line or silence and exit status 1, never a traceback.

While a command runs, ``sys.stdout`` and ``sys.stderr`` are :class:`GuardedStream` objects. The
first write or flush that fails (a reader that went away, ``djarchive files ... | head -1``; a
full disk) raises :class:`~djarchive_common.errors.OutputError`, which unwinds the command like
an exit; every later write to that stream is dropped, so the handlers on the way out cannot
fail a second time. :func:`guarded_output` says what happened once: nothing for a closed pipe
(the reader has what it wanted) or when stderr itself failed, else one line on stderr. Text
the stream's encoding cannot carry (file names that are not valid UTF-8) is written with
backslash escapes instead of failing.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .errors import OutputError

__all__ = ["GuardedStream", "Outcome", "guarded_output"]


class GuardedStream:
    """``stream`` (named ``name``: 'stdout' or 'stderr') whose first failure raises OutputError
    and silences it for good."""

    def __init__(self, stream: TextIO, name: str):
        self._stream = stream
        self.name = name
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        if self.failure is None:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    encoding = getattr(self._stream, "encoding", None) or "utf-8"
                    self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            except OSError as error:
                self._failed(error)
        return len(text)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self._stream.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        self.failure = error
        raise OutputError(self.name, error) from None

    def silence(self) -> None:
        """Point the stream's file descriptor at the null device, so that what its buffer still
        holds cannot fail again when the interpreter flushes it on exit."""
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return  # not a file (a test's capture): nothing is flushed on exit
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


class Outcome:
    """What :func:`guarded_output` saw: the guarded streams, and whether either failed."""

    def __init__(self, stdout: GuardedStream | None, stderr: GuardedStream | None):
        self.streams = [stream for stream in (stdout, stderr) if stream is not None]

    @property
    def failed(self) -> bool:
        """Whether stdout or stderr could not be written."""
        return any(stream.failure is not None for stream in self.streams)


@contextmanager
def guarded_output(prog: str) -> Iterator[Outcome]:
    """Guard ``sys.stdout`` and ``sys.stderr`` while the block runs; an OutputError raised in it
    is reported here (one line on stderr, or nothing) and not raised further: the caller sees
    ``outcome.failed`` and exits 1."""
    saved = sys.stdout, sys.stderr
    stdout = GuardedStream(sys.stdout, "stdout") if sys.stdout is not None else None
    stderr = GuardedStream(sys.stderr, "stderr") if sys.stderr is not None else None
    sys.stdout, sys.stderr = stdout or sys.stdout, stderr or sys.stderr
    outcome = Outcome(stdout, stderr)
    try:
        try:
            yield outcome
            for stream in outcome.streams:
                stream.flush()
        except OutputError:
            pass
        failure = stdout.failure if stdout is not None else None
        # A closed pipe is said by nothing: the reader has what it wanted.
        if failure is not None and failure.errno != errno.EPIPE and stderr is not None:
            try:
                stderr.write(f"{prog}: error: cannot write the output: {_why(failure)}\n")
                stderr.flush()
            except OutputError:
                pass
    finally:
        sys.stdout, sys.stderr = saved
        for stream in outcome.streams:
            if stream.failure is not None:
                stream.silence()


def _why(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__

"""Logging for the command lines: level and file from the configuration, secrets redacted.

Libraries only log (to ``djarchive_client``, ``djarchive_admin``, ``djarchive_common``);
:func:`setup_logging` is called by the CLIs. Every handler it installs formats
through :class:`RedactingFormatter`, which blanks any registered secret, so a
secret cannot reach a terminal or a log file even inside a traceback, and escapes the
control characters of each message (:func:`djarchive_common.text.escaped`): a name from the
server cannot forge a log line. On a command line's stderr a record reads like the console's
own lines, ``djarchive: warning: ...``, and ``-q`` leaves only errors.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TextIO

from .errors import ConfigurationError
from .text import escaped

__all__ = [
    "LOGGERS",
    "ConsoleFormatter",
    "RedactingFormatter",
    "redact",
    "register_secrets",
    "resolve_log_options",
    "setup_logging",
]

LOGGERS = ("djarchive_common", "djarchive_client", "djarchive_admin")
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MASK = "<redacted>"

for _name in LOGGERS:
    logging.getLogger(_name).addHandler(logging.NullHandler())


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember values that must be blanked from every log line."""
    with _SECRETS_LOCK:
        _SECRETS.update(value for value in values if value and len(value) >= 6)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by a mask."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that blanks registered secrets in the final line, traceback included, and
    escapes the control characters of the message."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class ConsoleFormatter(RedactingFormatter):
    """A record as the command line ``prog`` prints its own warnings: ``prog: warning: message``."""

    def __init__(self, prog: str):
        super().__init__("%(message)s")
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        return redact(f"{self.prog}: {record.levelname.lower()}: {escaped(record.getMessage())}")


def resolve_log_options(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The log level and log file: ``DJARCHIVE_LOGLEVEL``/``DJARCHIVE_LOGFILE``, else DataJoint's
    ``custom['djarchive.loglevel']``/``custom['djarchive.logfile']`` (or the original's
    ``custom['logfile']``), else a ``loglevel`` the user set for DataJoint. DataJoint's default
    level (INFO) is not taken: djarchive's own default is WARNING (see :func:`setup_logging`)."""
    from .config import datajoint_loglevel, datajoint_setting

    env = os.environ if environ is None else environ
    level = env.get("DJARCHIVE_LOGLEVEL") or None
    logfile = env.get("DJARCHIVE_LOGFILE") or None
    if level is None:
        level = datajoint_setting("custom.djarchive.loglevel", environ=env) or datajoint_loglevel(env)
    if logfile is None:
        logfile = datajoint_setting("custom.djarchive.logfile", "custom.logfile", environ=env)
    return (str(level) if level else None), (str(logfile) if logfile else None)


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ConfigurationError(f"invalid log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number


def setup_logging(
    level: str | None = None,
    logfile: str | None = None,
    *,
    debug: bool = False,
    stream: TextIO | None = None,
    prog: str | None = None,
    quiet: bool = False,
) -> int:
    """Send djarchive's loggers to stderr (and ``logfile``); return the effective level.

    Without a configured level it is WARNING: the CLIs report on stdout, the log is for detail.
    ``prog``: stderr's lines read ``prog: warning: message``, like the command's own; ``quiet``
    (-q): only errors reach stderr (the log file still gets everything at the level).
    """
    number = logging.DEBUG if debug else _level_number(level) if level else logging.WARNING
    detailed = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(stream)
    if debug:
        console.setFormatter(detailed)
    elif prog is not None:
        console.setFormatter(ConsoleFormatter(prog))
    else:
        console.setFormatter(RedactingFormatter("%(name)s: %(levelname)s: %(message)s"))
    if quiet and not debug:
        console.setLevel(max(number, logging.ERROR))
    handlers: list[logging.Handler] = [console]
    if logfile:
        try:
            handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot open log file {logfile!r}: {exc.strerror}") from None
        handlers[-1].setFormatter(detailed)
    names = (*LOGGERS, "minio", "urllib3") if debug else LOGGERS
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.NullHandler):
                logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(number)
        logger.propagate = False
    return number

"""Words for people: counts with their noun, byte sizes, bounded lists of names in messages, and
text from elsewhere made safe to print.

:func:`escaped` is the one way text that djarchive did not write itself (from the server, a
manifest, a tombstone, a lease, a receipt, the local file system) reaches a terminal: the
consoles apply it to every line and field they print, so a name or a message can never move the
cursor, set the terminal's title or fake a line of output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MAX_NAMED", "escaped", "files", "human_bytes", "json_escaped", "plural", "some"]

MAX_NAMED = 10  # how many names one message lists

# C0 and C1 controls (ESC, CR, LF, TAB, BEL...), DEL, line and paragraph separators, the bidi
# controls that reorder what a terminal shows, and lone surrogates (undecodable file names).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BEYOND_C0 = f"\x7f-\x9f\u2028\u2029{_BIDI}\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_UNSAFE_IN_JSON = re.compile(f"[{_BEYOND_C0}]")  # JSON escapes C0 in strings; its newlines are its own
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escaped(text: str) -> str:
    """``text`` safe to print: every control character (C0, DEL, C1: ESC, CR, LF, TAB...), line
    separator, bidi override and lone surrogate written visibly as an escape (``\\n``,
    ``\\x1b``, ``\\u202e``), as git's core.quotePath shows odd file names; the rest unchanged."""
    if text.isprintable():  # the common case, checked in C
        return text
    return _UNSAFE.sub(_escape, text)


def json_escaped(document: str) -> str:
    """A JSON document with the characters :func:`escaped` escapes and JSON leaves as they are
    (C1 controls, DEL, separators, bidi overrides, lone surrogates) written as ``\\uXXXX``
    escapes: the same data, safe to print."""
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match[0]):04x}", document)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 file', '2 files' ('1 entry', '2 entries' with ``nouns``)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def files(count: int) -> str:
    """'1 file', '2 files'."""
    return plural(count, "file")


def human_bytes(count: float) -> str:
    """A byte count for people: 1.5 MB, 20 GB (powers of 1000, as aws and dandi print them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def some(names: Sequence[str], limit: int = MAX_NAMED) -> str:
    """The first ``limit`` names, comma-separated, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")

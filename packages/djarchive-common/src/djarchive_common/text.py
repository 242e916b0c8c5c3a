"""Words for people: counts with their noun, byte sizes, and bounded lists of names in messages."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_NAMED", "files", "human_bytes", "plural", "some"]

MAX_NAMED = 10  # how many names one message lists


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

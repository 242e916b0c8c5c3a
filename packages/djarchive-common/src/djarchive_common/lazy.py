"""Lazy package exports (PEP 562): ``import djarchive_client`` stays cheap, so that ``--help``
and argparse-manpage load the parsers without the transfer machinery."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing each exported name from its module on first use.

    ``sources`` maps a name to a module, absolute or relative to ``package``.
    """

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(sources[name], package), name)

    return __getattr__

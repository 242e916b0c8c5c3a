"""Write the committed man pages djarchive(1) and djarchive-admin(1) from the real parsers.

The pages are generated here, once, by argparse-manpage and committed; the distributions install
them as plain data files into share/man/man1, so building a package never imports a parser and
needs no argparse-manpage. Run this where the three packages and argparse-manpage are installed
(a tox test environment has them), after changing a parser or a version:

    .tox/py311-dj2/bin/python tools/manpages.py            # rewrite the pages that are stale
    .tox/py311-dj2/bin/python tools/manpages.py --check    # exit 1 if a page is stale

tests/packaging/test_manpages_fresh.py fails while a committed page is stale. A page keeps the date
in its header until its text changes; it then gets today's date (or SOURCE_DATE_EPOCH's).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python tools/manpages.py"
URL = "https://github.com/datajoint/djarchive-client"


@dataclass(frozen=True)
class Page:
    path: str  # relative to the repository's root
    parser_module: str  # has build_parser()
    project: str  # the distribution: its folder under packages/ and the page's source
    description: str  # the NAME line's text

    @property
    def file(self) -> Path:
        return ROOT / self.path

    def version(self) -> str:
        text = (ROOT / "packages" / self.project / "pyproject.toml").read_text(encoding="utf-8")
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no version in packages/{self.project}/pyproject.toml")
        return match.group(1)


PAGES = (
    Page(
        "packages/djarchive-client/man/djarchive.1",
        "djarchive_client.parser",
        "djarchive-client",
        "list, download and verify published datasets of the DataJoint archive",
    ),
    Page(
        "packages/djarchive-admin/man/djarchive-admin.1",
        "djarchive_admin.parser",
        "djarchive-admin",
        "write manifests, upload, publish and retract datasets of the DataJoint archive",
    ),
)

_HEADER_DATE = re.compile(r'^\.TH \S+ "[^"]*" "([^"]*)"')


def committed_date(page: Page) -> str | None:
    """The date in the header of the committed page, unescaped, or None where there is no page."""
    if not page.file.is_file():
        return None
    match = _HEADER_DATE.match(page.file.read_text(encoding="utf-8"))
    return match.group(1).replace("\\-", "-") if match else None


def render(page: Page, date: str | None = None) -> str:
    """The page as argparse-manpage renders it from the parser; date None: today (or SOURCE_DATE_EPOCH)."""
    from argparse_manpage.manpage import Manpage

    module = importlib.import_module(page.parser_module)
    if not Path(module.__file__).resolve().is_relative_to(ROOT):
        raise RuntimeError(
            f"{page.parser_module} is imported from {module.__file__}, not from this checkout ({ROOT}): "
            "run this where the packages of this checkout are installed in editable mode"
        )
    parser = module.build_parser()
    data = {
        "project_name": page.project,
        "prog": parser.prog,
        "description": page.description,
        "url": URL,
        "manual_title": "djarchive manual",
        "version": page.version(),
        "authors": ["DataJoint"],
    }
    if date is not None:
        data["date"] = date
    return str(Manpage(parser, _data=data))


def stale(page: Page) -> bool:
    """Whether the committed page differs from what the parser renders now (its own date kept)."""
    date = committed_date(page)
    if date is None:
        return True
    return page.file.read_text(encoding="utf-8") != render(page, date)


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    check = options.parse_args(argv).check
    status = 0
    for page in PAGES:
        try:
            is_stale = stale(page)
        except (ImportError, RuntimeError) as error:
            print(f"{page.path}: {error}", file=sys.stderr)
            return 2
        if not is_stale:
            print(f"{page.path}: up to date")
        elif check:
            print(f"{page.path}: stale; run {COMMAND}", file=sys.stderr)
            status = 1
        else:
            page.file.parent.mkdir(parents=True, exist_ok=True)
            page.file.write_text(render(page), encoding="utf-8")
            print(f"{page.path}: written")
    return status


if __name__ == "__main__":
    sys.exit(main())

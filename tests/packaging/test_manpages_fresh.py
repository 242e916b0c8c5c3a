"""The committed man pages are what argparse-manpage renders from the current parsers.

The distributions install packages/djarchive-client/man/djarchive.1 and
packages/djarchive-admin/man/djarchive-admin.1 as they are (building a package never imports a
parser); tools/manpages.py writes them. Not marked ``packaging``: this runs with the normal suite.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


tool = load_script(ROOT / "tools" / "manpages.py", "djarchive_manpages_tool")


@pytest.mark.parametrize("page", tool.PAGES, ids=lambda page: Path(page.path).name)
def test_committed_man_page_is_what_the_parser_renders(page):
    pytest.importorskip("argparse_manpage.manpage")
    pytest.importorskip(page.parser_module)
    assert page.file.is_file(), f"{page.path} is missing: run {tool.COMMAND}"
    committed = page.file.read_text(encoding="utf-8")
    expected = tool.render(page, tool.committed_date(page))
    # argparse wraps long usage lines differently from one Python version to the next: the words
    # must be the same, the line breaks may differ.
    if committed.split() != expected.split():
        diff = difflib.unified_diff(
            committed.splitlines(), expected.splitlines(), "committed", "rendered now", lineterm="", n=1
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"{page.path} is stale: run `{tool.COMMAND}` where this checkout's packages are installed"
            f" (e.g. .tox/py311-dj2/bin/python tools/manpages.py) and commit the page\n{shown}",
            pytrace=False,
        )


def test_the_pages_name_their_commands_and_carry_no_roff_requests_in_text():
    for page in tool.PAGES:
        text = page.file.read_text(encoding="utf-8")
        title = Path(page.path).stem.upper().replace("-", "\\-")
        assert text.startswith(f'.TH {title} "1" ')
        assert not [line for line in text.splitlines() if line.startswith("'")]

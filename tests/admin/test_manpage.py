"""The djarchive-admin man page comes from the real parser, covers every subcommand, loses no text."""

from __future__ import annotations

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin.parser import build_parser
from tests.helpers import rendered_man_page


def test_man_page_renders_every_subcommand_and_all_its_text(tmp_path):
    manpage = pytest.importorskip("argparse_manpage.manpage")
    page = tmp_path / "djarchive-admin.1"
    page.write_text(str(manpage.Manpage(build_parser(), _data={"project_name": "djarchive-admin"})))
    text = page.read_text()
    for name in ("manifest", "upload", "publish", "retract", "revisions", "sign", "keygen", "completion"):
        assert f"djarchive\\-admin {name}" in text
    assert not [line for line in text.splitlines() if line.startswith("'")]
    rendered = rendered_man_page(page)
    if rendered is not None:
        assert "~DATASET~REVISION~djarchive-manifest.csv, where clients never look" in rendered
        assert "Credentials are required: there are no default ones" in rendered
        assert "--sign-key KEYFILE" in rendered

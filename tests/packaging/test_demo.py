"""What the demo tells a newcomer once it ends. Not marked ``packaging``: this runs with the normal
suite (the demo itself runs with ``tox -e demo``)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load_demo():
    return load_script(ROOT / "demo" / "demo.py", "djarchive_demo")


def test_the_demo_says_how_to_keep_what_its_commands_need(tmp_path):
    demo = _load_demo()
    words = demo.parting_words(tmp_path, kept=False)
    assert f"removed {tmp_path}" in words
    assert "python3 -m tox -e demo -- --keep" in words
    assert demo.parting_words(tmp_path, kept=True) == f"kept {tmp_path}"


def test_the_front_pages_show_how_to_keep_the_demo():
    for page in ("README.rst", "docs/index.md"):
        assert "tox -e demo -- --keep" in (ROOT / page).read_text(encoding="utf-8"), page

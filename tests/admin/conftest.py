"""Fixtures of the admin tests: a source folder and the admin tool pointed at the test archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_tree


@pytest.fixture
def source(tmp_path: Path, seed_files: dict[str, bytes]) -> Path:
    """A SOURCE folder holding the seed files."""
    return write_tree(tmp_path / "source", seed_files)


@pytest.fixture
def admin_tool(archive):
    """The admin tool, configured from the DJARCHIVE_ADMIN_* environment the archive fixture sets."""
    from djarchive_admin import admin

    return admin()

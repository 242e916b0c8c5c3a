"""Fixtures of the client's tests."""

from __future__ import annotations

import pytest

from djarchive_client import files


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the local files hashed from now on, in order: every local file djarchive
    hashes goes through :func:`djarchive_client.files.hash_file` (fetched files are hashed as
    they stream in, not by it)."""
    sizes: list[int] = []
    real = files.hash_file

    def spy(fd: int, known_size: int = -1) -> tuple[int, str]:
        result = real(fd, known_size)
        sizes.append(result[0])
        return result

    monkeypatch.setattr(files, "hash_file", spy)
    return sizes

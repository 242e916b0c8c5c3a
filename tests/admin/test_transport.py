"""Uploads on each transport of bulk bodies: every PUT through libcurl or through minio."""

from __future__ import annotations

import os

import pytest

from djarchive_common import transport
from djarchive_common.store import Store
from tests.helpers import sha256, write_tree

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch) -> None:
    """Forget the choice this process made (it is made once per value asked for)."""
    monkeypatch.setattr(transport, "_chosen", {})


@pytest.mark.parametrize("forced", ["curl", "minio"])
def test_uploads_put_through_the_chosen_transport(archive, tmp_path, monkeypatch, forced):
    """Every object's PUT (the manifest's too) goes through libcurl or through minio, with its
    sha256 stored; a part upload's parts too (create and complete stay on minio)."""
    data = {"a.bin": os.urandom(5000), "big.bin": os.urandom(11 * MiB)}
    source = write_tree(tmp_path / "source", data)
    monkeypatch.setenv("DJARCHIVE_TRANSPORT", forced)
    sent: list[str] = []
    send = Store.send

    def spy(store, request):
        sent.append(request.key + ("#part" if request.query else ""))
        return send(store, request)

    monkeypatch.setattr(Store, "send", spy)
    from djarchive_admin import admin

    admin().upload("ds", "1", source, part_size=5 * MiB)  # made after the variable is set
    for name, content in data.items():
        stored = archive.minio.get_object(archive.bucket, f"ds/1/{name}")
        assert stored.data == content
        assert stored.headers["x-amz-meta-sha256"] == sha256(content)
    if forced == "minio":
        assert sent == []
    else:
        assert "ds/1/a.bin" in sent
        assert sent.count("ds/1/big.bin#part") == 3
        assert "ds/1/djarchive-manifest.csv" in sent

"""The admin package's public surface, pinned so it does not drift."""

from __future__ import annotations

import pytest

pytest.importorskip("djarchive_admin")

import djarchive_admin
from djarchive_admin import DJArchiveAdmin
from djarchive_client import DJArchiveClient
from djarchive_common.catalog import Catalog


def test_public_names():
    assert djarchive_admin.__all__ == [
        "DEFAULT_FILENAME_FILTER",
        "DJArchiveAdmin",
        "DJArchiveError",
        "IntegrityError",
        "ManifestError",
        "MirrorResult",
        "MissingCredentialsError",
        "Overwrite",
        "PartialFailureError",
        "PublishResult",
        "RetractResult",
        "RevisionInfo",
        "RevisionNotFoundError",
        "RevisionPublishedError",
        "SignResult",
        "SignatureError",
        "StoreCheck",
        "UploadSummary",
        "__version__",
        "admin",
        "keygen",
    ]
    for name in djarchive_admin.__all__:
        assert hasattr(djarchive_admin, name), name
    assert djarchive_admin.DEFAULT_FILENAME_FILTER == r"^\."


def test_admin_and_client_are_siblings_over_the_common_catalog():
    assert not issubclass(DJArchiveAdmin, DJArchiveClient)
    assert issubclass(DJArchiveAdmin, Catalog)
    assert issubclass(DJArchiveClient, Catalog)
    assert DJArchiveAdmin.role == "admin"
    for method in (
        "write_manifest",
        "upload",
        "publish",
        "retract",
        "revisions",
        "revision_details",
        "revision_info",
    ):
        assert callable(getattr(DJArchiveAdmin, method)), method
    for shared in ("datasets", "files", "manifest"):
        assert getattr(DJArchiveAdmin, shared) is getattr(DJArchiveClient, shared) is getattr(Catalog, shared)


def test_settings_resolved_for_the_admin_role(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_BUCKET", "client-bucket")
    monkeypatch.setenv("DJARCHIVE_ADMIN_BUCKET", "admin-bucket")
    monkeypatch.setenv("DJARCHIVE_ADMIN_ENDPOINT", "http://127.0.0.1:9")
    tool = djarchive_admin.admin()
    assert (tool.settings.role, tool.bucket, tool.endpoint, tool.settings.secure) == (
        "admin",
        "admin-bucket",
        "127.0.0.1:9",
        False,
    )
    assert tool.settings.anonymous

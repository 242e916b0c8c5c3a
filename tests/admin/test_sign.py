"""Curators sign: keygen, signing at publish (before the manifest), signing a published revision,
several signatures, and no stale signature left by a forced republish."""

from __future__ import annotations

import json
import os
import stat

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_client import client
from djarchive_common.errors import ConfigurationError, RevisionNotFoundError, SignatureError
from djarchive_common.signing import parse_signatures
from tests.admin.support import DATASET, REVISION, revision_keys
from tests.helpers import read_tree, sha256, write_tree
from tests.helpers import run_admin as run

SIG = f"{DATASET}/{REVISION}/djarchive-manifest.sig"
MANIFEST = f"{DATASET}/{REVISION}/djarchive-manifest.csv"
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture
def keys(tmp_path, capsys):
    """Two curators' key pairs made with the CLI: {name: (private key path, public key line)}."""
    found = {}
    for name in ("alice", "bob"):
        code, out, _ = run(capsys, "keygen", str(tmp_path / f"{name}.key"))
        assert code == 0
        found[name] = (str(tmp_path / f"{name}.key"), out.strip())
    return found


def signers(archive) -> list[str]:
    """The key ids of the signatures stored for DATASET REVISION."""
    return [entry.statement.key_id for entry in parse_signatures(archive.get(SIG))]


def key_id(line: str) -> str:
    from djarchive_common.signing import parse_public_key

    return parse_public_key(line).key_id


# -- keygen ----------------------------------------------------------------------------------


@POSIX
def test_keygen_command(capsys, tmp_path, archive):
    code, out, err = run(capsys, "keygen", str(tmp_path / "k"))
    assert code == 0
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    line = out.strip()
    assert out.count("\n") == 1
    assert line.startswith("djarchive-ed25519 ")
    assert line in (tmp_path / "k.pub").read_text().splitlines()
    assert f"key id {key_id(line)}" in err
    assert archive.keys() == []  # no store is contacted
    before = (tmp_path / "k").read_bytes()
    code, out, err = run(capsys, "keygen", str(tmp_path / "k"))
    assert (code, out) == (1, "")
    assert (
        err
        == f"djarchive-admin: error: {tmp_path / 'k'} already exists: not overwritten (choose another name)\n"
    )
    assert (tmp_path / "k").read_bytes() == before
    code, out, _ = run(capsys, "keygen", str(tmp_path / "j"), "--json")
    document = json.loads(out)
    assert document["key_id"] == key_id(document["public_key"])
    assert document["public_key_file"] == str(tmp_path / "j.pub")


@POSIX
def test_a_readable_key_is_refused_before_anything_is_uploaded(archive, keys, source, capsys):
    os.chmod(keys["alice"][0], 0o644)
    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source), "--sign-key", keys["alice"][0])
    assert (code, out) == (2, "")  # invalid configuration
    assert err.count("\n") == 1
    assert "are too open: others may read it; restrict it with: chmod 600" in err
    assert archive.keys() == []


# -- signing at publish ----------------------------------------------------------------------


def test_upload_signs_before_the_manifest_is_written(
    archive, admin_tool, keys, source, seed_files, monkeypatch
):
    from djarchive_common.store import Store

    writes, real_put = [], Store.put_bytes

    def spy(self, key, data, metadata=None):
        writes.append(key)
        return real_put(self, key, data, metadata)

    monkeypatch.setattr(Store, "put_bytes", spy)
    summary = admin_tool.upload(DATASET, REVISION, source, sign_key=keys["alice"][0])
    assert writes.index(SIG) == writes.index(MANIFEST) - 1
    assert summary.signed_by == key_id(keys["alice"][1])
    assert summary.to_dict()["signed_by"] == summary.signed_by
    assert str(summary).endswith(f"; published, signed with key {summary.signed_by}")
    # the prefix holds the data, the manifest and its signatures: nothing else, and publish accepts it
    assert archive.keys() == sorted([*revision_keys(DATASET, REVISION, seed_files), SIG])
    statement = parse_signatures(archive.get(SIG))[0].statement
    assert (statement.dataset, statement.revision) == (DATASET, REVISION)
    assert statement.manifest_sha256 == sha256(archive.get(MANIFEST))
    status = client(trusted_keys=[keys["alice"][1]]).signature(DATASET, REVISION)
    assert (status.status, status.signer) == ("valid", summary.signed_by)


def test_publish_with_a_key_from_the_environment(archive, admin_tool, keys, source, monkeypatch, capsys):
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    monkeypatch.setenv("DJARCHIVE_ADMIN_SIGN_KEY", keys["bob"][0])
    code, out, err = run(capsys, "publish", DATASET, REVISION)
    assert (code, err) == (0, "")
    assert out.strip().endswith(f"signed with key {key_id(keys['bob'][1])}")
    assert signers(archive) == [key_id(keys["bob"][1])]


def test_sign_key_goes_to_publish_not_to_an_upload_that_does_not_publish(archive, admin_tool, keys, source):
    with pytest.raises(ConfigurationError, match="a revision is signed as it is published"):
        admin_tool.upload(DATASET, REVISION, source, publish=False, sign_key=keys["alice"][0])
    assert archive.keys() == []


def test_unsigned_publish_writes_no_signatures(archive, admin_tool, source, seed_files):
    summary = admin_tool.upload(DATASET, REVISION, source)
    assert summary.signed_by is None
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


# -- signing a published revision ----------------------------------------------------------


def test_sign_adds_a_key_and_replaces_the_same_key(archive, admin_tool, keys, source, capsys):
    admin_tool.upload(DATASET, REVISION, source, sign_key=keys["alice"][0])
    manifest = archive.get(MANIFEST)
    alice, bob = key_id(keys["alice"][1]), key_id(keys["bob"][1])

    code, out, err = run(capsys, "sign", DATASET, REVISION, "--sign-key", keys["bob"][0])
    assert (code, err) == (0, "")
    assert out.startswith(f"signed {DATASET} {REVISION} with key {bob} (manifest sha256 {sha256(manifest)})")
    assert out.rstrip().endswith(f"also signed by {alice}")
    assert signers(archive) == [alice, bob]

    result = admin_tool.sign(DATASET, REVISION, sign_key=keys["alice"][0])
    assert result.replaced
    assert result.key_ids == (alice, bob)
    entries = parse_signatures(archive.get(SIG))
    assert [entry.statement.key_id for entry in entries] == [alice, bob]  # replaced in its place
    assert archive.get(MANIFEST) == manifest  # signing never changes the manifest
    for line in (keys["alice"][1], keys["bob"][1]):
        assert client(trusted_keys=[line]).signature(DATASET, REVISION).valid


def test_sign_an_unsigned_legacy_revision(archive, admin_tool, keys, seed_files):
    archive.publish(DATASET, REVISION, seed_files)  # as the original tool left it: no sha256 check needed
    result = admin_tool.sign(DATASET, REVISION, sign_key=keys["alice"][0])
    assert result.key_ids == (key_id(keys["alice"][1]),)
    assert client(trusted_keys=keys["alice"][1]).signature(DATASET, REVISION).valid


def test_sign_needs_a_key_and_a_published_revision(archive, admin_tool, keys, source, capsys):
    with pytest.raises(ConfigurationError, match="no signing key: give sign_key=KEYFILE, or set"):
        admin_tool.sign(DATASET, REVISION)
    code, _, err = run(capsys, "sign", DATASET, REVISION)
    assert code == 2
    assert err.startswith("djarchive-admin: error: no signing key: give --sign-key KEYFILE, or set")
    with pytest.raises(RevisionNotFoundError, match="is not published"):
        admin_tool.sign(DATASET, REVISION, sign_key=keys["alice"][0])
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    with pytest.raises(RevisionNotFoundError, match="nothing to sign"):
        admin_tool.sign(DATASET, REVISION, sign_key=keys["alice"][0])
    assert SIG not in archive.keys()


# -- republishing, retracting, purging -----------------------------------------------------


def test_forced_republish_with_other_content_drops_old_signatures(
    archive, admin_tool, keys, source, tmp_path
):
    admin_tool.upload(DATASET, REVISION, source, sign_key=keys["alice"][0])
    admin_tool.sign(DATASET, REVISION, sign_key=keys["bob"][0])
    changed = write_tree(tmp_path / "changed", {**read_tree(source), "root.dat": b"new content"})

    summary = admin_tool.upload(DATASET, REVISION, changed, force=True)  # not signed
    assert summary.signed_by is None
    assert SIG not in archive.keys()  # neither old signature fits the new manifest
    with pytest.raises(SignatureError, match="not signed") as caught:
        client(trusted_keys=keys["alice"][1]).files(DATASET, REVISION)
    assert caught.value.reason == "missing"

    admin_tool.upload(DATASET, REVISION, source, force=True, sign_key=keys["alice"][0])
    admin_tool.sign(DATASET, REVISION, sign_key=keys["bob"][0])
    admin_tool.upload(DATASET, REVISION, changed, force=True, sign_key=keys["bob"][0])  # re-signed by bob
    assert signers(archive) == [key_id(keys["bob"][1])]  # alice's signature of the old content is gone
    with pytest.raises(SignatureError, match="signed only by untrusted key") as caught:
        client(trusted_keys=keys["alice"][1]).files(DATASET, REVISION)
    assert caught.value.reason == "untrusted-key"
    assert client(trusted_keys=keys["bob"][1]).signature(DATASET, REVISION).valid


def test_forced_upload_of_identical_content_keeps_or_adds_signatures(archive, admin_tool, keys, source):
    admin_tool.upload(DATASET, REVISION, source, sign_key=keys["alice"][0])
    admin_tool.upload(DATASET, REVISION, source, force=True)  # nothing changes: the signature still fits
    assert signers(archive) == [key_id(keys["alice"][1])]
    summary = admin_tool.upload(DATASET, REVISION, source, force=True, sign_key=keys["bob"][0])
    assert summary.signed_by == key_id(keys["bob"][1])
    assert signers(archive) == [key_id(keys["alice"][1]), key_id(keys["bob"][1])]


def test_retract_then_publish_keeps_the_signature_and_purge_deletes_it(archive, admin_tool, keys, source):
    admin_tool.upload(DATASET, REVISION, source, sign_key=keys["alice"][0])
    admin_tool.retract(DATASET, REVISION)
    assert SIG in archive.keys()  # hidden with its revision: clients see no manifest
    result = admin_tool.publish(DATASET, REVISION)  # the same manifest: its signature still fits
    assert result.signed_by is None
    assert client(trusted_keys=keys["alice"][1]).signature(DATASET, REVISION).valid
    admin_tool.retract(DATASET, REVISION, purge=True)
    assert archive.keys() == []


def test_a_manifest_may_not_list_the_signatures_file(admin_tool, tmp_path):
    from djarchive_common.errors import InvalidNameError

    source = write_tree(tmp_path / "s", {"djarchive-manifest.sig": b"x", "a.dat": b"a"})
    with pytest.raises(
        InvalidNameError, match=r"djarchive-manifest\.sig is reserved for djarchive's own use"
    ):
        admin_tool.upload(DATASET, REVISION, source)

"""What the admin does on the server it finds: the probe and ``doctor``, the refusal to write where
conditional writes are ignored (s3rver) unless the curator is the only writer, and the proof of a
revision's content before it is published. Every test here runs against moto and against s3rver
(``DJARCHIVE_TEST_SERVER=s3rver``), asserting what each server does."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_admin.probe import server_support
from djarchive_client import client
from djarchive_common.errors import IntegrityError, UnsafeServerError
from djarchive_common.store import Store
from tests.admin.support import DATASET, REVISION, revision_keys
from tests.helpers import read_tree, sha256
from tests.helpers import run_admin as run

REFUSAL = re.compile(
    r"djarchive-admin: error: http://127\.0\.0\.1:\d+/\S+ ignores conditional writes "
    r"\(If-None-Match/If-Match\), so djarchive-admin cannot keep two curators from writing one revision "
    r"at once; nothing was written: if you are the only writer, pass --single-writer "
    r"\(or set DJARCHIVE_ADMIN_SINGLE_WRITER=1\); see docs/servers\.md"
)
DOCTOR_LINES = ("conditional writes: ", "checksums: ", "multipart: ", "ranged reads: ", "listing v2: ")


@pytest.fixture
def several_writers(archive, monkeypatch):
    """The archive with no declaration of a single writer (the fixture makes one on s3rver)."""
    monkeypatch.delenv("DJARCHIVE_ADMIN_SINGLE_WRITER", raising=False)
    archive.admin_env.pop("DJARCHIVE_ADMIN_SINGLE_WRITER", None)
    return archive


# -- the probe and doctor ------------------------------------------------------------------------------


def test_doctor_reports_what_the_server_supports_one_line_each(archive, capsys):
    code, out, err = run(capsys, "doctor")
    assert (code, err) == (0, "")
    server, *lines = out.splitlines()
    assert server == f"server: {archive.server.url}/{archive.bucket}"
    assert [line.split(": ", 1)[0] + ": " for line in lines] == list(DOCTOR_LINES)
    if archive.server.conditional_writes:
        assert lines[0].startswith("conditional writes: yes (If-None-Match: * and If-Match answered 412)")
    else:  # s3rver
        assert lines[0] == (
            "conditional writes: NO (If-None-Match: * and If-Match ignored): concurrent curators cannot be "
            "kept apart; writing needs --single-writer (see docs/servers.md)"
        )
    if archive.server.kind in ("moto", "s3rver"):  # neither checks a digest; both answer with MD5 ETags
        assert lines[1] == (
            "checksums: not checked (a body that does not match its sha256 is accepted; ETags are MD5s of "
            "the content, which every upload compares)"
        )
    assert lines[2:] == ["multipart: yes, with per-part checksums", "ranged reads: yes", "listing v2: yes"]
    assert archive.keys() == []  # the probe objects are gone

    code, out, _ = run(capsys, "doctor", "--json")
    found = json.loads(out)
    assert found["conditional_writes"] is archive.server.conditional_writes
    assert found["url"] == f"{archive.server.url}/{archive.bucket}"
    assert {"multipart", "ranged_reads", "listing_v2", "checksum_checked", "payload_checked"} <= set(found)


def test_the_server_is_probed_once_per_process(archive, source, monkeypatch):
    asked = []
    original = Store.ask
    monkeypatch.setattr(Store, "ask", lambda self, *a, **k: (asked.append(a), original(self, *a, **k))[1])
    tool = admin()
    tool.upload(DATASET, REVISION, source, publish=False)
    probes = len(asked)
    assert probes > 0
    tool.publish(DATASET, REVISION)
    admin().retract(DATASET, REVISION)  # another admin object on the same endpoint and bucket
    assert len(asked) == probes
    assert server_support(tool.store) is server_support(admin().store)


# -- refusing to write ------------------------------------------------------------------------------


def test_writing_where_conditional_writes_are_ignored_is_refused_in_one_line(
    several_writers, source, capsys, tmp_path
):
    archive = several_writers
    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source))
    if archive.server.conditional_writes:  # moto keeps curators apart: nothing to declare
        assert (code, err) == (0, "")
        return
    assert (code, out) == (2, "")
    assert REFUSAL.fullmatch(err.rstrip("\n")), err
    assert archive.keys() == []  # not even a lease
    key = tmp_path / "curator.key"
    assert run(capsys, "keygen", str(key))[0] == 0
    for argv in (
        ["publish", DATASET, REVISION],
        ["retract", DATASET, REVISION],
        ["retract", DATASET, REVISION, "--purge", "--yes"],
        ["sign", DATASET, REVISION, "--sign-key", str(key)],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert REFUSAL.fullmatch(err.rstrip("\n")), (argv, err)
    with pytest.raises(UnsafeServerError, match="ignores conditional writes"):
        admin().upload(DATASET, REVISION, source)
    assert archive.keys() == []


@pytest.mark.parametrize("how", ["flag", "environment", "datajoint"])
def test_the_only_writer_may_write_anywhere(
    several_writers, source, seed_files, capsys, monkeypatch, how, tmp_path
):
    archive = several_writers
    argv = ["upload", DATASET, REVISION, str(source)]
    if how == "flag":
        argv.append("--single-writer")
    elif how == "environment":
        monkeypatch.setenv("DJARCHIVE_ADMIN_SINGLE_WRITER", "1")
    else:
        (tmp_path / "cwd" / "dj_local_conf.json").write_text(
            json.dumps({"custom": {"djarchive.admin.single_writer": True}})
        )
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert out.rstrip().endswith("; published")
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)
    target = tmp_path / "copy"
    client().download(DATASET, REVISION, target, create_target=True)
    assert read_tree(target) == seed_files


def test_a_declared_single_writer_still_respects_a_live_lease(archive, source, monkeypatch):
    """On any server, a writer that starts while another holds the revision's lease is refused."""
    from djarchive_admin.lease import RevisionLease
    from djarchive_common.errors import LockedError

    tool = admin(single_writer=True)
    support = server_support(tool.store)
    held = RevisionLease(tool.store, DATASET, REVISION, conditional=support.conditional_writes)
    with held, pytest.raises(LockedError, match="is being changed by another djarchive-admin"):
        tool.upload(DATASET, REVISION, source)
    assert [key for key in archive.keys() if not key.startswith(".djarchive~locks~")] == []


# -- publishing proves the revision ---------------------------------------------------------------------


def test_an_object_replaced_before_publish_stops_it_naming_the_object(
    archive, source, seed_files, monkeypatch
):
    """Another writer replaces an object with other content of the same size, and even the same
    sha256 metadata, between this upload's send and its publish: the ETag this upload recorded
    differs, and the publish stops naming it."""
    import djarchive_admin.upload as upload_module

    forged = bytes(len(seed_files["sub/sub.dat"]))
    real = upload_module.publish_revision

    def replace_then_publish(*args, **kwargs):
        archive.put(
            f"{DATASET}/{REVISION}/sub/sub.dat", forged, {"sha256": sha256(seed_files["sub/sub.dat"])}
        )
        return real(*args, **kwargs)

    monkeypatch.setattr(upload_module, "publish_revision", replace_then_publish)
    with pytest.raises(IntegrityError) as caught:
        admin().upload(DATASET, REVISION, source)
    message = str(caught.value)
    assert message.startswith(
        f"cannot publish {DATASET} {REVISION}: 1 stored object does not match the manifest: "
    )
    assert "sub/sub.dat (replaced by another writer: ETag " in message
    assert "\n" not in message
    assert f"{DATASET}/{REVISION}/djarchive-manifest.csv" not in archive.keys()


def test_a_later_publish_reads_back_what_it_cannot_prove_otherwise(archive, source, seed_files):
    """A publish run later has no ETags of its own: an object whose content is not what the manifest
    says is found by the server's checked checksum, or by reading it back (moto, s3rver)."""
    admin().upload(DATASET, REVISION, source, publish=False)
    damaged = bytearray(seed_files["root2.dat"])
    damaged[100] ^= 0xFF
    archive.put(
        f"{DATASET}/{REVISION}/root2.dat", bytes(damaged), {"sha256": sha256(seed_files["root2.dat"])}
    )
    with pytest.raises(IntegrityError) as caught:
        admin().publish(DATASET, REVISION)
    assert str(caught.value) == (
        f"cannot publish {DATASET} {REVISION}: 1 stored object does not match the manifest: root2.dat (its "
        f"content has sha256 {hashlib.sha256(damaged).hexdigest()}, the manifest says "
        f"{sha256(seed_files['root2.dat'])}) (deleted, to be sent again); run the upload again to complete it"
    )
    assert f"{DATASET}/{REVISION}/root2.dat" not in archive.keys()
    admin().upload(DATASET, REVISION, source)  # the damaged object is sent again
    target = source.parent / "copy"
    client().download(DATASET, REVISION, target, create_target=True)
    assert read_tree(target) == seed_files


def test_the_manifest_is_read_back_after_it_is_written(archive, source, monkeypatch):
    """Another writer's manifest lands right after this publish's: the publish does not claim success."""
    key = f"{DATASET}/{REVISION}/djarchive-manifest.csv"
    original = Store.put_bytes

    def put_then_overwrite(self, name, data, metadata=None):
        written = original(self, name, data, metadata)
        if name == key:
            archive.put(key, b'"1","' + b"0" * 64 + b'","other.bin"\n')
        return written

    monkeypatch.setattr(Store, "put_bytes", put_then_overwrite)
    with pytest.raises(
        IntegrityError, match=rf"^{DATASET} {REVISION}: the manifest read back after publishing "
    ):
        admin().upload(DATASET, REVISION, source)

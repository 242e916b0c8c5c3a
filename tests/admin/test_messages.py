"""What a curator reads from ``djarchive-admin`` (issues 24 and 26): untrusted names escaped (a
lease's holder, stray objects), and clear words for the usual mistakes (a public key given to
sign with, a successor that is not published, a key in a folder that does not exist yet)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_common.errors import RevisionNotFoundError
from djarchive_common.layout import lock_key
from tests.admin.support import DATASET, REVISION
from tests.helpers import assert_safe
from tests.helpers import run_admin as run


def test_a_lease_holder_from_the_bucket_is_printed_escaped(archive, capsys, source):
    holder = {
        "token": "theirs",
        "host": "evil\x1b]0;pwned\x07\r\ndjarchive-admin: published, all good",
        "pid": 1,
        "since": "2026-01-01T00:00:00+00:00",
        "heartbeat": time.time(),
    }
    archive.put(lock_key(DATASET, REVISION), json.dumps(holder).encode())

    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source))
    assert code == 1
    assert_safe(out, err)
    assert err.count("\n") == 1
    assert "on evil\\x1b]0;pwned\\x07\\r\\ndjarchive-admin: published, all good" in err

    code, out, err = run(capsys, "break-lease", DATASET, REVISION)  # no terminal: refused
    assert code == 1
    assert_safe(out, err)
    assert err.count("\n") == 1


def test_stray_object_names_are_printed_escaped(archive, admin_tool, capsys, source):
    admin_tool.upload(DATASET, REVISION, source, publish=False)
    # a key with a line feed is more than the test server takes; a carriage return does as well
    archive.put(f"{DATASET}/{REVISION}/stray\x1b]0;pwned\x07\rdjarchive-admin: published\u202e", b"x")

    code, out, err = run(capsys, "publish", DATASET, REVISION)

    assert code == 1
    assert_safe(out, err)
    assert err.count("\n") == 1
    if archive.server.kind == "s3rver":  # it lists the key raw in XML that no parser takes: publish
        assert "unreadable answer" in err  # stops at the listing, without the name
    else:
        assert "stray\\x1b]0;pwned\\x07\\rdjarchive-admin: published\\u202e" in err


def test_keygen_creates_the_keys_folder_privately(capsys, tmp_path):
    keyfile = tmp_path / "home" / ".djarchive" / "curator.key"

    code, out, err = run(capsys, "keygen", str(keyfile))

    assert code == 0
    assert out.startswith("djarchive-ed25519 ")
    assert keyfile.is_file()
    if os.name != "nt":
        assert stat.S_IMODE(keyfile.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert err.startswith(f"djarchive-admin: wrote the private key to {keyfile}")


def test_signing_with_the_public_key_says_so(archive, capsys, tmp_path):
    run(capsys, "keygen", str(tmp_path / "keys" / "curator.key"))
    public = tmp_path / "keys" / "curator.key.pub"

    code, _, err = run(capsys, "sign", DATASET, REVISION, "--sign-key", str(public))

    assert code == 2
    assert err == (
        f"djarchive-admin: error: {str(public)!r} is a public key, the half researchers trust: sign with "
        f"the private key ({tmp_path / 'keys' / 'curator.key'})\n"
    )


def test_a_successor_must_be_published_unless_forced(archive, admin_tool, capsys, source):
    admin_tool.upload(DATASET, REVISION, source)

    code, _, err = run(capsys, "retract", DATASET, REVISION, "--superseded-by", "099")
    assert code == 1
    assert err == (
        f"djarchive-admin: error: {DATASET} 099 is not published, so it cannot supersede {REVISION} "
        "(name it anyway with --force, e.g. before publishing it)\n"
    )
    assert run(capsys, "retract", DATASET, REVISION, "--superseded-by", REVISION)[0] == 1
    with pytest.raises(RevisionNotFoundError, match=r"\(name it anyway with force=True"):
        admin_tool.retract(DATASET, REVISION, superseded_by="099")

    code, out, _ = run(capsys, "retract", DATASET, REVISION, "--superseded-by", "099", "--force")
    assert code == 0
    assert out.startswith(f"retracted {DATASET} {REVISION}")


def test_an_interrupted_upload_says_that_running_it_again_resumes(archive, capsys, monkeypatch, source):
    from djarchive_admin.archive import DJArchiveAdmin

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(DJArchiveAdmin, "upload", interrupted)
    code, _, err = run(capsys, "upload", DATASET, REVISION, str(source))
    assert code == 130
    assert err == "djarchive-admin: interrupted: run the same upload again to resume\n"

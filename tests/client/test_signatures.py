"""Researchers verify: a tamper corpus against a signed revision, each case refused in one line with
nothing written in TARGET (and, as a control, written without the check); the untampered revision
passes; and with no keys configured everything works as before, the status only reported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from djarchive_client import client
from djarchive_common import signing
from djarchive_common.errors import ConfigurationError, SignatureError
from djarchive_common.signing import SigningKey, generate_key, signatures_bytes
from tests.helpers import manifest_bytes, read_tree
from tests.helpers import run_client as run

SIG = "some-set/000/djarchive-manifest.sig"
MANIFEST = "some-set/000/djarchive-manifest.csv"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, SigningKey]:
    """alice and bob are curators (trusted); mallory is not."""
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("alice", "bob", "mallory"):
        generate_key(folder / name)
        found[name] = SigningKey.load(folder / name)
    return found


def line(key: SigningKey) -> str:
    return key.public.line


def sign(archive, dataset: str, revision: str, *by: SigningKey) -> None:
    """Sign a revision as it is stored, the way djarchive-admin does."""
    manifest = archive.get(f"{dataset}/{revision}/djarchive-manifest.csv")
    entries = [key.sign(dataset, revision, manifest) for key in by]
    archive.put(f"{dataset}/{revision}/djarchive-manifest.sig", signatures_bytes(entries))


@pytest.fixture
def signed(archive, seed_files, keys):
    """some-set 000 signed by alice; some-set 001 (000 without one file) and other-set 000 (one of
    000's files) signed by alice too: what an attacker could copy over some-set 000."""
    older = {name: data for name, data in seed_files.items() if name != "root2.dat"}
    archive.publish("some-set", "000", seed_files)
    archive.publish("some-set", "001", older)
    archive.publish("other-set", "000", {"root.dat": seed_files["root.dat"]})
    for dataset, revision in (("some-set", "000"), ("some-set", "001"), ("other-set", "000")):
        sign(archive, dataset, revision, keys["alice"])
    archive.older = older
    return archive


# -- the tamper corpus ---------------------------------------------------------------------


def one_byte_in_the_manifest(archive, keys):
    data = bytearray(archive.get(MANIFEST))
    position = data.index(b'","') + 3  # the first sha256's first hex digit
    data[position] = ord("0") if data[position] != ord("0") else ord("1")
    archive.put(MANIFEST, bytes(data))


def a_file_and_its_manifest_line_replaced(archive, keys):
    files = read_stored(archive)
    files["root.dat"] = b"malicious content"
    archive.publish("some-set", "000", files)  # data and manifest; the signature left as it was


def read_stored(archive) -> dict[str, bytes]:
    from djarchive_common.manifest import parse_manifest

    return {
        entry.subpath: archive.get(f"some-set/000/{entry.subpath}")
        for entry in parse_manifest(archive.get(MANIFEST))
    }


def copied_from_another_revision(archive, keys):
    for name in ("djarchive-manifest.csv", "djarchive-manifest.sig"):
        archive.put(f"some-set/000/{name}", archive.get(f"some-set/001/{name}"))


def copied_from_another_dataset(archive, keys):
    for name in ("djarchive-manifest.csv", "djarchive-manifest.sig"):
        archive.put(f"some-set/000/{name}", archive.get(f"other-set/000/{name}"))


def tampered_and_signed_by_an_untrusted_key(archive, keys):
    a_file_and_its_manifest_line_replaced(archive, keys)
    sign(archive, "some-set", "000", keys["mallory"])


def signed_only_by_a_revoked_key(archive, keys):
    sign(archive, "some-set", "000", keys["bob"])  # bob is trusted, and revoked below


def signature_stripped(archive, keys):
    archive.remove(SIG)


def signature_truncated(archive, keys):
    archive.put(SIG, archive.get(SIG)[:100])


def signature_garbage(archive, keys):
    archive.put(SIG, bytes(range(256)) * 4)


def signature_empty(archive, keys):
    archive.put(SIG, b"")


def _edit_statement(archive, change: Callable[[dict], None]) -> None:
    document = json.loads(archive.get(SIG))
    change(document["signatures"][0]["statement"])
    archive.put(SIG, json.dumps(document).encode())


def statement_with_an_extra_field(archive, keys):
    _edit_statement(archive, lambda statement: statement.update(bucket="mirror"))


def statement_with_duplicate_keys(archive, keys):
    text = archive.get(SIG).decode()  # a naive reader would take the last revision
    archive.put(SIG, text.replace('"revision": "000"', '"revision": "001", "revision": "000"').encode())


def statement_altered_after_signing(archive, keys):
    _edit_statement(archive, lambda statement: statement.update(signed_at="2001-01-01T00:00:00Z"))


def signature_by_another_key_under_a_trusted_key_id(archive, keys):
    tampered_and_signed_by_an_untrusted_key(archive, keys)
    _edit_statement(archive, lambda statement: statement.update(key_id=keys["alice"].key_id))


def old_signature_after_a_forced_republish(archive, keys):
    old = archive.get(SIG)
    a_file_and_its_manifest_line_replaced(archive, keys)  # republished with other content ...
    archive.put(SIG, old)  # ... and the signature of the old content put back


CORPUS = [
    (one_byte_in_the_manifest, "digest-mismatch", "it changed after it was signed"),
    (a_file_and_its_manifest_line_replaced, "digest-mismatch", "it changed after it was signed"),
    (copied_from_another_revision, "other-revision", "is for some-set 001, not some-set 000"),
    (copied_from_another_dataset, "other-revision", "is for other-set 000, not some-set 000"),
    (tampered_and_signed_by_an_untrusted_key, "untrusted-key", "signed only by untrusted key"),
    (signed_only_by_a_revoked_key, "revoked-key", "which is revoked"),
    (signature_stripped, "missing", "not signed (no djarchive-manifest.sig)"),
    (signature_truncated, "malformed", "djarchive-manifest.sig in http://127.0.0.1"),
    (signature_garbage, "malformed", ": not UTF-8"),
    (signature_empty, "malformed", ": not valid JSON"),
    (statement_with_an_extra_field, "malformed", "unexpected field 'bucket'"),
    (statement_with_duplicate_keys, "malformed", "duplicate JSON key 'revision'"),
    (statement_altered_after_signing, "bad-signature", "bad signature by key"),
    (signature_by_another_key_under_a_trusted_key_id, "bad-signature", "bad signature by key"),
    (old_signature_after_a_forced_republish, "digest-mismatch", "it changed after it was signed"),
]


@pytest.mark.parametrize(("tamper", "reason", "words"), CORPUS, ids=[case[0].__name__ for case in CORPUS])
def test_tampered_revision_is_refused_and_nothing_is_written(
    signed, keys, tamper, reason, words, capsys, tmp_path, monkeypatch
):
    tamper(signed, keys)
    trust = ["--trust", line(keys["alice"]), "--trust", line(keys["bob"]), "--revoke", keys["bob"].key_id]
    target = tmp_path / "target"
    prefix = "djarchive: error: signature check failed for some-set 000: "

    for argv in (
        ["download", "some-set", "000", str(target), *trust],
        ["download", "some-set", "000", str(target), "--dry-run", *trust],
        ["files", "some-set", "000", *trust],
        ["verify", "some-set", "000", str(target), *trust],
        ["signature", "some-set", "000", *trust],
        ["--json", "download", "some-set", "000", str(target), *trust],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.count("\n") == 1, err
        assert err.startswith(prefix), err
        assert words in err
        if "--json" in argv:
            assert json.loads(out) == {
                "error": err[len("djarchive: error: ") :].strip(),
                "type": "SignatureError",
            }
        else:
            assert out == ""
        assert not target.exists()  # nothing written: not even TARGET

    with pytest.raises(SignatureError) as caught:
        client(
            trusted_keys=[line(keys["alice"]), line(keys["bob"])], revoked_keys=[line(keys["bob"])]
        ).download("some-set", "000", target, create_target=True)
    assert caught.value.reason == reason
    assert not target.exists()

    # The control: without the check, the same tampered revision does get written into TARGET.
    monkeypatch.setattr(
        signing, "check_signatures", lambda *args, **kwargs: signing.SignatureStatus("unsigned")
    )
    run(capsys, "download", "some-set", "000", str(target), *trust)
    assert read_tree(target)


def test_refusal_with_trust_from_the_environment(signed, keys, capsys, tmp_path, monkeypatch):
    signature_stripped(signed, keys)
    trusted = tmp_path / "trusted-keys"
    trusted.write_text(f"# the archive's curators\n{line(keys['alice'])}\n")
    monkeypatch.setenv("DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE", str(trusted))
    code, out, err = run(capsys, "download", "some-set", "000", str(tmp_path / "t"))
    assert (code, out) == (1, "")
    assert err.startswith("djarchive: error: signature check failed for some-set 000: not signed")
    assert f"trusted: {keys['alice'].key_id} from DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE" in err
    assert not (tmp_path / "t").exists()


def test_revocation_from_the_environment_beats_trust_on_the_command_line(signed, keys, capsys, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_REVOKED_KEYS", line(keys["alice"]))
    code, _, err = run(capsys, "files", "some-set", "000", "--trust", line(keys["alice"]))
    assert code == 1
    assert "which is revoked" in err


# -- the untampered revision -----------------------------------------------------------------


def test_untampered_revision_passes_with_trusted_keys(
    signed, keys, seed_files, capsys, tmp_path, monkeypatch
):
    trust = ["--trust", line(keys["mallory"]), "--trust", line(keys["alice"])]
    target = tmp_path / "target"
    code, out, err = run(capsys, "download", "some-set", "000", str(target), *trust, "--require-signature")
    assert (code, err) == (0, "")
    first, summary = out.splitlines()
    assert first.startswith(f"some-set 000: signed by trusted key {keys['alice'].key_id} at ")
    assert summary.startswith("some-set 000: 6 files")
    assert read_tree(target) == seed_files

    code, out, _ = run(capsys, "--json", "verify", "some-set", "000", str(target), *trust)
    report = json.loads(out)
    assert (code, report["intact"], report["signature"]["status"]) == (0, True, "valid")
    assert report["signature"]["signer"] == keys["alice"].key_id

    monkeypatch.setenv("DJARCHIVE_CLIENT_TRUSTED_KEYS", f"{line(keys['bob'])},{line(keys['alice'])}")
    code, out, err = run(capsys, "files", "some-set", "000")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == len(seed_files)  # plain output unchanged: it pipes
    summary = client().download("some-set", "000", target)
    assert summary.signature.valid
    assert summary.signature.signer == keys["alice"].key_id  # what a receipt records
    assert summary.to_dict()["signature"]["signer"] == keys["alice"].key_id
    code, out, _ = run(capsys, "--json", "signature", "some-set", "000")
    assert json.loads(out)["status"] == "valid"


def test_a_signature_by_any_trusted_key_suffices(signed, keys, capsys):
    sign(signed, "some-set", "000", keys["mallory"], keys["bob"])
    code, _, err = run(capsys, "files", "some-set", "000", "--trust", line(keys["bob"]))
    assert (code, err) == (0, "")


# -- no keys configured: as before, the status reported --------------------------------------


def test_without_keys_downloads_work_as_before(signed, keys, seed_files, capsys, tmp_path):
    code, out, err = run(capsys, "download", "some-set", "000", str(tmp_path / "a"))
    assert (code, err) == (0, "")
    assert out.startswith("some-set 000: 6 files")  # the summary line alone, as before
    assert read_tree(tmp_path / "a") == seed_files
    code, out, _ = run(capsys, "--json", "files", "some-set", "000")
    assert [entry["path"] for entry in json.loads(out)] == sorted(seed_files)  # still a list of files

    summary = client().download("some-set", "000", tmp_path / "a")
    assert summary.signature.status == "unverified"
    assert summary.signature.key_ids == (keys["alice"].key_id,)
    assert summary.signature.signer is None
    code, out, _ = run(capsys, "signature", "some-set", "000")
    assert (
        out
        == f"some-set 000: signed by key {keys['alice'].key_id}, not verified (no trusted keys configured)\n"
    )


def test_without_keys_an_unsigned_revision_reports_unsigned(archive, seed_files, capsys, tmp_path):
    archive.publish("plain", "1", seed_files)
    code, out, err = run(capsys, "--json", "download", "plain", "1", str(tmp_path / "p"))
    assert (code, err) == (0, "")
    assert json.loads(out)["signature"] == {
        "status": "unsigned",
        "signer": None,
        "signed_at": None,
        "key_ids": [],
        "reason": None,
        "detail": None,
    }
    assert client().verify("plain", "1", tmp_path / "p").signature.status == "unsigned"


def test_without_keys_a_tampered_revision_is_downloaded_with_a_warning(signed, keys, capsys, tmp_path):
    a_file_and_its_manifest_line_replaced(signed, keys)
    code, _, err = run(capsys, "download", "some-set", "000", str(tmp_path / "t"))
    assert code == 0
    assert err.startswith("djarchive: warning: some-set 000: signature invalid: the manifest (sha256 ")
    assert "(not enforced: no trusted keys are configured)" in err
    status = client().signature("some-set", "000")
    assert (status.status, status.reason) == ("invalid", "digest-mismatch")


def test_require_signature_without_trusted_keys_is_a_configuration_error(signed, capsys, tmp_path):
    for argv in (
        ["download", "some-set", "000", str(tmp_path / "t"), "--require-signature"],
        ["files", "some-set", "000", "--require-signature"],
        ["verify", "some-set", "000", str(tmp_path), "--require-signature"],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert err.startswith(
            "djarchive: error: a signature is required (--require-signature) but no trusted key is "
            "configured: give --trust KEY"
        )
        assert "DJARCHIVE_CLIENT_TRUSTED_KEYS" in err
    assert not (tmp_path / "t").exists()


def test_bad_trust_configuration_is_one_line(signed, capsys, tmp_path):
    code, out, err = run(capsys, "files", "some-set", "000", "--trust", "djarchive-ed25519 nonsense")
    assert (code, out) == (2, "")  # invalid configuration
    assert err == "djarchive: error: invalid public key in --trust: not the base64 of 32 bytes\n"
    with pytest.raises(ConfigurationError, match=r"invalid public key in trusted_keys=: not the base64"):
        client(trusted_keys="djarchive-ed25519 nonsense").trust  # noqa: B018 - resolves the keys


def test_signatures_are_fetched_with_the_manifest_not_after_it(signed, keys, monkeypatch):
    """The signatures file is read while the manifest is (no extra round trip in sequence)."""
    import threading

    from djarchive_common.store import Store

    both = threading.Barrier(2, timeout=10)
    real_read = Store.read

    def read(self, key, limit):
        if key in (MANIFEST, SIG):
            both.wait()  # both reads must be in flight at once to pass
        return real_read(self, key, limit)

    monkeypatch.setattr(Store, "read", read)
    assert client().signature("some-set", "000").status == "unverified"


def test_no_cryptography_without_trusted_keys(signed, tmp_path):
    code = (
        "import sys; from djarchive_client import client; c = client(); "
        "c.download('some-set', '000', sys.argv[1], create_target=True); "
        "print(sorted(m for m in sys.modules if m.startswith('Crypto')))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_manifest_bytes_helper_matches_publish(archive, seed_files):
    archive.publish("x", "1", seed_files)
    assert archive.get("x/1/djarchive-manifest.csv") == manifest_bytes(seed_files)


# -- every reader of manifests ---------------------------------------------------------------


def test_a_retracted_revision_downloaded_anyway_is_checked_like_a_published_one(
    signed, keys, capsys, tmp_path
):
    pytest.importorskip("djarchive_admin")
    from djarchive_admin import admin

    admin().retract("some-set", "000", reason="wrong calibration", superseded_by="001")
    trust = ["--trust", line(keys["alice"])]
    code, out, err = run(
        capsys, "download", "some-set", "000", str(tmp_path / "a"), "--allow-retracted", *trust
    )
    assert code == 0
    assert out.startswith(f"some-set 000: signed by trusted key {keys['alice'].key_id}")  # the kept manifest
    kept = "some-set/000/djarchive-manifest.retracted.csv"
    signed.put(kept, signed.get(kept) + manifest_bytes({"extra.dat": b"x"}))  # tampered while retracted
    signed.put("some-set/000/extra.dat", b"x")
    code, out, err = run(
        capsys, "download", "some-set", "000", str(tmp_path / "b"), "--allow-retracted", *trust
    )
    assert (code, out) == (1, "")
    assert err.splitlines()[-1].startswith(
        "djarchive: error: signature check failed for some-set 000: the manifest"
    )
    assert not (tmp_path / "b").exists()
    with pytest.raises(SignatureError):
        client(trusted_keys=line(keys["alice"])).retracted_manifest("some-set", "000")


def test_diff_reads_manifests_through_the_same_check(signed, keys, capsys):
    code, out, _ = run(capsys, "diff", "some-set", "001", "000", "--trust", line(keys["alice"]))
    assert code == 0
    assert "root2.dat" in out
    copied_from_another_revision(signed, keys)
    code, out, err = run(capsys, "diff", "some-set", "001", "000", "--trust", line(keys["alice"]))
    assert (code, out) == (1, "")
    assert "is for some-set 001, not some-set 000" in err


def test_the_signature_is_on_the_summary_from_the_start(signed, keys, tmp_path):
    """Set before anything is written (a receipt can record it), and on a partial failure too."""
    from djarchive_common.errors import PartialFailureError

    signed.put("some-set/000/root.dat", b"damaged in the store")
    with pytest.raises(PartialFailureError) as caught:
        client(trusted_keys=line(keys["alice"])).download(
            "some-set", "000", tmp_path / "t", create_target=True
        )
    assert caught.value.summary.signature.signer == keys["alice"].key_id


def test_offline_verify_takes_no_trust_options(signed, keys, capsys, tmp_path):
    client().download("some-set", "000", tmp_path / "t", create_target=True)
    code, out, err = run(capsys, "verify", str(tmp_path / "t"), "--trust", line(keys["alice"]))
    assert (code, out) == (2, "")
    assert "signatures are checked in the archive: give DATASET REVISION TARGET" in err
